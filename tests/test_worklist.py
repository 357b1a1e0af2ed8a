"""From tiers to action: the worklist's planning rules (models/worklist.py) and `leadtier worklist`."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.models.baselines import RfmScorecard
from leadtier.models.metrics import lift_top_share
from leadtier.models.worklist import (
    DEFERRED,
    NO_CAPACITY,
    PLANNED,
    capture_gains,
    captured_share,
    fill_values,
    plan,
    shortfall,
)
from leadtier.pipelines import report as report_stage
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import load_config
from leadtier.pipelines.sources import InputError
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG

START = dt.date(2026, 6, 30)
SERVICE = {"A": 7, "B": 30}


def _frame(n_per_owner: int = 5, owners=("ann", "bob")) -> pd.DataFrame:
    rows = []
    for o in owners:
        for i in range(n_per_owner):
            rows.append(
                {
                    "customer_id": f"{o}-{i}",
                    "tier": "A" if i % 2 == 0 else "B",
                    "p_close": 0.9 - 0.1 * i,
                    "value": 100.0 * (i + 1),  # expected value grows with i here: 90, 160, 210, 240, 250
                    "owner": o,
                }
            )
    return pd.DataFrame(rows)


def test_each_owner_gets_at_most_the_weekly_capacity_and_the_rest_does_not_fit():
    w = plan(_frame(5), START, SERVICE, contacts_per_week=2, weeks=2)
    planned = w[w["status"] == PLANNED]
    assert planned.groupby(["owner", "week"]).size().max() == 2
    assert planned.groupby("owner").size().to_dict() == {"ann": 4, "bob": 4}
    left = w[w["status"] == NO_CAPACITY]
    assert sorted(left["customer_id"]) == ["ann-0", "bob-0"]  # the lowest expected value per owner
    assert left["week"].isna().all() and left["week_start"].isna().all()
    report = shortfall(w).set_index("owner")
    assert report.loc["ann", NO_CAPACITY] == 1 and report.loc["ann", "expected_value_left_out"] == pytest.approx(90)


def test_weeks_fill_in_order_of_expected_value_not_of_score_or_probability():
    w = plan(_frame(5, owners=("ann",)).assign(tier="B"), START, SERVICE, contacts_per_week=2, weeks=3)
    assert w["customer_id"].tolist() == ["ann-4", "ann-3", "ann-2", "ann-1", "ann-0"]
    assert w["week"].tolist() == [1, 1, 2, 2, 3]
    assert w["expected_value"].tolist() == pytest.approx([250, 240, 210, 160, 90])
    assert [str(d) for d in w["week_start"]] == ["2026-06-30"] * 2 + ["2026-07-07"] * 2 + ["2026-07-14"]


def test_the_planned_customers_are_called_earliest_due_first_so_nobody_is_late_who_need_not_be():
    # A is due in 7 days, B in 30: by expected value alone ann-3 (B, 240) would take week 1 and leave
    # ann-0 (A, 90) late in week 3
    w = plan(_frame(5, owners=("ann",)), START, SERVICE, contacts_per_week=2, weeks=3).set_index("customer_id")
    assert w.loc[["ann-4", "ann-2"], "week"].tolist() == [1, 1]  # the A customers by expected value ...
    assert w.loc[["ann-0", "ann-3"], "week"].tolist() == [2, 2] and w.loc["ann-1", "week"] == 3  # ... then B
    assert w["rank"].to_dict() == {"ann-4": 1, "ann-3": 2, "ann-2": 3, "ann-1": 4, "ann-0": 5}
    late = plan(_frame(5, owners=("ann",)), START, SERVICE, contacts_per_week=3, weeks=2)
    assert not late["late"].any()  # three A customers fit week 1, within their 7 days
    # who is called is still the highest expected value: an urgent customer of low value does not fit
    tight = plan(_frame(5, owners=("ann",)), START, SERVICE, contacts_per_week=1, weeks=2).set_index("customer_id")
    assert tight.loc[["ann-4", "ann-3"], "status"].eq(PLANNED).all() and tight.loc["ann-0", "status"] == NO_CAPACITY
    assert tight.loc["ann-4", "week"] == 1 and tight.loc["ann-3", "week"] == 2


def test_due_dates_come_from_the_tier_service_levels_and_tiers_without_one_are_left_off():
    frame = _frame(4, owners=("ann",))
    frame.loc[3, "tier"] = "E"
    w = plan(frame, START, SERVICE, contacts_per_week=None, weeks=1)
    assert "ann-3" not in set(w["customer_id"])  # E has no service level: not on the list
    due = dict(zip(w["tier"], w["due_date"], strict=False))
    assert due == {"A": dt.date(2026, 7, 7), "B": dt.date(2026, 7, 30)}
    assert (w["week"] == 1).all()  # no capacity limit: everyone in the first week


def test_a_tiers_window_closing_before_its_service_level_brings_the_due_date_forward():
    """A deal 25 days old in A (won within 30 days of its start) is called within its last 5 days, not in A's 7."""
    frame = _frame(3, owners=("ann",))
    frame["close_by"] = [START + dt.timedelta(days=5), START + dt.timedelta(days=60), None]
    due = plan(frame, START, SERVICE, contacts_per_week=None, weeks=1).set_index("customer_id")["due_date"]
    assert due.to_dict() == {"ann-0": dt.date(2026, 7, 5), "ann-1": dt.date(2026, 7, 30), "ann-2": dt.date(2026, 7, 7)}


