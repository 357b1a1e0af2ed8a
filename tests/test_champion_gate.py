"""The champion gate on a real MLflow registry: a tie keeps the champion; a champion that cannot
score the new feature table, or was trained for another tier scheme, is replaced, and the reason says so.
The decision's rules without MLflow (margins, intervals, rows left out) are in test_gate.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pandas as pd
import pytest
from leadtier.models.metrics import tier_metrics
from leadtier.pipelines import train as train_stage
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_trained_world

pytestmark = pytest.mark.slow


def _evaluated_model_registered(cfg) -> None:
    cfg.train.refit = False  # the champion is re-scored on the new evaluation rows (the refitting gate: below)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "gate", adjust=_evaluated_model_registered)


def _champion_version(cfg) -> str:
    return str(MlflowClient().get_model_version_by_alias(cfg.mlflow.model_name, "champion").version)


def test_a_retrain_that_only_ties_the_champion_stays_challenger(world):
    cfg, _ = world
    before = _champion_version(cfg)
    res = train_stage.run(cfg)  # same data, config and seed: the same model, the same metrics
    assert res.alias == "challenger", res.reasons
    assert "does not beat" in res.reasons[0], res.reasons
    assert _champion_version(cfg) == before


def _metric_on(cfg, version: str, rows) -> float:
    """``cfg``'s primary metric for registered ``version`` on ``rows`` (features and tier)."""
    model = mlflow.pyfunc.load_model(f"models:/{cfg.mlflow.model_name}/{version}")
    scored = model.predict(rows.drop(columns=["customer_id", "snapshot", "tier", "labelled_at"], errors="ignore"))
    proba = scored[[f"proba_{c}" for c in cfg.scheme.codes]].to_numpy()
    return tier_metrics(rows["tier"].tolist(), proba, cfg.scheme.codes, y_pred=scored["tier"].tolist())[
        cfg.train.primary_metric
    ]


def test_the_gate_leaves_out_evaluation_rows_the_champion_trained_on(world):
    cfg, _ = world
    before = _champion_version(cfg)
    changed = cfg.model_copy(deep=True)
    changed.seed = 7  # another split of the same labelled customers: the champion trained on most new test rows
    changed.train.test_size = 0.4
    res = train_stage.run(changed)
    champion_train = set(train_stage.prepare(cfg).train["customer_id"])
    test = train_stage.prepare(changed).test
    unseen = test[~test["customer_id"].isin(champion_train)]
    assert 30 <= len(unseen) < len(test) / 2
    text = "\n".join(res.reasons)
    assert f"compared on the {len(unseen)} of {len(test)} evaluation rows the champion did not train on" in text
    primary = cfg.train.primary_metric
    new, old = _metric_on(cfg, res.model_version, unseen), _metric_on(cfg, before, unseen)
    assert f"{primary}: new {new:.4f} vs champion v{before} {old:.4f}" in text, text
    assert res.alias == ("champion" if new > old else "challenger")


def test_a_champion_whose_training_rows_were_not_logged_is_compared_on_all_rows(world):
    cfg, _ = world
    client = MlflowClient()
    current = client.get_model_version_by_alias(cfg.mlflow.model_name, "champion")
    keys = Path(urlparse(client.get_run(current.run_id).info.artifact_uri).path) / "inputs" / "train_keys.parquet"
    keys.unlink()  # a champion registered before the rows were logged
    res = train_stage.run(cfg)
    assert any("training rows were not logged" in r for r in res.reasons), res.reasons
    assert not any("did not train on" in r for r in res.reasons), res.reasons


def test_a_champion_that_cannot_score_the_new_features_is_replaced(world):
    cfg, _ = world
    before = _champion_version(cfg)
    changed = cfg.model_copy(deep=True)
    changed.features.windows_days = [7, 30]  # the champion needs the 90- and 365-day columns
    res = train_stage.run(changed)
    assert res.alias == "champion", res.reasons
    assert any(f"champion v{before} cannot compete" in r and "replaces it" in r for r in res.reasons), res.reasons
    assert _champion_version(cfg) == res.model_version != before


def test_a_champion_of_another_tier_scheme_is_not_compared_but_replaced(world):
    cfg, _ = world
    before = _champion_version(cfg)
    changed = cfg.model_copy(deep=True)
    changed.schemes["intent_test"] = cfg.scheme  # a look-alike scheme: the same codes, another meaning
    changed.labels.scheme = "intent_test"
    res = train_stage.run(changed)
    assert res.alias == "champion", res.reasons
    assert any("trained for the tier scheme 'time_to_close', not 'intent_test'" in r for r in res.reasons), res.reasons
    assert _champion_version(cfg) == res.model_version != before


@pytest.fixture(scope="module")
def outcome_world(tmp_path_factory):
    """Like ``world``, with labels from days to the next purchase after the snapshot (outcome labels)."""

    def outcome(cfg):
        cfg.labels.source = "outcome"
        cfg.data.as_of = dt.date(2025, 12, 31)
        for level in cfg.scheme.levels:  # windows shorter than the level names promise: names without days
            level.within_days = None
        cfg.labels.outcome.thresholds_days = [15, 45, 90]
        cfg.labels.outcome.horizon_days = 120
        cfg.train.min_per_tier = 2
        cfg.train.semi_supervised.enabled = False  # self-training needs labels from people
        _evaluated_model_registered(cfg)

    yield from tiny_trained_world(tmp_path_factory, "gate-outcome", n_customers=3000, adjust=outcome)


