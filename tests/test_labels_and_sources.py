"""Outcome labels (thresholds, censoring, point in time), snapshots and source rules on tiny frames."""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import pandas as pd
import pytest
import yaml
from leadtier.features.queries import label_query
from leadtier.pipelines.config import ConfigError, SnapshotConfig, load_config
from leadtier.pipelines.features import fetch_frame
from leadtier.pipelines.sources import InputError, register_all
from leadtier.pipelines.train import TrainingDataError, prepare

from tests.conftest import REPO

LEVELS = ["A", "B", "C", "D", "E"]
S = dt.date(2011, 1, 1)


def _labels(
    tx: pd.DataFrame,
    as_of=S,
    observed_until=dt.date(2012, 1, 1),
    horizon=270,
    kind="days_to_next_purchase",
    cut_points=(),
    levels=LEVELS,
    customers=None,
):
    con = duckdb.connect()
    customers = (
        customers
        if customers is not None
        else pd.DataFrame({"customer_id": sorted(set(tx["customer_id"])), "created_at": pd.Timestamp("2010-01-01")})
    )
    con.register("customers", customers)
    con.register("transactions", tx)
    sql = label_query(kind, as_of, observed_until, levels, (30, 90, 180), horizon, cut_points)
    return fetch_frame(con, sql).set_index("customer_id")