def test_a_week_that_ends_after_the_due_date_is_marked_late():
    frame = _frame(3, owners=("ann",))
    frame["tier"] = "A"  # due in 7 days: only the first week is on time
    w = plan(frame, START, {"A": 7}, contacts_per_week=1, weeks=3)
    assert w["late"].tolist() == [False, True, True]


def test_customers_contacted_recently_are_deferred_and_free_their_slot():
    frame = _frame(3, owners=("ann",))
    frame["last_contact"] = [pd.NaT, pd.Timestamp("2026-06-27"), pd.Timestamp("2026-06-01")]
    w = plan(frame, START, SERVICE, contacts_per_week=1, weeks=2, defer_days=7).set_index("customer_id")
    assert w.loc["ann-1", "status"] == DEFERRED and pd.isna(w.loc["ann-1", "week"])  # 3 days ago
    assert w.loc["ann-2", "week"] == 1 and w.loc["ann-0", "week"] == 2  # 29 days ago is not recent
    no_deferral = plan(frame, START, SERVICE, contacts_per_week=1, weeks=2).set_index("customer_id")
    assert no_deferral.loc["ann-0", "status"] == NO_CAPACITY


def test_value_defaults_do_not_crash_on_missing_values_and_an_empty_service_map_is_refused():
    frame = _frame(2, owners=("ann",)).assign(value=[None, 5.0])
    w = plan(frame, START, SERVICE)
    assert w["expected_value"].tolist() == pytest.approx([0.8 * 5.0, 0.0])
    with pytest.raises(ValueError, match="no tier has a service level"):
        plan(frame, START, {})
    with pytest.raises(ValueError, match="at least 1. Got 0 instead"):
        plan(frame, START, SERVICE, contacts_per_week=0)


# --------------------------------------------------------------------------- does the list beat plain sorting?


def test_captured_share_is_the_top_rows_share_of_the_weight_and_ties_at_the_cut_count_in_proportion():
    score = [5, 4, 3, 2, 1, 0, 0, 0, 0, 0]
    assert captured_share(score, [1, 0, 1, 0, 0, 0, 0, 0, 0, 1], 0.2) == pytest.approx(1 / 3)
    assert captured_share(score, [10, 0, 0, 0, 0, 0, 0, 0, 0, 30], 0.1) == pytest.approx(0.25)
    # all scores equal: every ordering of the ties is as likely, so the top 20 % hold 20 % of the weight
    assert captured_share(np.zeros(10), [0, 0, 0, 0, 0, 0, 0, 0, 0, 7], 0.2) == pytest.approx(0.2)
    assert np.isnan(captured_share(score, np.zeros(10), 0.1))


