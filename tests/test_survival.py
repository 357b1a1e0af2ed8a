"""The discrete-time hazard tier model on generated censored data with a known hazard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from leadtier.models.survival import DiscreteHazardTiers, day_grid, person_period

LEVELS = ["A", "B", "C", "D", "E"]
THRESHOLDS = [30, 90, 180]
HORIZON = 270
RATE = {"fast": 1 / 40, "slow": 1 / 400}  # daily hazard by group: exponential days to the event


def generated(n: int = 4000, seed: int = 0, censor_share: float = 0.5) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Features (a group, a number, a noise column), days to the event (exponential, by group) and
    random censoring for ``censor_share`` of the entities, uniform over the first 300 days."""
    rng = np.random.default_rng(seed)
    group = rng.choice(list(RATE), size=n)
    days = np.floor(rng.exponential(1 / np.vectorize(RATE.get)(group))).astype(float)
    censored = rng.random(n) < censor_share
    cut = rng.integers(0, 300, size=n).astype(float)
    observed = np.where(censored & (cut < days), cut, days)
    events = ~(censored & (cut < days))
    X = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "group": group, "noise": rng.normal(size=n)})
    return X, observed, events


def true_cumulative(group: str, day: int) -> float:
    """P(event on day <= ``day``) for the floored exponential of ``group``."""
    return 1 - np.exp(-RATE[group] * (day + 1))


def model(**kw) -> DiscreteHazardTiers:
    base = dict(levels=LEVELS, thresholds_days=THRESHOLDS, horizon_days=HORIZON, n_estimators=60, calibration="none")
    return DiscreteHazardTiers(**{**base, **kw})


def test_person_period_rows_follow_the_observed_days():
    grid = day_grid(THRESHOLDS, HORIZON, 30)
    entity, interval, target = person_period(np.array([0.0, 45, 100, 400]), np.array([True, True, False, True]), grid)
    per_entity = np.bincount(entity, minlength=4)
    assert per_entity.tolist() == [1, 3, 4, len(grid)]  # event day 0; event day 45; censored at 100; after horizon
    assert target.tolist().count(1) == 2  # the two events within the horizon, each in its own interval
    assert interval[target == 1].tolist() == [0, 2]


def test_grid_keeps_the_scheme_bounds_and_the_step():
    grid = day_grid(THRESHOLDS, HORIZON, 30)
    assert set(THRESHOLDS) | {HORIZON} <= set(grid.tolist())
    assert np.diff(np.concatenate([[-1], grid])).max() <= 30
    assert day_grid(THRESHOLDS, 200, None).tolist() == [30, 90, 180, 200]


@pytest.mark.parametrize("calibration", ["none", "auto"])
def test_cumulative_probability_is_monotone_on_every_row(calibration):
    X, d, e = generated(seed=1)
    m = model(calibration=calibration).fit(X, d, e)
    proba = m.predict_proba(X)
    assert proba.shape == (len(X), len(LEVELS))
    assert (proba >= 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    cumulative = np.cumsum(proba, axis=1)  # P(event <= 30), <= 90, <= 180, <= horizon, everything
    assert (np.diff(cumulative, axis=1) >= -1e-12).all()
    surv = m.survival_function(X)
    assert (np.diff(surv, axis=1) <= 1e-12).all()


def test_recovers_a_known_hazard():
    X, d, e = generated(n=6000, seed=2)
    m = model().fit(X, d, e)
    proba = m.predict_proba(X)
    for group in RATE:
        rows = (X["group"] == group).to_numpy()
        got = proba[rows].cumsum(axis=1).mean(axis=0)
        want = [true_cumulative(group, t) for t in [*THRESHOLDS, HORIZON]]
        np.testing.assert_allclose(got[:4], want, atol=0.04)
    assert m.predict(X.iloc[:5]).tolist() == [m.classes_[i] for i in m.tier_index(proba[:5])]


def test_censored_rows_change_the_fit_and_dropping_them_biases_it():
    X, d, e = generated(n=6000, seed=3, censor_share=0.7)
    full = model().fit(X, d, e)
    # the classifier's censoring rule: keep only entities whose tier is known (an event, or followed
    # past the horizon); with random censoring the kept ones are biased towards early events
    known = e | (d >= HORIZON)
    dropped = model().fit(X[known], d[known], e[known])
    slow = (X["group"] == "slow").to_numpy()
    want = true_cumulative("slow", 90)
    got_full = full.predict_proba(X[slow]).cumsum(axis=1)[:, 1].mean()
    got_dropped = dropped.predict_proba(X[slow]).cumsum(axis=1)[:, 1].mean()
    assert abs(got_full - want) < 0.03
    assert abs(got_dropped - want) > 2 * abs(got_full - want)


def test_fit_leaves_the_callers_frame_alone_and_explains_with_the_features():
    X, d, e = generated(n=1500, seed=4)
    before = X.copy()
    m = model().fit(X, d, e)
    pd.testing.assert_frame_equal(X, before)
    idx = m.tier_index(m.predict_proba(X.iloc[:50]))
    contrib = m.contributions_for(X.iloc[:50], idx)
    assert contrib.shape == (50, 3)  # group, noise, bias
    assert list(m.feature_importances_.index)[0] == "group"
    assert set(m.feature_importances_.index) == {"group", "noise"}
    # the group pushes a fast row towards an early tier
    fast_a = np.flatnonzero((X["group"].iloc[:50] == "fast").to_numpy())
    early = m.contributions_for(X.iloc[fast_a], np.zeros(len(fast_a), dtype=int))
    assert (early[:, 0] > 0).all()


def test_refuses_bad_input_with_what_it_got():
    X, d, e = generated(n=200, seed=5)
    with pytest.raises(ValueError, match="one value per row"):
        model().fit(X, d[:-1], e)
    with pytest.raises(ValueError, match="finite days >= 0"):
        model().fit(X, np.where(np.arange(len(d)) == 0, -1.0, d), e)
    with pytest.raises(ValueError, match="levels must be one per threshold"):
        model(levels=["A", "B"]).fit(X, d, e)
    with pytest.raises(ValueError, match="no event"):
        model().fit(X, d, np.zeros(len(d), dtype=bool))
    with pytest.raises(TypeError, match="Got ndarray instead"):
        model().fit(X.to_numpy(), d, e)
    with pytest.raises(ValueError, match="horizon_days must exceed"):
        model(horizon_days=100).fit(X, d, e)


def test_survival_metrics_rank_the_true_model_above_a_blind_one():
    from leadtier.models.survival import survival_metrics

    X, d, e = generated(n=3000, seed=6)
    fit, ev = slice(0, 2000), slice(2000, None)
    m = model().fit(X.iloc[fit], d[fit], e[fit])
    good = survival_metrics(
        d[ev], e[ev], m.risk_score(X.iloc[ev]), m.survival_function(X.iloc[ev]), m.grid_, d[fit], e[fit]
    )
    blind_surv = np.tile(m.survival_function(X.iloc[fit]).mean(axis=0), (1000, 1))
    blind = survival_metrics(d[ev], e[ev], np.zeros(1000), blind_surv, m.grid_, d[fit], e[fit])
    assert good["c_index"] > 0.7 and good["c_index_uno"] > 0.7
    assert blind["c_index"] == pytest.approx(0.5)
    assert good["integrated_brier"] < blind["integrated_brier"]