def _tx(rows):
    return pd.DataFrame(rows, columns=["customer_id", "ts", "invoice_id", "amount"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"], format="ISO8601")
    )


def test_days_to_next_purchase_tiers_at_the_thresholds():
    tx = _tx(
        [
            ("a", "2011-01-31 10:00", "1", 5.0),  # day 30 -> A
            ("b", "2011-02-01 10:00", "2", 5.0),  # day 31 -> B
            ("c", "2011-06-30 10:00", "3", 5.0),  # day 180 -> C
            ("d", "2011-07-01 10:00", "4", 5.0),  # day 181 -> D (within the 270-day horizon)
            ("e", "2011-10-01 10:00", "5", 5.0),  # day 273 -> beyond the horizon -> E
            ("f", "2010-12-31 23:59", "6", 5.0),  # before the snapshot only -> E
            ("g", "2011-01-01 00:00", "7", 5.0),  # on the snapshot date: day 0 -> A
            ("h", "2011-01-05 10:00", "8", -5.0),  # a return is not a purchase -> E
        ]
    )
    lab = _labels(tx)["tier"].to_dict()
    assert lab == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E", "f": "E", "g": "A", "h": "E"}


def test_censoring_labels_nobody_while_the_horizon_is_unobserved():
    tx = _tx([("a", "2011-01-10", "1", 5.0), ("z", "2010-06-01", "2", 5.0), ("late", "2011-03-01", "3", 5.0)])
    # observed only until 2011-02-01: 'a' bought on day 9, but labelling only the early buyers of a
    # snapshot would favour them; 'z' and 'late' are unknown: every tier NULL
    lab = _labels(tx, observed_until=dt.date(2011, 2, 1))["tier"]
    assert lab.isna().all()
    full = _labels(tx, observed_until=dt.date(2011, 12, 1))["tier"]
    assert full.to_dict() == {"a": "A", "late": "B", "z": "E"}


def test_no_purchase_is_E_only_once_the_last_day_of_the_horizon_is_observed():
    """Day `horizon` still counts as "within the horizon" (D), so E needs it observed too."""
    tx = _tx([("late", "2011-09-28 10:00", "1", 5.0), ("never", "2010-06-01 10:00", "2", 5.0)])  # day 270 = horizon
    short = _labels(tx, observed_until=S + dt.timedelta(days=270))["tier"]  # days 0..269 seen
    assert pd.isna(short["late"]) and pd.isna(short["never"])  # either could still buy on day 270
    full = _labels(tx, observed_until=S + dt.timedelta(days=271))["tier"]  # days 0..270 seen
    assert full["late"] == "D" and full["never"] == "E"


def test_labels_ignore_purchases_after_observed_until():
    """Appending events after the observation end changes no label (point in time)."""
    base = _tx([("a", "2011-04-01", "1", 5.0), ("b", "2010-11-01", "2", 5.0)])
    more = pd.concat([base, _tx([("b", "2012-02-01", "9", 50.0), ("a", "2012-03-01", "8", 5.0)])])
    pd.testing.assert_frame_equal(_labels(base), _labels(more))


def test_customers_created_after_the_snapshot_get_no_label_row():
    tx = _tx([("a", "2011-01-10", "1", 5.0), ("new", "2011-05-01", "2", 5.0)])
    customers = pd.DataFrame({"customer_id": ["a", "new"], "created_at": pd.to_datetime(["2010-01-01", "2011-05-01"])})
    lab = _labels(tx, customers=customers)
    assert list(lab.index) == ["a"]


def test_value_tiers_by_revenue_in_the_horizon_and_censoring():
    tx = _tx(
        [
            ("a", "2011-01-10", "1", 1500.0),
            ("b", "2011-02-10", "2", 150.0),
            ("b", "2011-02-11", "3", 10.0),
            ("c", "2011-09-10", "4", 5000.0),
        ]
    )  # c buys after the 90-day horizon
    lab = _labels(tx, kind="revenue_next_days", horizon=90, cut_points=(1000, 100), levels=["high", "medium", "low"])
    assert lab["tier"].to_dict() == {"a": "high", "b": "medium", "c": "low"}
    assert lab.loc["b", "revenue_next"] == pytest.approx(160)
    censored = _labels(
        tx,
        kind="revenue_next_days",
        horizon=90,
        cut_points=(1000, 100),
        levels=["high", "medium", "low"],
        observed_until=dt.date(2011, 2, 1),
    )
    assert censored["tier"].isna().all()


STAGES = ["loyal", "repeat", "first_time", "prospect"]


def _stages(tx, customers, observed_until=dt.date(2012, 1, 1), loyal=3):
    con = duckdb.connect()
    con.register("customers", customers)
    con.register("transactions", tx)
    sql = label_query("purchase_stage", S, observed_until, STAGES, (), 90, (), loyal)
    return fetch_frame(con, sql).set_index("customer_id")


def test_purchase_stage_is_the_stage_reached_by_the_end_of_the_horizon():
    tx = _tx(
        [
            ("loyal", "2011-01-05", "1", 10.0),  # three purchases in the 90 days: loyal
            ("loyal", "2011-02-05", "2", 10.0),
            ("loyal", "2011-03-31 23:59", "3", 10.0),  # day 89, the horizon's last
            ("old_repeat", "2010-05-01", "4", 10.0),  # bought twice before the snapshot, not since: still repeat
            ("old_repeat", "2010-06-01", "5", 10.0),
            ("second", "2010-12-01", "6", 10.0),  # first before the snapshot, second within the horizon
            ("second", "2011-01-20", "7", 10.0),
            ("once", "2011-02-01", "8", 10.0),  # a first purchase within the horizon
            ("once", "2011-02-01", "8", 5.0),  # a second line of the same invoice: still one purchase
            ("returned", "2011-01-10", "9", 10.0),  # an invoice that nets to a return is no purchase
            ("returned", "2011-01-10", "9", -10.0),
            ("late", "2011-04-01", "10", 10.0),  # day 90: after the horizon, a prospect still
            ("late", "2011-04-02", "11", 10.0),
            ("late", "2011-04-03", "12", 10.0),
            ("refunded", "2010-12-10", "13", 10.0),  # bought before the snapshot ...
            ("refunded", "2011-01-10", "13", -10.0),  # ... returned after it under the same invoice: still bought
        ]
    )
    ids = ["loyal", "old_repeat", "second", "once", "returned", "late", "refunded", "never", "future"]
    created = [pd.Timestamp("2010-01-01")] * 8 + [pd.Timestamp("2011-02-01")]  # 'future' does not exist yet
    lab = _stages(tx, pd.DataFrame({"customer_id": ids, "created_at": created}))
    assert lab["tier"].to_dict() == {
        "loyal": "loyal",
        "old_repeat": "repeat",
        "second": "repeat",
        "once": "first_time",
        "returned": "prospect",
        "late": "prospect",
        "refunded": "first_time",
        "never": "prospect",
    }
    assert lab.loc["loyal", "purchases_next"] == 3 and lab.loc["second", "purchases_by_end"] == 2
    assert _stages(tx, pd.DataFrame({"customer_id": ids, "created_at": created}), loyal=4).loc["loyal", "tier"] == (
        "repeat"
    )
    censored = _stages(
        tx, pd.DataFrame({"customer_id": ids, "created_at": created}), observed_until=dt.date(2011, 3, 31)
    )
    assert censored["tier"].isna().all()  # day 89 not seen yet: nobody gets a stage
    with pytest.raises(ValueError, match="purchase_stage makes 4 levels"):
        label_query("purchase_stage", S, dt.date(2012, 1, 1), ["a", "b", "c"], (), 90)


def test_labels_from_people_without_a_labels_table_is_one_clear_error():
    cfg = load_config(REPO / "configs" / "demo.yaml")
    cfg.data.tables.labels = None  # labels.source stays 'table', the default
    with pytest.raises(TrainingDataError, match=r"labels.source is 'table' .* data.tables.labels is not configured"):
        prepare(cfg)


def test_label_query_rejects_inverted_dates():
    with pytest.raises(ValueError, match="must not precede"):
        label_query("days_to_next_purchase", S, dt.date(2010, 1, 1), LEVELS)


def _retail_like(tmp_path):
    """Two files with different column names/types, an overlap, guests, a cancellation, postage."""
    a = pd.DataFrame(
        {
            "Invoice": ["1", "1", "2", "3", "C4", "5"],
            "StockCode": ["A1", "POST", "B2", "A1", "A1", "A1"],
            "Quantity": [2, 1, 1, 1, -1, 3],
            "InvoiceDate": [
                "2010-01-05 10:00:00",
                "2010-01-05 10:00:00",
                "2010-03-01 09:00:00",
                "2010-03-02 09:00:00",
                "2010-03-03 09:00:00",
                "2010-03-04 09:00:00",
            ],
            "Price": [5.0, 10.0, 3.0, 5.0, 5.0, 0.0],
            "Customer ID": [100.0, 100.0, 101.0, None, 100.0, 101.0],
            "Country": ["UK", "UK", "France", "UK", "UK", "France"],
        }
    )
    b = pd.DataFrame(
        {  # the newer file: other names, real timestamps, int ids; first row repeats a's last days
            "InvoiceNo": ["2", "6"],
            "StockCode": ["B2", "B2"],
            "Quantity": [1, 4],
            "InvoiceDate": pd.to_datetime(["2010-03-01 09:00:00", "2010-06-01 12:00:00"]),
            "UnitPrice": [3.0, 2.5],
            "CustomerID": [101, 100],
            "Country": ["France", "UK"],
        }
    )
    (tmp_path / "online_retail_ii").mkdir()
    (tmp_path / "online_retail").mkdir()
    a.to_parquet(tmp_path / "online_retail_ii" / "online_retail_ii_2009-12_2010-12.parquet", index=False)
    b.to_parquet(tmp_path / "online_retail" / "online_retail_2010-12_2011-12.parquet", index=False)
    cfg = load_config(REPO / "configs" / "online_retail.yaml", data_root=str(tmp_path))
    cfg.train.model = "classifier"  # these tests are about the tier labels; the survival rows have their own
    for level in cfg.scheme.levels:  # short label windows on a handful of days: no level names promise days
        level.within_days = None
    return cfg


def test_rows_a_configured_exclusion_drops_are_info_and_missing_ids_a_warning(tmp_path, caplog):
    from leadtier.pipelines.validate import check_inputs

    cfg = _retail_like(tmp_path)
    con = duckdb.connect()
    stats = register_all(con, cfg, with_labels=False)
    with caplog.at_level(logging.INFO, logger="leadtier.pipelines.validate"):
        problems = check_inputs(con, cfg, stats, cfg.data.as_of)
    levels = {r.getMessage().split("row(s) ")[-1]: r.levelno for r in caplog.records}
    assert levels["match exclusion rule 'unit price <= 0' (excluded)"] == logging.INFO  # the config asked for it
    assert levels["have no customer id (excluded)"] == logging.WARNING  # the data did this
    assert {p.level for p in problems if "exclusion rule" in p.message} == {"info"}


def test_two_differently_named_files_become_one_deduplicated_log(tmp_path):
    cfg = _retail_like(tmp_path)
    con = duckdb.connect()
    stats = register_all(con, cfg, with_labels=False)
    tx = stats["transactions"]
    assert sum(tx.files.values()) == 8
    assert tx.duplicates_dropped == 1  # invoice 2 appears in both files
    assert tx.missing_id == 1  # the guest line (no customer id) ...
    assert tx.excluded == {"non-product stock code": 1, "unit price <= 0": 1}
    assert tx.rows == 8 - 1 - 1 - 1 - 1
    log = fetch_frame(con, "SELECT * FROM transactions ORDER BY ts")
    assert set(log["customer_id"]) == {"100", "101"}  # 100.0 and 100 are the same customer
    assert log.loc[log["invoice_id"] == "C4", "amount"].item() == pytest.approx(-5.0)  # cancellation = return
    cust = fetch_frame(con, "SELECT * FROM customers ORDER BY customer_id")
    assert cust["created_at"].astype(str).tolist() == ["2010-01-05", "2010-03-01"]
    assert cust["Country"].tolist() == ["UK", "France"]


def test_backtest_trains_only_on_labels_observed_by_the_evaluation_date(tmp_path):
    cfg = _retail_like(tmp_path)
    cfg.snapshots = SnapshotConfig(train_as_of=[dt.date(2010, 2, 1)], eval_as_of=[dt.date(2010, 4, 1)])
    cfg.labels.outcome.thresholds_days = [10, 20, 30]
    cfg.labels.outcome.horizon_days = 45  # 2010-02-01 + 45 days < 2010-04-01: observed by the evaluation date
    # two customers cannot fill five tiers: the per-tier minimum (tested elsewhere) goes below the schema's 1
    cfg.train = cfg.train.model_copy(update={"min_per_tier": 0})
    prep = prepare(cfg)
    # customer 100 bought again on 2010-06-01, after the evaluation date: a model deployed on 2010-04-01
    # knew that 100 had not bought in the 45 days after 2010-02-01 (E), nothing more
    train = prep.train.set_index("customer_id")["tier"]
    assert train["100"] == "E"
    assert prep.protocol["train_labels_observed_until"] == "2010-04-01"
    assert set(prep.test["snapshot"]) == {dt.date(2010, 4, 1)}


def test_a_snapshot_whose_horizon_is_not_observed_is_refused(tmp_path):
    cfg = _retail_like(tmp_path)
    cfg.snapshots = SnapshotConfig(train_as_of=[dt.date(2010, 2, 1)], eval_as_of=[dt.date(2010, 4, 1)])
    cfg.labels.outcome.horizon_days = 200  # 2010-02-01 + 200 days is long after 2010-04-01
    with pytest.raises(TrainingDataError, match=r"spans 59 days \(until 2010-04-01\), but the label horizon needs 201"):
        prepare(cfg)


def test_an_evaluation_snapshot_whose_horizon_the_data_does_not_cover_is_refused(tmp_path):
    """Evaluation labels are observed until the end of the data (the last transaction, 2010-06-01 12:00,
    so until 2010-06-02): a 45-day horizon needs 46 days (day 45 still counts) after the snapshot."""
    cfg = _retail_like(tmp_path)
    cfg.labels.outcome.thresholds_days = [10, 20, 30]
    cfg.labels.outcome.horizon_days = 45
    cfg.train = cfg.train.model_copy(update={"min_per_tier": 0})
    cfg.snapshots = SnapshotConfig(train_as_of=[dt.date(2010, 2, 1)], eval_as_of=[dt.date(2010, 4, 17)])
    assert prepare(cfg).protocol["eval_labels_observed_until"] == "2010-06-02"  # 46 days: just enough
    for eval_as_of, span in ((dt.date(2010, 4, 18), 45), (dt.date(2010, 5, 1), 32)):
        cfg.snapshots = SnapshotConfig(train_as_of=[dt.date(2010, 2, 1)], eval_as_of=[eval_as_of])
        with pytest.raises(
            TrainingDataError,
            match=rf"snapshot {eval_as_of} spans {span} days \(until 2010-06-02\), but the label horizon needs 46",
        ):
            prepare(cfg)


def test_a_few_transactions_dated_far_after_the_rest_do_not_extend_the_observed_data(caplog):
    """A year typed 2062 would make a horizon nobody saw look observed; a tail that is most of the data
    (the log resumed after a pause) or close to the rest is the end of the data."""
    import duckdb
    from leadtier.pipelines.features import observed_until

    cfg = load_config(REPO / "configs" / "online_retail.yaml")
    cfg.labels.outcome.horizon_days = 90

    def end(days: list[str]):
        con = duckdb.connect()
        con.execute(
            "CREATE TABLE transactions AS SELECT CAST(d AS TIMESTAMP) AS ts FROM (SELECT unnest($d) AS d)", {"d": days}
        )
        return observed_until(con, cfg)

    year = [str(dt.date(2024, 1, 1) + dt.timedelta(days=i)) for i in range(0, 366, 2)]  # 183 days of sales
    with caplog.at_level("WARNING"):
        assert end([*year, "2062-05-01 10:00"]) == dt.date(2024, 12, 31)  # the day after 2024-12-30
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "1 row(s) dated 2062-05-01 to 2062-05-01 lie more than 90 days" in said and "until 2024-12-31" in said
    caplog.clear()
    assert end([*year, "2025-03-01"]) == dt.date(2025, 3, 2) and not caplog.records  # 61 days later: observed
    resumed = [str(dt.date(2026, 1, 1) + dt.timedelta(days=i)) for i in range(10)]
    assert end([*year[:1], *resumed]) == dt.date(2026, 1, 11)  # most rows after the gap: the log resumed
    cfg.labels.outcome.observed_until = dt.date(2025, 2, 1)
    assert end([*year, "2062-05-01"]) == dt.date(2025, 2, 1)  # the export date, when given, is the end
    assert end([]) == dt.date(2025, 2, 1)
    cfg.labels.outcome.observed_until = None
    assert end([]) is None


def test_an_export_date_given_in_the_config_is_where_outcomes_end(tmp_path):
    cfg = _retail_like(tmp_path)
    cfg.labels.outcome.thresholds_days = [10, 20, 30]
    cfg.labels.outcome.horizon_days = 45
    cfg.labels.outcome.observed_until = dt.date(2010, 5, 20)  # before the last transaction: the export said so
    cfg.train = cfg.train.model_copy(update={"min_per_tier": 0})
    cfg.snapshots = SnapshotConfig(train_as_of=[dt.date(2010, 2, 1)], eval_as_of=[dt.date(2010, 4, 17)])
    with pytest.raises(TrainingDataError, match=r"spans 33 days \(until 2010-05-20\), but the label horizon needs 46"):
        prepare(cfg)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["labels"]["outcome"].update(thresholds_days=[90, 30, 180]), "strictly increasing"),
        (lambda r: r["labels"]["outcome"].update(horizon_days=100), "must exceed the last threshold"),
        (lambda r: r["labels"]["outcome"].update(thresholds_days=[30, 90]), "has 5 levels but"),
        (
            lambda r: r["labels"]["outcome"].update(thresholds_days=[14, 90, 180]),
            r"c\.yaml: labels\.outcome: the windows do not match the days scheme 'time_to_close' names its levels "
            r"by: A \('A - closes within 1 month'\) promises 30 days, thresholds_days\[0\] is 14\. "
            r"Set thresholds_days: \[30, 90, 180\] and horizon_days: 270",
        ),
        (lambda r: r["snapshots"].update(train_as_of=["2011-06-01"]), "must precede the evaluation"),
    ],
)
def test_outcome_config_errors(tmp_path, mutate, expected):
    raw = yaml.safe_load((REPO / "configs" / "online_retail.yaml").read_text())
    mutate(raw)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_select_means_missing_and_leaky_columns_are_refused(tmp_path):
    leads = pd.DataFrame(
        {
            "Prospect ID": ["p1", "p2"],
            "Lead Source": ["Select", "Google"],
            "TotalVisits": [1, 2],
            "Converted": [1, 0],
            "Tags": ["Closed by Horizzon", None],
        }
    )
    leads.to_csv(tmp_path / "leads.csv", index=False)
    raw = {
        "name": "t",
        "data": {
            "root": str(tmp_path),
            "as_of": "2026-01-01",
            "tables": {
                "customers": {
                    "path": "leads.csv",
                    "columns": {"customer_id": "Prospect ID"},
                    "na_values": ["Select"],
                    "categorical": ["Lead Source"],
                    "numeric": ["TotalVisits"],
                    "leaky": ["Converted", "Tags"],
                }
            },
        },
        "features": {"families": ["customers"]},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    cfg = load_config(tmp_path / "c.yaml")
    con = duckdb.connect()
    register_all(con, cfg, with_labels=False)
    got = fetch_frame(con, "SELECT * FROM customers ORDER BY customer_id")
    assert got["Lead Source"].isna().tolist() == [True, False]
    assert "Converted" not in got.columns and "Tags" not in got.columns
    raw["data"]["tables"]["customers"]["categorical"].append("Tags")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"declared leaky cannot be features: \['Tags'\]"):
        load_config(tmp_path / "c.yaml")


