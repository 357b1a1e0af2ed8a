"""Entities with their own clock (labels.outcome.kind days_to_win): days from each entity's start to its
win, censored per entity at the evaluation date; and the Olist marketing funnel config through the CLI."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import duckdb
import numpy as np
import pandas as pd
import pytest
from leadtier.features.queries import entity_label_query
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from leadtier.pipelines.train import TrainingDataError, drop_empty_tiers
from typer.testing import CliRunner

from tests.conftest import REPO

AS_OF = dt.date(2020, 1, 1)  # the evaluation date: outcomes dated on or after it are not seen
H = 200
START = dt.date(2019, 1, 1)
LEVELS = ["A", "B", "C", "D", "E"]
D = dt.timedelta


def labels(
    entities: list[tuple[str, dt.date | None, str | None, str | None]], observed_from=None, entity_days: int = 0
) -> pd.DataFrame:
    """(id, start, won_at, lost_at) -> the label rows, indexed by id."""
    con = duckdb.connect()
    con.execute("CREATE TABLE customers (customer_id VARCHAR, created_at DATE)")
    con.execute("CREATE TABLE outcomes (customer_id VARCHAR, won_at TIMESTAMP, lost_at TIMESTAMP)")
    con.executemany("INSERT INTO customers VALUES (?, ?)", [(e[0], e[1]) for e in entities])
    con.executemany("INSERT INTO outcomes VALUES (?, ?, ?)", [(e[0], e[2], e[3]) for e in entities if e[2] or e[3]])
    sql = entity_label_query(AS_OF, LEVELS, [30, 90, 180], H, observed_from, entity_days)
    return con.execute(sql).df().set_index("customer_id")


def test_censoring_at_the_exact_horizon_boundary_of_each_entity():
    lab = labels(
        [
            ("ends_on_eval_date", AS_OF - D(H), None, None),  # day H is the evaluation date: not observed
            ("one_day_short", AS_OF - D(H + 1), None, None),  # day H is the day before: all observed -> E
            ("one_day_past", AS_OF - D(H - 1), None, None),  # day H after the evaluation date
            ("won_on_eval_date", AS_OF - D(10), f"{AS_OF} 00:00:00", None),  # the future: still open
        ]
    )
    assert lab.loc["one_day_short", "tier"] == "E"
    for censored in ("ends_on_eval_date", "one_day_past", "won_on_eval_date"):
        assert pd.isna(lab.loc[censored, "tier"]) and pd.isna(lab.loc[censored, "unlabelled"]), censored


def test_days_to_win_are_calendar_days_from_the_start():
    lab = labels(
        [
            ("day30_late", START, f"{START + D(30)} 23:59:59", None),
            ("day31_early", START, f"{START + D(31)} 00:00:01", None),
            ("day0", START, f"{START} 08:00:00", None),
            ("day180", START, f"{START + D(180)} 12:00:00", None),
            ("day_h", START, f"{START + D(H)} 12:00:00", None),  # the last day of the horizon: D
            ("day_h_plus_1", START, f"{START + D(H + 1)} 00:00:00", None),  # won too late: E
        ]
    )
    assert lab["tier"].to_dict() == {
        "day0": "A",
        "day180": "C",
        "day30_late": "A",
        "day31_early": "B",
        "day_h": "D",
        "day_h_plus_1": "E",
    }
    assert lab.loc["day31_early", "days_to_win"] == 31


def test_an_entity_closed_before_its_horizon_is_over_is_censored_and_others_get_a_reason():
    lab = labels(
        [
            ("lost_early", AS_OF - D(10), None, f"{AS_OF - D(5)} 10:00:00"),  # horizon unobserved, but lost
            ("won_early", AS_OF - D(10), f"{AS_OF - D(5)} 10:00:00", None),  # horizon unobserved, but won
            ("lost_complete", AS_OF - D(H + 1), None, f"{AS_OF - D(H)} 10:00:00"),
            ("won_before_start", START, f"{START - D(1)} 23:00:00", None),  # Olist has one: not trusted
            ("starts_on_eval_date", AS_OF, None, None),
            ("no_start", None, None, None),
            ("before_records", dt.date(2018, 6, 1), None, None),
        ],
        observed_from=dt.date(2018, 12, 1),
    )
    assert lab["tier"].dropna().to_dict() == {"lost_complete": "E"}
    for censored in ("lost_early", "won_early"):  # censored: no tier and no reason
        assert pd.isna(lab.loc[censored, "unlabelled"]), censored
    assert lab["unlabelled"].dropna().to_dict() == {
        "won_before_start": "won before the start",
        "starts_on_eval_date": "started on or after the evaluation date",
        "no_start": "no start date",
        "before_records": "started before outcomes were recorded",
    }


def test_the_newest_cohorts_are_not_made_of_early_winners():
    """Entities start evenly over two years and win at the same pace whenever they start: the labelled
    ones of the newest cohorts must show the same tier mix as the oldest, not only their fast wins."""
    rng = np.random.default_rng(3)
    n = 4000
    starts = [AS_OF - D(int(d)) for d in rng.integers(1, 730, n)]
    days = rng.exponential(150, n).astype(int)
    entities = [
        (f"e{i}", s, f"{s + D(int(w))} 12:00:00" if s + D(int(w)) < AS_OF else None, None)
        for i, (s, w) in enumerate(zip(starts, days, strict=True))
    ]
    lab = labels(entities).dropna(subset=["tier"])
    age = (pd.Timestamp(AS_OF) - pd.to_datetime(lab["started_on"])).dt.days
    newest, oldest = lab.loc[age <= age.median(), "tier"], lab.loc[age > age.median(), "tier"]
    assert (age > H).all()  # every labelled entity's horizon is over
    assert abs((newest == "A").mean() - (oldest == "A").mean()) < 0.04
    assert abs((newest == "E").mean() - (oldest == "E").mean()) < 0.04


def test_an_entity_closed_within_the_days_its_features_describe_gets_no_label():
    entities = [
        ("won_day_13", START, f"{START + D(13)} 23:00:00", None),  # its first 14 days would show the win
        ("lost_day_13", START, None, f"{START + D(13)} 09:00:00"),
        ("won_day_14", START, f"{START + D(14)} 00:30:00", None),  # after the 14 days: labelled as usual
        ("lost_day_14", START, None, f"{START + D(14)} 09:00:00"),
    ]
    lab = labels(entities, entity_days=14)
    why = "closed within its first 14 days (its features would show it)"
    assert lab["unlabelled"].dropna().to_dict() == {"won_day_13": why, "lost_day_13": why}
    assert lab["tier"].dropna().to_dict() == {"won_day_14": "A", "lost_day_14": "E"}
    assert labels(entities)["tier"].notna().all()  # features as of the start: nothing to hide


def test_an_empty_tier_stops_the_run_unless_the_config_allows_it(workdir):
    cfg = load_config(REPO / "configs" / "demo.yaml")
    tiers = pd.Series(["A", "B", "C", "E"] * 10)
    assert drop_empty_tiers(cfg, tiers) == [] and cfg.scheme.codes == LEVELS  # check_minimum stops it
    cfg.labels.allow_empty_tiers = True
    assert drop_empty_tiers(cfg, tiers) == ["D"]
    assert cfg.scheme.codes == ["A", "B", "C", "E"]
    with pytest.raises(TrainingDataError, match="needs two"):
        drop_empty_tiers(cfg, pd.Series(["A"] * 5))


def test_the_model_keeps_the_codes_an_outcome_was_labelled_in_when_empty_tiers_are_left_out():
    from leadtier.pipelines.train import _Snapshots, label_outcome

    cfg = load_config(REPO / "configs" / "olist_funnel.yaml", data_root="/nowhere")
    kept = label_outcome(cfg, {})
    assert kept["codes"] == LEVELS and kept["kind"] == "days_to_win"
    cfg.labels.allow_empty_tiers = True
    snaps = SimpleNamespace(cfg=cfg, entities={})
    _Snapshots.narrow(snaps, pd.Series(["A", "B", "C", "E"] * 10))  # no labelled row reaches D
    assert cfg.scheme.codes == ["A", "B", "C", "E"] and snaps.entities["empty_tiers"] == ["D"]
    assert label_outcome(cfg, snaps.entities)["codes"] == LEVELS  # the report places each window by them
    assert label_outcome(cfg, {})["codes"] == ["A", "B", "C", "E"]
    assert label_outcome(load_config(REPO / "configs" / "demo.yaml", data_root="/nowhere"), {}) is None


def test_entity_clock_config_refuses_event_families_and_backtests(tmp_path):
    cfg = (REPO / "configs" / "olist_funnel.yaml").read_text(encoding="utf-8")
    for bad, words in (
        ("families: [customers]", "families: [customers, rfm]"),
        ("evaluation: ordered_holdout", "evaluation: backtest"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(cfg.replace(bad, words), encoding="utf-8")
        with pytest.raises(ConfigError, match="days_to_win"):
            load_config(path)


SHARED = Path(os.environ.get("LEADTIER_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
OLIST = "olist_marketing_funnel"


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED / OLIST / "olist_marketing_qualified_leads_dataset.csv").is_file(),
    reason=f"the Olist marketing funnel is not under {SHARED} (set LEADTIER_SHARED_DATASETS)",
)
def test_olist_funnel_trains_through_the_cli_on_a_slice(workdir, caplog):
    root = workdir / "data" / OLIST
    root.mkdir(parents=True)
    leads, deals = (
        SHARED / OLIST / f for f in ("olist_marketing_qualified_leads_dataset.csv", "olist_closed_deals_dataset.csv")
    )
    # every won lead (D, 181-200 days to win, has only a dozen) and every other lead not won
    duckdb.sql(
        f"COPY (SELECT * FROM read_csv('{leads}', all_varchar=true) WHERE hash(mql_id) % 2 = 0 "
        f"OR mql_id IN (SELECT mql_id FROM read_csv('{deals}', all_varchar=true))) TO '{root / leads.name}' (HEADER)"
    )
    duckdb.sql(f"COPY (SELECT * FROM read_csv('{deals}', all_varchar=true)) TO '{root / deals.name}' (HEADER)")
    n_leads = duckdb.sql(f"SELECT count(*) FROM read_csv('{root / leads.name}')").fetchall()[0][0]
    config = REPO / "configs" / "olist_funnel.yaml"
    runner = CliRunner()
    args = ["--config", str(config), "--data-root", str(workdir / "data")]
    with caplog.at_level(logging.WARNING, logger="leadtier.pipelines.train"):
        res = runner.invoke(app, ["train", *args, "--n-trials", "2"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"{n_leads} entities:" in text and "1 won before the start" in text
    assert "1 entity has a win dated before the start (created_at), e.g. '" in caplog.text  # which one, to look up
    n = {w: int(text.split(f" {w}")[0].split()[-1]) for w in ("labelled,", "censored", "unlabelled")}
    assert sum(n.values()) == n_leads and min(n.values()) > 0
    assert "rows: " in text and " 0 in both" in text
