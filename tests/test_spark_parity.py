"""The Spark engine gives the same feature table and the same predictions as DuckDB.

One SparkSession (local[2], UTC, 4 shuffle partitions, no UI) for the module. Skipped with a
reason when pyspark or Java is missing.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.spark

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'leadtier[spark]'")
if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (no java on PATH and no JAVA_HOME)", allow_module_level=True)

from leadtier.features import inputs as rules  # noqa: E402
from leadtier.pipelines import features as feature_stage  # noqa: E402
from leadtier.pipelines import spark as sp  # noqa: E402
from leadtier.pipelines.config import load_config  # noqa: E402
from leadtier.pipelines.sources import InputError  # noqa: E402
from leadtier.pipelines.synthetic_crm import generate  # noqa: E402

from tests.conftest import tiny_trained_world  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
SCHEMES = REPO / "configs" / "schemes.yaml"
AS_OF = dt.date(2026, 6, 30)


def at(days_before: int, hms: str = "00:00:00") -> pd.Timestamp:
    """A timestamp ``days_before`` days before the as-of date, at wall-clock time ``hms``."""
    return pd.Timestamp(f"{AS_OF - dt.timedelta(days=days_before)} {hms}")


@pytest.fixture(scope="session")
def spark():
    session = sp.spark_session("local[2]", "leadtier-tests", {"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


# --------------------------------------------------------------------------- data


def _edge_rows() -> dict[str, pd.DataFrame]:
    """Hand-made customers and events at every edge the feature SQL has."""
    attrs = {
        "lead_source": "web_form",
        "industry": "retail",
        "company_size": "1-10",
        "region": "north",
        "annual_revenue_musd": 1.5,
        "contact_name": "x",
        "email": "x@example.com",
        "phone": "1",
    }
    created = {
        "Z01": at(400),
        "Z02": at(1),  # tenure 400 / 1 day
        "Z03": at(0),
        "Z04": at(-5),  # created on / after the as-of date: not a customer yet
        "Z05": pd.NaT,  # unknown creation date: kept, tenure NULL
        "Z06": at(300),
        "Z07": at(300),
        "Z08": at(300),
        "Z09": at(300),
        "Z10": at(300),
        "Z11": at(300),
        "Z12": at(300, "23:59:59"),  # no events at all
    }
    customers = pd.DataFrame([{"customer_id": c, "created_at": t, **attrs} for c, t in created.items()])
    z9 = customers.customer_id == "Z09"
    customers.loc[z9, ["region", "industry", "company_size"]] = [None, " retail ", ""]
    customers.loc[z9, "annual_revenue_musd"] = np.nan

    tx = []

    def buy(cust, inv, ts, amount, product="P1", channel="online"):
        tx.append(
            {
                "customer_id": cust,
                "ts": ts,
                "invoice_id": inv,
                "product_id": product,
                "channel": channel,
                "quantity": 1,
                "amount": amount,
            }
        )

    # Z01: one 10.0 invoice at each window edge
    for inv, ts in [
        ("E00", at(0)),
        ("E01", at(1, "23:59:59")),
        ("E07", at(7)),
        ("E08", at(8, "23:59:59")),
        ("E30", at(30)),
        ("E31", at(31, "23:59:59")),
        ("E60", at(60, "12:00:00")),
        ("E61", at(61)),
        ("E90", at(90)),
        ("E91", at(91)),
        ("EF1", at(-1)),
    ]:
        buy("Z01", inv, ts, 10.0)
    # Z06: returns, an all-return invoice, a missing amount, a second channel and product
    buy("Z06", "R1", at(10, "09:00:00"), 100.0)
    buy("Z06", "R1", at(10, "09:00:00"), -30.0)
    buy("Z06", "R2", at(5), -50.0, channel=None)
    buy("Z06", "R3", at(40), 20.0, product="P2", channel="store")
    buy("Z06", "R3", at(40), None, product=None)
    # Z07: a single purchase (no gap, no standard deviation)
    buy("Z07", "S1", at(15), 99.99)
    # Z08: only the as-of date and the future
    buy("Z08", "F1", at(0), 10.0)
    buy("Z08", "F2", at(-3), 10.0)
    # Z11: two invoices on one day, then older ones: purchase days {3, 10, 20}
    buy("Z11", "G1", at(3, "08:00:00"), 5.0)
    buy("Z11", "G2", at(3, "08:00:00"), 7.0)
    buy("Z11", "G3", at(10), 1e9)
    buy("Z11", "G4", at(20), 1e-3)
    # not customers: created on the as-of date, and an unknown id
    buy("Z03", "N1", at(2), 10.0)
    buy("Y99", "N2", at(2), 10.0)

    ix = []

    def touch(cust, ts, kind, duration=None):
        ix.append({"customer_id": cust, "ts": ts, "type": kind, "duration_s": duration})

    touch("Z10", at(0), "call", 60.0)  # on the as-of date: excluded
    touch("Z10", at(1, "23:59:59"), "call", 120.0)
    touch("Z10", at(2), None, 5.0)
    touch("Z10", at(5), "not_a_listed_type", None)
    touch("Z10", at(7), "meeting", 1800.0)
    touch("Z10", at(30), "web_visit", 30.0)
    touch("Z10", at(31), "web_visit", 30.0)
    touch("Z10", at(60), "email_open")
    touch("Z10", at(61), "email_open")
    touch("Z10", at(-2), "meeting", 10.0)
    touch("Z05", at(3), "email_click", 1.0)
    touch("Z08", at(0, "00:00:00"), "call", 1.0)
    return {"customers": customers, "transactions": pd.DataFrame(tx), "interactions": pd.DataFrame(ix)}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """2,000 synthetic customers plus the edge cases, as Parquet (interactions in nanoseconds)."""
    root = tmp_path_factory.mktemp("parity")
    chunks = list(generate(n_customers=2000, seed=7, as_of=AS_OF))
    edges = _edge_rows()
    for name in ("customers", "transactions", "interactions", "labels"):
        frame = pd.concat([c[name] for c in chunks], ignore_index=True)
        if name in edges:
            frame = pd.concat(
                [
                    frame,
                    edges[name].astype({c: frame[c].dtype for c in edges[name].columns if frame[c].dtype.kind == "M"}),
                ],
                ignore_index=True,
            )
        for c in frame.columns:
            if frame[c].dtype.kind == "M":
                frame[c] = frame[c].astype("datetime64[ns]" if name == "interactions" else "datetime64[us]")
        frame.to_parquet(root / f"{name}.parquet", index=False)
    return root


# --------------------------------------------------------------------------- comparison


def assert_same_table(duck: pd.DataFrame, spark_rows: pd.DataFrame, exact: set[str]) -> None:
    """Same columns and rows (by customer_id); ``exact`` columns equal, other numbers to 1e-9."""
    assert list(spark_rows.columns) == list(duck.columns)
    a = duck.sort_values("customer_id", kind="stable").reset_index(drop=True)
    b = spark_rows.sort_values("customer_id", kind="stable").reset_index(drop=True)
    assert a["customer_id"].astype(str).tolist() == b["customer_id"].astype(str).tolist()
    for c in a.columns:
        if pd.api.types.is_numeric_dtype(a[c]):
            assert pd.api.types.is_numeric_dtype(b[c]), f"{c}: {b[c].dtype} on Spark"
            x, y = a[c].to_numpy(dtype=float), b[c].to_numpy(dtype=float)
            assert (np.isnan(x) == np.isnan(y)).all(), f"{c}: missing values differ"
            ok = ~np.isnan(x)
            if c in exact:
                assert (x[ok] == y[ok]).all(), f"{c}: integers differ"
            else:
                np.testing.assert_allclose(y[ok], x[ok], rtol=1e-9, atol=1e-9, err_msg=c)
        else:
            x = a[c].astype(object).where(a[c].notna(), None).tolist()
            y = b[c].astype(object).where(b[c].notna(), None).tolist()
            assert x == y, f"{c}: strings differ"


def integer_columns(spark_session, cfg) -> set[str]:
    """Columns the feature SQL computes as integers (before the numbers-as-double step)."""
    from pyspark.sql import types as T

    raw = spark_session.sql(sp.feature_sql(cfg, cfg.data.as_of))
    return {f.name for f in raw.schema.fields if isinstance(f.dataType, T.IntegralType)}


# --------------------------------------------------------------------------- tests


def test_transpiled_sql_is_spark_sql():
    cfg = load_config(DEMO, data_root="/nowhere")
    sql = sp.feature_sql(cfg, AS_OF)
    assert "DATEDIFF(CAST('2026-06-30' AS DATE), CAST(ts AS DATE))" in sql  # calendar days, no time zone
    assert "DATEDIFF(DAY" not in sql
    assert "FILTER(WHERE" in sql and "COUNT_IF(" in sql and "SUM(base) OVER (PARTITION BY rfm_frequency)" in sql
    assert sql.rstrip().endswith("NULLS LAST")  # DuckDB's default null order, made explicit
    assert "ORDER BY customer_id" not in sp.feature_sql(cfg, AS_OF, ordered=False)


def test_features_identical_to_duckdb(spark, data_root):
    cfg = load_config(DEMO, data_root=str(data_root))
    duck = feature_stage.build(cfg, with_labels=False).features
    got = sp.build_features_spark(spark, cfg, AS_OF).toPandas()
    exact = integer_columns(spark, cfg)
    assert {"rfm_frequency", "ix_count", "cust_tenure_days", "rfm_recency_days"} <= exact
    assert len(duck) > 1500
    assert_same_table(duck, got, exact)

    row = got.set_index("customer_id")
    assert "Z03" not in row.index and "Z04" not in row.index and "Y99" not in row.index
    assert {"Z02", "Z05", "Z12"} <= set(row.index)
    assert row.loc["Z02", "cust_tenure_days"] == 1 and np.isnan(row.loc["Z05", "cust_tenure_days"])
    z1 = row.loc["Z01"]  # invoices 1 (23:59:59 the day before), 7, 8, 30, 31, 60, 61, 90, 91 days old
    assert z1["rfm_recency_days"] == 1 and z1["rfm_first_purchase_days"] == 91
    assert z1["rfm_frequency"] == 9 and z1["rfm_frequency_7d"] == 2 and z1["rfm_frequency_30d"] == 4
    assert z1["rfm_frequency_90d"] == 8 and z1["rfm_frequency_trend_30d"] == 4 - 2
    z6 = row.loc["Z06"]
    assert z6["rfm_frequency"] == 2 and z6["rfm_return_lines"] == 2 and z6["rfm_return_amount"] == 80.0
    assert np.isnan(row.loc["Z07", "rfm_gap_mean_days"]) and np.isnan(row.loc["Z07", "rfm_gap_std_days"])
    assert row.loc["Z08", "rfm_frequency"] == 0 and row.loc["Z08", "ix_count"] == 0
    z11 = row.loc["Z11"]
    assert z11["rfm_gap_mean_days"] == 8.5 and z11["rfm_gap_std_days"] == pytest.approx(np.sqrt(4.5))
    z10 = row.loc["Z10"]  # touches 1, 2 (no type), 5 (unlisted type), 7, 30, 31, 60, 61 days old
    assert z10["ix_recency_days"] == 1 and z10["ix_count"] == 8
    assert z10["ix_count_7d"] == 4 and z10["ix_call_7d"] == 1 and z10["ix_meeting_7d"] == 1
    assert z10["ix_web_visit_7d"] == 0 and z10["ix_web_visit_30d"] == 1 and z10["ix_count_30d"] == 5
    assert z10["ix_duration_s_30d"] == 120 + 5 + 1800 + 30
    assert z10["ix_count_trend_30d"] == 5 - 2  # (30, 60]: 31 and 60 days old
    z9 = row.loc["Z09"]  # trimmed text; '' and missing values are NULL
    assert z9["cust_industry"] == "retail" and pd.isna(z9["cust_company_size"]) and pd.isna(z9["cust_region"])


def test_mapped_names_csv_and_input_rules_identical_to_duckdb(spark, tmp_path):
    """Renamed columns, CSV with text dates, two customer files with an overlap (one UTF-16, one Latin-1),
    derived amounts, exclude rules, na_values and an interaction type named in Chinese: the Spark input
    layer and feature SQL agree with DuckDB's."""
    cust = pd.DataFrame(
        {
            "Account ID": [101, 102, 103, 104, 105],
            "Created": ["13/01/2025", "28/02/2026", "30/06/2026", "", "15/03/2024"],
            "Segment": [" Enterprise ", "Select", "SMB", "", "n/a"],
            "Employees": [500, None, 12, 999, 7],
        }
    )
    cust.to_csv(tmp_path / "crm_a.csv", index=False, encoding="utf-16")
    pd.DataFrame(
        {  # 105 again (same row: an exact duplicate) and one more
            "Account ID": [105.0, 106.0],
            "Created": ["15/03/2024", "20/05/2026"],
            "Segment": ["n/a", "Société"],
            "Employees": [7.0, 3.0],
        }
    ).to_csv(tmp_path / "crm_b.csv", index=False, encoding="latin-1")
    pd.DataFrame(
        {
            "cust": [101, 101, 101, 102, 103, 105, 106, 101],
            "Order Date": [
                "06/29/2026 23:59",
                "06/30/2026 00:00",
                "05/31/2026 08:05",
                "01/02/2026 10:00",
                "06/01/2026 12:00",
                "12/24/2025 18:30",
                "06/20/2026 09:15",
                "06/28/2026 10:00",
            ],
            "order_no": ["A1", "A2", "A3", "B1", "C1", "E1", "F1", "TEST-9"],
            "qty": [2, 1, -1, 3, 1, 4, 1, 1000],
            "unit price": [9.5, 10.0, 9.5, 1.25, 100.0, 2.5, 8.0, 1.0],
        }
    ).to_csv(tmp_path / "orders.csv", index=False)
    pd.DataFrame(
        {
            "cust": ["101", "102", "102", "106"],
            "when": pd.to_datetime(["2026-06-29 12:00", "2026-06-01 00:00", "2026-06-30 00:00", "2026-05-01 09:30"]),
            "kind": ["拜访", "email", "拜访", "email"],  # a type named in Chinese: feature ix_拜访_7d
        }
    ).to_parquet(tmp_path / "touches.parquet", index=False)
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["data"]["tables"] = {
        "customers": {
            "files": [
                {
                    "path": "crm_a.csv",
                    "columns": {"customer_id": "Account ID", "created_at": "Created"},
                    "date_format": "%d/%m/%Y",
                    "encoding": "utf-16",
                },
                {
                    "path": "crm_b.csv",
                    "columns": {"customer_id": "Account ID", "created_at": "Created"},
                    "date_format": "%d/%m/%Y",
                    "encoding": "latin-1",
                },
            ],
            "categorical": ["Segment"],
            "numeric": ["Employees"],
            "na_values": ["Select", "n/a", "999"],
            "drop_exact_duplicates": True,
        },
        "transactions": {
            "path": "orders.csv",
            "date_format": "%m/%d/%Y %H:%M",
            "columns": {"customer_id": "cust", "ts": "Order Date", "invoice_id": "order_no", "quantity": "qty"},
            "derived": {"amount": '"qty" * "unit price"'},
            "exclude": {"test orders": "invoice_id LIKE 'TEST%'"},
        },
        "interactions": {"path": "touches.parquet", "columns": {"customer_id": "cust", "ts": "when", "type": "kind"}},
    }
    raw["features"]["interaction_types"] = ["拜访", "email"]
    (tmp_path / "mapped.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config(tmp_path / "mapped.yaml", data_root=str(tmp_path), schemes_file=SCHEMES)

    duck = feature_stage.build(cfg, with_labels=False).features
    got = sp.build_features_spark(spark, cfg).toPandas()
    assert_same_table(duck, got, integer_columns(spark, cfg))
    row = got.set_index("customer_id")
    assert sorted(row.index) == ["101", "102", "104", "105", "106"]  # 103 created on the as-of date
    assert row.loc["101", "cust_segment"] == "Enterprise" and pd.isna(row.loc["102", "cust_segment"])
    assert row.loc["106", "cust_segment"] == "Société"
    assert pd.isna(row.loc["104", "cust_employees"]) and row.loc["106", "cust_employees"] == 3  # 999: na_values

    # a Latin-1 file read as UTF-8: both engines refuse it (Spark would decode it as U+FFFD)
    utf8 = cfg.model_copy(deep=True)
    utf8.data.tables.customers.files[1].encoding = "utf-8"
    for build in (lambda: feature_stage.build(utf8, with_labels=False), lambda: sp.build_features_spark(spark, utf8)):
        with pytest.raises(InputError, match=r"crm_b\.csv: cannot be read as customers data: .*not utf-8 encoded"):
            build()
    # one more row for customer 101 (not an exact duplicate): both engines stop, naming it
    more = pd.read_csv(tmp_path / "crm_b.csv", encoding="latin-1")
    more.loc[len(more)] = [101.0, "01/01/2025", "SMB", 1.0]
    more.to_csv(tmp_path / "crm_b.csv", index=False, encoding="latin-1")
    for build in (lambda: feature_stage.build(cfg, with_labels=False), lambda: sp.build_features_spark(spark, cfg)):
        with pytest.raises(InputError, match=r"2 row\(s\) share a customer_id with another row.*e\.g\. 101"):
            build()
    assert row.loc["101", "rfm_frequency"] == 1 and row.loc["101", "rfm_return_lines"] == 1  # TEST-9 excluded
    assert row.loc["101", "rfm_amount_7d"] == 19.0 and row.loc["101", "ix_拜访_7d"] == 1


def test_java_date_format():
    assert sp.java_date_format("%m/%d/%Y %H:%M") == "M/d/yyyy H:m"
    assert sp.java_date_format("%Y%m%d") == "yyyyMMdd"
    assert sp.java_date_format("%Y-%m-%dT%H:%M:%S.%f") == "yyyy-M-d'T'H:m:s.SSSSSS"


# --------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "spark_predict")


def test_spark_predictions_equal_batch_predictions(spark, trained):
    from leadtier.pipelines import predict

    cfg, work = trained
    prospects = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str})
    bad = prospects.head(3).copy()
    bad.loc[bad.index[0], "customer_id"] = None  # missing id
    # bad.index[1] repeats the first prospect: a duplicate id
    bad.loc[bad.index[2], ["customer_id", "created_at"]] = ["ZNEW", str(AS_OF)]  # created on the as-of date
    scoring = pd.concat([prospects, bad], ignore_index=True)
    scoring.to_csv(work / "scoring.csv", index=False)
    inp = str(work / "scoring.csv")

    batch = predict.run(cfg, input_path=inp, output=str(work / "batch.parquet"), progress=False)
    res = sp.predict_spark(spark, cfg, input_path=inp, output=str(work / "spark_out"))
    assert res.input_rows == batch.input_rows == len(scoring)
    assert res.reasons == batch.reasons and (res.rejected, res.skipped) == (batch.rejected, batch.skipped) == (2, 1)
    assert res.scored == batch.scored and res.model_version == batch.model_version == "1"
    want = pd.read_csv(batch.rejects).sort_values("input_row").reset_index(drop=True)
    assert Path(res.rejects).name == Path(res.output).name + ".rejects.csv"  # one file, named as by leadtier predict
    got_rejects = pd.read_csv(res.rejects)
    pd.testing.assert_frame_equal(got_rejects, want, check_dtype=False)

    a = pd.read_parquet(work / "batch.parquet").sort_values("customer_id").reset_index(drop=True)
    b = pd.read_parquet(res.output).sort_values("customer_id").reset_index(drop=True)
    assert sorted(p.name for p in Path(res.output).iterdir() if p.is_dir()) <= [f"tier={t}" for t in "ABCDE"]
    assert set(b.columns) == set(a.columns)
    assert b["customer_id"].tolist() == a["customer_id"].tolist()
    assert b["tier"].astype(str).tolist() == a["tier"].tolist()
    for c in [c for c in a.columns if c.startswith("proba_")] + ["score"]:
        np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), rtol=0, atol=1e-6, err_msg=c)
    assert (b["segment_id"] == a["segment_id"]).all() and (b["segment"] == a["segment"]).all()
    assert (b["model_version"] == "1").all() and (b["as_of"] == AS_OF).all()
    # a clean run over the same output leaves no stale rejects file behind
    again = sp.predict_spark(spark, cfg, output=str(work / "spark_out"))
    assert again.rejected == 0 and again.rejects is None and not Path(res.rejects).exists()
    # too many rejects: as leadtier predict, the rejects file is written and the last predictions stay
    from leadtier.pipelines.predict import RejectShareError

    before = pd.read_parquet(again.output).sort_values("customer_id").reset_index(drop=True)
    strict = cfg.model_copy(deep=True)
    strict.predict.max_reject_share = 0.0
    with pytest.raises(RejectShareError, match="max_reject_share"):
        sp.predict_spark(spark, strict, input_path=inp, output=str(work / "spark_out"))
    pd.testing.assert_frame_equal(pd.read_csv(res.rejects), want, check_dtype=False)
    kept = pd.read_parquet(again.output).sort_values("customer_id").reset_index(drop=True)
    assert len(kept) == again.scored
    pd.testing.assert_frame_equal(kept, before)


