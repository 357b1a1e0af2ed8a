"""The input rules (ids, values that are not values, time) give the same tables on DuckDB and Spark.

Every test runs on both engines through ``sources.register_all``: DuckDB always, Spark when pyspark
and Java are there (skipped with the reason otherwise).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from leadtier.features import inputs as rules
from leadtier.pipelines.config import load_config
from leadtier.pipelines.features import connect
from leadtier.pipelines.sources import DuckEngine, InputError, register_all

from tests.conftest import REPO

SCHEMES = REPO / "configs" / "schemes.yaml"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="session")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'leadtier[spark]'")
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (no java on PATH and no JAVA_HOME)")
    from leadtier.pipelines import spark as sp

    # the session the parity tests share (getOrCreate); they stop it at the end
    return sp.spark_session("local[2]", "leadtier-tests", {"spark.sql.shuffle.partitions": "4"})


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request):
    if request.param == "duckdb":
        con = connect()
        yield DuckEngine(con)
        con.close()
        return
    from leadtier.pipelines.spark import SparkEngine

    yield SparkEngine(request.getfixturevalue("spark"))


def _config(root: Path, customers: dict, transactions: dict | None = None):
    raw = {
        "name": "rules",
        "data": {"root": str(root), "as_of": "2026-06-30", "tables": {"customers": customers}},
        "features": {"families": ["customers"] + (["rfm"] if transactions else [])},
    }
    if transactions:
        raw["data"]["tables"]["transactions"] = transactions
    (root / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(root / "c.yaml", schemes_file=SCHEMES)


def _rows(engine, sql: str) -> list[tuple]:
    return [tuple(None if v != v else v for v in r) for r in engine.rows(sql)]  # NaN -> None


CSV_IDS = """id,created,spend
007,2026-01-01,10
 1 ,2026-01-02,inf
