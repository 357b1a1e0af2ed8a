"""Bad input stops the command with one clear message (file, column, count) and writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from leadtier.pipelines.cli import app
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO

runner = CliRunner()


def _config(workdir, mutate=lambda raw: None):
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(workdir / "data")
    raw["demo"]["n_customers"] = 300
    raw["features"]["output"] = str(workdir / "out" / "features.parquet")
    mutate(raw)
    (workdir / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _invoke(*args):
    return runner.invoke(app, list(args))


@pytest.fixture
def small(workdir):
    cfg = _config(workdir)
    res = _invoke("demo-data", "--config", cfg)
    assert res.exit_code == 0, res.output
    return cfg


def _assert_clean_failure(res, *needles, output=None):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in res.output, res.output
    if output is not None:
        assert not output.exists()


def test_missing_input_file(workdir, small):
    (workdir / "data" / "interactions.parquet").unlink()
    res = _invoke("features", "--config", small)
    _assert_clean_failure(
        res,
        "interactions",
        "input file not found",
        "interactions.parquet",
        output=workdir / "out" / "features.parquet",
    )


def test_missing_mapped_column(workdir, small):
    cfg = _config(workdir, lambda r: r["data"]["tables"]["transactions"].update(columns={"amount": "net_value"}))
    res = _invoke("features", "--config", cfg)
    _assert_clean_failure(
        res,
        "transactions.parquet",
        "'net_value'",
        "transactions.amount",
        "missing",
        output=workdir / "out" / "features.parquet",
    )


def test_unparseable_date_column(workdir, small):
    path = workdir / "data" / "customers.parquet"
    df = pd.read_parquet(path)
    df["created_at"] = df["created_at"].dt.strftime("%Y-%m-%d").astype(object)
    df.loc[[3, 7, 11], "created_at"] = ["31/02/2026", "soon", "2026-13-01"]
    df.to_parquet(path, index=False)
    res = _invoke("features", "--config", small)
    _assert_clean_failure(
        res,
        "customers.parquet",
        "'created_at'",
        "3 value(s)",
        "'soon'",
        output=workdir / "out" / "features.parquet",
    )


def test_unknown_config_key(workdir):
    cfg = _config(workdir, lambda r: r["features"].update(windowz=[7]))
    res = _invoke("features", "--config", cfg)
    _assert_clean_failure(res, "features.windowz", "unknown key", "windows_days")


def test_text_in_numeric_column(workdir, small):
    path = workdir / "data" / "transactions.parquet"
    df = pd.read_parquet(path)
    df["amount"] = df["amount"].astype(str)
    df.loc[[0, 1], "amount"] = ["12,50", "n/a"]
    df.to_parquet(path, index=False)
    res = _invoke("features", "--config", small)
    _assert_clean_failure(res, "transactions.parquet", "'amount'", "2 value(s)", "not numbers")


def test_predict_without_any_model(workdir, small):
    out = workdir / "out" / "pred.parquet"
    res = _invoke("predict", "--config", small, "--output", str(out))
    _assert_clean_failure(res, "models:/leadtier-demo@champion", output=out)


def test_too_few_labels_per_tier(workdir, small):
    cfg = _config(workdir, lambda r: r["train"].update(min_per_tier=500))
    res = _invoke("train", "--config", cfg, "--n-trials", "1")
    _assert_clean_failure(res, "too few labelled customers per tier", "min_per_tier = 500")


def test_labels_outside_the_scheme(workdir, small):
    path = workdir / "data" / "labels.parquet"
    df = pd.read_parquet(path)
    df.loc[df.index[:4], "tier"] = "Hot"
    df.to_parquet(path, index=False)
    res = _invoke("train", "--config", small, "--n-trials", "1")
    _assert_clean_failure(res, "4 of the ", "'Hot'", "labels.mapping")


def test_duplicate_customer_ids_in_training_data(workdir, small, caplog):
    path = workdir / "data" / "customers.parquet"
    df = pd.read_parquet(path)
    pd.concat([df, df.head(3)], ignore_index=True).to_parquet(path, index=False)
    res = _invoke("features", "--config", small)
    _assert_clean_failure(
        res,
        "customers.parquet",
        "column 'customer_id' of customers",
        "6 row(s)",
        "unique",
        output=workdir / "out" / "features.parquet",
    )
    logged = [r.getMessage() for r in caplog.records if "share a customer_id" in r.getMessage()]
    assert not logged, logged  # said once, on the error line, not logged before it too


def _append_copies(path, **columns) -> pd.DataFrame:
    """Append copies of the first rows of a Parquet file with ``columns`` replaced (one value per
    copy); return the file's rows as they were."""
    df = pd.read_parquet(path)
    n = len(next(iter(columns.values())))
    pd.concat([df, df.head(n).assign(**columns)], ignore_index=True).to_parquet(path, index=False)
    return df