def test_input_rules_are_listed_as_rejects_by_both_engines(spark, trained):
    """Exact duplicates, ``exclude`` rules, ids that are no ids (N/A, spaces around) and cells that do not
    parse (text in a number column, a date that does not exist) on the scoring input:
    each such row is listed in the rejects file at its own position in the file, with its id as written,
    by both engines, and never scored."""
    from leadtier.pipelines import predict

    cfg, work = trained
    ruled = cfg.model_copy(deep=True)
    ruled.data.tables.customers.drop_exact_duplicates = True
    ruled.data.tables.customers.exclude = {"internal test accounts": "customer_id LIKE 'ZTEST%'"}
    ruled.predict.max_reject_share = 0.5  # 8 of 38 rejected is the point here
    prospects = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str}).head(30)
    extra = prospects.iloc[[4, 4, 9]].copy()  # row 5 twice more (exact duplicates), row 10 as a test account
    extra.iloc[2, extra.columns.get_loc("customer_id")] = "ZTEST1"
    scoring = pd.concat([prospects, extra], ignore_index=True)
    scoring.loc[len(scoring)] = scoring.iloc[9]  # row 10 again but changed: a duplicate id, not an exact copy
    scoring.loc[len(scoring) - 1, "created_at"] = "2020-01-01"
    bad_ids = prospects.iloc[[0, 1]].copy()  # ids that are no ids: rejected, and listed as written
    bad_ids["customer_id"] = ["N/A", f" {prospects['customer_id'][1]} "]
    bad_cells = prospects.iloc[[2, 3]].copy()  # a number that is text, a date that does not exist
    bad_cells["customer_id"] = ["CELL1", "CELL2"]
    bad_cells["annual_revenue_musd"] = bad_cells["annual_revenue_musd"].astype(object)
    bad_cells.iloc[0, bad_cells.columns.get_loc("annual_revenue_musd")] = "n/a"
    bad_cells.iloc[1, bad_cells.columns.get_loc("created_at")] = "2026-02-31"
    scoring = pd.concat([scoring, bad_ids, bad_cells], ignore_index=True)
    scoring.to_csv(work / "ruled.csv", index=False)
    inp = str(work / "ruled.csv")

    batch = predict.run(ruled, input_path=inp, output=str(work / "ruled.parquet"), progress=False)
    res = sp.predict_spark(spark, ruled, input_path=inp, output=str(work / "ruled_spark"))
    dup = "exact duplicate row (tables.customers.drop_exact_duplicates)"
    excluded = "excluded by tables.customers.exclude['internal test accounts']"
    marker, padded = rules.MARKER_ID, rules.PADDED_ID
    number, date = "column 'annual_revenue_musd' is not a number", "column 'created_at' does not parse as a date"
    want = pd.DataFrame(
        {
            "input_row": [31, 32, 33, 34, 35, 36, 37, 38],
            "customer_id": [prospects["customer_id"][4]] * 2
            + ["ZTEST1", prospects["customer_id"][9], "N/A", f" {prospects['customer_id'][1]} ", "CELL1", "CELL2"],
            "reason": [
                dup,
                dup,
                excluded,
                "duplicate customer_id: only the first occurrence is read",
                marker,
                padded,
                number,
                date,
            ],
        }
    )
    for got in (batch, res):
        assert got.input_rows == 38 and got.scored == 30 and got.rejected == 8
        assert got.reasons == {
            dup: 2,
            excluded: 1,
            "duplicate customer_id: only the first occurrence is read": 1,
            marker: 1,
            padded: 1,
            number: 1,
            date: 1,
        }
        read = pd.read_csv(got.rejects, dtype={"customer_id": str}, keep_default_na=False)
        pd.testing.assert_frame_equal(read, want)
    a = pd.read_parquet(batch.output).sort_values("customer_id").reset_index(drop=True)
    b = pd.read_parquet(res.output).sort_values("customer_id").reset_index(drop=True)
    assert a["customer_id"].tolist() == b["customer_id"].tolist() == sorted(prospects["customer_id"])
    assert b["tier"].astype(str).tolist() == a["tier"].tolist()


