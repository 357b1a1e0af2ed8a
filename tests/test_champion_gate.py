"""The champion gate on a real MLflow registry: a tie keeps the champion; a champion that cannot
score the new feature table, or was trained for another tier scheme, is replaced, and the reason says so."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from pipelines import train as train_stage
from tests.conftest import tiny_trained_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "gate")


def _champion_version(cfg) -> str:
    return str(MlflowClient().get_model_version_by_alias(cfg.mlflow.model_name, "champion").version)


def test_a_retrain_that_only_ties_the_champion_stays_challenger(world):
    cfg, _ = world
    before = _champion_version(cfg)
    res = train_stage.run(cfg)  # same data, config and seed: the same model, the same metrics
    assert res.alias == "challenger", res.reasons
    assert "does not beat" in res.reasons[0], res.reasons
    assert _champion_version(cfg) == before


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
