"""Self-training is kept only when it beats supervised-only training on the evaluation rows, and the
run reports both results."""

from __future__ import annotations

import pytest
from leadtier.models.metrics import HIGHER_IS_BETTER
from leadtier.pipelines import train as train_stage
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def test_self_training_is_kept_only_when_it_beats_supervised_only(demo_data):
    cfg = demo_data
    cfg.train.semi_supervised.enabled = True
    res = train_stage.run(cfg)
    m, primary = res.metrics, cfg.train.primary_metric
    assert {"model", "model_self_training", "model_supervised_only"} <= set(m)
    self_trained, supervised = m["model_self_training"][primary], m["model_supervised_only"][primary]
    kept = self_trained > supervised if HIGHER_IS_BETTER[primary] else self_trained < supervised
    assert m["model"] == (m["model_self_training"] if kept else m["model_supervised_only"])
    run = MlflowClient().get_run(res.run_id)
    assert run.data.tags["leadtier.semi_supervised"] == ("kept" if kept else "discarded")
    for key in ("model_self_training", "model_supervised_only"):  # both results logged
        assert run.data.metrics[f"{key}_{primary}"] == pytest.approx(m[key][primary])