def test_captured_share_follows_the_lift_convention_of_the_metrics():
    rng = np.random.default_rng(3)
    wins = (rng.random(1000) < 0.2).astype(float)
    for score in (wins + rng.normal(0, 1, 1000), np.round(wins + rng.normal(0, 1, 1000))):
        for share in (0.05, 0.1, 0.2):
            top = np.floor(1000 * share)
            assert captured_share(score, wins, share) == pytest.approx(lift_top_share(score, wins, share) * top / 1000)


def test_capture_gains_pairs_the_orderings_and_brackets_each_gain():
    rng = np.random.default_rng(0)
    wins = (rng.random(2000) < 0.2).astype(float)
    revenue = wins * rng.gamma(2.0, 100.0, 2000)
    good = wins + rng.normal(0, 0.5, 2000)
    orders = {"list": good, "same": good.copy(), "noise": rng.random(2000)}
    out = capture_gains(orders, {"wins": wins, "revenue": revenue}, (0.1, 0.2), "list", n_resamples=200)
    assert set(out) == {"wins", "revenue"} and set(out["wins"]) == {0.1, 0.2}
    cell = out["wins"][0.1]
    assert cell["captured"]["list"] == pytest.approx(captured_share(good, wins, 0.1))
    assert cell["gains"]["same"] == {"gain": 0.0, "low": 0.0, "high": 0.0}  # paired: identical orders never differ
    noise = cell["gains"]["noise"]
    assert noise["low"] <= noise["gain"] <= noise["high"] and noise["low"] > 0
    with pytest.raises(ValueError, match="reference 'x' is not among"):
        capture_gains(orders, {"wins": wins}, (0.1,), "x")
    with pytest.raises(ValueError, match="one value per row"):
        capture_gains(orders, {"wins": wins[:10]}, (0.1,), "list")


def test_the_rfm_scorecard_scores_the_quintile_sum_without_a_fit():
    X = pd.DataFrame({"rfm_r_score": [5, 1, 0], "rfm_f_score": [4, 1, 0], "rfm_m_score": [5, None, 0]})
    assert RfmScorecard().score(X).tolist() == [14.0, 2.0, 0.0]
    assert RfmScorecard(weights=(2, 1, 1)).score(X).tolist() == [19.0, 3.0, 0.0]


# --------------------------------------------------------------------------- the command

runner = CliRunner()


def _config(tmp_path, demo_data, **worklist) -> tuple:
    """A predictions file for 12 demo customers and an input file with their owners and deal values."""
    customers = pd.read_parquet(demo_data.data_path("customers.parquet"))
    ids = customers["customer_id"].astype(str).head(12).tolist()
    owners = ["=HYPERLINK(1)", "bob", "cy"] * 4
    pd.DataFrame({"customer_id": ids, "owner": owners, "deal": [1000 + i for i in range(12)]}).to_csv(
        tmp_path / "input.csv", index=False
    )
    pred = pd.DataFrame(
        {
            "customer_id": ids,
            "tier": ["A", "B", "C", "E"] * 3,
            "score": 50.0,
            "segment_id": 0,
            "as_of": START,
            **{f"proba_{c}": [0.5, 0.2, 0.1, 0.1, 0.1][i] for i, c in enumerate("ABCDE")},
        }
    )
    pred.to_parquet(tmp_path / "pred.parquet", index=False)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(demo_data.data.root)
    raw["predict"] |= {"input": str(tmp_path / "input.csv"), "output": str(tmp_path / "pred.parquet")}
    raw["worklist"] = {"output": str(tmp_path / "wl.parquet"), "owner_column": "owner", "value_column": "deal"}
    raw["worklist"] |= worklist
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, ids


