"""Stage history features (features/sql/stages.sql), activities per deal on each entity's own clock, the B2B
demo generator, and configs/demo_b2b.yaml from generated data to a report."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from leadtier.features.queries import render_family
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from leadtier.pipelines.synthetic_b2b import MIN_CYCLE_DAYS, generate
from typer.testing import CliRunner

from tests.conftest import REPO

AS_OF = dt.date(2026, 3, 1)
ORDER = ["prospecting", "qualification", "proposal", "negotiation"]
B2B = REPO / "configs" / "demo_b2b.yaml"


def world(
    stages: list[tuple[str, str, str]], interactions: list[tuple[str, str, str]] = ()
) -> duckdb.DuckDBPyConnection:
    """Deals a (created 2026-01-01), b (created 2026-01-01), c (created 2026-02-20) with the given stage rows
    (id, stage, time) and interactions (id, time, type)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE customers (customer_id VARCHAR, created_at DATE)")
    con.execute("INSERT INTO customers VALUES ('a', '2026-01-01'), ('b', '2026-01-01'), ('c', '2026-02-20')")
    con.execute("CREATE TABLE stages (customer_id VARCHAR, stage VARCHAR, ts TIMESTAMP)")
    con.executemany("INSERT INTO stages VALUES (?, ?, ?)", stages)
    con.execute("CREATE TABLE interactions (customer_id VARCHAR, ts TIMESTAMP, type VARCHAR, duration_s DOUBLE)")
    if interactions:
        con.executemany("INSERT INTO interactions VALUES (?, ?, ?, NULL)", list(interactions))
    return con


def stage_features(con, as_of: dt.date = AS_OF, entity_days: int | None = None) -> pd.DataFrame:
    sql = render_family("stages", as_of, stage_order=ORDER, entity_days=entity_days)
    return con.execute(sql).df().set_index("customer_id")


A_LOG = [
    ("a", "prospecting", "2026-01-01 10:00"),
    ("a", "qualification", "2026-01-05 09:00"),
    ("a", "proposal", "2026-01-10 00:00"),
    ("a", "qualification", "2026-01-20 12:00"),  # a step back
    ("a", "proposal", "2026-02-01 08:00"),
]


def test_the_four_stage_features_count_days_between_dates():
    row = stage_features(world(A_LOG)).loc["a"]
    assert row["stage_changes"] == 4
    assert row["stage_days_since_change"] == (AS_OF - dt.date(2026, 2, 1)).days  # 28
    # proposal 01-10 .. 01-20 (10 days) and again from 02-01 (28 days)
    assert row["stage_days_in_current"] == 10 + 28
    assert row["stage_furthest"] == 3 and row["stage_current"] == 3


def test_a_stage_change_on_or_after_the_as_of_date_does_not_count():
    base = stage_features(world(A_LOG))
    later = stage_features(world([*A_LOG, ("a", "negotiation", "2026-03-01 00:00"), ("b", "proposal", "2026-04-01")]))
    pd.testing.assert_frame_equal(base, later)
    just_before = stage_features(world([*A_LOG, ("a", "negotiation", "2026-02-28 23:59:59")])).loc["a"]
    assert just_before["stage_changes"] == 5 and just_before["stage_furthest"] == 4
    assert just_before["stage_days_since_change"] == 1 and just_before["stage_days_in_current"] == 1


def test_furthest_stage_follows_the_configured_order_not_the_latest_row():
    log = [
        ("b", "prospecting", "2026-01-02"),
        ("b", "negotiation", "2026-01-10"),
        ("b", "qualification", "2026-01-20"),  # back to an earlier stage
        ("b", "on_hold", "2026-01-25"),  # not in the order: a change, never a position
    ]
    row = stage_features(world(log)).loc["b"]
    assert row["stage_furthest"] == ORDER.index("negotiation") + 1
    assert pd.isna(row["stage_current"]) and row["stage_changes"] == 3
    # without a stage row: no position, no days, no change
    none = stage_features(world(log)).loc["a"]
    assert none["stage_changes"] == 0 and pd.isna(none["stage_furthest"]) and pd.isna(none["stage_days_in_current"])