def test_cluster_paths_write_and_clear_rejects_through_hadoop(spark, trained, monkeypatch):
    """On a cluster (paths not on this machine) rejects are a folder of CSV parts, and a clean run deletes an
    earlier run's through Hadoop's FileSystem API; simulated with local paths treated as remote."""
    cfg, work = trained
    prospects = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str}).head(40)
    dirty = pd.concat([prospects, prospects.head(1).assign(customer_id=None)], ignore_index=True)
    dirty.to_csv(work / "remote_dirty.csv", index=False)
    prospects.to_csv(work / "remote_clean.csv", index=False)
    monkeypatch.setattr(sp, "_is_local", lambda spark, path: False)
    out = str(work / "remote_out")
    res = sp.predict_spark(spark, cfg, input_path=str(work / "remote_dirty.csv"), output=out)
    assert res.rejected == 1 and Path(res.rejects).is_dir()
    (part,) = Path(res.rejects).glob("part-*.csv")
    assert pd.read_csv(part)["reason"].tolist() == ["missing customer_id"]
    again = sp.predict_spark(spark, cfg, input_path=str(work / "remote_clean.csv"), output=out)
    assert again.rejected == 0 and again.rejects is None and not Path(res.rejects).exists()
    assert len(pd.read_parquet(again.output)) == 40