def test_worklist_command_writes_parquet_and_csv_with_owners_and_says_what_does_not_fit(demo_data, tmp_path):
    config, ids = _config(tmp_path, demo_data, service_days={"A": 7, "B": 30, "C": 90}, contacts_per_week=1, weeks=2)
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "do not fit" in res.output and "wl.parquet" in res.output
    w = pd.read_parquet(tmp_path / "wl.parquet")
    assert len(w) == 9  # the three E customers are not called, and the run says so
    assert "3 not listed: tiers E (3) have no days in worklist.service_days" in res.output, res.output
    planned = w[w["status"] == "planned"]
    assert planned.groupby(["owner", "week"]).size().max() == 1
    assert set(w["owner"]) == {"=HYPERLINK(1)", "bob", "cy"}  # Parquet keeps values exact
    assert (w["action"] != "").all() and w["due_date"].notna().all()
    text = (tmp_path / "wl.csv").read_text()
    assert "'=HYPERLINK(1)" in text and '"=HYPERLINK' not in text  # neutralised in the CSV
    assert (tmp_path / "wl.manifest.json").is_file()
    assert f"{(w['status'] == 'no capacity').sum()} do not fit" in res.output
    assert re.search(r": \d+ do not fit, expected value left out [\d,]+\.\d\d$", res.output, re.M), res.output
    raw = yaml.safe_load(config.read_text())
    raw["report"]["currency"] = "¥"  # the deal values are money: the console shows them as the report does
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert re.search(r"expected value left out ¥[\d,]+\.\d\d$", res.output, re.M), res.output
    # the status stays a code for scripts, and is in words in the worklist's language beside it
    names = w[["status", "status_name"]].drop_duplicates()
    assert dict(names.to_numpy().tolist()) == {"planned": "Planned", "no capacity": "Does not fit"} and len(names) == 2
    res = runner.invoke(app, ["worklist", "--config", str(config), "--lang", "zh"])
    assert res.exit_code == 0, res.output
    zh = pd.read_parquet(tmp_path / "wl.parquet")
    assert set(zh["status"]) == set(w["status"]) and set(zh.loc[zh["status"] == "planned", "status_name"]) == {"已计划"}
    raw["worklist"] |= {"value_column": None, "close_tiers": ["A", "B"]}  # no values: each customer counts 1
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert re.search(r": \d+ do not fit, expected tier A or B customers left out \d+\.\d\d$", res.output, re.M), (
        res.output
    )


@pytest.mark.parametrize(
    ("worklist", "message"),
    [
        ({"service_days": {"Z": 3}}, "worklist.service_days names tiers that are not levels"),
        ({"service_days": {"A": 7}, "owner_column": "territory"}, "worklist.owner_column: column 'territory' is not"),
        ({}, "worklist.service_days is empty"),
        ({"service_days": {"A": 7}, "nonsense": 1}, "nonsense"),
        ({"service_days": {"A": 7}, "value_column": "owner"}, "worklist.value_column: column 'owner' of"),
    ],
)
def test_worklist_command_refuses_bad_settings_with_one_error_line(demo_data, tmp_path, worklist, message):
    config, _ = _config(tmp_path, demo_data, **worklist)
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.stderr.startswith("error:") and message in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda f: f.assign(tier=["A", "Z", "C", "E"] * 3), "column 'tier' holds ['Z'], which are not levels"),
        (lambda f: pd.concat([f, f.head(2)]), "column 'customer_id' repeats 2 id(s)"),
        (lambda f: b"not parquet", "cannot be read as PARQUET"),
    ],
    ids=["unknown-tier", "repeated-id", "not-parquet"],
)
def test_worklist_and_report_refuse_a_predictions_file_they_would_misread(demo_data, tmp_path, spoil, message):
    config, _ = _config(tmp_path, demo_data, service_days={"A": 7, "B": 30, "C": 90})
    path = tmp_path / "spoilt.parquet"
    spoilt = spoil(pd.read_parquet(tmp_path / "pred.parquet"))
    path.write_bytes(spoilt) if isinstance(spoilt, bytes) else spoilt.to_parquet(path, index=False)
    res = runner.invoke(app, ["worklist", "--config", str(config), "--predictions", str(path)])
    assert res.exit_code == 2, (res.output, res.exception)
    first = res.stderr.splitlines()[0]
    assert first.startswith("error:") and str(path) in first and message in first, res.stderr
    assert not (tmp_path / "wl.parquet").exists()
    with pytest.raises(InputError, match=re.escape(message)):  # the report reads and checks them alike
        report_stage.build_context(report_stage.read_predictions(path), load_config(config).scheme, source=str(path))