def test_dangling_and_future_events_are_reported_not_fatal(workdir, small, caplog):
    path = workdir / "data" / "transactions.parquet"
    before = _invoke("features", "--config", small)
    assert before.exit_code == 0, before.output
    out = workdir / "out" / "features.parquet"
    features_before = pd.read_parquet(out)
    first = pd.read_parquet(path).head(1)
    _append_copies(
        path,
        customer_id=["GHOST-1", "GHOST-2", first["customer_id"].item()],
        ts=[first["ts"].item()] * 2 + [pd.Timestamp("2030-01-01")],  # the last: a known customer, the future
    )
    caplog.clear()
    res = _invoke("features", "--config", small)
    assert res.exit_code == 0, res.output
    assert "2 row(s) are dated before the as-of date 2026-06-30 and name customers absent" in caplog.text
    assert "GHOST-1" in caplog.text
    assert "1 row(s) are dated on or after the as-of date" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(out), features_before)  # neither changes a feature


def test_customers_created_after_the_snapshot_are_reported_not_silently_missing(workdir, small, caplog):
    path = workdir / "data" / "customers.parquet"
    customers = pd.read_parquet(path)
    customers.loc[[4, 8, 15], "created_at"] = pd.Timestamp("2030-01-01")
    customers.to_parquet(path, index=False)
    as_of = pd.Timestamp(yaml.safe_load(open(small))["data"]["as_of"])
    later = int((customers["created_at"] >= as_of).sum())
    assert later >= 3
    caplog.clear()
    res = _invoke("features", "--config", small)
    assert res.exit_code == 0, res.output
    assert f"{later} row(s) were created on or after the as-of date" in caplog.text
    late_ids = customers.loc[customers["created_at"] >= as_of, "customer_id"]
    assert any(i in caplog.text for i in late_ids)  # examples name the customers
    assert len(pd.read_parquet(workdir / "out" / "features.parquet")) == len(customers) - later


def test_labels_for_unknown_customers_are_reported_and_not_used(workdir, small, caplog):
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.train import prepare

    df = _append_copies(workdir / "data" / "labels.parquet", customer_id=["NOBODY-1", "NOBODY-2", "NOBODY-3"])
    cfg = load_config(small)
    cfg.train.min_per_tier = 5  # 300 customers: few labels per tier
    prep = prepare(cfg)
    assert "labels.parquet: column 'customer_id' of labels: 3 row(s) label customers absent" in caplog.text
    assert "NOBODY-1" in caplog.text
    used = set(prep.train["customer_id"]) | set(prep.test["customer_id"] if prep.test is not None else [])
    assert not used & {"NOBODY-1", "NOBODY-2", "NOBODY-3"}
    assert len(used) == df["customer_id"].nunique()  # every real label is still used


def test_labels_assigned_after_the_snapshot_are_not_used(workdir, small, caplog):
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.train import TrainingDataError, prepare

    path = workdir / "data" / "labels.parquet"
    df = pd.read_parquet(path)
    cfg = load_config(small)
    late = df["customer_id"].iloc[:4].tolist()
    df["labelled_at"] = pd.Timestamp(cfg.data.as_of)  # assigned on the snapshot day: usable
    df.loc[df["customer_id"].isin(late), "labelled_at"] = pd.Timestamp(cfg.data.as_of) + pd.Timedelta(days=1)
    df.to_parquet(path, index=False)
    cfg.train.min_per_tier = 5
    prep = prepare(cfg)
    used = set(prep.train["customer_id"]) | set(prep.test["customer_id"] if prep.test is not None else [])
    assert not used & set(late)
    assert len(used) == df["customer_id"].nunique() - len(late)
    assert "4 label(s) were assigned after the as-of date" in caplog.text

    df["labelled_at"] = pd.Timestamp(cfg.data.as_of) + pd.Timedelta(days=1)  # all of them: a clear refusal
    df.to_parquet(path, index=False)
    with pytest.raises(TrainingDataError, match="assigned after the as-of date .* \\(column labelled_at\\)"):
        prepare(cfg)