1.0,2026-01-03,-inf
1,2026-01-04,NaN
N/A,2026-01-05,
NaN,2026-01-06,1.5
null,,2
NULL,,3
None,,4
nan,,5
,,6
"""


@pytest.fixture
def id_files(tmp_path):
    (tmp_path / "crm.csv").write_text(CSV_IDS, encoding="utf-8")
    table = pa.table(
        {
            "id": pa.array([1.5, 2.0, NAN, INF], pa.float64(), from_pandas=False),  # real NaN, not NULL
            "created": pa.array([dt.datetime(2026, 1, 7)] * 4, pa.timestamp("us")),
            "spend": pa.array([INF, NAN, 1.0, -INF], pa.float64(), from_pandas=False),
        }
    )
    pq.write_table(table, tmp_path / "crm.parquet")
    files = [{"path": p, "columns": {"customer_id": "id", "created_at": "created"}} for p in ("crm.csv", "crm.parquet")]
    return _config(tmp_path, {"files": files, "numeric": ["spend"]})


def test_ids_are_read_as_written_and_bad_ids_are_rejected_with_their_reason(engine, id_files):
    """'007' stays '007' and a float 1.5 stays '1.5' (Spark made them '7' and '1'); ' 1 ' and '1.0' are
    not merged into '1'; NaN / null / None / N/A ids are no ids; each rejected row keeps its id as written."""
    stats = register_all(engine, id_files, with_labels=False, drop_missing_ids=False, tag_rows=True)
    got = _rows(engine, "SELECT input_row, input_id, customer_id, pre_reject, spend FROM customers ORDER BY 1")
    marker, padded, missing = rules.MARKER_ID, rules.PADDED_ID, rules.MISSING_ID
    assert got == [
        (1, "007", "007", None, 10.0),
        (2, " 1 ", None, padded, None),  # inf, -inf and NaN amounts are missing, never infinite features
        (3, "1.0", "1.0", None, None),
        (4, "1", "1", None, None),
        (5, "N/A", None, marker, None),
        (6, "NaN", None, marker, 1.5),
        (7, "null", None, marker, 2.0),
        (8, "NULL", None, marker, 3.0),
        (9, "None", None, marker, 4.0),
        (10, "nan", None, marker, 5.0),
        (11, None, None, missing, 6.0),
        (12, "1.5", "1.5", None, None),
        (13, "2", "2", None, None),
        (14, "NaN", None, marker, 1.0),
        (15, "Infinity", None, marker, None),
    ]
    assert stats["customers"].not_finite == {"spend": 6}


def test_rows_without_a_usable_id_are_counted_by_reason(engine, id_files):
    stats = register_all(engine, id_files, with_labels=False)["customers"]
    assert sorted(r[0] for r in engine.rows("SELECT customer_id FROM customers")) == ["007", "1", "1.0", "1.5", "2"]
    assert stats.missing_id == 10 and stats.rows == 5
    assert stats.bad_ids == {rules.MARKER_ID: 8, rules.PADDED_ID: 1}
    assert stats.not_finite == {"spend": 6}


def test_a_text_column_of_float_renderings_names_whole_numbers_as_integers(engine, tmp_path):
    """pandas writes an integer id column with gaps as '105.0': such a column is a float column, read as
    a Parquet float column is ('105', '1.5'); one '1.0' among other ids stays '1.0' (test above)."""
    (tmp_path / "a.csv").write_text("id,x\n105.0,1\n106.00,2\n-3.0,3\n1.5,4\n,5\n", encoding="utf-8")
    cfg = _config(tmp_path, {"path": "a.csv", "columns": {"customer_id": "id"}})
    register_all(engine, cfg, with_labels=False)
    assert sorted(r[0] for r in engine.rows("SELECT customer_id FROM customers")) == ["-3", "1.5", "105", "106"]


def test_text_that_is_no_number_stops_the_run_naming_file_and_column(engine, tmp_path):
    (tmp_path / "a.csv").write_text("id,spend\na,1\nb,twelve\nc,inf\n", encoding="utf-8")
    cfg = _config(tmp_path, {"path": "a.csv", "columns": {"customer_id": "id"}, "numeric": ["spend"]})
    with pytest.raises(
        InputError,
        match=r"a\.csv: column 'spend' \(customers\.spend\) has 1 value\(s\) that are not numbers; e\.g\. 'twelve'; "
        r"if 'twelve' means unknown, list it under tables\.customers\.na_values$",
    ):
        register_all(engine, cfg, with_labels=False)


def test_numbers_with_a_decimal_comma_read_as_the_file_means_them(engine, tmp_path):
    """A European export: ';' between fields, '1.234,56' for 1234.56, '2.171' for 2171 (a guessed
    number would read 2.171); an amount '12,5,0' is an error naming it."""
    (tmp_path / "k.csv").write_text(
        "Kunden-Nr;Mitarbeiter;Umsatz\nk1;2.171;1.234,56\nk2;12;-0,5\nk3; ;7\nk4;1 000;3,\n", encoding="utf-8"
    )
    (tmp_path / "a.csv").write_text(
        "Kunde;Datum;Beleg;Betrag;Menge\nk1;2026-01-02;b1;1.000,25;2\nk2;2026-01-03;b2;-12,5;1\n", encoding="utf-8"
    )
    customers = {"path": "k.csv", "columns": {"customer_id": "Kunden-Nr"}, "numeric": ["Mitarbeiter", "Umsatz"]}
    transactions = {
        "path": "a.csv",
        "columns": {
            "customer_id": "Kunde",
            "ts": "Datum",
            "invoice_id": "Beleg",
            "amount": "Betrag",
            "quantity": "Menge",
        },
    }
    cfg = _config(tmp_path, {**customers, "decimal": ","}, {**transactions, "decimal": ","})
    register_all(engine, cfg, with_labels=False)
    got = {r[0]: r[1:] for r in _rows(engine, 'SELECT customer_id, "Mitarbeiter", "Umsatz" FROM customers')}
    assert got == {"k1": (2171.0, 1234.56), "k2": (12.0, -0.5), "k3": (None, 7.0), "k4": (1000.0, 3.0)}
    assert sorted(_rows(engine, "SELECT amount FROM transactions")) == [(-12.5,), (1000.25,)]
    plain = _config(tmp_path, customers)  # without the setting, a comma is no decimal mark: said, not guessed
    with pytest.raises(
        InputError, match=r"k\.csv: column 'Mitarbeiter' \(customers\.Mitarbeiter\) has 1 value\(s\) that are not"
    ):
        register_all(engine, plain, with_labels=False)
    (tmp_path / "a.csv").write_text("Kunde;Datum;Beleg;Betrag;Menge\nk1;2026-01-02;b1;12,5,0;2\n", encoding="utf-8")
    with pytest.raises(
        InputError, match=r"a\.csv: column 'Betrag' \(transactions\.amount\) has 1 value\(s\).*'12,5,0'"
    ):
        register_all(engine, cfg, with_labels=False)
    # a colleague's file with decimal points: '12.5' and '1,234.56' are no numbers there, never 125 or 1.23456;
    # French Excel groups thousands with a (narrow) no-break space
    (tmp_path / "a.csv").write_text(
        "Kunde;Datum;Beleg;Betrag;Menge\nk1;2026-01-02;b1;1\u202f000,5;2\nk2;2026-01-02;b2;1\u00a0234;1\n"
        "k1;2026-01-03;b3;12.5;1\nk2;2026-01-03;b4;1,234.56;1\nk1;2026-01-04;b5;1.2345,6;1\n",
        encoding="utf-8",
    )
    with pytest.raises(
        InputError,
        match=r"column 'Betrag' \(transactions\.amount\) has 3 value\(s\) that are not numbers with decimal ',' "
        r"\(a '\.' only groups thousands, three digits a group: '1\.234,56'\); "
        r"e\.g\. '12\.5', '1,234\.56', '1\.2345,6'",
    ):
        register_all(engine, cfg, with_labels=False)
    (tmp_path / "a.csv").write_text(
        "Kunde;Datum;Beleg;Betrag;Menge\nk1;2026-01-02;b1;1\u202f000,5;2\nk2;2026-01-02;b2;1\u00a0234;1\n",
        encoding="utf-8",
    )
    register_all(engine, cfg, with_labels=False)
    assert sorted(_rows(engine, "SELECT amount FROM transactions")) == [(1000.5,), (1234.0,)]


def test_numbers_with_a_thousands_mark_read_the_same_in_every_file(engine, tmp_path):
    """An Excel export from the US or China writes '12,500.00'; with thousands ',' it reads 12500, and a
    daily file whose amounts all stay below 1,000 reads the same way (never guessed a number in one file
    and text in another); a comma that groups no three digits is an error naming the grammar."""
    (tmp_path / "k.csv").write_text('id,budget\nk1,"12,500.00"\nk2,950\nk3,"1,000,000"\nk4,\n', encoding="utf-8")
    (tmp_path / "small.csv").write_text('id,budget\nk5,"950.00"\nk6,12.5\n', encoding="utf-8")
    (tmp_path / "t.csv").write_text(
        'id,day,inv,amount,qty\nk1,2026-01-02,i1,"1,250.50","1,200"\nk2,2026-01-03,i2,-99.5,1\n', encoding="utf-8"
    )
    customers = {
        "files": [{"path": "k.csv"}, {"path": "small.csv"}],
        "columns": {"customer_id": "id"},
        "numeric": ["budget"],
        "thousands": ",",
    }
    transactions = {
        "path": "t.csv",
        "columns": {"customer_id": "id", "ts": "day", "invoice_id": "inv", "amount": "amount", "quantity": "qty"},
        "thousands": ",",
    }
    register_all(engine, _config(tmp_path, customers, transactions), with_labels=False)
    got = dict(_rows(engine, "SELECT customer_id, budget FROM customers"))
    assert got == {"k1": 12500.0, "k2": 950.0, "k3": 1_000_000.0, "k4": None, "k5": 950.0, "k6": 12.5}
    assert sorted(_rows(engine, "SELECT amount, quantity FROM transactions")) == [(-99.5, 1), (1250.5, 1200)]
    swiss = {"path": "k.csv", "columns": {"customer_id": "id"}, "numeric": ["budget"], "thousands": "'"}
    (tmp_path / "k.csv").write_text("id,budget\nk1,1'250.5\nk2,-3'000\n", encoding="utf-8")
    register_all(engine, _config(tmp_path, swiss), with_labels=False)
    assert dict(_rows(engine, "SELECT customer_id, budget FROM customers")) == {"k1": 1250.5, "k2": -3000.0}
    (tmp_path / "k.csv").write_text('id,budget\nk1,"1,23.5"\nk2,"12,500.00"\n', encoding="utf-8")
    with pytest.raises(
        InputError,
        match=r"column 'budget' \(customers\.budget\) has 1 value\(s\) that are not numbers with thousands ',' "
        r"\(three digits a group, a '\.' before the decimals: '1,234\.56'\); e\.g\. '1,23\.5'",
    ):
        register_all(engine, _config(tmp_path, {**customers, "files": [{"path": "k.csv"}]}), with_labels=False)
    (tmp_path / "k.csv").write_text('id,budget\nk1,"12,500.00"\nk2,7\n', encoding="utf-8")
    plain = {"path": "k.csv", "columns": {"customer_id": "id"}, "numeric": ["budget"]}
    with pytest.raises(InputError, match=r"e\.g\. '12,500\.00'; if ',' groups thousands there, set thousands: ','"):
        register_all(engine, _config(tmp_path, plain), with_labels=False)
    (tmp_path / "k.csv").write_text("id,budget\nk1,1'250.50\nk2,7\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"; if \"'\" groups thousands there, set thousands: \"'\""):
        register_all(engine, _config(tmp_path, plain), with_labels=False)
    # a European export read with the decimal point: the error says so, each example once
    (tmp_path / "k.csv").write_text('id;budget\nk1;"1,1"\nk2;"1,1"\nk3;"4,857"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"e\.g\. '1,1', '4,857'; if ',' marks the decimals there .*decimal: ','"):
        register_all(engine, _config(tmp_path, plain), with_labels=False)
    (tmp_path / "k.csv").write_text('id;budget\nk1;"4,857"\nk2;"12,500"\n', encoding="utf-8")
    with pytest.raises(
        InputError, match=r"set thousands: ',' for this file, or if it marks the decimals, decimal: ','"
    ):
        register_all(engine, _config(tmp_path, plain), with_labels=False)


def test_a_text_function_on_a_column_one_file_holds_as_numbers_says_how_to_read_it_as_text(tmp_path):
    """A cleaning expression written for '12,500.00' meets a daily file whose amounts are all plain: the
    column is read as numbers there, and the error says how to read it as text in every file."""
    (tmp_path / "k.csv").write_text("id,amount\nk1,950.00\nk2,12\n", encoding="utf-8")
    customers = {
        "path": "k.csv",
        "columns": {"customer_id": "id"},
        "numeric": ["amt"],
        "derived": {"amt": "CAST(replace(amount, ',', '') AS DOUBLE)"},
    }
    con = connect(_config(tmp_path, customers))
    with pytest.raises(
        InputError,
        match=r"k\.csv: derived column customers\.amt = .* does not evaluate: .*; this file's 'amount' holds only "
        r"numbers, so it was read as numbers .*: CAST\(\"amount\" AS VARCHAR\) reads it as text in every file",
    ):
        register_all(DuckEngine(con), _config(tmp_path, customers), with_labels=False)
    customers["derived"]["amt"] = "CAST(replace(CAST(amount AS VARCHAR), ',', '') AS DOUBLE)"
    register_all(DuckEngine(con), _config(tmp_path, customers), with_labels=False)
    assert dict(_rows(DuckEngine(con), "SELECT customer_id, amt FROM customers")) == {"k1": 950.0, "k2": 12.0}


def test_a_thousands_mark_beside_a_decimal_comma_is_a_config_error(tmp_path):
    from leadtier.pipelines.config import ConfigError

    with pytest.raises(ConfigError, match=r"data\.tables\.customers\.thousands: must be .*Got '\.' instead"):
        _config(tmp_path, {"path": "k.csv", "columns": {"customer_id": "id"}, "thousands": "."})
    with pytest.raises(
        ConfigError,
        match=r"thousands: decimal ',' reads '\.' and spaces as thousands marks already.*Got thousands ',' instead",
    ):
        _config(tmp_path, {"path": "k.csv", "columns": {"customer_id": "id"}, "decimal": ",", "thousands": ","})


def test_a_semicolon_export_whose_decimals_all_have_three_digits_is_questioned(tmp_path, caplog):
    """'3.370' in a European export is 3370 seconds: read as 3.37 without decimal ',', and the run says so."""
    rows = "".join(f"k{i};{d}.{d * 7 % 1000:03d};{i}.5;0.{d}25\n" for i, d in enumerate(range(1, 9)))
    (tmp_path / "k.csv").write_text("Kunde;Dauer;Punkte;Anteil\n" + rows + "k9;12;3;1\n", encoding="utf-8")
    customers = {"path": "k.csv", "columns": {"customer_id": "Kunde"}, "numeric": ["Dauer", "Punkte", "Anteil"]}
    con = connect()
    register_all(DuckEngine(con), _config(tmp_path, customers), with_labels=False)
    assert "column(s) ['Dauer'] of this ';'-separated file write every decimal number with three digits" in caplog.text
    assert "set decimal: ','" in caplog.text and "Punkte" not in caplog.text  # '1.5': a decimal, not questioned
    assert "Anteil" not in caplog.text  # '0.125' groups no thousands
    caplog.clear()
    as_meant = {**customers, "numeric": ["Dauer"], "decimal": ","}  # 'Punkte' (1.5) is no such file's number
    register_all(DuckEngine(con), _config(tmp_path, as_meant), with_labels=False)
    assert "three digits" not in caplog.text
    assert con.execute("SELECT \"Dauer\" FROM customers WHERE customer_id = 'k0'").fetchone()[0] == 1007.0


OFFSETS = """id,ts,inv,amount,quantity
c1,2026-06-29T23:30:00+02:00,i1,10,1
c1,2026-06-29T23:30:00-05:00,i2,10,1
c1,2026-06-29 10:00:00,i3,10,1
"""


def _offset_config(tmp_path, time_zone: str | None = None):
    (tmp_path / "c.csv").write_text("id,created\nc1,2026-01-01\n", encoding="utf-8")
    (tmp_path / "t.csv").write_text(OFFSETS, encoding="utf-8")
    cfg = _config(
        tmp_path,
        {"path": "c.csv", "columns": {"customer_id": "id", "created_at": "created"}},
        {"path": "t.csv", "columns": {"customer_id": "id", "invoice_id": "inv"}},
    )
    if time_zone:
        cfg.data.time_zone = time_zone
    return cfg


@pytest.mark.parametrize(
    ("time_zone", "expected"),
    [
        (None, ["2026-06-29 21:30:00", "2026-06-30 04:30:00", "2026-06-29 10:00:00"]),
        ("Asia/Tokyo", ["2026-06-30 06:30:00", "2026-06-30 13:30:00", "2026-06-29 10:00:00"]),
    ],
)
def test_timestamps_with_offsets_are_wall_clock_times_of_the_configured_zone(
    engine, tmp_path, time_zone, expected, caplog
):
    """An offset is an instant, written in ``data.time_zone`` (UTC by default), whatever zone the engine's
    session had before (here Asia/Tokyo, then America/New_York). Local offsets read under the default UTC
    are said: the user whose clock is +02:00 learns why a day ends at 02:00 for them."""
    engine.set_time_zone("America/New_York" if time_zone else "Asia/Tokyo")
    with caplog.at_level(logging.WARNING, logger="leadtier.pipelines.sources"):
        register_all(engine, _offset_config(tmp_path, time_zone), with_labels=False)
    got = [str(r[0]) for r in engine.rows("SELECT ts FROM transactions ORDER BY invoice_id")]
    assert got == expected
    said = [r.getMessage() for r in caplog.records if "UTC offset" in r.getMessage()]
    if time_zone:
        assert said == []
    else:
        assert len(said) == 1 and "column 'ts' (transactions.ts) has 2 time(s) with a UTC offset" in said[0], said
        assert "e.g. '2026-06-29T23:30:00+02:00'" in said[0] and "set data.time_zone" in said[0]


def test_features_do_not_depend_on_the_machine_time_zone(tmp_path):
    """The same CSV with offset timestamps, ``leadtier features`` under TZ=UTC and TZ=Asia/Tokyo."""
    cfg = _offset_config(tmp_path)
    raw = yaml.safe_load((tmp_path / "c.yaml").read_text())
    outputs = {}
    for tz in ("UTC", "Asia/Tokyo"):
        raw["features"]["output"] = str(tmp_path / f"f_{tz.replace('/', '_')}.parquet")
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
        env = {**os.environ, "TZ": tz}
        cmd = [sys.executable, "-m", "leadtier.pipelines.cli", "features", "--config", str(tmp_path / "c.yaml")]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert res.returncode == 0, res.stderr
        outputs[tz] = pd.read_parquet(raw["features"]["output"])
    assert cfg.data.time_zone == "UTC"
    pd.testing.assert_frame_equal(outputs["UTC"], outputs["Asia/Tokyo"])
    assert outputs["UTC"]["rfm_recency_days"].tolist() == [1]  # 21:30 UTC on 29 June, not 06:30 on the 30th


def _ambiguous(tmp_path, date_format: str | None = None):
    (tmp_path / "a.csv").write_text("id,created\na,05/02/2026\nb,05/02/2026\n", encoding="utf-8")
    spec = {"path": "a.csv", "columns": {"customer_id": "id", "created_at": "created"}}
    if date_format:
        spec["date_format"] = date_format
    return _config(tmp_path, spec)


def test_an_ambiguous_day_month_column_without_date_format_is_an_error(engine, tmp_path):
    cfg = _ambiguous(tmp_path)
    with pytest.raises(InputError) as err:
        register_all(engine, cfg, with_labels=False)
    msg = str(err.value)
    assert "a.csv: column 'created' (customers.created_at)" in msg
    assert (
        "'05/02/2026' reads as 2026-02-05 (date_format: '%d/%m/%Y') or as 2026-05-02 (date_format: '%m/%d/%Y')" in msg
    )
    register_all(engine, _ambiguous(tmp_path, "%d/%m/%Y"), with_labels=False)
    assert [r[0] for r in engine.rows("SELECT created_at FROM customers")] == [dt.date(2026, 2, 5)] * 2


def test_a_date_in_another_format_among_iso_dates_is_told_to_keep_both_formats(engine, tmp_path):
    """Setting the one format the hint names would make every ISO date fail: the hint names a list."""
    (tmp_path / "a.csv").write_text("id,created\na,2024-08-01\nb,17/08/2024\nc,2024-08-03\n", encoding="utf-8")
    spec = {"path": "a.csv", "columns": {"customer_id": "id", "created_at": "created"}}
    with pytest.raises(InputError) as err:
        register_all(engine, _config(tmp_path, spec), with_labels=False)
    msg = " ".join(str(err.value).split())
    assert "'17/08/2024' reads as 2024-08-17 with date_format: '%d/%m/%Y'; other values such as" in msg, msg
    assert "date_format: ['%Y-%m-%d', '%d/%m/%Y'] (each cell is read by the first that fits)" in msg, msg
    register_all(engine, _config(tmp_path, spec | {"date_format": ["%Y-%m-%d", "%d/%m/%Y"]}), with_labels=False)
    assert sorted(r[0] for r in engine.rows("SELECT created_at FROM customers")) == [
        dt.date(2024, 8, 1),
        dt.date(2024, 8, 3),
        dt.date(2024, 8, 17),
    ]
    assert rules.iso_format("2024-08-01 10:00:00") == "%Y-%m-%d %H:%M:%S" and rules.iso_format("1.5.2024") is None
    (tmp_path / "a.csv").write_text("id,created\na,2024-08-01\nb,17/08/2024\nc,2024-08-03 10:00:00\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        register_all(engine, _config(tmp_path, spec), with_labels=False)
    listed = "date_format: ['%Y-%m-%d', '%Y-%m-%d %H:%M:%S', '%d/%m/%Y']"  # every shape that parses now, kept
    assert listed in " ".join(str(err.value).split()), str(err.value)


def test_a_misspelt_attribute_column_names_the_files_columns_and_the_near_one(engine, tmp_path):
    (tmp_path / "a.csv").write_text("id,Product_Line,spend\na,x,1\n", encoding="utf-8")
    spec = {"path": "a.csv", "columns": {"customer_id": "id"}, "categorical": ["product_line"]}
    with pytest.raises(InputError) as err:
        register_all(engine, _config(tmp_path, spec), with_labels=False)
    msg = str(err.value)
    assert "attribute column 'product_line' listed in tables.customers is missing (did you mean 'Product_Line'?)" in msg
    assert msg.endswith("Columns of the file: id, Product_Line, spend"), msg


def test_transactions_without_quantities_take_one_each_from_derived(engine, tmp_path):
    """A subscription shop's payments have no quantity: `derived: {quantity: "1"}`, as the docs say."""
    (tmp_path / "t.csv").write_text("id,ts,inv,paid\nc1,2026-02-05,i1,9.5\nc1,2026-03-05,i2,9.5\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text("id\nc1\n", encoding="utf-8")
    tx = {
        "path": "t.csv",
        "columns": {"customer_id": "id", "ts": "ts", "invoice_id": "inv", "amount": "paid"},
        "derived": {"quantity": "1"},
    }
    register_all(engine, _config(tmp_path, {"path": "c.csv", "columns": {"customer_id": "id"}}, tx), with_labels=False)
    assert _rows(engine, "SELECT quantity, amount FROM transactions ORDER BY ts") == [(1, 9.5), (1, 9.5)]


def test_a_column_of_several_date_formats_reads_each_cell_with_the_first_that_fits(engine, tmp_path):
    """An export mixing '05.02.2026 14:30', '06.02.2026' and ISO timestamps in one column."""
    (tmp_path / "t.csv").write_text(
        "id,ts,inv,amount,quantity\nc1,05.02.2026 14:30,i1,10,1\nc1,06.02.2026,i2,10,1\n"
        "c1,2026-02-07 09:00:00,i3,10,1\n",
        encoding="utf-8",
    )
    (tmp_path / "c.csv").write_text("id\nc1\n", encoding="utf-8")
    formats = ["%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S"]
    tx = {"path": "t.csv", "columns": {"customer_id": "id", "ts": "ts", "invoice_id": "inv"}, "date_format": formats}
    cfg = _config(tmp_path, {"path": "c.csv", "columns": {"customer_id": "id"}}, tx)
    register_all(engine, cfg, with_labels=False)
    assert sorted(r[0] for r in engine.rows("SELECT ts FROM transactions")) == [
        dt.datetime(2026, 2, 5, 14, 30),
        dt.datetime(2026, 2, 6),
        dt.datetime(2026, 2, 7, 9, 0),
    ]
    (tmp_path / "t.csv").write_text("id,ts,inv,amount,quantity\nc1,2026/02/05,i1,10,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"with any of the formats \['%d\.%m\.%Y %H:%M', '%d\.%m\.%Y', "):
        register_all(engine, cfg, with_labels=False)


def test_an_ambiguous_date_column_is_an_error_line_with_exit_status_2(tmp_path):
    from leadtier.pipelines.cli import app
    from typer.testing import CliRunner

    _ambiguous(tmp_path)
    res = CliRunner().invoke(app, ["features", "--config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "error:" in res.output and "'created'" in res.output and "2026-05-02" in res.output


def test_day_month_readings():
    assert rules.day_month_readings("05/02/2026") == [
        ("%d/%m/%Y", dt.date(2026, 2, 5)),
        ("%m/%d/%Y", dt.date(2026, 5, 2)),
    ]
    assert rules.day_month_readings("25.02.26") == [("%d.%m.%y", dt.date(2026, 2, 25))]
    assert rules.day_month_readings("2026-02-05") == []
    # a time of day after the date is in the suggested format, so that following the hint works
    assert rules.day_month_readings("01.07.2024 07:13") == [
        ("%d.%m.%Y %H:%M", dt.date(2024, 7, 1)),
        ("%m.%d.%Y %H:%M", dt.date(2024, 1, 7)),
    ]
    assert rules.day_month_readings("25/12/2024 23:59:30")[0][0] == "%d/%m/%Y %H:%M:%S"
    for example, fmt in (("01.07.2024 07:13", "%d.%m.%Y %H:%M"), ("25/12/2024 23:59:30", "%d/%m/%Y %H:%M:%S")):
        dt.datetime.strptime(example, fmt)  # the suggestion parses the example


def test_a_long_csv_cut_short_names_the_line_and_a_repeated_header_name_is_a_warning(tmp_path, caplog):
    from leadtier.pipelines.config import FileSpec

    rows = pd.DataFrame({"customer_id": [f"C{i:05d}" for i in range(20_000)], "region": "north", "size": 3.5})
    text = rows.to_csv(index=False)
    cut = tmp_path / "cut.csv"
    cut.write_text(text[: text.rindex(",")])  # a half-written export: the last line lacks its last field
    engine = DuckEngine(connect())
    with pytest.raises(InputError, match=r"cut\.csv: cannot split the rows into columns: line 20001 has 2 fields"):
        engine.read("v", cut, FileSpec(path="cut.csv"), "customers", set())
    twice = tmp_path / "twice.csv"
    rows.head(5).rename(columns={"size": "region"}).to_csv(twice, index=False)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.sources"):
        classes = engine.read("w", twice, FileSpec(path="twice.csv"), "customers", set())
    assert {"region", "region_1"} <= set(classes)
    assert "column(s) ['region'] appear more than once in the header; the first of each is read, the others as" in (
        caplog.text
    )


def test_a_header_name_spanning_two_lines_is_one_field_of_the_header(tmp_path):
    """Excel quotes a header cell with a line break in it: the header is still one record of 3 fields."""
    from leadtier.pipelines.sources import _ragged_line, _repeated_names

    path = tmp_path / "h.csv"
    path.write_bytes(b'id;"Budget\n(EUR)";id\r\na;1;2\r\nb;3;4\r\n')
    assert _ragged_line(path, "utf-8") is None
    assert _repeated_names(path, "utf-8") == ["id"]
    path.write_bytes(b'id;"Budget\n(EUR)";x\r\na;1;2\r\nb;3\r\n')
    assert _ragged_line(path, "utf-8") == "line 4 has 2 fields, the header has 3"  # the file's line, as an editor


def test_a_derived_date_that_does_not_parse_names_the_values_and_the_format_that_reads_them(tmp_path):
    """`derived: {created_at: CASE ... THEN closed END}` over a column with one '31-12-2017': the error
    gives that value (not the good dates) and the strptime that reads it, not advice about numbers."""
    (tmp_path / "d.csv").write_text("id,stage,closed\no1,Won,31-12-2017\no2,Won,2017-09-28\no3,Lost,\n")
    spec = {"path": "d.csv", "columns": {"customer_id": "id"}}
    spec["derived"] = {"created_at": "CASE WHEN stage = 'Won' THEN closed END"}
    with pytest.raises(InputError) as err:
        register_all(DuckEngine(connect()), _config(tmp_path, spec), with_labels=False)
    said = str(err.value)
    assert "derived column customers.created_at" in said and "e.g. '31-12-2017'" in said, said
    assert "strptime(<the column>, '%d-%m-%Y')" in said and "2017-09-28" not in said.split("e.g.")[-1], said
    assert "numbers" not in said, said
    # a date function given a column read as numbers: the hint to read it as text stays
    (tmp_path / "n.csv").write_text("id,signup\no1,20170928\no2,20171001\n")
    spec = {"path": "n.csv", "columns": {"customer_id": "id"}, "derived": {"created_at": "strptime(signup, '%Y%m%d')"}}
    with pytest.raises(InputError, match=r"CAST\(\"?signup\"? AS VARCHAR\)"):
        register_all(DuckEngine(connect()), _config(tmp_path, spec), with_labels=False)


def test_a_file_without_a_header_line_or_split_by_spaces_is_said_so_not_read_a_row_short(engine, tmp_path):
    """A purchase log with no header (CDNOW): its first row would be the column names, and lost. One whose
    fields are padded with spaces reads as one column: the missing-column error says why."""
    (tmp_path / "t.csv").write_text("00035\t19970101\t5\t191.12\n00036\t19970102\t1\t12.00\n")
    headerless = {"path": "t.csv", "columns": {"customer_id": "00035"}, "numeric": ["191.12"]}
    with pytest.raises(InputError, match=r"t\.csv: every name in its first line is a number or a date .*no header"):
        register_all(engine, _config(tmp_path, headerless), with_labels=False)
    (tmp_path / "s.txt").write_text("id date items amount\n00035 19970101   5    191.12\n", encoding="utf-8")
    spaced = {"path": "s.txt", "format": "csv", "columns": {"customer_id": "id"}}
    with pytest.raises(InputError, match=r"required column 'id' .*fields separated by spaces"):
        register_all(engine, _config(tmp_path, spaced), with_labels=False)


def test_a_file_without_an_id_column_numbers_its_rows_in_file_order(engine, tmp_path):
    """A public dataset with no id (bank marketing): `derived: {customer_id: "row_number() OVER ()"}` gives
    each row its position, and the same expression an order for train.order_by (rows in time order)."""
    rows = "".join(f"{age};{'yes' if age % 3 == 0 else 'no'}\n" for age in range(30, 60))
    (tmp_path / "bank.csv").write_text("age;y\n" + rows, encoding="utf-8")
    spec = {
        "path": "bank.csv",
        "derived": {"customer_id": "row_number() OVER ()", "row_no": "row_number() OVER ()"},
        "numeric": ["age", "row_no"],
        "leaky": ["y"],
    }
    cfg = _config(tmp_path, spec)
    if isinstance(engine, DuckEngine):
        register_all(engine, cfg, with_labels=False)
        got = engine.rows('SELECT customer_id, "row_no", "age" FROM customers ORDER BY "row_no"')
        assert got == [(str(i + 1), float(i + 1), float(30 + i)) for i in range(30)]
    else:  # Spark's row_number() needs an ORDER BY: said, not a traceback
        with pytest.raises(InputError, match=r"bank\.csv: derived column\(s\) \['customer_id', 'row_no'\].*on Spark"):
            register_all(engine, cfg, with_labels=False)


def test_a_scored_row_with_no_value_in_any_column_is_rejected_as_an_empty_row(tmp_path):
    """An id from the row number gives even a line of bare separators an id: it is rejected, not scored
    (as a customer with every attribute unknown) and put on the call list."""
    from leadtier.pipelines.sources import EMPTY_ROW

    (tmp_path / "bank.csv").write_text("age;job;y\n31;admin;no\n;;\n45; ;yes\n", encoding="utf-8")
    spec = {"path": "bank.csv", "derived": {"customer_id": "row_number() OVER ()"}, "numeric": ["age"]}
    spec |= {"categorical": ["job"], "leaky": ["y"]}
    cfg = _config(tmp_path, spec)
    con = DuckEngine(connect())
    register_all(con, cfg, with_labels=False, drop_missing_ids=False, tag_rows=True)
    got = con.rows("SELECT customer_id, pre_reject FROM customers ORDER BY input_row")
    assert got == [("1", None), ("2", EMPTY_ROW), ("3", None)]


def test_columns_of_the_customers_file_that_nothing_reads_are_named(tmp_path, caplog):
    """A column left out of every list is said (INFO), so a forgotten feature is seen; one a derived
    expression or an exclude rule reads is not."""
    (tmp_path / "bank.csv").write_text("id;age;duration;nr.employed;job;y\na1;31;12;5099.1;admin;no\n")
    spec = {"path": "bank.csv", "columns": {"customer_id": "id"}, "numeric": ["age"], "leaky": ["y"]}
    spec |= {"derived": {"age": "age + 0 * length(job)"}}
    with caplog.at_level("INFO", logger="leadtier.pipelines.sources"):
        register_all(DuckEngine(connect()), _config(tmp_path, spec), with_labels=False)
    said = [r.getMessage() for r in caplog.records if "read by nothing" in r.getMessage()]
    assert len(said) == 1 and "column(s) 'duration', 'nr.employed' are read by nothing" in said[0], said
    caplog.clear()
    cfg = _config(tmp_path, spec)
    cfg.worklist.owner_column = "nr.employed"  # the worklist reads it: not said
    with caplog.at_level("INFO", logger="leadtier.pipelines.sources"):
        register_all(DuckEngine(connect()), cfg, with_labels=False)
    assert "column(s) 'duration' are read by nothing" in caplog.text, caplog.text


def test_ids_that_are_row_positions_compare_no_tiers_with_the_last_run(tmp_path, caplog):
    """Row 10 of today's file is not row 10 of last week's: with ids from row_number() predict writes no
    tier changes (and says why); with ids from the file it does."""
    from leadtier.pipelines.predict import positions_said

    (tmp_path / "bank.csv").write_text("id;age\na1;31\n", encoding="utf-8")
    numbered = _config(tmp_path, {"path": "bank.csv", "derived": {"customer_id": "row_number() OVER ()"}})
    own = _config(tmp_path, {"path": "bank.csv", "columns": {"customer_id": "id"}})
    with caplog.at_level("INFO", logger="leadtier.pipelines.predict"):
        assert positions_said(numbered.data.tables.customers) and not positions_said(own.data.tables.customers)
    assert "customer_id is each row's position in its file: no tier changes" in caplog.text


def test_the_worklist_reads_a_derived_id_as_the_tables_do(tmp_path):
    """With `derived: {customer_id: "row_number() OVER ()"}` the owners and values line up with the ids."""
    from leadtier.pipelines.sources import read_columns

    (tmp_path / "p.csv").write_text("owner;value\nann;10\nbob;20\n", encoding="utf-8")
    frame, names = read_columns(
        tmp_path / "p.csv", "the scoring input", ["customer_id", "owner", "value"], derived_id="row_number() OVER ()"
    )
    assert names == ["owner", "value"]
    assert frame.to_dict("list") == {"customer_id": ["1", "2"], "owner": ["ann", "bob"], "value": ["10", "20"]}


def test_the_model_gets_only_the_columns_its_signature_names():
    """Feature-table columns a model does not read are not sent (MLflow would warn on every batch)."""
    from types import SimpleNamespace

    from leadtier.pipelines.tracking import read_only
    from mlflow.types import ColSpec, Schema

    frame = pd.DataFrame({"a": [1.0], "b": [2.0], "cust_row_no": [1.0]})
    signed = SimpleNamespace(metadata=SimpleNamespace(get_input_schema=lambda: Schema([ColSpec("double", "a")])))
    assert list(read_only(signed, frame).columns) == ["a"]
    unsigned = SimpleNamespace(metadata=SimpleNamespace(get_input_schema=lambda: None))
    assert list(read_only(unsigned, frame).columns) == ["a", "b", "cust_row_no"]
    assert list(read_only(object(), frame).columns) == ["a", "b", "cust_row_no"]  # no MLflow metadata at all


def test_a_derived_expression_with_an_unclosed_quote_is_an_input_error(tmp_path):
    (tmp_path / "c.csv").write_text("id,region\na,north\n", encoding="utf-8")
    spec = {"path": "c.csv", "columns": {"customer_id": "id"}, "derived": {"zone": "'abc"}, "categorical": ["zone"]}
    con = connect()
    with pytest.raises(InputError, match=r"c\.csv: derived column customers\.zone = \"'abc\" does not evaluate"):
        register_all(DuckEngine(con), _config(tmp_path, spec), with_labels=False)


def test_a_gbk_export_from_chinese_excel_reads_as_written(engine, tmp_path):
    """Excel on Chinese Windows saves CSV in GBK: with encoding gbk the names and values read as written;
    without it the error says which encoding to set."""
    text = "客户编号,行业,预算(万元)\nc1,制造业,12.5\nc2,零售,8\n"
    (tmp_path / "k.csv").write_bytes(text.encode("gbk"))
    spec = {"path": "k.csv", "columns": {"customer_id": "客户编号"}, "categorical": ["行业"], "numeric": ["预算(万元)"]}
    register_all(engine, _config(tmp_path, {**spec, "encoding": "gbk"}), with_labels=False)
    got = sorted(engine.rows('SELECT customer_id, "行业", "预算(万元)" FROM customers'))
    assert got == [("c1", "制造业", 12.5), ("c2", "零售", 8.0)]
    with pytest.raises(InputError, match=r"k\.csv: .*gbk or gb18030 \(Simplified Chinese"):
        register_all(engine, _config(tmp_path, spec), with_labels=False)
    (tmp_path / "k.csv").write_bytes(text.encode("gbk") + b"c3,\x80\xff,1\n")  # no GBK character
    with pytest.raises(InputError, match=r"k\.csv: is not gbk text: byte 0x80 cannot be read"):
        register_all(engine, _config(tmp_path, {**spec, "encoding": "gbk"}), with_labels=False)


def test_attributes_listed_on_an_event_table_are_said_to_make_no_feature(tmp_path, caplog):
    """A currency listed as categorical on the orders feeds no feature (nor does derive_from take it unless the
    customers list it too): the run says so rather than ignore it."""
    from leadtier.pipelines.features import warn_unread_attributes

    (tmp_path / "k.csv").write_text("id\nk1\n", encoding="utf-8")
    orders = {
        "path": "t.csv",
        "columns": {"customer_id": "id", "ts": "day", "invoice_id": "inv", "amount": "amount", "quantity": "qty"},
        "categorical": ["currency"],
    }
    with caplog.at_level("WARNING"):
        warn_unread_attributes(_config(tmp_path, {"path": "k.csv", "columns": {"customer_id": "id"}}, orders))
    assert "tables.transactions lists ['currency'] as categorical or numeric: no feature reads" in caplog.text
    caplog.clear()
    derived = {"derive_from": "transactions", "categorical": ["currency"]}
    with caplog.at_level("WARNING"):
        warn_unread_attributes(_config(tmp_path, derived, orders))
    assert "no feature reads" not in caplog.text  # the customers take it from their orders
    caplog.clear()
    orders["exclude"] = {"not euros": "currency <> 'EUR'"}
    with caplog.at_level("WARNING"):
        warn_unread_attributes(_config(tmp_path, {"path": "k.csv", "columns": {"customer_id": "id"}}, orders))
    assert "no feature reads" not in caplog.text  # listed so that its exclude rule can read it


def test_a_derived_expression_over_decimal_comma_text_says_how_to_convert_it(tmp_path):
    """decimal ',' reads the mapped columns; a derived expression reads the file as written: its error names
    the column holding '61,40' (not the currency's 'EUR') and an expression that converts it; a syntax error
    is only a syntax error."""
    (tmp_path / "k.csv").write_text("id;amount;currency\nk1;61,40;EUR\nk2;1.200,5;USD\n", encoding="utf-8")
    spec = {
        "path": "k.csv",
        "columns": {"customer_id": "id"},
        "decimal": ",",
        "numeric": ["eur"],
        "derived": {"eur": "CASE WHEN currency = 'USD' THEN amount * 0.92 ELSE amount END"},
    }
    con = connect()
    with pytest.raises(InputError) as err:
        register_all(DuckEngine(con), _config(tmp_path, spec), with_labels=False)
    said = str(err.value)
    assert "it reads text it cannot convert in 'amount' (e.g." in said and "'61,40'" in said
    assert "'currency'" not in said
    assert "CAST(replace(replace(\"amount\", '.', ''), ',', '.') AS DOUBLE)" in said
    spec["derived"]["eur"] = "CASE WHEN currency = 'USD' THEN " + spec["derived"]["eur"].split("THEN ")[1].replace(
        "amount * 0.92", "CAST(replace(replace(amount, '.', ''), ',', '.') AS DOUBLE) * 0.92"
    ).replace("ELSE amount", "ELSE CAST(replace(replace(amount, '.', ''), ',', '.') AS DOUBLE)")
    register_all(DuckEngine(con), _config(tmp_path, spec), with_labels=False)
    assert dict(_rows(DuckEngine(con), "SELECT customer_id, eur FROM customers")) == {"k1": 61.4, "k2": 1104.46}
    spec["derived"]["eur"] = "amount *"
    with pytest.raises(InputError) as err:
        register_all(DuckEngine(con), _config(tmp_path, spec), with_labels=False)
    assert "Parser Error" in str(err.value) and "cannot convert" not in str(err.value)
    # a file with decimal points: no conversion that would read '12.50' as 1250 is suggested
    (tmp_path / "k.csv").write_text('id,amount,qty\nk1,12.50,2\nk2,"61,40",1\n', encoding="utf-8")
    plain = {"path": "k.csv", "columns": {"customer_id": "id"}, "numeric": ["eur"]}
    plain["derived"] = {"eur": "CAST(amount AS DOUBLE) * 2"}
    with pytest.raises(InputError) as err:
        register_all(DuckEngine(con), _config(tmp_path, plain), with_labels=False)
    said = str(err.value)
    assert "'amount' (e.g. '61,40')" in said and "write plain numbers (12.50)" in said and "replace" not in said
    plain["derived"] = {"eur": "qty * pric"}  # a typo: said by the engine alone, with no advice on qty
    with pytest.raises(InputError) as err:
        register_all(DuckEngine(con), _config(tmp_path, plain), with_labels=False)
    assert "pric" in str(err.value) and "holds only numbers" not in str(err.value)


def test_a_problem_of_a_mapped_column_names_it_as_the_file_does(tmp_path):
    """'deal_id' mapped to customer_id: the duplicate-id error names the user's column, then the canonical one."""
    from leadtier.pipelines.validate import check_inputs

    (tmp_path / "d.csv").write_text("deal_id,created\nd1,2026-01-01\nd1,2026-01-02\nd2,2026-01-03\n", encoding="utf-8")
    cfg = _config(tmp_path, {"path": "d.csv", "columns": {"customer_id": "deal_id", "created_at": "created"}})
    con = connect()
    stats = register_all(DuckEngine(con), cfg, with_labels=False)
    with pytest.raises(InputError, match=r"d\.csv: column 'deal_id' \(customers\.customer_id\): 2 row\(s\) share a"):
        check_inputs(con, cfg, stats, cfg.data.as_of)


def test_local_offsets_are_told_apart_from_utc_and_from_times_without_one(engine):
    """The texts the local-offset warning counts, on both engines: an offset other than +00:00 after a
    time of day, written with or without a colon or minutes."""
    values = {
        "2026-03-01T09:15:00+08:00": True,
        "2026-03-01 09:15:00+0800": True,
        "2026-03-01 09:15:00+08": True,
        "2026-03-01T09:15:00.123-05:30": True,
        "2026-03-01T09:15:00+00:00": False,
        "2026-03-01 09:15:00-00": False,
        "2026-03-01T09:15:00Z": False,
        "2026-03-01 09:15": False,
        "2026-03-01": False,  # a date: '-01' is no offset
    }
    rows = " UNION ALL ".join(f"SELECT '{v}' AS t" for v in values)
    got = dict(engine.rows(f"SELECT t, {rules.local_offset('t')} FROM ({rows}) AS x"))
    assert got == values


def test_events_of_unknown_customers_are_warned_of_by_the_id_column_the_file_writes(tmp_path, caplog):
    """The warning points at the column a user can look for in the orders file, not leadtier's name for it."""
    from leadtier.pipelines import features as feature_stage

    (tmp_path / "c.csv").write_text("id,created\nc1,2026-01-01\n", encoding="utf-8")
    (tmp_path / "t.csv").write_text(
        "account_ref,ts,inv,amount,quantity\nc1,2026-06-01,i1,10,1\nc9,2026-06-02,i2,10,1\n", encoding="utf-8"
    )
    cfg = _config(
        tmp_path,
        {"path": "c.csv", "columns": {"customer_id": "id", "created_at": "created"}},
        {"path": "t.csv", "columns": {"customer_id": "account_ref", "invoice_id": "inv"}},
    )
    with caplog.at_level(logging.WARNING, logger="leadtier.pipelines.validate"):
        feats = feature_stage.build(cfg, with_labels=False).features
    assert feats["customer_id"].tolist() == ["c1"] and feats["rfm_frequency"].tolist() == [1]
    said = [r.getMessage() for r in caplog.records if "absent from the customers table" in r.getMessage()]
    assert len(said) == 1 and "t.csv: column 'account_ref' (transactions.customer_id): 1 row" in said[0], said