def test_bad_exclusion_rule_is_named(tmp_path):
    cfg = _retail_like(tmp_path)
    cfg.data.tables.transactions.exclude = {"typo": "unit_prize <= 0"}
    with pytest.raises(InputError, match=r"exclude\['typo'\] is not a valid SQL predicate"):
        register_all(duckdb.connect(), cfg, with_labels=False)


@pytest.mark.parametrize("words", [("Yes", "No"), ("true", "false"), ("01", "02")])
def test_a_csv_tier_column_is_read_as_written(tmp_path, words):
    """Tiers are text: a yes/no (or true/false, or 01) column keeps its spelling for labels.mapping,
    never a boolean or a number that the mapping cannot match."""
    from leadtier.pipelines.demo_data import write_demo

    cfg = load_config(REPO / "configs" / "demo.yaml", data_root=str(tmp_path))
    write_demo(cfg, n_customers=200)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels["tier"] = [words[i % 2] for i in range(len(labels))]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    cfg.data.tables.labels.files[0].path = "labels.csv"
    con = duckdb.connect()
    register_all(con, cfg)
    assert set(fetch_frame(con, "SELECT tier FROM labels")["tier"]) == set(words)


def test_a_history_of_ratings_gives_each_snapshot_the_latest_rating_known_by_then():
    from leadtier.pipelines.train import labels_known_at

    labels = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "c", "c"],
            "tier": ["low", "high", "medium", "low", "high"],
            "labelled_at": pd.to_datetime(["2026-01-01", "2026-03-01", "2026-01-05", "2026-02-01", "2026-02-01"]),
        }
    )
    early = labels_known_at(labels, dt.date(2026, 2, 15))
    assert early.values.tolist() == [["a", "low"], ["b", "medium"], ["c", "low"], ["c", "high"]]  # c: a conflict
    late = labels_known_at(labels, dt.date(2026, 4, 1))
    assert late.set_index("customer_id").loc["a", "tier"] == "high" and len(late) == 4