def test_a_customer_without_a_known_value_is_valued_at_the_median_of_the_others_not_at_nothing():
    value, estimated = fill_values(
        pd.Series([0.0, 300.0, None, 100.0, 50.0]), pd.Series([True, False, True, False, False])
    )
    assert value.tolist() == [100.0, 300.0, 100.0, 100.0, 50.0] and estimated.tolist() == [
        True,
        False,
        True,
        False,
        False,
    ]
    value, estimated = fill_values(pd.Series([None, None]), pd.Series([True, True]))
    assert value.tolist() == [1.0, 1.0] and estimated.all()  # nothing known: every customer counts the same


def test_a_negative_deal_value_is_unknown_not_the_value_of_every_deal(tmp_path, caplog):
    """worklist.value_column with -500 (a refund, a typo) beside empty cells: unknown, said, and never the
    median every other deal is valued at."""
    from leadtier.pipelines.worklist import _numbers

    with caplog.at_level("WARNING", logger="leadtier.pipelines.worklist"):
        for raw in (pd.Series([None, -500.0, None, 1200.0]), pd.Series(["", "-500", "n/a", "1200"])):
            values = _numbers(raw, "close_value", tmp_path / "p.csv", 0.05)
            assert values.isna().tolist() == [True, True, True, False] and values[3] == 1200.0
    assert "column 'close_value' of" in caplog.text and "1 value(s) are below 0 (e.g. '-500" in caplog.text
    value, estimated = fill_values(values, values.isna())
    assert value.tolist() == [1200.0] * 4 and estimated.tolist() == [True, True, True, False]


def test_leads_that_have_not_bought_yet_still_get_called(demo_data, tmp_path):
    """Valued by past revenue, a lead with none is worth the median buyer, not 0 (it would never fit)."""
    config, ids = _config(tmp_path, demo_data, service_days={"A": 7, "B": 30, "C": 90}, value_column=None)
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    pred.assign(past_revenue=[0.0, 0.0, -50.0, 300.0] * 3).to_parquet(tmp_path / "pred.parquet", index=False)
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert res.exit_code == 0, (res.output, res.exception)
    w = pd.read_parquet(tmp_path / "wl.parquet").set_index("customer_id")
    new = [ids[i] for i in range(12) if i % 4 < 2]
    assert (w.loc[new, "value"] == 300.0).all() and w.loc[new, "value_estimated"].all()  # the median buyer
    assert (w.loc[new, "expected_value"] > 0).all() and not w.drop(index=new)["value_estimated"].any()
    # one who returned more than they bought is known to be worth nothing so far, not the median buyer
    returned = [i for i in (ids[j] for j in range(12) if j % 4 == 2) if i in w.index]
    assert returned and (w.loc[returned, "expected_value"] == 0).all()
    assert "6 without a known value (none given, or no revenue yet) valued at the median of the others" in res.output
    assert "deferred" not in res.output  # worklist.defer_contacted_days is not set