@pytest.mark.parametrize("cluster", [False, True], ids=["local", "cluster"])
def test_a_write_that_fails_leaves_the_previous_output_as_it_was(spark, tmp_path, monkeypatch, cluster):
    """Locally and on a cluster's file system (simulated: local paths treated as remote, so the swap goes
    through Hadoop's FileSystem API), the output folder appears complete or not at all."""
    from pyspark.sql import functions as F

    if cluster:
        monkeypatch.setattr(sp, "_is_local", lambda spark, path: False)
    out = str(tmp_path / "out")
    sp.write_dir(spark, spark.range(3), out)
    failing = spark.range(5).select(F.udf(lambda i: 1 // (i - 4), "long")("id").alias("id"))  # fails on the last row
    with pytest.raises(Exception, match="ZeroDivisionError"):
        sp.write_dir(spark, failing, out)
    assert sorted(pd.read_parquet(out)["id"]) == [0, 1, 2]
    sp.write_dir(spark, spark.range(4, 6), out)  # a write that succeeds replaces it
    assert sorted(pd.read_parquet(out)["id"]) == [4, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left beside it


def test_spark_reasons_and_batch_size_match_batch_predict(spark, trained):
    from leadtier.pipelines import predict

    cfg, work = trained
    prospects = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str}).head(40)
    prospects.to_csv(work / "few.csv", index=False)
    inp = str(work / "few.csv")
    batch = predict.run(cfg, input_path=inp, output=str(work / "few.parquet"), progress=False, reasons=True)
    res = sp.predict_spark(spark, cfg, input_path=inp, output=str(work / "few_spark"), batch_size=7, reasons=True)
    assert spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch") == "7"
    a = pd.read_parquet(batch.output).sort_values("customer_id").reset_index(drop=True)
    b = pd.read_parquet(res.output).sort_values("customer_id").reset_index(drop=True)
    assert b["reasons"].str.len().gt(0).all()
    assert b["reasons"].tolist() == a["reasons"].tolist()


def test_rejects_file_is_named_as_leadtier_predict_names_it():
    assert sp.rejects_name("out/pred_spark") == "out/pred_spark.rejects.csv"
    assert sp.rejects_name("out/pred.parquet/") == "out/pred.rejects.csv"
    assert sp.rejects_name("file:/data/pred.CSV") == "file:/data/pred.rejects.csv"
    # dots inside a name are not suffixes: two monthly runs keep their own rejects
    assert sp.rejects_name("out/run.2024-06") != sp.rejects_name("out/run.2024-07")


# --------------------------------------------------------------------------- the output set


def _two_inputs(cfg, work) -> tuple[str, str]:
    """A first scoring input, and a second one that drops some customers, adds others, changes the
    revenue of some (tiers move) and gives seven of them regions training never saw (drift names three)."""
    prospects = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str})
    first, second = prospects.iloc[:150].copy(), prospects.iloc[20:200].copy()
    second.loc[second.index[:40], "annual_revenue_musd"] = second["annual_revenue_musd"].iloc[:40] * 50 + 100
    second.loc[second.index[40:80], "annual_revenue_musd"] = 0.0
    second.loc[second.index[80:87], "region"] = [f"Atlantis-{i}" for i in range(7)][::-1]
    first = pd.concat([first, first.head(2)], ignore_index=True)  # duplicates: the first run has rejects
    paths = (str(work / "set_first.csv"), str(work / "set_second.csv"))
    first.to_csv(paths[0], index=False)
    second.to_csv(paths[1], index=False)
    return paths


