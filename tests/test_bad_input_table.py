"""Every class of bad input tried, one row each (issue 20): how it is injected into a small demo world,
the command that meets it, and what that command must do with it. None ends in a traceback.

Outcomes:

* ``error``: exit status 2, one ``error:`` line (the last thing on stderr) naming the file or config
  key, the column and the problem; no output written.
* ``rejected``: the row is left out of the predictions and written to the rejects file with its reason.
* ``missing``: the value is read as missing (or the row is left out) and counted in a warning that names
  the file and the column, or in the drift file.

``docs/operations.md`` holds this table (``markdown_table()``); a test keeps the two the same.
Rows of ``predict`` need a trained model (the tiny world of ``tests/test_faults.py``) and are ``slow``.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from leadtier.pipelines import report
from leadtier.pipelines.cli import app
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO

runner = CliRunner()


@dataclass(frozen=True)
class Case:
    what: str  # the class of bad input
    file: str  # where it is: customers, transactions, interactions, labels, prospects, config, command line
    command: str  # features, train or predict
    outcome: str  # error, rejected, skipped, missing, blank (missing, as an empty cell) or warned (kept, counted)
    needles: tuple[str, ...]  # what the error line, the rejects reason or the warning must hold
    inject: Callable  # inject(world) -> extra command-line arguments
    count: int = 0  # rows rejected or counted (rejected, missing)


@dataclass
class World:
    """A copy of the demo files and a config for them; ``raw`` is written out before the command runs."""

    data: Path
    raw: dict
    out: Path
    prospects: Path | None = None

    def as_csv(self, table: str, text: bytes | None = None, encoding: str = "utf-8") -> Path:
        """The table as a CSV file the config names instead (``text``: these bytes instead)."""
        path = self.data / f"{table}.csv"
        if text is None:
            pd.read_parquet(self.data / f"{table}.parquet").to_csv(path, index=False, encoding=encoding)
        else:
            path.write_bytes(text)
        self.raw["data"]["tables"][table]["path"] = path.name
        return path


def _set(frame: pd.DataFrame, column: str, rows, value, dtype=object) -> pd.DataFrame:
    frame[column] = frame[column].astype(dtype)
    frame.loc[rows, column] = value
    return frame


def edit(table: str, fn) -> Callable:
    def inject(w: World) -> list[str]:
        path = w.data / f"{table}.parquet"
        fn_frame = fn(pd.read_parquet(path))
        fn_frame.to_parquet(path, index=False)
        return []

    return inject


def config(fn) -> Callable:
    def inject(w: World) -> list[str]:
        fn(w.raw)
        return []

    return inject


def both(*injects) -> Callable:
    return lambda w: [arg for inject in injects for arg in inject(w)]


def csv_bytes(table: str, make) -> Callable:
    """The table as a CSV whose bytes ``make(csv_text)`` returns."""

    def inject(w: World) -> list[str]:
        text = pd.read_parquet(w.data / f"{table}.parquet").to_csv(index=False)
        w.as_csv(table, make(text))
        return []

    return inject


def prospects(fn, suffix: str = "csv") -> Callable:
    """Score a prospects file: the first 40 demo prospects changed by ``fn``."""

    def inject(w: World) -> list[str]:
        frame = pd.read_csv(w.prospects, dtype={"customer_id": str}).head(40)
        path = w.data / f"prospects.{suffix}"
        result = fn(frame)
        if isinstance(result, bytes):
            path.write_bytes(result)
        elif suffix == "csv":
            result.to_csv(path, index=False)
        else:
            result.to_parquet(path, index=False)
        return ["--input", str(path)]

    return inject


def _zip(text: str) -> bytes:
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("table.csv", text)
    return buf.getvalue()


def _ragged(text: str) -> bytes:
    lines = text.splitlines()
    lines[4] += ",surplus"
    return ("\n".join(lines) + "\n").encode()


def _latin1(text: str) -> bytes:
    lines = text.splitlines()
    lines[3] = lines[3].replace("central", "Île-de-France", 1) if "central" in lines[3] else lines[3] + "é"
    return ("\n".join(lines) + "\n").encode("latin-1")


def _head_only(text: str) -> bytes:
    return (text.splitlines()[0] + "\n").encode()


def yes_no_csv(table: str, column: str) -> Callable:
    """The table as a CSV whose ``column`` holds yes and no, alternately."""

    def inject(w: World) -> list[str]:
        frame = pd.read_parquet(w.data / f"{table}.parquet")
        frame[column] = ["yes" if i % 2 else "no" for i in range(len(frame))]
        w.as_csv(table, frame.to_csv(index=False).encode())
        return []

    return inject


def _drop(column: str):
    return lambda f: f.drop(columns=column)


def _dup_first(n: int):
    return lambda f: pd.concat([f, f.head(n)], ignore_index=True)


C, T, IX, L, P = "customers", "transactions", "interactions", "labels", "prospects"
CASES: dict[str, Case] = {
    # ------------------------------------------------------------------ config
    "config-unknown-key": Case(
        "unknown config key",
        "config",
        "features",
        "error",
        ("features.windowz", "unknown key"),
        config(lambda r: r["features"].update(windowz=[7])),
    ),
    "config-wrong-type": Case(
        "a number key given text",
        "config",
        "features",
        "error",
        ("features.windows_days",),
        config(lambda r: r["features"].update(windows_days=["seven"])),
    ),
    "config-bad-date": Case(
        "as-of date that is no date",
        "config",
        "features",
        "error",
        ("data.as_of",),
        config(lambda r: r["data"].update(as_of="2026-02-31")),
    ),
    "config-unknown-scheme": Case(
        "unknown tier scheme",
        "config",
        "features",
        "error",
        ("nonexistent",),
        config(lambda r: r["labels"].update(scheme="nonexistent")),
    ),
    "config-unknown-family": Case(
        "unknown feature family",
        "config",
        "features",
        "error",
        ("features.families", "astrology"),
        config(lambda r: r["features"].update(families=["customers", "astrology"])),
    ),
    "config-missing-file": Case(
        "input file that does not exist",
        "config",
        "features",
        "error",
        ("interactions", "input file not found", "nowhere.parquet"),
        config(lambda r: r["data"]["tables"]["interactions"].update(path="nowhere.parquet")),
    ),
    "config-unmapped-column": Case(
        "mapped column absent from the file",
        "config",
        "features",
        "error",
        ("transactions.parquet", "'net_value'", "missing"),
        config(lambda r: r["data"]["tables"]["transactions"].update(columns={"amount": "net_value"})),
    ),
    "mapped-optional-column-absent": Case(
        "an optional column mapped, absent from the file",
        "config",
        "features",
        "error",
        ("customers.parquet", "tables.customers.columns.created_at", "'opened_on'", "missing"),
        config(lambda r: r["data"]["tables"]["customers"].update(columns={"created_at": "opened_on"})),
    ),
    "config-not-yaml": Case(
        "config that is not YAML",
        "config",
        "features",
        "error",
        ("cfg.yaml", "is not valid YAML: line 2, column 1"),
        lambda w: w.raw.update(_garbled=True) or [],
    ),
    # ------------------------------------------------------------------ customers
    "customers-duplicate-id": Case(
        "customer id on two rows",
        C,
        "features",
        "error",
        ("customers.parquet", "customer_id", "2 row(s)", "unique"),
        edit(C, lambda f: pd.concat([f, f.head(1).assign(region="other")], ignore_index=True)),
    ),
    "customers-missing-id": Case(
        "customer without an id",
        C,
        "features",
        "missing",
        ("customers.parquet", "customer_id", "3 row(s)", "no customer id"),
        edit(C, lambda f: _set(f, "customer_id", [1, 2, 3], None)),
        3,
    ),
    "customers-exact-duplicate": Case(
        "the same customer row twice",
        C,
        "features",
        "error",
        ("customers.parquet", "'customer_id'", "4 row(s)", "unique"),
        edit(C, _dup_first(2)),
    ),
    "customers-bad-date": Case(
        "unparseable date",
        C,
        "features",
        "error",
        ("customers.parquet", "'created_at'", "2 value(s)", "'soon'"),
        edit(
            C,
            lambda f: _set(f.assign(created_at=f["created_at"].dt.strftime("%Y-%m-%d")), "created_at", [3, 7], "soon"),
        ),
    ),
    "customers-future": Case(
        "customer created after the as-of date",
        C,
        "features",
        "missing",
        ("customers.parquet", "created_at", "4 row(s)", "on or after the as-of date"),
        edit(C, lambda f: _set(f, "created_at", [0, 1, 2, 3], pd.Timestamp("2027-01-01"), "datetime64[us]")),
        4,
    ),
    "customers-text-in-number": Case(
        "text in a numeric column",
        C,
        "features",
        "error",
        (
            "customers.parquet",
            "'annual_revenue_musd'",
            "2 value(s)",
            "not numbers",
            "'n/a' means unknown, list it under tables.customers.na_values",
        ),
        edit(
            C,
            lambda f: _set(
                f.assign(annual_revenue_musd=f["annual_revenue_musd"].astype(str)), "annual_revenue_musd", [0, 5], "n/a"
            ),
        ),
    ),
    "customers-blank-number": Case(
        "blank text in a numeric column",
        C,
        "features",
        "blank",
        (),
        edit(
            C,
            lambda f: _set(
                f.assign(annual_revenue_musd=f["annual_revenue_musd"].astype(str)), "annual_revenue_musd", [0, 5], " "
            ),
        ),
    ),
    "customers-empty-file": Case(
        "empty file (0 bytes)",
        C,
        "features",
        "error",
        ("customers.csv", "the file is empty (0 bytes)"),
        csv_bytes(C, lambda text: b""),
    ),
    "customers-header-only": Case(
        "header only, no rows",
        C,
        "train",
        "error",
        ("customers.csv", "no customers to train on"),
        csv_bytes(C, _head_only),
    ),
    "customers-ragged": Case(
        "a line with one field too many",
        C,
        "features",
        "error",
        ("customers.csv", "line 5 has 11 fields, the header has 10"),
        csv_bytes(C, _ragged),
    ),
    "customers-zip": Case(
        "a zip archive named .csv",
        C,
        "features",
        "error",
        ("customers.csv", "zip archive", "save it as CSV or Parquet"),
        csv_bytes(C, _zip),
    ),
    "customers-latin1": Case(
        "latin-1 bytes, utf-8 expected",
        C,
        "features",
        "error",
        ("customers.csv", "not utf-8 encoded", "Set encoding: latin-1"),
        csv_bytes(C, _latin1),
    ),
    "customers-missing-column": Case(
        "a configured attribute column absent",
        C,
        "features",
        "error",
        ("customers.parquet", "'region'"),
        edit(C, _drop("region")),
    ),
    "customers-missing-personal-column": Case(
        "a column declared personal absent (misspelt)",
        C,
        "features",
        "error",
        ("customers.parquet", "['email']", "tables.customers.personal"),
        edit(C, _drop("email")),
    ),
    # ------------------------------------------------------------------ transactions
    "transactions-text-amount": Case(
        "text in the amount",
        T,
        "features",
        "error",
        ("transactions.parquet", "'amount'", "2 value(s)", "not numbers"),
        edit(T, lambda f: _set(f.assign(amount=f["amount"].astype(str)), "amount", [0, 1], "12,50")),
    ),
    "transactions-yes-no-amount": Case(
        "yes/no in the amount of a CSV",
        T,
        "features",
        "error",
        ("transactions.csv", "'amount'", "only yes/no or true/false values, not numbers"),
        yes_no_csv(T, "amount"),
    ),
    "transactions-no-amount": Case(
        "missing amount",
        T,
        "features",
        "missing",
        ("transactions.parquet", "amount", "3 row(s)", "no amount"),
        edit(T, lambda f: _set(f, "amount", [0, 1, 2], None, "float64")),
        3,
    ),
    "transactions-no-ts": Case(
        "missing timestamp",
        T,
        "features",
        "missing",
        ("transactions.parquet", "ts", "2 row(s)", "no timestamp"),
        edit(T, lambda f: _set(f, "ts", [0, 1], pd.NaT, "datetime64[us]")),
        2,
    ),
    "transactions-future": Case(
        "transaction after the as-of date",
        T,
        "features",
        "missing",
        ("transactions.parquet", "ts", "on or after the as-of date"),
        edit(T, lambda f: _set(f, "ts", [0, 1, 2], pd.Timestamp("2030-01-01"), "datetime64[us]")),
    ),
    "transactions-bad-ts": Case(
        "unparseable timestamp",
        T,
        "features",
        "error",
        ("transactions.parquet", "'ts'", "1 value(s)", "'yesterday'"),
        edit(T, lambda f: _set(f.assign(ts=f["ts"].astype(str)), "ts", [4], "yesterday")),
    ),
    "transactions-unknown-customer": Case(
        "transaction of an unknown customer",
        T,
        "features",
        "missing",
        ("transactions", "customer", "2 row(s)"),
        edit(T, lambda f: _set(f, "customer_id", [0, 1], "NOBODY-1")),
        2,
    ),
    "transactions-missing-id": Case(
        "transaction without a customer id",
        T,
        "features",
        "missing",
        ("transactions.parquet", "customer_id", "2 row(s)", "no customer id"),
        edit(T, lambda f: _set(f, "customer_id", [0, 1], None)),
        2,
    ),
    "transactions-exact-duplicate": Case(
        "the same transaction twice (drop_exact_duplicates on)",
        T,
        "features",
        "missing",
        ("transactions.parquet", "3 row(s)", "exact duplicates"),
        both(edit(T, _dup_first(3)), config(lambda r: r["data"]["tables"][T].update(drop_exact_duplicates=True))),
        3,
    ),
    "transactions-derived-from-text": Case(
        "a derived amount over a price typed with a comma and a currency",
        T,
        "features",
        "error",
        ("transactions.parquet", "derived column transactions.amount", "'unit_price' (e.g. '12,50 EUR')", "12.50"),
        both(
            edit(T, lambda f: f.assign(unit_price=["12,50 EUR" if i < 2 else "3.5" for i in range(len(f))])),
            config(lambda r: r["data"]["tables"][T].update(derived={"amount": "quantity * unit_price"})),
        ),
    ),
    "transactions-derived-bad-cell": Case(
        "a derived amount converting text, with one cell it cannot convert",
        T,
        "features",
        "error",
        ("transactions.parquet", "derived column transactions.amount", "'unit_price' (e.g. '1.234,5,6')"),
        both(
            edit(T, lambda f: f.assign(unit_price=["1.234,5,6" if i == 7 else "3,5" for i in range(len(f))])),
            config(
                lambda r: r["data"]["tables"][T].update(
                    derived={"amount": "CAST(replace(replace(unit_price, '.', ''), ',', '.') AS DOUBLE)"}
                )
            ),
        ),
    ),
    "transactions-missing-column": Case(
        "a required column absent",
        T,
        "features",
        "error",
        ("transactions.parquet", "'amount'"),
        edit(T, _drop("amount")),
    ),
    # ------------------------------------------------------------------ interactions
    "interactions-exact-duplicate-kept": Case(
        "the same interaction twice (drop_exact_duplicates off)",
        IX,
        "features",
        "warned",
        ("interactions.parquet: interactions: 3 row(s) are exact copies of another row, each counted",),
        edit(IX, _dup_first(3)),
        3,
    ),
    "interactions-unknown-type": Case(
        "interaction type not configured",
        IX,
        "features",
        "missing",
        ("interactions.parquet", "type", "2 row(s)", "not listed in features.interaction_types"),
        edit(IX, lambda f: _set(f, "type", [0, 1], "carrier_pigeon")),
        2,
    ),
    "interactions-negative-duration": Case(
        "negative duration",
        IX,
        "features",
        "missing",
        ("interactions.parquet", "duration_s", "1 row(s)", "negative duration"),
        edit(IX, lambda f: _set(f, "duration_s", [0], -5.0, "float64")),
        1,
    ),
    "interactions-future": Case(
        "interaction after the as-of date",
        IX,
        "features",
        "missing",
        ("interactions.parquet", "ts", "on or after the as-of date"),
        edit(IX, lambda f: _set(f, "ts", [0], pd.Timestamp("2031-01-01"), "datetime64[us]")),
    ),
    "interactions-no-timestamp": Case(
        "an interaction without a timestamp",
        IX,
        "features",
        "missing",
        ("interactions.parquet", "ts", "2 row(s)", "have no timestamp (ignored)"),
        edit(IX, lambda f: _set(f, "ts", [0, 1], pd.NaT, "datetime64[us]")),
        2,
    ),
    "interactions-missing-column": Case(
        "the type column absent",
        IX,
        "features",
        "error",
        ("interactions.parquet", "'type'"),
        edit(IX, _drop("type")),
    ),
    # ------------------------------------------------------------------ labels (train stops before tuning)
    "labels-outside-scheme": Case(
        "a tier that is not a level of the scheme",
        L,
        "train",
        "error",
        ("labels.parquet, column 'tier'", "4 of the ", "'Hot'", "labels.mapping"),
        edit(L, lambda f: _set(f, "tier", [0, 1, 2, 3], "Hot")),
    ),
    "labels-conflicting": Case(
        "one customer, two different tiers (no labelled_at)",
        L,
        "train",
        "error",
        ("labels.parquet, column 'tier'", "1 customer(s) carry different tiers"),
        edit(L, lambda f: pd.concat([f, f.head(1).assign(tier="A" if f["tier"].iloc[0] != "A" else "B")])),
    ),
    "labels-too-few": Case(
        "too few labels per tier",
        L,
        "train",
        "error",
        ("too few labelled customers per tier", "min_per_tier"),
        edit(L, lambda f: f.head(20)),
    ),
    "labels-all-later": Case(
        "every label assigned after the as-of date",
        L,
        "train",
        "error",
        ("labelled_at", "after the as-of date"),
        edit(L, lambda f: _set(f, "labelled_at", f.index, pd.Timestamp("2027-01-01"), "datetime64[us]")),
    ),
    # ------------------------------------------------------------------ prospects (predict)
    "prospects-missing-id": Case(
        "row without a customer id",
        P,
        "predict",
        "rejected",
        ("missing customer_id",),
        prospects(lambda f: _set(f, "customer_id", [0], None)),
        1,
    ),
    "prospects-duplicate-id": Case(
        "customer id on two rows",
        P,
        "predict",
        "rejected",
        ("duplicate customer_id",),
        prospects(_dup_first(2)),
        2,
    ),
    "prospects-future": Case(
        "created after the as-of date",
        P,
        "predict",
        "skipped",
        ("skipped: created on or after the as-of date",),
        prospects(lambda f: _set(f, "created_at", [3], "2027-03-01")),
        1,
    ),
    "prospects-bad-date": Case(
        "unparseable date",
        P,
        "predict",
        "rejected",
        ("column 'created_at' does not parse as a date",),
        prospects(lambda f: _set(f, "created_at", [7], "31/02/2026")),
        1,
    ),
    "prospects-text-in-number": Case(
        "text in a numeric column",
        P,
        "predict",
        "rejected",
        ("column 'annual_revenue_musd' is not a number",),
        prospects(
            lambda f: _set(
                f.assign(annual_revenue_musd=f["annual_revenue_musd"].astype(str)), "annual_revenue_musd", [5], "n/a"
            ),
            "parquet",
        ),
        1,
    ),
    "prospects-derived-bad-cell": Case(
        "a derived number that one row's text cannot give",
        P,
        "predict",
        "rejected",
        ("derived column 'annual_revenue_musd' does not evaluate",),
        both(
            prospects(lambda f: _set(f, "annual_revenue_musd", [4], "12 M")),
            config(
                lambda r: r["data"]["tables"]["customers"].update(
                    derived={"annual_revenue_musd": "CAST(annual_revenue_musd AS DOUBLE)"}
                )
            ),
        ),
        1,
    ),
    "prospects-text-in-every-number": Case(
        "text in most rows of a numeric column",
        P,
        "predict",
        "error",
        ("prospects.csv", "'annual_revenue_musd'", "40 value(s)", "predict.max_reject_share"),
        prospects(lambda f: f.assign(annual_revenue_musd=[f"{v:.1f} M" for v in f["annual_revenue_musd"]])),
    ),
    "prospects-yes-no-number": Case(
        "yes/no in a numeric column of a CSV",
        P,
        "predict",
        "error",
        ("prospects.csv", "'annual_revenue_musd'", "only yes/no or true/false values, not numbers"),
        prospects(lambda f: f.assign(annual_revenue_musd=["yes" if i % 2 else "no" for i in range(len(f))])),
    ),
    "prospects-unseen-category": Case(
        "category never seen in training",
        P,
        "predict",
        "missing",
        ("cust_region",),
        prospects(lambda f: _set(f, "region", [2, 5, 9], "Atlantis")),
        3,
    ),
    "prospects-empty-file": Case(
        "empty file (0 bytes)",
        P,
        "predict",
        "error",
        ("prospects.csv", "the file is empty (0 bytes)"),
        prospects(lambda f: b""),
    ),
    "prospects-header-only": Case(
        "a header and no rows",
        P,
        "predict",
        "error",
        ("prospects.csv", "the scoring input has no rows"),
        prospects(lambda f: f.head(0)),
    ),
    "prospects-ragged": Case(
        "a line with one field too many",
        P,
        "predict",
        "error",
        ("prospects.csv", "line 5 has 11 fields, the header has 10"),
        prospects(lambda f: _ragged(f.to_csv(index=False))),
    ),
    "prospects-zip": Case(
        "a zip archive named .csv",
        P,
        "predict",
        "error",
        ("prospects.csv", "zip archive"),
        prospects(lambda f: _zip(f.to_csv(index=False))),
    ),
    "prospects-latin1": Case(
        "latin-1 bytes, utf-8 expected",
        P,
        "predict",
        "error",
        ("prospects.csv", "not utf-8 encoded"),
        prospects(lambda f: _set(f, "region", [3], "Île-de-France").to_csv(index=False).encode("latin-1")),
    ),
    "prospects-missing-column": Case(
        "a configured attribute column absent",
        P,
        "predict",
        "error",
        ("prospects.csv", "'region'"),
        prospects(_drop("region")),
    ),
    "prospects-no-created-at": Case(
        "a column the customers file has (created_at) absent or renamed",
        P,
        "predict",
        "error",
        ("prospects.csv", "column(s) ['created_at'] missing", "the model reads features from them"),
        prospects(lambda f: f.rename(columns={"created_at": "created"})),
    ),
    "prospects-mostly-rejected": Case(
        "most rows rejected",
        P,
        "predict",
        "error",
        ("max_reject_share",),
        prospects(lambda f: _set(f, "customer_id", list(range(30)), None)),
    ),
    "predict-unknown-model": Case(
        "model URI that does not resolve",
        "command line",
        "predict",
        "error",
        ("models:/leadtier-demo@nonexistent_alias", "cannot"),
        lambda w: ["--model", "models:/leadtier-demo@nonexistent_alias"],
    ),
    "predict-output-suffix": Case(
        "output that is neither .parquet nor .csv",
        "command line",
        "predict",
        "error",
        ("must end in .parquet or .csv",),
        lambda w: ["--output", str(w.out.with_suffix(".xlsx"))],
    ),
}


def markdown_table() -> str:
    """The table of ``CASES`` for docs/operations.md."""
    lines = ["| bad input | in | command | outcome |", "|---|---|---|---|"]
    words = {
        "error": "error line, exit 2",
        "rejected": "rejected with its reason",
        "skipped": "skipped with its reason, not counted as a reject",
        "missing": "read as missing, counted",
        "blank": "read as missing, as an empty cell is",
        "warned": "kept and counted, with a warning",
    }
    for case in CASES.values():
        lines.append(f"| {case.what} | {case.file} | `{case.command}` | {words[case.outcome]} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- worlds


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> Path:
    """300 demo customers, written once; each row works on a copy."""
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo

    root = tmp_path_factory.mktemp("bad_input_demo")
    cfg = load_config(DEMO_CONFIG, data_root=str(root / "data"))
    write_demo(cfg, n_customers=300)
    return root / "data"


def _raw(data: Path, out: Path) -> dict:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(data)
    raw["features"]["output"] = str(out.with_name("features.parquet"))
    raw["predict"]["output"] = str(out)
    raw["train"]["min_per_tier"] = 5
    return raw


def _world(request, workdir: Path, demo_files: Path, case: Case) -> World:
    if case.command != "predict":
        data = workdir / "data"
        shutil.copytree(demo_files, data)
        return World(data=data, raw=_raw(data, workdir / "out" / "pred.parquet"), out=workdir / "out" / "pred.parquet")
    from tests.test_faults import build_world

    trained = build_world(request.getfixturevalue("tmp_path_factory"))
    request.getfixturevalue("monkeypatch").setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained.work / 'mlflow.db'}")
    raw = yaml.safe_load(trained.config_path.read_text())
    return World(data=workdir, raw=raw, out=workdir / "out" / "pred.parquet", prospects=trained.prospects)


def _write_config(w: World, path: Path) -> Path:
    (path.parent / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    if w.raw.pop("_garbled", False):
        path.write_text("data: {root: [unclosed\n")
    else:
        path.write_text(yaml.safe_dump(w.raw, sort_keys=False, allow_unicode=True))
    return path


def _check_error(res, case: Case, w: World) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output)
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr[-3000:]
    # the error line is the last thing on stderr, or (an invalid config) followed by one indented line per key
    assert all(ln.startswith(" ") for ln in lines[errors[0] + 1 :]), res.stderr[-3000:]
    message = "\n".join(lines[errors[0] :])
    for needle in case.needles:
        assert needle in message, (needle, message)
    assert not w.out.exists()


def _check_rejected(res, case: Case, w: World) -> None:
    assert res.exit_code == 0, res.output[-3000:]
    rejects = pd.read_csv(w.out.with_name("pred.rejects.csv"))
    assert len(rejects) == case.count and rejects["reason"].str.contains(case.needles[0], regex=False).all(), rejects
    for reason in rejects["reason"].unique():  # the Chinese report says it in Chinese
        assert re.search(r"[\u4e00-\u9fff]", report.reason_text(reason, report.strings("zh"))), reason
    counts = f"{case.count} rejected" if case.outcome == "rejected" else f"0 rejected \\+ {case.count} skipped"
    assert re.search(rf"reconciled: (\d+) = (\d+) scored \+ {counts} \(ok\)", res.stdout), res.stdout


def _check_missing(res, case: Case, w: World, caplog) -> None:
    assert res.exit_code == 0, res.output[-3000:]
    if case.command == "predict":
        drift = pd.read_csv(w.out.with_name("pred.drift.csv")).set_index("feature")
        assert drift.loc[case.needles[0], "unseen_values"] == case.count
        return
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if case.outcome == "blank":  # blank text in a number column: missing, as an empty CSV cell; no warning
        features = pd.read_parquet(w.raw["features"]["output"])
        assert features["cust_annual_revenue_musd"].isna().sum() >= 2
        return
    hits = [m for m in warnings if all(n in m for n in case.needles)]
    assert hits, (case.needles, warnings)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if c.command == "predict" else n for n, c in CASES.items()],
)
def test_bad_input_is_an_error_a_reject_or_a_counted_missing_value(request, workdir, demo_files, caplog, name):
    case = CASES[name]
    w = _world(request, workdir, demo_files, case)
    extra = case.inject(w)
    cfg = _write_config(w, workdir / "cfg.yaml")
    args = [case.command, "--config", str(cfg), *extra]
    if case.command == "predict" and "--output" not in extra:
        args += ["--output", str(w.out)]
    if case.command == "train":
        args += ["--n-trials", "1"]
    with caplog.at_level("WARNING"):
        res = runner.invoke(app, args)
    assert "Traceback" not in res.output, res.output[-3000:]
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), repr(res.exception)
    if case.outcome == "error":
        _check_error(res, case, w)
    elif case.outcome in ("rejected", "skipped"):
        _check_rejected(res, case, w)
    else:
        _check_missing(res, case, w, caplog)


def test_there_are_at_least_40_classes_of_each_kind_together():
    assert len(CASES) >= 40
    assert {c.outcome for c in CASES.values()} == {"error", "rejected", "skipped", "missing", "blank", "warned"}


def test_the_operations_doc_holds_this_table():
    doc = (REPO / "docs" / "operations.md").read_text()
    assert markdown_table() in doc, (
        "regenerate: python -c 'from tests.test_bad_input_table import markdown_table; print(markdown_table())'"
    )