def test_on_its_own_clock_each_entity_is_described_as_of_its_start_plus_the_days():
    # a: as of 2026-01-15 (start + 14); c: as of AS_OF, which comes before its start + 14
    log = [*A_LOG, ("c", "prospecting", "2026-02-20 09:00"), ("c", "qualification", "2026-02-27")]
    row = stage_features(world(log), entity_days=14)
    assert row.loc["a", "stage_changes"] == 2 and row.loc["a", "stage_furthest"] == 3
    assert row.loc["a", "stage_days_since_change"] == 5  # proposal on 01-10, as of 01-15
    assert row.loc["c", "stage_changes"] == 1 and row.loc["c", "stage_days_since_change"] == 2
    ix = [("a", "2026-01-14 23:00", "call"), ("a", "2026-01-15 00:00", "call"), ("c", "2026-02-28", "email")]
    sql = render_family("interactions", AS_OF, windows=[7, 30], interaction_types=["call", "email"], entity_days=14)
    got = world(log, ix).execute(sql).df().set_index("customer_id")
    assert got.loc["a", "ix_count"] == 1 and got.loc["a", "ix_recency_days"] == 1  # 01-15 is the future for a
    assert got.loc["c", "ix_email_7d"] == 1 and got.loc["b", "ix_count"] == 0


def test_the_stages_family_needs_its_order_and_days_to_win_takes_it(tmp_path):
    text = B2B.read_text(encoding="utf-8")
    path = tmp_path / "b2b.yaml"
    path.write_text(text.replace("  stage_order: [prospecting, qualification, proposal, negotiation]\n", ""))
    with pytest.raises(ConfigError, match="stage_order"):
        load_config(path)
    path.write_text(text.replace("[prospecting, qualification, proposal, negotiation]", "[proposal, proposal]"))
    with pytest.raises(ConfigError, match="stage_order"):
        load_config(path)
    cfg = load_config(B2B)
    assert cfg.features.families == ["customers", "stages", "interactions"] and cfg.features.entity_as_of_days == 14


def test_the_b2b_world_is_deterministic_and_never_closes_a_deal_in_its_first_days():
    one, two = generate(400, seed=7), generate(400, seed=7)
    for name in one:
        pd.testing.assert_frame_equal(one[name], two[name])
    assert not generate(400, seed=8)["opportunities"].equals(one["opportunities"])
    opp, end = one["opportunities"], pd.Timestamp("2026-06-30")
    for col in ("won_date", "lost_date"):
        days = (opp[col] - opp["created_at"]).dt.total_seconds() / 86400
        assert (days.dropna() >= MIN_CYCLE_DAYS - 1e-6).all() and (opp[col].dropna() < end).all()
    assert (one["stage_log"]["entered_at"] < end).all() and (one["activities"]["ts"] < end).all()
    assert opp["won_date"].notna().any() and opp["lost_date"].notna().any()
    assert len(one["open_opportunities"]) == int((opp["won_date"].isna() & opp["lost_date"].isna()).sum()) > 0


def test_every_b2b_feature_column_has_plain_words(tmp_path):
    from leadtier.features.meta import meta_of
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build

    cfg = load_config(B2B, data_root=str(tmp_path))
    counts = write_demo(cfg, n_customers=300)
    assert counts["opportunities"] == 300 and counts["prospects"] > 0
    feats = build(cfg, with_labels=False).features
    assert {"stage_changes", "stage_furthest", "ix_meeting_7d", "cust_contact_seniority"} <= set(feats.columns)
    assert [c for c in feats.columns if c != "customer_id" and meta_of(c) is None] == []