def test_spark_drift_and_migration_files_equal_batch_predicts(spark, trained):
    from leadtier.pipelines import predict
    from leadtier.pipelines.outputs import check_manifest

    cfg, work = trained
    first, second = _two_inputs(cfg, work)
    for inp in (first, second):
        predict.run(cfg, input_path=inp, output=str(work / "set_duck.parquet"), progress=False)
        res = sp.predict_spark(spark, cfg, input_path=inp, output=str(work / "set_spark"))
    assert res.rejected == 0 and not (work / "set_spark.rejects.csv").exists()  # the first run's rejects went

    duck_drift = pd.read_csv(work / "set_duck.drift.csv")
    spark_drift = pd.read_csv(work / "set_spark.drift.csv")
    pd.testing.assert_frame_equal(spark_drift, duck_drift)
    region = spark_drift.set_index("feature").loc["cust_region"]
    assert region["unseen_values"] == 7 and len(region["unseen_examples"].split(", ")) == 3

    duck = pd.read_csv(work / "set_duck.migration.csv", dtype={"customer_id": str})
    got = pd.read_csv(work / "set_spark.migration.csv", dtype={"customer_id": str})
    assert list(got.columns) == list(duck.columns)
    assert got["customer_id"].tolist() == duck["customer_id"].tolist()  # sorted by id, one row each
    for c in ["previous_tier", "tier", "change", "trend"]:
        assert got[c].fillna("").tolist() == duck[c].fillna("").tolist(), c
    for c, tol in [("previous_score", 1e-6), ("score", 1e-6), ("score_change", 0.01 + 1e-6)]:
        np.testing.assert_allclose(got[c].to_numpy(), duck[c].to_numpy(), atol=tol, err_msg=c)
    assert {"new", "gone", "upgraded", "downgraded", "unchanged"} <= set(got["change"])

    manifest = check_manifest(work / "set_spark", predict.SIDE_KINDS)  # what report checks first
    assert sorted(manifest["files"]) == ["set_spark", "set_spark.drift.csv", "set_spark.migration.csv"]
    assert {f["run_id"] for f in manifest["files"].values()} == {manifest["run_id"]}


