"""The champion gate's decision (leadtier.models.gate), without MLflow: a gain inside the noise is not
enough when the policy asks for a margin or an interval; rows only the champion trained on are left out."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from leadtier.models.gate import (
    CHALLENGER,
    CHAMPION,
    MIN_UNSEEN_ROWS,
    Comparison,
    GateDecision,
    GatePolicy,
    Paired,
    below_floors,
    rows_to_compare,
    seen_rows,
    verdict,
)
from leadtier.models.metrics import paired_bootstrap, tier_metrics
from leadtier.pipelines.config import load_config
from leadtier.pipelines.tracking import gate_policy

from tests.conftest import DEMO_CONFIG

CODES = ("A", "B", "C", "D", "E")


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


def _keys(ids) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": [str(i) for i in ids], "snapshot": [dt.date(2026, 1, 31)] * len(ids)})


def test_rows_to_compare_leaves_out_rows_only_the_champion_trained_on():
    eval_keys = _keys(range(100))
    keep, note = rows_to_compare(_keys(range(20)), eval_keys, None, by_customer=True)
    assert keep.tolist() == [False] * 20 + [True] * 80
    assert note == "compared on the 80 of 100 evaluation rows the champion did not train on"
    # rows both models trained on favour neither: they stay
    keep, _ = rows_to_compare(_keys(range(20)), eval_keys, _keys(range(10)), by_customer=True)
    assert int(keep.sum()) == 90 and keep[:10].all()
    # too few rows left: all of them, and the note says it favours the champion
    keep, note = rows_to_compare(_keys(range(100 - MIN_UNSEEN_ROWS + 1)), eval_keys, None, by_customer=True)
    assert keep.all() and "which favours the champion" in note
    keep, note = rows_to_compare(None, eval_keys, None, by_customer=True)
    assert keep.all() and "training rows were not logged" in note
    keep, note = rows_to_compare(_keys(["x"]), eval_keys, None, by_customer=True)
    assert keep.all() and note == ""


def test_floors_name_each_metric_below_its_floor():
    policy = GatePolicy("macro_f1", CODES, floors={"macro_f1": 0.5, "qwk": 0.2})
    assert below_floors(policy, {"macro_f1": 0.4, "qwk": 0.3}) == ["macro_f1 0.4000 is below the floor 0.5"]
    assert below_floors(policy, {"macro_f1": 0.6, "qwk": 0.3}) == []
    assert below_floors(policy, {"macro_f1": 0.6}) == ["qwk nan is below the floor 0.2"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"primary": "f1"}, "primary must be one of .*Got 'f1' instead"),
        ({"min_gain": -0.1}, "min_gain must be 0 or more. Got -0.1 instead"),
        ({"resamples": -1}, "resamples must be 0 or more. Got -1 instead"),
    ],
)
def test_policy_refuses_impossible_values(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        GatePolicy(**{"primary": "macro_f1", "codes": CODES, **kwargs})


def test_the_policy_comes_from_the_config():
    cfg = load_config(DEMO_CONFIG)
    cfg.train.gate.min_gain, cfg.train.floors.qwk = 0.02, 0.1
    policy = gate_policy(cfg)
    assert (policy.primary, policy.codes, policy.min_gain) == (cfg.train.primary_metric, tuple(cfg.scheme.codes), 0.02)
    assert (policy.resamples, policy.seed, dict(policy.floors)) == (
        cfg.train.bootstrap_resamples,
        cfg.seed,
        {"qwk": 0.1},
    )


def _scores(pred: list[str], codes: list[str]) -> tuple[np.ndarray, list[str]]:
    proba = np.full((len(pred), len(codes)), 0.1)
    proba[np.arange(len(pred)), [codes.index(p) for p in pred]] = 0.6
    return proba, pred


def _comparison(cfg, n_better: int) -> Comparison:
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
    paired = Paired(tiers, _scores(new, codes), _scores(champion, codes))
    old = tier_metrics(tiers, *paired.champion[:1], codes, y_pred=champion)
    return Comparison(old, "", tier_metrics(tiers, paired.new[0], codes, y_pred=new), paired)


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
    got, _ = verdict(gate_policy(cfg), comp, {}, "3", decision)
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
    assert verdict(gate_policy(cfg), comp, {}, "3", decision)[0] == CHALLENGER
    assert "macro_f1 is undefined" in decision.reasons[0], decision.reasons
