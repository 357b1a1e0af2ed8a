"""Every date comparison at its edge, on the DuckDB path: events exactly at midnight of the as-of date
(the future), a second before it (the past), customers created that day, window edges at midnight,
outcome horizons ending exactly on the observation date, and predict's reject rule.

"As of 2026-06-30" means midnight at the start of that day (docs/config.md, "Point in time"). Fixtures a
year away from the as-of date cannot tell ``<`` from ``<=``; these can.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from leadtier.features.queries import label_query
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines.config import load_config
from leadtier.pipelines.features import build, connect, fetch_frame, staged_families
from leadtier.pipelines.sources import register_all

from tests.conftest import AS_OF, REPO, small_config, write_tables

TS = pd.Timestamp
MIDNIGHT = TS(AS_OF)  # 2026-06-30 00:00:00: the first moment of the future
EVE = MIDNIGHT - pd.Timedelta(seconds=1)  # 2026-06-29 23:59:59: the last moment of the past


def _customers(ids_created: dict[str, TS | None]) -> pd.DataFrame:
    n = len(ids_created)
    return pd.DataFrame(
        {
            "customer_id": list(ids_created),
            "created_at": pd.to_datetime(list(ids_created.values())),
            "lead_source": ["web_form"] * n,
            "industry": ["retail"] * n,
            "company_size": ["1-10"] * n,
            "region": ["north"] * n,
            "annual_revenue_musd": [1.0] * n,
            "contact_name": ["x"] * n,
            "email": ["x@x"] * n,
            "phone": ["1"] * n,
        }
    )


@pytest.fixture
def edge_cfg(workdir):
    customers = _customers(
        {
            "old": TS("2025-01-01"),
            "eve": EVE,  # created a second before the as-of date: exists
            "midnight": MIDNIGHT,  # created at the as-of date's midnight: does not exist yet
            "noon": MIDNIGHT + pd.Timedelta(hours=12),  # created later that day: does not exist yet
        }
    )
    tx = pd.DataFrame(
        [
            # customer, ts, invoice, amount, quantity, product, channel
            ("old", EVE, "past", 10.0, 1, "P1", "web"),
            ("old", MIDNIGHT, "future", 1000.0, 1, "P_FUTURE", "shop_future"),  # the future, at midnight
            ("old", TS("2026-05-31 00:00"), "d30", 7.0, 1, "P1", "web"),  # 30 days before, at midnight: in 30d
            ("old", TS("2026-05-30 23:59:59"), "d31", 3.0, 1, "P1", "web"),  # 31 days before: previous 30 days
            ("old", TS("2026-06-23 00:00"), "d7", 1.0, 1, "P1", "web"),  # 7 days before, at midnight: in 7d
            ("old", TS("2026-06-22 23:59:59"), "d8", 1.0, 1, "P1", "web"),  # 8 days before: not in 7d
            ("eve", MIDNIGHT, "eve-future", 50.0, 1, "P1", "web"),
        ],
        columns=["customer_id", "ts", "invoice_id", "amount", "quantity", "product_id", "channel"],
    )
    ix = pd.DataFrame(
        [
            ("old", EVE, "call", 60.0),
            ("old", MIDNIGHT, "meeting", 3600.0),  # the future, at midnight
            ("old", TS("2026-05-31 00:00"), "email_open", None),  # 30 days before: in 30d
            ("old", TS("2026-05-30 23:59:59"), "email_open", None),  # 31 days before: not in 30d
            ("eve", MIDNIGHT, "call", 10.0),
        ],
        columns=["customer_id", "ts", "type", "duration_s"],
    )
    root = workdir / "edges"
    write_tables(root, customers, tx, ix)
    cfg = small_config(root)
    cfg.data.tables.labels = None
    return cfg


def test_customers_created_on_the_as_of_date_do_not_exist_yet_even_at_midnight(edge_cfg):
    f = build(edge_cfg, with_labels=False).features
    assert sorted(f["customer_id"]) == ["eve", "old"]
    assert f.set_index("customer_id").loc["eve", "cust_tenure_days"] == 1


def test_transactions_at_the_as_of_midnight_are_the_future(edge_cfg):
    old = build(edge_cfg, with_labels=False).features.set_index("customer_id").loc["old"]
    assert old["rfm_lines"] == 5  # past, d30, d31, d7, d8; not the invoice at midnight
    assert old["rfm_frequency"] == 5 and old["rfm_recency_days"] == 1
    assert old["rfm_monetary"] == 22.0  # 10 + 7 + 3 + 1 + 1, without the 1,000 at midnight
    assert old["rfm_distinct_products"] == 1 and old["rfm_distinct_channels"] == 1  # not P_FUTURE, shop_future
    assert old["rfm_frequency_7d"] == 2 and old["rfm_amount_7d"] == 11.0  # past (day 1) and d7 (day 7)
    assert old["rfm_frequency_30d"] == 4 and old["rfm_amount_30d"] == 19.0  # ... d8 and d30 (day 30)
    assert old["rfm_frequency_trend_30d"] == 4 - 1  # d31 is the previous 30 days
    eve = build(edge_cfg, with_labels=False).features.set_index("customer_id").loc["eve"]
    assert eve["rfm_lines"] == 0 and eve["rfm_frequency"] == 0 and eve["rfm_segment"] == "no_purchase"


def test_interactions_at_the_as_of_midnight_are_the_future(edge_cfg):
    f = build(edge_cfg, with_labels=False).features.set_index("customer_id")
    old, eve = f.loc["old"], f.loc["eve"]
    assert old["ix_count"] == 3 and old["ix_recency_days"] == 1  # the call, two email opens; no meeting
    assert old["ix_meeting_7d"] == 0 and old["ix_meeting_365d"] == 0 and old["ix_call_7d"] == 1
    assert old["ix_email_open_30d"] == 1 and old["ix_email_open_90d"] == 2  # day 30 in, day 31 out
    assert old["ix_duration_s_30d"] == 60.0
    assert eve["ix_count"] == 0 and pd.isna(eve["ix_recency_days"])


# --------------------------------------------------------------------------- predict's reject rule


def test_predict_rejects_prospects_created_on_the_as_of_date_and_scores_the_rest(edge_cfg):
    """The DuckDB scoring path up to the model (the prospects as the customers table): the reject rule
    and the customers family must agree to the second, so that every input row is scored or rejected."""
    prospects = _customers(
        {
            "p-eve": EVE,
            "p-midnight": MIDNIGHT,
            "p-noon": MIDNIGHT + pd.Timedelta(hours=15),
            "p-none": None,
            "p-old": TS("2024-02-29"),
        }
    )
    root = edge_cfg.data_path(".")
    prospects.to_parquet(root / "customers.parquet", index=False)
    con = connect(edge_cfg)
    try:
        register_all(con, edge_cfg, with_labels=False, drop_missing_ids=False, tag_rows=True)
        rejects = predict_stage._split_rejects(con, AS_OF)
        with staged_families(con, edge_cfg, AS_OF) as sql:
            scored = fetch_frame(con, sql)
    finally:
        con.close()
    assert rejects[["input_row", "customer_id", "reason"]].values.tolist() == [
        [2, "p-midnight", "skipped: created on or after the as-of date"],
        [3, "p-noon", "skipped: created on or after the as-of date"],
    ]
    assert sorted(scored["customer_id"]) == ["p-eve", "p-none", "p-old"]
    assert len(scored) + len(rejects) == len(prospects)


def test_predict_rejects_a_deal_without_a_start_when_its_tier_counts_the_days_from_it(edge_cfg):
    """Labels by days to win count each deal's days from its created_at: a deal without one has no day
    to count from (none such was labelled), with or without features.entity_as_of_days."""
    clock = load_config(REPO / "configs" / "olist_funnel.yaml")
    assert clock.labels.outcome.kind == "days_to_win" and not clock.features.entity_as_of_days
    prospects = _customers({"p-none": None, "p-old": TS("2024-02-29")})
    prospects.to_parquet(edge_cfg.data_path(".") / "customers.parquet", index=False)
    con = connect(edge_cfg)
    try:
        register_all(con, edge_cfg, with_labels=False, drop_missing_ids=False, tag_rows=True)
        rejects = predict_stage._split_rejects(con, AS_OF, rules=predict_stage.scoring_rules(clock))
        scored = [r[0] for r in con.execute("SELECT customer_id FROM customers").fetchall()]
    finally:
        con.close()
    assert rejects[["input_row", "customer_id", "reason"]].values.tolist() == [
        [1, "p-none", "missing created_at: its tier counts the days from it"]
    ]
    assert scored == ["p-old"]


# --------------------------------------------------------------------------- outcome labels

S = dt.date(2011, 1, 1)
LEVELS = ["A", "B", "C", "D", "E"]


def _labels(
    tx_rows, observed_until, kind="days_to_next_purchase", horizon=270, cut_points=(), levels=LEVELS, created=None
):
    tx = pd.DataFrame(tx_rows, columns=["customer_id", "ts", "invoice_id", "amount"])
    tx["ts"] = pd.to_datetime(tx["ts"])
    ids = sorted(set(tx["customer_id"]) | set(created or {}))
    created = created or {}
    customers = pd.DataFrame(
        {"customer_id": ids, "created_at": [TS(created.get(i, "2010-01-01")) for i in ids]},
    )
    con = duckdb.connect()
    con.register("customers", customers)
    con.register("transactions", tx)
    sql = label_query(kind, S, observed_until, levels, (30, 90, 180), horizon, cut_points)
    return fetch_frame(con, sql).set_index("customer_id")["tier"]


def test_days_to_next_purchase_counts_from_the_snapshot_midnight_to_before_observed_until():
    rows = [
        ("first-moment", "2011-01-01 00:00:00", "1", 5.0),  # at the snapshot's midnight: day 0, A
        ("before", "2010-12-31 23:59:59", "2", 5.0),  # the past: no purchase seen in the horizon
        ("last-seen", "2011-02-28 23:59:59", "3", 5.0),  # the last second before observed_until: day 58, B
        ("unseen", "2011-03-01 00:00:00", "4", 5.0),  # at observed_until: not observed yet
    ]
    # days 0 .. 58 observed: a 58-day horizon is whole (nothing seen in it is E), a 270-day one is not
    tiers = _labels(rows, observed_until=dt.date(2011, 3, 1), horizon=58, created={"new": "2011-01-01 00:00:00"})
    assert tiers.to_dict() == {"first-moment": "A", "last-seen": "B", "before": "E", "unseen": "E"}
    assert "new" not in tiers.index  # created at the snapshot's midnight: no label row
    assert _labels(rows, observed_until=dt.date(2011, 3, 1)).isna().all()  # censored, the early buyers too


def test_days_to_next_purchase_horizon_and_its_last_observed_day():
    # 2011-01-01 + 270 days = 2011-09-28: a purchase that day is D; nothing seen through it is E only once
    # the whole of day 270 is observed (observed_until 2011-09-29)
    rows = [
        ("day270", "2011-09-28 00:00", "1", 5.0),
        ("day271", "2011-09-29 00:00", "2", 5.0),
        ("never", "2009-01-01 00:00", "3", 5.0),
    ]
    complete = _labels(rows, observed_until=dt.date(2011, 9, 30))
    assert complete.to_dict() == {"day270": "D", "day271": "E", "never": "E"}
    just = _labels(rows, observed_until=dt.date(2011, 9, 29))
    assert just.to_dict() == {"day270": "D", "day271": "E", "never": "E"}
    # day 270 not observed (the purchase at observed_until is not seen either): nobody is labelled E
    assert _labels(rows, observed_until=dt.date(2011, 9, 28)).isna().all()


def test_revenue_horizon_is_the_days_from_the_snapshot_midnight_to_before_its_end():
    # horizon 30 days: 2011-01-01 00:00 up to, not including, 2011-01-31 00:00
    rows = [
        ("a", "2011-01-01 00:00:00", "1", 100.0),  # first moment: counts
        ("a", "2010-12-31 23:59:59", "2", 1000.0),  # the past: does not
        ("b", "2011-01-30 23:59:59", "3", 100.0),  # last second of the horizon: counts
        ("c", "2011-01-31 00:00:00", "4", 100.0),  # first moment after it: does not
    ]
    kw = {"kind": "revenue_next_days", "horizon": 30, "cut_points": (50,), "levels": ["high", "low"]}
    tiers = _labels(rows, observed_until=dt.date(2011, 2, 15), **kw)
    assert tiers.to_dict() == {"a": "high", "b": "high", "c": "low"}
    tiers = _labels(rows, observed_until=dt.date(2011, 1, 31), **kw)  # exactly 30 days observed: enough
    assert tiers.to_dict() == {"a": "high", "b": "high", "c": "low"}
    assert _labels(rows, observed_until=dt.date(2011, 1, 30), **kw).isna().all()  # 29 days: censored


# --------------------------------------------------------------------------- demo data: midnight and threads


def test_events_at_the_as_of_midnight_change_no_feature_on_demo_data(demo_data):
    """The point-in-time check of test_features.py with every appended event exactly at the as-of
    midnight (events at random future seconds almost never fall there)."""
    cfg = demo_data
    root = cfg.data_path(".")
    before = build(cfg, with_labels=False).features
    tx = pd.read_parquet(root / "transactions.parquet")
    ix = pd.read_parquet(root / "interactions.parquet")
    ids = tx["customer_id"].drop_duplicates().sample(300, random_state=2).to_numpy()
    future_tx = pd.DataFrame(
        {
            "customer_id": ids,
            "ts": MIDNIGHT,
            "invoice_id": [f"M{i}" for i in range(len(ids))],
            "product_id": "P_MIDNIGHT",
            "channel": "midnight",
            "quantity": 1,
            "amount": 1e6,
        }
    )
    future_ix = pd.DataFrame({"customer_id": ids, "ts": MIDNIGHT, "type": "meeting", "duration_s": 100.0})
    pd.concat([tx, future_tx], ignore_index=True).astype(tx.dtypes.to_dict()).to_parquet(
        root / "transactions.parquet", index=False
    )
    pd.concat([ix, future_ix], ignore_index=True).astype(ix.dtypes.to_dict()).to_parquet(
        root / "interactions.parquet", index=False
    )
    pd.testing.assert_frame_equal(before, build(cfg, with_labels=False).features)


def test_features_are_bit_identical_whatever_the_number_of_threads(demo_data, monkeypatch):
    """docs/config.md: feature values are bit-identical however many threads add them up (1, 2, 3, 4)."""
    import leadtier.pipelines.features as stage

    root = demo_data.data_path("")
    for name in ("transactions", "interactions"):  # many small row groups: work for every thread
        pd.read_parquet(root / f"{name}.parquet").to_parquet(root / f"{name}.parquet", row_group_size=500)
    plain, threads = stage.connect, {"n": 1}

    def connect(cfg=None, threads_=None, **kw):
        kw.pop("threads", None)
        return plain(cfg, threads=threads["n"], **kw)

    monkeypatch.setattr(stage, "connect", connect)
    one = build(demo_data, with_labels=False).features
    for n in (4, 2, 3):
        threads["n"] = n
        pd.testing.assert_frame_equal(one, build(demo_data, with_labels=False).features, check_exact=True)


def test_money_is_added_exactly_in_ten_thousandths(workdir):
    """0.07 + 0.14 - 0.21 is not 0 when each line is scaled to 1/10,000ths in floating point; rounded to
    whole 1/10,000ths it is, so that invoice is no purchase, and sums come out as the decimal figures
    whatever the order (docs/config.md)."""
    customers = _customers({"c1": TS("2025-01-01"), "c2": TS("2025-01-01")})
    tx = pd.DataFrame(
        [
            ("c1", TS("2026-06-01 10:00"), "zero", 0.07, 1),
            ("c1", TS("2026-06-01 10:00"), "zero", 0.14, 1),
            ("c1", TS("2026-06-01 10:00"), "zero", -0.21, -1),  # returns every line: nets to exactly 0
            ("c2", TS("2026-06-01 10:00"), "k1", 0.07, 1),
            ("c2", TS("2026-06-02 10:00"), "k2", 0.14, 1),
            ("c2", TS("2026-06-03 10:00"), "k3", 1.11, 1),
        ],
        columns=["customer_id", "ts", "invoice_id", "amount", "quantity"],
    )
    assert 0.07 * 1e4 + 0.14 * 1e4 - 0.21 * 1e4 != 0 and (0.07 * 1e4 + 0.14 * 1e4 + 1.11 * 1e4) / 1e4 != 1.32
    ix = pd.DataFrame({"customer_id": ["c1"], "ts": [TS("2026-06-01")], "type": ["call"], "duration_s": [1.0]})
    root = workdir / "money"
    write_tables(root, customers, tx, ix)
    cfg = small_config(root)
    cfg.data.tables.labels = None
    f = build(cfg, with_labels=False).features.set_index("customer_id")
    assert f.loc["c1", "rfm_frequency"] == 0 and f.loc["c1", "rfm_segment"] == "no_purchase"
    assert f.loc["c1", "rfm_monetary"] == 0.0 and f.loc["c1", "rfm_return_amount"] == 0.21
    assert f.loc["c2", "rfm_monetary"] == 1.32 and f.loc["c2", "rfm_amount_30d"] == 1.32
    assert f.loc["c2", "rfm_monetary_div_frequency"] == 1.32 / 3