def test_worklist_reads_owners_from_the_file_the_predictions_scored_not_predict_input(demo_data, tmp_path):
    from leadtier.pipelines.outputs import OutputSet, table_writer
    from leadtier.pipelines.predict import SIDE_KINDS

    config, ids = _config(tmp_path, demo_data, service_days={"A": 7, "B": 30, "C": 90})
    scored = tmp_path / "scored_with_input_option.csv"  # what `predict --input` scored, not predict.input
    pd.DataFrame({"customer_id": ids, "owner": "zed", "deal": 5.0}).to_csv(scored, index=False)
    pred_path = tmp_path / "pred.parquet"
    pred = pd.read_parquet(pred_path)
    with OutputSet(pred_path, SIDE_KINDS) as out:
        out.open("run-with-input")
        out.stage(pred_path, table_writer(pred, pred_path))
        out.commit(facts={"input": str(scored)})
    res = runner.invoke(app, ["worklist", "--config", str(config)])
    assert res.exit_code == 0, (res.output, res.exception)
    assert set(pd.read_parquet(tmp_path / "wl.parquet")["owner"]) == {"zed"}


def test_owner_and_value_are_read_by_the_configured_id_column(tmp_path):
    from leadtier.pipelines import worklist as stage
    from leadtier.pipelines.config import TableSpec, load_config

    pd.DataFrame({"Lead Id": ["007", "8"], "Owner": ["ann", "bo"], "Deal size": ["10.5", "n/a"]}).to_csv(
        tmp_path / "leads.csv", index=False
    )
    cfg = load_config(DEMO_CONFIG, data_root=str(tmp_path))
    cfg.predict.input = None
    cfg.data.tables.customers = TableSpec(path="leads.csv", columns={"customer_id": "Lead Id"})
    cfg.worklist.owner_column, cfg.worklist.value_column = "Owner", "Deal size"
    attrs = stage.customer_attributes(cfg)
    assert attrs["customer_id"].tolist() == ["007", "8"]  # the id as the scorer writes it, zeros kept
    assert attrs["owner"].tolist() == ["ann", "bo"]
    assert attrs["value"].iloc[0] == 10.5 and pd.isna(attrs["value"].iloc[1])
    # a European export: the value read as the tables read it with decimal: ','
    (tmp_path / "de.csv").write_text("Lead Id;Owner;Deal size\n007;ann;1.234,5\n8;bo;2.171\n", encoding="utf-8")
    cfg.data.tables.customers = TableSpec(path="de.csv", columns={"customer_id": "Lead Id"}, decimal=",")
    assert stage.customer_attributes(cfg)["value"].tolist() == [1234.5, 2171.0]
    # ids in a float column with a gap (as pandas writes integers with NaN): '12346', as predict writes them
    ids = pd.DataFrame({"Lead Id": [12346.0, None, 12347.0], "Owner": ["ann", "bo", "cy"]})
    ids.to_parquet(tmp_path / "leads.parquet", index=False)
    cfg.data.tables.customers = TableSpec(path="leads.parquet", columns={"customer_id": "Lead Id"})
    cfg.worklist.value_column = None
    attrs = stage.customer_attributes(cfg).set_index("customer_id")["owner"]
    assert attrs["12346"] == "ann" and attrs["12347"] == "cy"
    # and text ids all written with '.0' (a float column saved as CSV): the same
    ids.to_csv(tmp_path / "leads.csv", index=False)
    cfg.data.tables.customers = TableSpec(path="leads.csv", columns={"customer_id": "Lead Id"})
    assert stage.customer_attributes(cfg).set_index("customer_id")["owner"]["12347"] == "cy"