def test_customers_without_a_signup_date_who_buy_only_after_a_snapshot_are_a_warning(tmp_path, caplog):
    """Without created_at every customer counts at every snapshot: one whose first purchase is later was
    most likely not a customer yet, and labelled by that purchase it teaches 'no history buys soon'."""
    import datetime as dt

    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import connect
    from leadtier.pipelines.sources import register_all
    from leadtier.pipelines.train import warn_not_yet_customers

    from tests.conftest import small_config

    cfg = small_config(tmp_path, n_customers=300)
    write_demo(cfg)
    as_of = cfg.data.as_of - dt.timedelta(days=200)
    tx = pd.read_parquet(tmp_path / "transactions.parquet")
    first = pd.to_datetime(tx.groupby("customer_id")["ts"].min()).dt.date
    later = set(first.index[first >= as_of])
    con = connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        assert warn_not_yet_customers(con, cfg, as_of) == 0  # every customer has its created_at
        con.execute("CREATE OR REPLACE TEMP TABLE customers AS SELECT * REPLACE (NULL AS created_at) FROM customers")
        with caplog.at_level("WARNING", logger="leadtier.pipelines.train"):
            assert warn_not_yet_customers(con, cfg, as_of) == len(later) > 0
    finally:
        con.close()
    assert f"snapshot {as_of}: {len(later)} customer(s) without created_at have their first transaction after it" in (
        caplog.text
    )


def test_a_misspelt_rating_no_snapshot_uses_is_still_warned_of(caplog):
    """A rating replaced by a later one, or given after the last snapshot, is read by no snapshot of this run;
    its misspelling is said now, not when a later run stops on it."""
    from leadtier.pipelines.train import warn_unknown_tiers

    cfg = load_config(REPO / "configs" / "demo.yaml")
    cfg.labels.mapping = {"Level IV": "A"}
    labels = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "tier": ["A", "4级", " Level IV ", "B "]})
    with caplog.at_level("WARNING", logger="leadtier.pipelines.train"):
        warn_unknown_tiers(cfg, labels)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "1 of the 4 labels are not levels of scheme 'time_to_close'" in said[0], said
    assert "e.g. '4级' (map them with labels.mapping)" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadtier.pipelines.train"):
        warn_unknown_tiers(cfg, labels.iloc[[0, 2, 3]])
    assert not caplog.records
