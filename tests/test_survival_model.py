"""``train.model``: the survival tier model trained with the censored entities the classifier drops,
registered and scored like the classifier, or chosen against it inside the training rows."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.models.survival import DiscreteHazardTiers
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from typer.testing import CliRunner

from tests.test_open_entities import AS_OF, deal_config, deal_world


def _config(workdir, model: str, evaluation: str = "holdout"):
    path = deal_config(workdir)
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["train"] |= {"model": model, "evaluation": evaluation, "bootstrap_resamples": 50}
    cfg["features"]["exclude"] = ["days_open"]
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _censored(deals: pd.DataFrame, horizon: int = 200) -> int:
    """Deals whose horizon is not over at AS_OF, open or already closed: no tier for the classifier."""
    start, cut = pd.to_datetime(deals["created"]), pd.Timestamp(AS_OF)
    return int((start + pd.Timedelta(days=horizon) >= cut).sum())


def test_the_survival_model_learns_from_censored_deals_and_scores_like_the_classifier(workdir):
    deals, outcomes = deal_world(workdir / "data", n=1200)
    config = _config(workdir, "survival")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--config", str(config)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    censored = _censored(deals)
    assert censored > 50
    assert f"{censored} of them censored (the classifier had to drop those)" in text
    assert "survival model (train.model: survival); the classifier is scored beside it" in text
    assert "model beats classifier" in text and "c_index" in text  # side by side, censoring-aware figures

    run = mlflow.search_runs(experiment_names=["deals"], filter_string="tags.`leadtier.stage` = 'train'").iloc[0]
    for key in ("test_c_index", "test_integrated_brier", "classifier_c_index", "classifier_macro_f1"):
        assert np.isfinite(run[f"metrics.{key}"]), key  # MLflow logs both kinds
    scorer = mlflow.pyfunc.load_model("models:/deals@champion").unwrap_python_model().scorer
    assert isinstance(scorer.classifier, DiscreteHazardTiers)
    assert scorer.metadata["protocol"]["survival"]["rows_recovered"] == censored

    res = runner.invoke(app, ["predict", "--config", str(config), "--reasons"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(workdir / "out" / "predictions.csv")
    proba = pred[[f"proba_{t}" for t in "ABCDE"]].to_numpy()
    assert len(pred) == len(deals) and np.allclose(proba.sum(axis=1), 1)
    within = np.cumsum(proba, axis=1)[:, :-1]  # P(win within 30 d), within 90, within 180, within the horizon
    assert (np.diff(within, axis=1) >= -1e-12).all()  # on every scored row
    assert pred["reasons"].notna().all()


def test_best_chooses_inside_the_training_rows_and_says_why(workdir):
    deal_world(workdir / "data", n=1500)
    config = _config(workdir, "best", evaluation="ordered_holdout")
    res = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "best by macro_f1 on" in text and "validation rows inside the training rows" in text
    chosen = "survival" if "training rows: survival (" in text else "classifier"
    other = "classifier" if chosen == "survival" else "survival"
    assert f"model beats {other}" in text
    scorer = mlflow.pyfunc.load_model("models:/deals@champion").unwrap_python_model().scorer
    assert isinstance(scorer.classifier, DiscreteHazardTiers) == (chosen == "survival")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"labels": {"source": "rules", "rules": [{"tier": "A", "when": "origin = 'referral'"}], "outcome": {}}},
            "time-to-event",
        ),
        ({"train": {"evaluation": "kfold"}}, "Got kfold instead"),
        (
            {
                "snapshots": {
                    "train_as_of": ["2019-06-01"],
                    "eval_as_of": ["2020-01-01"],
                    "survival_as_of": ["2020-02-01"],
                }
            },
            "survival_as_of snapshots must precede",
        ),
    ],
)
def test_a_survival_run_that_cannot_be_honest_is_a_config_error(tmp_path, change, words):
    path = _config(tmp_path, "survival")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in change.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError, match=words):
        load_config(path)
