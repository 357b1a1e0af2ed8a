"""Survival labels keep the tier labels' point in time: every customer the tier SQL labels gets the
same tier from its duration and event, and only the censored ones are added."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
from leadtier.features.queries import entity_label_query, label_query, survival_query
from leadtier.models.survival import known_tiers
from leadtier.pipelines.features import fetch_frame

LEVELS = ["A", "B", "C", "D", "E"]
TH, H = [30, 90, 180], 200
AS_OF = dt.date(2011, 1, 1)


def _random_log(seed: int) -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(seed)
    n = 300
    ids = [f"c{i:03d}" for i in range(n)]
    created = pd.Timestamp("2010-06-01") + pd.to_timedelta(rng.integers(0, 240, n), unit="D")
    tx_ids = rng.choice(ids, 900)
    ts = pd.Timestamp("2010-06-01") + pd.to_timedelta(rng.integers(0, 600 * 24, 900), unit="h")
    tx = pd.DataFrame(
        {"customer_id": tx_ids, "ts": ts, "invoice_id": [f"i{k}" for k in range(900)], "amount": rng.normal(5, 5, 900)}
    )
    con = duckdb.connect()
    con.register("customers", pd.DataFrame({"customer_id": ids, "created_at": created}))
    con.register("transactions", tx)
    won = created + pd.to_timedelta(rng.integers(-5, 400, n), unit="D")
    lost = created + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
    outcomes = pd.DataFrame(
        {
            "customer_id": ids,
            "won_at": won.where(rng.random(n) < 0.5),
            "lost_at": lost.where(rng.random(n) < 0.2),
        }
    )
    con.register("outcomes", outcomes)
    return con


def _agree(tiers: pd.Series, surv: pd.DataFrame) -> np.ndarray:
    """The tiers known from the survival labels, checked equal to the tier labels (-1: no tier)."""
    merged = surv.set_index("customer_id").join(tiers.rename("tier"), how="outer")
    assert merged["event"].notna().all(), "a labelled entity is missing from the survival labels"
    got = known_tiers(merged["duration"], merged["event"], merged["followup"], TH, H)
    want = merged["tier"].map({c: i for i, c in enumerate(LEVELS)}).fillna(-1).astype(int).to_numpy()
    np.testing.assert_array_equal(got, want)
    return got


def test_next_purchase_survival_labels_match_the_tiers_and_keep_the_censored():
    con = _random_log(0)
    for observed_until in (dt.date(2011, 3, 1), dt.date(2011, 7, 20), dt.date(2011, 7, 21)):
        tiers = fetch_frame(con, label_query("days_to_next_purchase", AS_OF, observed_until, LEVELS, TH, H))
        surv = fetch_frame(con, survival_query("days_to_next_purchase", AS_OF, observed_until, H))
        known = _agree(tiers.set_index("customer_id")["tier"], surv)
        # a horizon not fully seen leaves every customer without a tier, the early buyers too
        assert (known == -1).all() if (observed_until - AS_OF).days <= H else (known >= 0).all()
        assert surv["event"].any()
        assert len(surv) == len(tiers)
        span = (observed_until - AS_OF).days
        assert (surv.loc[~surv["event"], "duration"] == span - 1).all()
        assert (surv.loc[surv["event"], "duration"] < span).all()


def test_win_survival_labels_match_the_entity_tiers_and_keep_the_open_ones():
    con = _random_log(1)
    as_of = dt.date(2011, 5, 1)  # entities started before 2010-10-13 have their whole horizon seen
    lab = fetch_frame(con, entity_label_query(as_of, LEVELS, TH, H, dt.date(2010, 7, 1)))
    surv = fetch_frame(con, survival_query("days_to_win", as_of, as_of, H, dt.date(2010, 7, 1)))
    kept = lab[lab["unlabelled"].isna()].set_index("customer_id")["tier"]
    assert set(surv["customer_id"]) == set(kept.index)  # the unlabelled-for-a-reason ones stay out
    known = _agree(kept, surv)
    assert (known >= 0).any() and (known == -1).any()
    early = surv["event"].to_numpy() & (known == -1)  # won, horizon not over: censored for the classifier
    assert early.any()