@pytest.mark.slow
def test_the_b2b_demo_trains_predicts_and_reports(workdir):
    runner = CliRunner()
    args = ["--config", str(B2B), "--data-root", str(workdir / "data")]
    res = runner.invoke(app, ["demo-data", *args, "--n-customers", "1500"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", *args, "--n-trials", "2"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    n = {w: int(text.split(f" {w}")[0].split()[-1]) for w in ("labelled,", "censored", "unlabelled")}
    assert "1500 entities:" in text and sum(n.values()) == 1500
    assert n["labelled,"] > 0 and n["censored"] > 0 and " 0 in both" in text
    open_deals = pd.read_csv(workdir / "data" / "open_opportunities.csv")
    as_of = load_config(B2B).data.as_of
    young = pd.to_datetime(open_deals["created_at"]).dt.date > as_of - dt.timedelta(days=14)
    assert 0 < young.sum() < len(open_deals) - 1
    no_start = open_deals.index[~young][0]  # a deal without a start has no first 14 days to describe
    scoring = workdir / "data" / "opportunities.parquet"
    deals = pd.read_parquet(scoring)
    gone = deals["opportunity_id"] == open_deals.loc[no_start, "opportunity_id"]
    deals.assign(created_at=deals["created_at"].mask(gone)).to_parquet(scoring, index=False)
    res = runner.invoke(app, ["predict", *args])
    assert res.exit_code == 0, res.output
    pred = pd.read_parquet(workdir / "outputs" / "demo_b2b" / "predictions.parquet")
    # predict.open_only, and deals open fewer than the 14 days the model reads are skipped too
    scored = ~young & (open_deals.index != no_start)
    assert sorted(pred["customer_id"]) == sorted(open_deals.loc[scored, "opportunity_id"])
    assert f"skipped {1500 - (~young).sum()} (not bad input" in " ".join(res.output.split())
    rejects = pd.read_csv(workdir / "outputs" / "demo_b2b" / "predictions.rejects.csv")
    said = rejects.set_index("customer_id")["reason"]
    assert said[open_deals.loc[no_start, "opportunity_id"]].startswith("missing created_at: the features describe")
    assert (
        said[open_deals.loc[young, "opportunity_id"]]
        == "skipped: open fewer than 14 days (the days its features describe)"
    ).all()
    res = runner.invoke(app, ["worklist", *args])
    assert res.exit_code == 0, res.output
    plan = pd.read_parquet(workdir / "outputs" / "demo_b2b" / "worklist.parquet")
    assert plan["owner"].notna().all() and plan["owner"].nunique() > 1  # each owner's own list
    assert set(plan["customer_id"]) <= set(open_deals["opportunity_id"])
    said = plan["reasons"].dropna().astype(str)  # the features describe each deal's first 14 days, not today
    assert len(said[said != ""]) > 0 and said[said != ""].str.startswith("at day 14 after its start: ").all()
    res = runner.invoke(app, ["report", *args])
    assert res.exit_code == 0, res.output
    assert (workdir / "outputs" / "demo_b2b" / "report.html").stat().st_size > 10_000


def test_a_stage_order_naming_a_stage_the_log_lacks_is_a_warning_and_closed_stages_are_not(tmp_path, caplog):
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build

    cfg = load_config(B2B, data_root=str(tmp_path))
    write_demo(cfg, n_customers=300)
    with caplog.at_level("WARNING"):
        build(cfg, with_labels=False)
    assert not [r for r in caplog.records if "stage_order" in r.getMessage()]  # the demo's order lists them all
    cfg.features.stage_order = ["lead", "qualification", "proposal", "negotiation"]  # 'prospecting' misspelt
    caplog.clear()
    with caplog.at_level("WARNING"):
        build(cfg, with_labels=False)
    warned = [r.getMessage() for r in caplog.records if "stage_order" in r.getMessage()]
    assert len(warned) == 1 and "column 'stage' of stages: features.stage_order lists ['lead']" in warned[0], warned
    assert "'prospecting'" in warned[0]  # the stages the log has, to correct it with