def test_owner_and_value_can_come_from_a_lookup_table_joined_to_the_scoring_input(tmp_path):
    """In B2B data the account manager sits on the account: a column of a joined lookup table, named as the
    features name it (the join's prefix, then the lookup file's column), matched by the same key."""
    from leadtier.pipelines import worklist as stage
    from leadtier.pipelines.config import JoinSpec, TableSpec, load_config

    deals = pd.DataFrame({"deal": ["d1", "d2", "d3", "d4"], "acct": ["7", "8", "9", ""]})
    deals.to_csv(tmp_path / "deals.csv", index=False)
    pd.DataFrame({"acct": [8, 7], "manager": ["bo", "ann"], "size": [2.0, 1.0]}).to_parquet(tmp_path / "acc.parquet")
    cfg = load_config(DEMO_CONFIG, data_root=str(tmp_path))
    cfg.predict.input = None
    joins = {"accounts": JoinSpec(path="acc.parquet", by="acct", prefix="acc_")}
    cfg.data.tables.customers = TableSpec(path="deals.csv", columns={"customer_id": "deal"}, joins=joins)
    cfg.worklist.owner_column, cfg.worklist.value_column = "acc_manager", "acc_size"
    attrs = stage.customer_attributes(cfg)
    assert attrs["customer_id"].tolist() == ["d1", "d2", "d3", "d4"]
    assert attrs["owner"].tolist()[:2] == ["ann", "bo"] and attrs["owner"].iloc[2:].isna().all()  # no such account
    assert attrs["value"].tolist()[:2] == [1.0, 2.0]
    # a lookup in another encoding and a ';' separator, read as the features read it (join.encoding)
    pd.DataFrame({"acct": ["8", "7"], "manager": ["Zoë", "ann"]}).to_csv(
        tmp_path / "acc.csv", index=False, sep=";", encoding="latin-1"
    )
    cfg.data.tables.customers.joins["accounts"] = JoinSpec(path="acc.csv", by="acct", prefix="acc_", encoding="latin-1")
    cfg.worklist.value_column = None
    assert stage.customer_attributes(cfg)["owner"].tolist()[:2] == ["ann", "Zoë"]
    cfg.worklist.owner_column = "manager"  # without the prefix it is no column of the joined table
    with pytest.raises(stage.WorklistError, match=r"worklist.owner_column: column 'manager' .*lookup tables"):
        stage.customer_attributes(cfg)


def test_only_the_configured_contact_types_count_as_the_last_contact(demo_data, tmp_path, caplog):
    from leadtier.pipelines.worklist import last_contacts

    config, _ = _config(tmp_path, demo_data)
    cfg = load_config(config)
    every = last_contacts(cfg, START).set_index("customer_id")["last_contact"]
    events = pd.read_parquet(demo_data.data_path("interactions.parquet"))
    kind = events["type"].value_counts().index[-1]  # the rarest type: most customers never had one
    cfg.worklist.contact_types = [kind, "fax"]
    with caplog.at_level("WARNING", logger="leadtier.pipelines.worklist"):
        only = last_contacts(cfg, START).set_index("customer_id")["last_contact"]
    mine = events[(events["type"] == kind) & (events["ts"] < pd.Timestamp(START))]
    assert sorted(only.index) == sorted(mine["customer_id"].astype(str).unique())
    assert len(only) < len(every) and (only <= every.loc[only.index]).all()
    assert "worklist.contact_types: ['fax'] never occur" in caplog.text


def test_a_plan_that_starts_long_before_today_is_a_warning_unless_its_start_is_set(caplog):
    """Predictions as of a placeholder date (a file without dates) plan weeks long past: said, once."""
    import datetime as dt

    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.worklist import warn_past_start

    from tests.conftest import DEMO_CONFIG

    cfg = load_config(DEMO_CONFIG)
    now = dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.worklist"):
        assert warn_past_start(cfg, dt.date(2026, 11, 20), now) == 17 and not caplog.text  # recent enough
        assert warn_past_start(cfg, dt.date(2026, 1, 1), now) == 340
        assert "the plan starts 2026-01-01, the predictions' as-of date, 340 days before today" in caplog.text
        caplog.clear()
        cfg.worklist.start = dt.date(2026, 1, 1)  # asked for: no warning
        warn_past_start(cfg, dt.date(2026, 1, 1), now)
    assert not caplog.text