def test_with_outcome_labels_the_gate_leaves_out_the_champions_customer_snapshots(outcome_world):
    cfg, _ = outcome_world
    before = _champion_version(cfg)
    changed = cfg.model_copy(deep=True)
    changed.seed, changed.train.test_size = 7, 0.4
    res = train_stage.run(changed)
    champion_train = set(train_stage.prepare(cfg).train["customer_id"])  # one snapshot: the customer decides
    test = train_stage.prepare(changed).test
    unseen = test[~test["customer_id"].isin(champion_train)]
    text = "\n".join(res.reasons)
    assert f"compared on the {len(unseen)} of {len(test)} evaluation rows the champion did not train on" in text
    primary = cfg.train.primary_metric
    new, old = _metric_on(cfg, res.model_version, unseen), _metric_on(cfg, before, unseen)
    assert f"{primary}: new {new:.4f} vs champion v{before} {old:.4f}" in text, text


def _logged_predictions(client, cfg, version: str) -> pd.DataFrame:
    run = client.get_run(client.get_model_version(cfg.mlflow.model_name, version).run_id)
    return pd.read_parquet(Path(urlparse(run.info.artifact_uri).path) / "eval" / "predictions.parquet")


def _on_rows(cfg, frame: pd.DataFrame) -> dict[str, float]:
    proba = frame[[f"proba_{c}" for c in cfg.scheme.codes]].to_numpy()
    return tier_metrics(frame["tier"].tolist(), proba, cfg.scheme.codes, y_pred=frame["predicted"].tolist())


def test_a_k_fold_gate_pairs_the_new_out_of_fold_predictions_with_the_champions_logged_ones(world):
    cfg, _ = world
    kfold = cfg.model_copy(deep=True)
    kfold.train.evaluation, kfold.train.folds, kfold.train.gate.interval = "kfold", 3, True
    client = MlflowClient()
    holdout = train_stage.run(cfg)  # whatever the tests before left as champion, this one is a holdout model
    client.set_registered_model_alias(cfg.mlflow.model_name, "champion", holdout.model_version)
    first = train_stage.run(kfold)  # against the holdout champion: its logged holdout rows, out of sample for both
    held_out = _logged_predictions(client, cfg, holdout.model_version)
    new = _logged_predictions(client, cfg, first.model_version)
    assert len(new) == first.n_test > len(held_out)  # every labelled customer, out of fold
    text = "\n".join(first.reasons)
    assert f"compared on the {len(held_out)} of {first.n_test} evaluation rows" in text, text
    assert f"on the {len(held_out)} evaluation rows both scored" in text, text
    # the point estimates are the two models' on those rows, not the new model's on all rows
    pairs = held_out.merge(new, on=["customer_id", "snapshot"], suffixes=("_old", ""))
    old_m = _on_rows(cfg, held_out)
    new_m = _on_rows(cfg, pairs)
    primary = cfg.train.primary_metric
    shown = f"{primary}: new {new_m[primary]:.4f} vs champion v{holdout.model_version} {old_m[primary]:.4f}"
    assert shown in text, text

    client.set_registered_model_alias(cfg.mlflow.model_name, "champion", first.model_version)
    second_cfg = kfold.model_copy(deep=True)
    second_cfg.seed = 7
    second = train_stage.run(second_cfg)  # both out of fold on every labelled customer
    assert any(f"on the {first.n_test} evaluation rows both scored" in r for r in second.reasons), second.reasons
    # a champion whose evaluation predictions were not logged: said so, its logged metrics compared
    run = client.get_run(client.get_model_version(cfg.mlflow.model_name, first.model_version).run_id)
    (Path(urlparse(run.info.artifact_uri).path) / "eval" / "predictions.parquet").unlink()
    client.set_registered_model_alias(cfg.mlflow.model_name, "champion", first.model_version)
    third = train_stage.run(second_cfg)
    text = "\n".join(third.reasons)
    assert "no interval for the gain (the champion's run logged no predictions" in text, text
    assert f"{primary}: new {third.metrics['model'][primary]:.4f} vs champion v{first.model_version} " in text, text


def test_a_refitted_model_is_fitted_on_every_labelled_row_and_gated_on_held_out_predictions(world):
    """train.refit: the registered model saw the evaluation rows too (its logged training keys say so), so
    the gate pairs the champion's logged held-out predictions with those of the new model fitted on the
    training rows alone, never a model re-scored on rows it trained on."""
    cfg, _ = world
    refit = cfg.model_copy(deep=True)
    refit.train.refit = True
    client = MlflowClient()
    first = train_stage.run(refit)
    client.set_registered_model_alias(cfg.mlflow.model_name, "champion", first.model_version)
    assert first.protocol["rows"]["refit"] == first.n_train + first.n_test
    run = client.get_run(client.get_model_version(cfg.mlflow.model_name, first.model_version).run_id)
    keys = pd.read_parquet(Path(urlparse(run.info.artifact_uri).path) / "inputs" / "train_keys.parquet")
    assert len(keys) == first.n_train + first.n_test
    assert any("refitted (train.refit) on all" in r for r in first.protocol["model_choice"]), first.protocol
    changed = refit.model_copy(deep=True)
    changed.seed, changed.train.test_size = 7, 0.5  # another split: the rows both runs held out are paired
    second = train_stage.run(changed)
    both = _logged_predictions(client, cfg, first.model_version).merge(
        _logged_predictions(client, cfg, second.model_version), on=["customer_id", "snapshot"]
    )
    text = "\n".join(second.reasons)
    assert 30 <= len(both) < second.n_test
    assert f"compared on the {len(both)} of {second.n_test} evaluation rows that the champion's logged" in text, text
    assert "rows the champion did not train on" not in text  # never re-scored on rows it may have seen
