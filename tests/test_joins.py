"""Lookup tables joined by key (``tables.<table>.joins``) and ``derived`` attributes: on DuckDB and Spark
through ``sources.register_all``; bad lookups through the CLI (one ``error:`` line, exit 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from leadtier.pipelines.features import connect
from leadtier.pipelines.sources import InputError, register_all
from typer.testing import CliRunner

from tests import test_input_rules as _shared
from tests.conftest import REPO

SCHEMES = REPO / "configs" / "schemes.yaml"
engine, spark = _shared.engine, _shared.spark  # the fixtures that run a test on DuckDB and on Spark

PIPELINE = """opportunity_id,created,account,sales_agent,product,close_value
o1,2026-01-01,Acme,Ann,GTX Pro,100
o2,2026-01-02,Acme,Bob,MG Special,20
o3,2026-01-03,Betatech,Ann,GTX Pro,
o4,2026-01-04,,Bob,GTX Basic,50
o5,2026-01-05,Nowhere Inc,Cid,GTX Basic,70
"""
ACCOUNTS = """account,sector,employees
Acme,retail,120
Betatech,software,40
"""
TEAMS = """sales_agent,regional_office
Ann,East
Bob,West
Cid,East
"""
PRODUCTS = """product,series,sales_price
GTXPro,GTX,4821
MG Special,MG,55
GTX Basic,GTX,550
"""


def _world(root: Path, products: str = PRODUCTS, **customers) -> dict:
    for name, text in {"pipeline.csv": PIPELINE, "accounts.csv": ACCOUNTS, "teams.csv": TEAMS}.items():
        (root / name).write_text(text)
    (root / "products.csv").write_text(products)
    spec = {
        "path": "pipeline.csv",
        "columns": {"customer_id": "opportunity_id", "created_at": "created"},
        "joins": {
            "accounts": {"path": "accounts.csv", "by": "account"},
            "sales_teams": {"path": "teams.csv", "by": "sales_agent"},
            "products": {"path": "products.csv", "by": "product"},
        },
        "categorical": ["sector", "regional_office", "series"],
        "numeric": ["employees", "sales_price"],
        **customers,
    }
    return {
        "name": "joins",
        "data": {"root": str(root), "as_of": "2026-06-30", "tables": {"customers": spec}},
        "features": {"families": ["customers"]},
    }


def _load(root: Path, raw: dict):
    (root / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(root / "c.yaml", schemes_file=SCHEMES)


def _table(engine, sql: str) -> dict[str, tuple]:
    return {r[0]: tuple(None if v != v else v for v in r[1:]) for r in engine.rows(sql)}  # NaN -> None


def test_lookup_columns_become_attributes_and_missing_keys_are_counted(tmp_path, engine, caplog):
    cfg = _load(tmp_path, _world(tmp_path))
    with caplog.at_level(logging.WARNING, logger="leadtier.pipelines.sources"):
        stats = register_all(engine, cfg)
    got = _table(engine, 'SELECT customer_id, "sector", "regional_office", "series", "employees" FROM customers')
    assert got == {
        "o1": ("retail", "East", None, 120.0),  # 'GTX Pro' has no match in products.csv (spelt 'GTXPro')
        "o2": ("retail", "West", "MG", 120.0),
        "o3": ("software", "East", None, 40.0),
        "o4": (None, "West", "GTX", None),  # no account: no account columns
        "o5": (None, "East", "GTX", None),  # 'Nowhere Inc' is not in accounts.csv
    }
    joins = stats["customers"].joins
    assert joins["accounts"] == {"rows": 5, "missing_key": 1, "no_match": 1}
    assert joins["sales_teams"] == {"rows": 5, "missing_key": 0, "no_match": 0}
    assert joins["products"] == {"rows": 5, "missing_key": 0, "no_match": 2}
    assert stats["customers"].as_dict()["joins"] == joins
    # the misspelt category across tables is named with its two spellings and its rows
    spelt = [r.getMessage() for r in caplog.records if "differ only in spelling" in r.getMessage()]
    assert len(spelt) == 1 and "'GTX Pro' (2 rows) is spelt 'GTXPro' there" in spelt[0], spelt
    unmatched = [r.getMessage() for r in caplog.records if "accounts.csv" in r.getMessage()]
    assert len(unmatched) == 1 and "1 row(s) have a value in column 'account'" in unmatched[0], unmatched
    assert "(e.g. 'Nowhere Inc' (1 row))" in unmatched[0], unmatched  # which value, to look up or fix


def test_a_derived_attribute_is_computed_even_from_a_lookup_column(tmp_path, engine):
    raw = _world(tmp_path, derived={"size": "CASE WHEN employees >= 100 THEN 'large' ELSE 'small' END"})
    raw["data"]["tables"]["customers"]["categorical"].append("size")
    cfg = _load(tmp_path, raw)
    register_all(engine, cfg)
    got = _table(engine, 'SELECT customer_id, "size" FROM customers')
    assert got == {"o1": ("large",), "o2": ("large",), "o3": ("small",), "o4": ("small",), "o5": ("small",)}


def test_a_join_key_cleaned_by_derived_joins_by_its_cleaned_value(tmp_path, engine, caplog):
    """The warning says 'GTX Pro' is spelt 'GTXPro' in products.csv; the fix, a derived key, is what the
    join reads (as an attribute too), and so is a derived key that is no attribute."""
    fix = {"product": "replace(product, 'GTX Pro', 'GTXPro')"}
    raw = _world(tmp_path, derived=fix)
    raw["data"]["tables"]["customers"]["categorical"].append("product")
    with caplog.at_level(logging.WARNING, logger="leadtier.pipelines.sources"):
        stats = register_all(engine, _load(tmp_path, raw))
    got = _table(engine, 'SELECT customer_id, "product", "series", "sales_price" FROM customers')
    assert got["o1"] == ("GTXPro", "GTX", 4821.0) and got["o3"] == ("GTXPro", "GTX", 4821.0)
    assert stats["customers"].joins["products"]["no_match"] == 0 and "products.csv" not in caplog.text
    raw = _world(tmp_path, derived={"sales_agent": "upper(left(agent, 1)) || lower(substr(agent, 2))"})
    (tmp_path / "pipeline.csv").write_text(PIPELINE.replace("sales_agent", "agent").replace("Ann", "ANN"))
    register_all(engine, _load(tmp_path, raw))  # the file's column is 'agent', written 'ANN' and 'Ann'
    got = _table(engine, 'SELECT customer_id, "regional_office" FROM customers')
    assert got == {"o1": ("East",), "o2": ("West",), "o3": ("East",), "o4": ("West",), "o5": ("East",)}


def test_a_derived_join_key_is_read_as_text_as_every_join_key_is(tmp_path, engine):
    """Codes like '1.10' stay text under a derived key too (a number would read '1.1' and miss the lookup)."""
    pipeline = PIPELINE.replace("GTX Pro", "1.10").replace("MG Special", "2.20").replace("GTX Basic", "3.00")
    products = PRODUCTS.replace("GTXPro", "1.10").replace("MG Special", "2.20").replace("GTX Basic", "3.00")
    raw = _world(tmp_path, products=products, derived={"product": "trim(product)"})
    (tmp_path / "pipeline.csv").write_text(pipeline)
    stats = register_all(engine, _load(tmp_path, raw))
    assert stats["customers"].joins["products"]["no_match"] == 0
    assert _table(engine, 'SELECT customer_id, "series" FROM customers')["o1"] == ("GTX",)


def test_integer_keys_written_as_floats_in_one_file_match_the_integers_of_the_other(tmp_path, engine):
    """pandas writes an integer id column with gaps as floats ('101.0', or a Parquet double): its whole
    numbers join the lookup's integer keys, in a CSV and a Parquet file alike; a text key column that is not
    all such numbers ('7.0' beside 'x9') keeps its keys as written."""
    pipeline = PIPELINE.replace("Acme", "101.0").replace("Betatech", "102.0").replace("Nowhere Inc", "103.5")
    raw = _world(tmp_path)
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.replace("Acme", "101").replace("Betatech", "102"))
    (tmp_path / "pipeline.csv").write_text(pipeline)
    stats = register_all(engine, _load(tmp_path, raw))
    assert stats["customers"].joins["accounts"] == {"rows": 5, "missing_key": 1, "no_match": 1}  # 103.5 is no 103
    expected = {"o1": ("retail",), "o2": ("retail",), "o3": ("software",), "o4": (None,), "o5": (None,)}
    assert _table(engine, 'SELECT customer_id, "sector" FROM customers') == expected
    frame = pd.read_csv(tmp_path / "pipeline.csv")
    assert frame["account"].dtype == "float64"  # as pandas reads and writes it
    frame.to_parquet(tmp_path / "pipeline.parquet")
    raw["data"]["tables"]["customers"]["path"] = "pipeline.parquet"
    register_all(engine, _load(tmp_path, raw))
    assert _table(engine, 'SELECT customer_id, "sector" FROM customers') == expected
    raw["data"]["tables"]["customers"]["path"] = "pipeline.csv"
    (tmp_path / "pipeline.csv").write_text(pipeline.replace("103.5", "x9"))
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.replace("Acme", "101.0").replace("Betatech", "102"))
    stats = register_all(engine, _load(tmp_path, raw))  # 'x9' is no number: '101.0' and '102.0' stay as written
    assert stats["customers"].joins["accounts"]["no_match"] == 2
    assert _table(engine, 'SELECT customer_id, "sector" FROM customers')["o1"] == ("retail",)
    # a float key beside a lookup that also holds a word: its '101.0' still is 101
    raw["data"]["tables"]["customers"]["path"] = "pipeline.parquet"
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.replace("Acme", "101.0").replace("Betatech", "102.0") + "n/a,x,1\n")
    assert register_all(engine, _load(tmp_path, raw))["customers"].joins["accounts"]["no_match"] == 1  # 103.5
    # a derived key of a number type joins the lookup's text keys
    raw["data"]["tables"]["customers"]["derived"] = {"account": "CAST(floor(account) AS BIGINT)"}
    (tmp_path / "accounts.csv").write_text(ACCOUNTS.replace("Acme", "101").replace("Betatech", "103"))
    stats = register_all(engine, _load(tmp_path, raw))
    assert stats["customers"].joins["accounts"] == {"rows": 5, "missing_key": 1, "no_match": 1}  # 102


def test_an_unknown_derived_column_is_an_error_not_ignored(tmp_path):
    raw = _world(tmp_path, derived={"sector": "(SELECT 'x')"})
    raw["data"]["tables"]["customers"]["categorical"].remove("sector")
    with pytest.raises(ConfigError, match=r"derived: \['sector'\] are neither canonical columns of customers"):
        _load(tmp_path, raw)
    raw["data"]["tables"]["customers"]["joins"]["accounts"]["how"] = "inner"
    with pytest.raises(ConfigError, match=r"joins.accounts.how: unknown key"):
        _load(tmp_path, raw)


def test_a_key_that_is_not_unique_in_the_lookup_stops_the_run_with_one_error_line(tmp_path):
    raw = _world(tmp_path, products=PRODUCTS + "GTXPro,GTX-2,4900\nGTXPro,GTX-3,4999\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "schemes.yaml").write_text(SCHEMES.read_text())
    res = CliRunner().invoke(app, ["features", "--config", str(tmp_path / "c.yaml")])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.strip()]
    assert line.startswith("error: ") and "Traceback" not in res.output
    assert str(tmp_path / "products.csv") in line and "key column 'product'" in line
    assert "must be unique" in line and "Got 1 key(s) on more than one row instead; e.g. 'GTXPro' (3 rows)" in line


def test_a_missing_join_key_or_lookup_file_names_it(tmp_path):
    raw = _world(tmp_path)
    raw["data"]["tables"]["customers"]["joins"]["accounts"]["by"] = "account_name"
    with pytest.raises(InputError, match=r"pipeline.csv: join key column 'account_name' \(tables.customers.joins"):
        register_all(connect(), _load(tmp_path, raw))
    raw["data"]["tables"]["customers"]["joins"]["accounts"] = {"path": "acc.csv", "by": "account"}
    with pytest.raises(InputError, match=r"tables.customers.joins.accounts: lookup file not found: .*acc.csv"):
        register_all(connect(), _load(tmp_path, raw))


def test_a_column_in_both_tables_needs_a_prefix(tmp_path):
    raw = _world(tmp_path)
    (tmp_path / "accounts.csv").write_text("account,created,sector\nAcme,1999,retail\n")
    with pytest.raises(InputError, match=r"column\(s\) \['created'\] of lookup table tables.customers.joins.accounts"):
        register_all(connect(), _load(tmp_path, raw))
    raw["data"]["tables"]["customers"]["joins"]["accounts"]["prefix"] = "account_"
    raw["data"]["tables"]["customers"]["categorical"] = ["account_sector", "account_created"]
    raw["data"]["tables"]["customers"]["numeric"] = []
    con = connect()
    register_all(con, _load(tmp_path, raw))
    got = con.execute("SELECT customer_id, account_sector, account_created FROM customers ORDER BY 1").fetchall()
    assert got[:2] == [("o1", "retail", "1999"), ("o2", "retail", "1999")] and got[3] == ("o4", None, None)


def test_the_sandbox_lets_config_sql_read_the_lookup_files_only(tmp_path):
    cfg = _load(tmp_path, _world(tmp_path))
    con = connect(cfg)
    register_all(con, cfg)  # the lookup files are readable
    (tmp_path / "other.csv").write_text("a\n1\n")
    with pytest.raises(duckdb.Error, match="(?i)permission|not allowed|disabled"):
        con.execute(f"SELECT * FROM read_csv('{tmp_path / 'other.csv'}')").fetchall()


def test_a_scoring_input_keeps_its_row_positions_through_the_joins(tmp_path, engine):
    cfg = _load(tmp_path, _world(tmp_path))
    register_all(engine, cfg, with_labels=False, drop_missing_ids=False, tag_rows=True)
    got = engine.rows('SELECT input_row, customer_id, "series" FROM customers ORDER BY input_row')
    assert [tuple(r) for r in got] == [
        (1, "o1", None),
        (2, "o2", "MG"),
        (3, "o3", None),
        (4, "o4", "GTX"),
        (5, "o5", "GTX"),
    ]


EVENTS = """user_id,event_time,event_type,price,device
u1,2026-01-05 10:00:00,view,,mobile
u1,2026-01-06 11:00:00,purchase,20.5,desktop
u2,2026-01-03 09:00:00,view,,tablet
u2,2026-01-04 09:30:00,cart,,tablet
u3,2026-02-01 08:00:00,purchase,9.0,mobile
u3,2026-01-20 08:00:00,view,,mobile
"""


def test_customers_derived_from_an_event_log_include_the_visitors_who_never_bought(tmp_path, engine):
    (tmp_path / "events.csv").write_text(EVENTS)
    purchases = {
        "path": "events.csv",
        "columns": {"customer_id": "user_id", "ts": "event_time", "invoice_id": "event_time", "amount": "price"},
        "derived": {"quantity": "1"},
        "categorical": ["event_type", "device"],
        "exclude": {"not a purchase": "event_type <> 'purchase'"},
    }
    events = {"path": "events.csv", "columns": {"customer_id": "user_id", "ts": "event_time", "type": "event_type"}}
    raw = {
        "name": "events",
        "data": {
            "root": str(tmp_path),
            "as_of": "2026-06-30",
            "tables": {
                "customers": {"derive_from": ["transactions", "interactions"], "categorical": ["device"]},
                "transactions": purchases,
                "interactions": events,
            },
        },
        "features": {"families": ["customers"]},
    }
    stats = register_all(engine, _load(tmp_path, raw))
    got = _table(engine, 'SELECT customer_id, CAST(created_at AS VARCHAR), "device" FROM customers ORDER BY 1')
    # u2 never bought: a customer all the same, first seen at its first view; the device of the first purchase
    assert got == {"u1": ("2026-01-05", "desktop"), "u2": ("2026-01-03", None), "u3": ("2026-01-20", "mobile")}
    assert stats["customers"].files == {"(derived from transactions and interactions)": 3}
    raw["data"]["tables"]["customers"]["derive_from"] = "transactions"  # one table, written as a word
    register_all(engine, _load(tmp_path, raw))
    assert sorted(_table(engine, "SELECT customer_id FROM customers")) == ["u1", "u3"]
    raw["data"]["tables"]["customers"]["derive_from"] = ["interactions", "interactions"]
    with pytest.raises(ConfigError, match="derive_from names each event table once"):
        _load(tmp_path, raw)
    raw["data"]["tables"]["customers"]["derive_from"] = ["interactions"]
    del raw["data"]["tables"]["interactions"]
    with pytest.raises(ConfigError, match=r"derive_from names \['interactions'\], which are not configured tables"):
        _load(tmp_path, raw)


def test_scoring_a_configured_multi_file_customers_table_checks_no_file_against_another(tmp_path):
    (tmp_path / "a.csv").write_text("id,created\nc1,2026-01-01\n")
    (tmp_path / "b.csv").write_text("id,signup\nc2,2026-01-02\n")
    files = [
        {"path": "a.csv", "columns": {"customer_id": "id", "created_at": "created"}},
        {"path": "b.csv", "columns": {"customer_id": "id", "created_at": "signup"}},
    ]
    raw = {
        "name": "two",
        "data": {"root": str(tmp_path), "as_of": "2026-06-30", "tables": {"customers": {"files": files}}},
        "features": {"families": ["customers"]},
    }
    con = connect()
    register_all(con, _load(tmp_path, raw), with_labels=False, drop_missing_ids=False, tag_rows=True)
    assert sorted(r[0] for r in con.execute("SELECT customer_id FROM customers").fetchall()) == ["c1", "c2"]


def test_a_later_export_replaces_the_rows_an_earlier_one_has_for_the_same_invoice(tmp_path, engine, caplog):
    (tmp_path / "customers.csv").write_text("id,created\nc1,2026-01-01\nc2,2026-01-01\n")
    (tmp_path / "jan.csv").write_text(
        "id,invoice,ts,amount,qty\nc1,i1,2026-01-05,10,1\nc1,i2,2026-01-20,5,1\nc1,i2,2026-01-20,5,1\nc2,,2026-01-21,3,1\n"
    )
    (tmp_path / "feb.csv").write_text("id,invoice,ts,amount,qty\nc1,i2,2026-01-20,7,1\nc2,i3,2026-02-02,4,2\n")
    columns = {"customer_id": "id", "invoice_id": "invoice", "ts": "ts", "amount": "amount", "quantity": "qty"}
    raw = {
        "name": "restated",
        "data": {
            "root": str(tmp_path),
            "as_of": "2026-06-30",
            "tables": {
                "customers": {"path": "customers.csv", "columns": {"customer_id": "id", "created_at": "created"}},
                "transactions": {
                    "files": [{"path": "jan.csv"}, {"path": "feb.csv"}],
                    "columns": columns,
                    "restated_by": ["invoice_id"],
                },
            },
        },
        "features": {"families": ["customers", "rfm"]},
    }
    with caplog.at_level(logging.INFO):
        stats = register_all(engine, _load(tmp_path, raw))
    got = sorted(engine.rows("SELECT invoice_id, amount FROM transactions"), key=str)
    # i2 twice in January (two lines), once restated in February: February's line only; no invoice: kept
    assert got == sorted([("i1", 10.0), ("i2", 7.0), ("i3", 4.0), (None, 3.0)], key=str)
    assert stats["transactions"].restated == 2 and stats["transactions"].rows == 4
    raw["data"]["tables"]["transactions"]["restated_by"] = ["invoice"]
    with pytest.raises(ConfigError, match=r"transactions.restated_by: \['invoice'\] are not canonical columns"):
        _load(tmp_path, raw)


def test_purchase_lines_without_an_invoice_id_are_purchases_of_their_own_and_warned(tmp_path, caplog):
    from leadtier.pipelines.features import build

    (tmp_path / "customers.csv").write_text("id,created\nc1,2026-01-01\n")
    (tmp_path / "tx.csv").write_text(
        "id,invoice,ts,amount,qty\nc1,,2026-02-10,5,1\nc1,,2026-03-10,7,1\nc1,i1,2026-03-12,3,1\nc1,i1,2026-03-12,4,1\n"
    )
    columns = {"customer_id": "id", "invoice_id": "invoice", "ts": "ts", "amount": "amount", "quantity": "qty"}
    raw = {
        "name": "no-invoice",
        "data": {
            "root": str(tmp_path),
            "as_of": "2026-06-30",
            "tables": {
                "customers": {"path": "customers.csv", "columns": {"customer_id": "id", "created_at": "created"}},
                "transactions": {"path": "tx.csv", "columns": columns},
            },
        },
        "features": {"families": ["customers", "rfm"]},
    }
    with caplog.at_level(logging.WARNING):
        feats = build(_load(tmp_path, raw), with_labels=False).features.set_index("customer_id")
    assert (feats.loc["c1", "rfm_frequency"], feats.loc["c1", "rfm_monetary"]) == (3, 19.0)  # two dates, one invoice
    assert "2 row(s) have no invoice_id (each counts as a purchase of its own" in caplog.text