def test_report_and_worklist_read_spark_predictions_as_they_read_batch_predictions(spark, trained):
    """spark-predict's folder is one set as predict's file is: the report and the worklist read it."""
    from leadtier.pipelines import predict, report, worklist

    cfg, work = trained
    first, second = _two_inputs(cfg, work)
    predict.run(cfg, input_path=second, output=str(work / "read_duck.parquet"), progress=False)
    sp.predict_spark(spark, cfg, input_path=second, output=str(work / "read_spark"))
    duck = report.read_predictions(work / "read_duck.parquet").sort_values("customer_id").reset_index(drop=True)
    got = report.read_predictions(work / "read_spark")
    assert got["customer_id"].tolist() == duck["customer_id"].tolist() and got["tier"].tolist() == duck["tier"].tolist()
    html = report.run(cfg, predictions=str(work / "read_spark"), output=str(work / "read_spark.html")).read_text()
    assert f"{len(duck):,}" in html and "read_spark" not in html.split("<main>")[0]
    wl = cfg.model_copy(deep=True)
    wl.worklist.service_days = {"A": 7, "B": 30}
    res = worklist.run(wl, predictions=str(work / "read_spark"), output=str(work / "read_spark_wl.parquet"))
    planned = pd.read_parquet(res.output)
    assert set(planned["tier"]) <= {"A", "B"} and len(planned) == int(duck["tier"].isin(["A", "B"]).sum())


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (but the set's lock file) and its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.parametrize("failing", ["drift.csv", "migration.csv", "manifest.json"])
def test_a_spark_run_failing_between_its_files_leaves_the_old_set_and_a_good_run_replaces_it(
    spark, trained, tmp_path, monkeypatch, failing
):
    """The disk fills up once a file of the set is written (drift first, then the predictions folder,
    migration, rejects, the manifest): the previous set stays entirely; the next good run replaces it entirely."""
    from leadtier.pipelines import outputs
    from leadtier.pipelines.outputs import OutputError, check_manifest
    from leadtier.pipelines.predict import SIDE_KINDS

    cfg, work = trained
    first, second = _two_inputs(cfg, work)
    out = tmp_path / "sets" / "p"
    sp.predict_spark(spark, cfg, input_path=first, output=str(out))
    old = _tree(out.parent)
    assert {"p.rejects.csv", "p.drift.csv", "p.manifest.json"} <= set(old) and "p.migration.csv" not in old
    real = outputs.stage

    def full_disk(path, write, tag="", folder=False):
        def fill(tmp):
            write(tmp)
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(path, fill if Path(path).name.endswith(failing) else write, tag, folder)

    monkeypatch.setattr(outputs, "stage", full_disk)
    with pytest.raises(OutputError, match=f"cannot write .*{failing}: no space left"):
        sp.predict_spark(spark, cfg, input_path=second, output=str(out))
    assert _tree(out.parent) == old  # nothing of the failed run, no temporary
    monkeypatch.undo()

    res = sp.predict_spark(spark, cfg, input_path=second, output=str(out))
    new = _tree(out.parent)
    assert res.rejected == 0 and "p.rejects.csv" not in new and "p.migration.csv" in new
    assert new["p.drift.csv"] != old["p.drift.csv"] and new["p.manifest.json"] != old["p.manifest.json"]
    assert not [k for k in old if "part-" in k and k in new]  # no part file of the old predictions
    manifest = check_manifest(out, SIDE_KINDS)
    assert sorted(manifest["files"]) == ["p", "p.drift.csv", "p.migration.csv"]
    assert sorted(p.name for p in out.parent.iterdir()) == [
        ".p.lock",
        "p",
        "p.drift.csv",
        "p.manifest.json",
        "p.migration.csv",
    ]


def test_spark_csv_side_files_neutralise_formulas_as_duckdb_predict_does(spark, tmp_path):
    """A rejects id such as ``=HYPERLINK(...)`` is written with a leading ``'`` by both engines."""
    from leadtier.pipelines.outputs import neutralise_formulas

    frame = pd.DataFrame(
        {
            "input_row": [1, 2, 3, 4, 5, 6],
            "customer_id": ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tX", "plain"],
            "reason": ["r", "r", "r", "r", "r", "=cmd"],
        }
    )
    sdf = spark.createDataFrame(frame)
    target = tmp_path / "x.rejects.csv"
    sp._csv_file_writer(spark, sdf)(target)
    got = pd.read_csv(target, dtype={"customer_id": str}, keep_default_na=False)
    want = neutralise_formulas(frame)
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert got["reason"].tolist() == want["reason"].tolist()
    assert got["input_row"].tolist() == [1, 2, 3, 4, 5, 6]


# --------------------------------------------------------------------------- the stages family


def _deal_tables() -> dict[str, pd.DataFrame]:
    """Deals created on different days, stage logs with a step back, a stage outside the order, rows at
    midnight and just before it, rows after the as-of date; activities around each deal's own date."""
    created = [AS_OF - dt.timedelta(days=d) for d in (60, 40, 10, 3, 100)]
    customers = pd.DataFrame({"customer_id": ["D1", "D2", "D3", "D4", "D5"], "created_at": created})
    rows = [
        ("D1", "prospecting", at(60, "09:00:00")),
        ("D1", "qualification", at(52, "23:59:59")),
        ("D1", "proposal", at(50)),
        ("D1", "qualification", at(30, "12:00:00")),
        ("D1", "proposal", at(20)),
        ("D2", "prospecting", at(40)),
        ("D2", "on_hold", at(35)),
        ("D2", "negotiation", at(33, "08:00:00")),
        ("D3", "prospecting", at(10)),
        ("D3", "qualification", at(0)),  # on the as-of date: the future
        ("D4", "prospecting", at(3, "17:00:00")),
    ]
    stages = pd.DataFrame(rows, columns=["customer_id", "stage", "ts"])
    touches = [("D1", at(59), "call"), ("D1", at(47, "23:59:59"), "email"), ("D1", at(46), "call"),
               ("D2", at(39), "meeting"), ("D3", at(2), "email"), ("D5", at(99), "demo")]  # fmt: skip
    interactions = pd.DataFrame(touches, columns=["customer_id", "ts", "type"]).assign(duration_s=60.0)
    return {"customers": customers, "stages": stages, "interactions": interactions}


@pytest.mark.parametrize("entity_days", [None, 14], ids=["snapshot", "entity_clock"])
def test_stage_and_activity_features_identical_to_duckdb(spark, entity_days):
    import duckdb
    from leadtier.features.queries import feature_query, render_family

    tables = _deal_tables()
    session = spark.newSession()  # its own temporary views
    session.conf.set("spark.sql.session.timeZone", "UTC")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, frame in tables.items():
        con.register(f"{name}_df", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df")
        session.createDataFrame(frame).createOrReplaceTempView(name)
    order = ["prospecting", "qualification", "proposal", "negotiation"]
    for family in ("stages", "interactions", "customers"):
        sql = render_family(
            family, AS_OF, windows=[7, 30], interaction_types=["call", "email"], stage_order=order,
            entity_days=entity_days, tenure=entity_days is None,
        )  # fmt: skip
        duck = con.execute(sql).df()
        got = session.sql(sp.to_spark_sql(sql)).toPandas()
        exact = {c for c in duck.columns if c != "customer_id"}
        assert_same_table(duck, got, exact)
        if "cust_start_weekday" in got.columns:  # Monday 1 .. Sunday 7, as DuckDB's isodow
            created = tables["customers"].set_index("customer_id")["created_at"]
            want = [created[c].isoweekday() for c in got["customer_id"]]
            assert got["cust_start_weekday"].tolist() == want and len(set(want)) > 1
    # all families in one query, as `leadtier spark-features` runs them: each family's own `clock` and
    # `per_customer` CTEs, hoisted to the top by sqlglot, must not clash
    every = feature_query(
        ["customers", "stages", "interactions"], AS_OF, windows=[7, 30], interaction_types=["call", "email"],
        stage_order=order, entity_days=entity_days, tenure=entity_days is None,
    )  # fmt: skip
    duck = con.execute(every).df()
    assert_same_table(duck, session.sql(sp.to_spark_sql(every)).toPandas(), set(duck.columns) - {"customer_id"})
    stage = con.execute(render_family("stages", AS_OF, stage_order=order, entity_days=entity_days)).df()
    d1 = stage.set_index("customer_id").loc["D1"]
    assert d1["stage_furthest"] == 3
    assert d1["stage_changes"] == (4 if entity_days is None else 2)


# --------------------------------------------------------------------------- predict.open_only


@pytest.mark.parametrize("open_only", [False, True], ids=["every_row", "open_only"])
def test_rejects_and_skips_are_the_same_on_both_engines(spark, open_only):
    """The tagging query of ``leadtier predict`` on DuckDB and ``spark-predict``: duplicates and late
    starts rejected; with predict.open_only, entities won or lost before the as-of date skipped."""
    import duckdb
    from leadtier.pipelines.predict import REJECT_RULES, tagged_query

    inputs = pd.DataFrame(
        {
            "input_row": [1, 2, 3, 4, 5, 6],
            "customer_id": ["won", "lost", "open", "open", "later", "won_today"],
            "input_id": ["won", "lost", "open", "open", "later", "won_today"],
            "pre_reject": [None, None, None, None, None, None],
            "created_at": [AS_OF - dt.timedelta(days=d) for d in (90, 80, 70, 70, -1, 60)],
        }
    ).astype({"pre_reject": "object"})
    outcomes = pd.DataFrame(
        {
            "customer_id": ["won", "lost", "won_today"],
            "won_at": [at(5), pd.NaT, at(0, "10:00:00")],  # won on the as-of date: still open on it
            "lost_at": [pd.NaT, at(1, "23:59:59"), pd.NaT],
        }
    )
    con = duckdb.connect()
    con.register("customers_in", inputs)
    con.register("outcomes", outcomes)
    date = f"DATE '{AS_OF.isoformat()}'"
    rules = [(c.replace("$as_of", date), why) for c, why in REJECT_RULES]
    sql = tagged_query("customers_in", date, open_only, rules)
    want = con.execute(f"SELECT input_row, reject_reason FROM ({sql}) ORDER BY input_row").df()
    spark.createDataFrame(inputs.astype({"pre_reject": "string"})).createOrReplaceTempView("customers__input")
    spark.createDataFrame(outcomes).createOrReplaceTempView("outcomes")
    got = sp._tag_rejects(spark, AS_OF, open_only).select("input_row", "reject_reason").toPandas()
    got = got.sort_values("input_row").reset_index(drop=True)
    assert got["reject_reason"].fillna("").tolist() == want["reject_reason"].fillna("").tolist()
    skipped = "skipped: closed (won or lost) before the as-of date"
    expected = [
        "",
        "",
        "",
        "duplicate customer_id: only the first occurrence is read",
        "skipped: created on or after the as-of date",
        "",
    ]
    if open_only:
        expected[:2] = [skipped, skipped]
    assert want["reject_reason"].fillna("").tolist() == expected


def test_rule_tiers_beside_the_models_tier_are_the_same_on_spark(spark):
    """With labels from rules, predict shows the rule's tier; spark-predict runs the same rules, transpiled."""
    from leadtier.pipelines.predict import rule_tiers_sql
    from leadtier.pipelines.sources import register_all

    cfg = load_config(REPO / "configs" / "deal_heat.yaml", data_root=str(REPO / "tests" / "fixtures" / "deal_heat"))
    con = feature_stage.connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        want = con.execute(rule_tiers_sql(cfg)).df()
    finally:
        con.close()
    sp.register_inputs(spark, cfg)
    got = spark.sql(sp.input_sql(rule_tiers_sql(cfg))).toPandas()
    key = lambda f: f.astype({"customer_id": str}).sort_values("customer_id").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(key(got), key(want), check_dtype=False)
    assert key(want)["rule_tier"].notna().sum() == 393  # 93 + 104 + 97 + 99 projects a rule holds for