def test_event_rows_whose_ids_lost_their_leading_zeros_say_which_customer_they_are(caplog):
    """A spreadsheet that read ids as numbers drops their zeros: the rows are not used, and the warning
    names the customers they belong to, so the user keeps the ids as text."""
    import datetime as dt

    import duckdb
    from leadtier.pipelines.sources import TableStats
    from leadtier.pipelines.validate import check_event_customers

    con = duckdb.connect()
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES ('000123'), ('000124'), ('A-7')) t(customer_id)")
    con.execute(
        "CREATE TABLE transactions AS SELECT customer_id, TIMESTAMP '2026-01-05' AS ts FROM "
        "(VALUES ('000123'), ('123'), ('123'), ('124'), ('a7'), ('nobody')) t(customer_id)"
    )
    stats = {"transactions": TableStats(table="transactions", files={"orders.csv": 6})}
    with caplog.at_level("WARNING"):
        (problem,) = check_event_customers(con, stats, dt.date(2026, 2, 1))
    assert problem.rows == 5 and "name customers absent from the customers table" in problem.message
    assert (
        "'123' (2 rows) is spelt '000123' there; '124' (1 row) is spelt '000124' there; "
        "'a7' (1 row) is spelt 'A-7' there" in problem.message
    )
    assert "keep ids as text" in caplog.text and "nobody" not in problem.message.split("there")[-1]


def test_unknown_customer_rows_counted_from_the_families_match_a_full_search(workdir, small):
    """The feature stage finds event rows of unknown customers by subtracting what the families
    counted from the rows before the as-of date; that must agree with searching the table."""
    from leadtier.pipelines import features as feature_stage
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.sources import register_all
    from leadtier.pipelines.validate import check_event_customers

    _append_copies(workdir / "data" / "interactions.parquet", customer_id=["GHOST-1", "GHOST-1", "GHOST-2"])
    cfg = load_config(small)
    con = feature_stage.connect(cfg)
    stats = register_all(con, cfg, with_labels=False)
    with feature_stage.staged_families(con, cfg, cfg.data.as_of):
        counted = feature_stage.counted_rows(con, cfg)
        shortcut = check_event_customers(con, stats, cfg.data.as_of, counted=counted)
    full = check_event_customers(con, stats, cfg.data.as_of)
    assert [str(p) for p in shortcut] == [str(p) for p in full]
    assert [(p.table, p.rows) for p in full] == [("interactions", 3)]
    n_tx = con.execute(f"SELECT count(*) FROM transactions WHERE ts < DATE '{cfg.data.as_of}'").fetchall()[0][0]
    assert counted["transactions"] == n_tx  # every transaction row before the as-of date was counted


def test_a_table_of_many_files_is_named_in_a_line_a_person_reads():
    from leadtier.pipelines.validate import named_files

    months = [f"orders_2025-{m:02d}.csv" for m in range(1, 13)]
    assert named_files(months) == "orders_2025-01.csv, orders_2025-02.csv, ..., orders_2025-12.csv (12 files)"
    assert named_files(months[:3]) == "orders_2025-01.csv, orders_2025-02.csv, orders_2025-03.csv"


def test_an_as_of_date_before_every_customer_is_an_error_not_an_empty_table(workdir, small):
    res = _invoke("features", "--config", small, "--as-of", "1990-01-01")
    _assert_clean_failure(
        res,
        "none of the",
        "customers exists as of 1990-01-01: each was created on or after it (the first on",
        "choose a later as-of date",
        output=workdir / "out" / "features.parquet",
    )
