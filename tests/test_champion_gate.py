"""The champion gate on a real MLflow registry: a tie keeps the champion; a champion that cannot
score the new feature table, or was trained for another tier scheme, is replaced, and the reason says so;
a gain inside the noise is not enough when the config asks for a margin or an interval."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
from leadtier.models.metrics import paired_bootstrap, tier_metrics
from leadtier.pipelines import train as train_stage
from leadtier.pipelines.config import load_config
from leadtier.pipelines.tracking import CHALLENGER, CHAMPION, GateDecision, _Comparison, _Paired, _verdict, seen_rows
from mlflow.tracking import MlflowClient

from tests.conftest import DEMO_CONFIG, tiny_trained_world

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


def test_seen_rows_by_customer_or_by_customer_and_snapshot():
    # as logged and read back from Parquet (datetime64, text ids) against evaluation rows (Python dates)
    logged = pd.DataFrame(
        {"customer_id": ["a", "b"], "snapshot": pd.to_datetime(["2026-01-31", "2026-02-28"]).astype("datetime64[ms]")}
    )
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c"],
            "snapshot": [dt.date(2026, 1, 31), dt.date(2026, 2, 28), dt.date(2026, 2, 28), dt.date(2026, 1, 31)],
        }
    )
    assert seen_rows(logged, rows, by_customer=True).tolist() == [True, True, True, False]
    assert seen_rows(logged, rows, by_customer=False).tolist() == [True, False, True, False]
    assert isinstance(seen_rows(logged, rows, by_customer=False), np.ndarray)


@pytest.fixture(scope="module")
def outcome_world(tmp_path_factory):
    """Like ``world``, with labels from days to the next purchase after the snapshot (outcome labels)."""

    def outcome(cfg):
        cfg.labels.source = "outcome"
        cfg.data.as_of = dt.date(2025, 12, 31)
        cfg.labels.outcome.thresholds_days = [15, 45, 90]
        cfg.labels.outcome.horizon_days = 120
        cfg.train.min_per_tier = 2
        cfg.train.semi_supervised.enabled = False  # self-training needs labels from people

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


def _scores(pred: list[str], codes: list[str]) -> tuple[np.ndarray, list[str]]:
    proba = np.full((len(pred), len(codes)), 0.1)
    proba[np.arange(len(pred)), [codes.index(p) for p in pred]] = 0.6
    return proba, pred


def _comparison(cfg, n_better: int) -> _Comparison:
    """400 evaluation rows; the champion gets 60 % right; the new model (unless ``n_better`` is 0: the same
    tiers) gets ``n_better`` + 10 of its wrong rows right and 10 of its right rows wrong."""
    codes, rng = cfg.scheme.codes, np.random.default_rng(0)
    tiers = rng.choice(codes, 400).tolist()
    champion = [t if rng.random() < 0.6 else codes[(codes.index(t) + 1) % len(codes)] for t in tiers]
    right = [i for i, (t, p) in enumerate(zip(tiers, champion, strict=True)) if t == p]
    fixed = {i for i, (t, p) in enumerate(zip(tiers, champion, strict=True)) if t != p}
    fixed, broken = (set(sorted(fixed)[: n_better + 10]), set(right[:10])) if n_better else (set(), set())
    new = [
        tiers[i] if i in fixed else codes[(codes.index(p) + 1) % len(codes)] if i in broken else p
        for i, p in enumerate(champion)
    ]
    paired = _Paired(tiers, _scores(new, codes), _scores(champion, codes))
    old = tier_metrics(tiers, *paired.champion[:1], codes, y_pred=champion)
    return _Comparison(old, "", tier_metrics(tiers, paired.new[0], codes, y_pred=new), paired)


@pytest.mark.parametrize(
    ("primary", "n_better", "min_gain", "interval", "alias", "says"),
    [
        ("macro_f1", 3, 0.0, False, CHAMPION, "promoted: new macro_f1"),
        ("macro_f1", 3, 0.0, True, CHALLENGER, "does not lie above 0: it may be chance (train.gate.interval)"),
        ("macro_f1", 3, 0.05, False, CHALLENGER, "not by more than train.gate.min_gain 0.05"),
        ("macro_f1", 30, 0.05, False, CHAMPION, "by more than train.gate.min_gain 0.05"),
        ("macro_f1", 30, 0.05, True, CHALLENGER, "does not lie above 0.05: it may be chance"),
        ("macro_f1", 80, 0.0, True, CHAMPION, "with its whole 95 % interval"),
        ("macro_f1", 80, 0.05, True, CHAMPION, "by more than train.gate.min_gain 0.05 with its whole 95 % interval"),
        ("macro_f1", 0, 0.0, False, CHALLENGER, "does not beat"),
        ("log_loss", 3, 0.0, False, CHAMPION, "promoted: new log_loss"),  # lower is better: a fall promotes
        ("log_loss", 30, 0.1, True, CHALLENGER, "does not lie above 0.1: it may be chance"),
        ("log_loss", 80, 0.1, True, CHAMPION, "with its whole 95 % interval"),
    ],
)
def test_the_gate_asks_as_much_of_a_gain_as_the_config_says(primary, n_better, min_gain, interval, alias, says):
    cfg = load_config(DEMO_CONFIG)
    cfg.train.primary_metric, cfg.train.gate.min_gain, cfg.train.gate.interval = primary, min_gain, interval
    comp = _comparison(cfg, n_better)
    decision = GateDecision(alias=CHAMPION)
    got, _ = _verdict(cfg, comp, {}, "3", decision)
    assert got == alias and says in decision.reasons[0], decision.reasons
    # the interval shown is the paired bootstrap of the new model against the champion on those rows
    g = paired_bootstrap(
        comp.paired.tiers,
        {"new": comp.paired.new, "champion": comp.paired.champion},
        "new",
        cfg.scheme.codes,
        [primary],
        n_resamples=cfg.train.bootstrap_resamples,
        seed=cfg.seed,
    )["champion"][primary]
    shown = (
        f"on the 400 evaluation rows both scored: {g['gain']:+.4f} [95 % interval {g['low']:+.4f}, {g['high']:+.4f}]"
    )
    assert any(shown in r for r in decision.reasons), decision.reasons
    # each case is what it claims: where the point gain and its interval's lower end lie
    assert (g["gain"] > min_gain) == (n_better > 3 or (n_better == 3 and min_gain == 0))
    if n_better in (3, 30) and interval:
        assert 0 < g["gain"] and g["low"] <= min_gain
    if n_better == 80:
        assert g["low"] > min_gain


def test_an_undefined_primary_metric_keeps_the_champion():
    cfg = load_config(DEMO_CONFIG)
    comp = _comparison(cfg, 80)
    comp.champion["macro_f1"] = float("nan")  # e.g. a champion run that logged NaN
    decision = GateDecision(alias=CHAMPION)
    assert _verdict(cfg, comp, {}, "3", decision)[0] == CHALLENGER
    assert "macro_f1 is undefined" in decision.reasons[0], decision.reasons


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
