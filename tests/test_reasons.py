"""Reasons in plain words (features/sql/features.yaml, features/meta.py, models/explain.py), the worklist's
and report's reasons by default, and `leadtier retier` end to end (issue 19, parts 3 and 6)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.features.meta import meta_of, phrase
from leadtier.features.queries import slug
from leadtier.models.explain import top_reasons
from leadtier.pipelines.cli import app
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO, tiny_trained_world

runner = CliRunner()


@pytest.mark.parametrize(
    ("column", "value", "currency", "en", "zh"),
    [
        ("rfm_recency_days", 20, None, "bought 20 days ago", "20 天前购买"),
        ("rfm_recency_days", np.nan, None, "never bought", "从未购买"),
        ("ix_recency_days", 3.0, None, "last interaction 3 days ago", "最近一次互动在 3 天前"),
        ("ix_webinar_90d", 3.0, None, "3 webinars in the last 90 days", "近 90 天网络研讨会 3 次"),
        ("ix_webinar_90d", 1.0, None, "1 webinar in the last 90 days", "近 90 天网络研讨会 1 次"),
        ("ix_webinar_90d", 0.0, None, "no webinar in the last 90 days", "近 90 天没有网络研讨会"),
        ("ix_count_30d", 0, None, "no interaction in the last 30 days", "近 30 天没有互动"),
        ("ix_distinct_types_180d", 1.0, None, "1 kind of interaction in the last 180 days", "近 180 天有 1 种互动"),
        ("ix_distinct_types_180d", 3.0, None, "3 kinds of interaction in the last 180 days", None),
        ("rfm_frequency_365d", 12, None, "12 purchases in the last 365 days", "近 365 天购买 12 次"),
        ("rfm_amount_30d", 1234.5, "£", "spent £1,234.50 in the last 30 days", "近 30 天消费 £1,234.50"),
        ("rfm_amount_30d", 99.0, "EUR", "spent 99.00 EUR in the last 30 days", "近 30 天消费 99.00 EUR"),
        ("rfm_monetary", 5000.0, None, "spent 5,000.00 in all (net of returns)", "累计消费 5,000.00（扣除退货）"),
        ("cust_industry", "Retail", None, "industry: Retail", "行业：Retail"),
        ("cust_region", None, None, "region unknown", "地区未知"),
        ("cust_annual_revenue_musd", 12.5, None, "annual revenue (million USD): 12.5", "年收入（百万美元）：12.5"),
        ("cust_headcount", 514.0, None, "headcount: 514", "headcount：514"),  # a whole number, as people write it
        ("cust_founded", 1998.0, None, "founded: 1998", "founded：1998"),  # no thousands separator
        ("cust_share", 0.04, None, "share: 0.04", "share：0.04"),  # small numbers keep their digits
        ("cust_tenure_days", 417, None, "created 417 days ago", "创建于 417 天前"),  # a lead or a deal, too
        ("ix_拜访_30d", 3.0, None, "3 拜访 in the last 30 days", "近 30 天拜访 3 次"),  # a type named in Chinese
        # a type leadtier has no words for: its name in words, in the plural where English wants one
        ("ix_site_visit_30d", 2.0, None, "2 site visits in the last 30 days", "近 30 天site visit 2 次"),
        ("ix_site_visit_30d", 1.0, None, "1 site visit in the last 30 days", None),
        ("ix_site_visit_30d", 0.0, None, "no site visit in the last 30 days", None),
        ("ix_reply_7d", 4.0, None, "4 replies in the last 7 days", None),
        ("ix_SMS_7d", 4.0, None, "4 SMS in the last 7 days", None),
        ("ix_proposal_sent_7d", 2.0, None, "2 proposal sent in the last 7 days", None),  # no 'proposal sents'
        ("ix_email_opened_7d", 2.0, None, "2 email opened in the last 7 days", None),
        ("ix_status_change_7d", 2.0, None, "2 status changes in the last 7 days", None),
        ("ix_status_7d", 2.0, None, "2 statuses in the last 7 days", None),
        ("rfm_frequency_trend_30d", -2, None, "-2 purchases in the last 30 days against the 30 before", None),
        ("ix_duration_s_30d", 300.0, None, "5 min of interactions in the last 30 days", "近 30 天互动时长 5 分钟"),
        ("cust_start_weekday", 3, None, "started on a Wednesday", "在星期三开始"),
        ("rfm_r_score", 4, None, "recency score 4 of 5", "最近购买评分 4/5"),
        ("rfm_segment", "potential_loyalist", None, "RFM segment: potential loyalist", "RFM 分群：潜在忠诚客户"),
    ],
)
def test_each_feature_kind_reads_in_plain_words_in_en_and_zh(column, value, currency, en, zh):
    assert phrase(column, value, "en", currency) == en
    if zh is not None:
        assert phrase(column, value, "zh", currency) == zh


def test_every_rfm_segment_has_words_in_each_language():
    import re

    from leadtier.features.meta import meta_of

    sql = (REPO / "features" / "sql" / "rfm.sql").read_text(encoding="utf-8")
    segments = set(re.findall(r"THEN '([a-z_]+)'", sql)) | set(re.findall(r"ELSE '([a-z_]+)'", sql))
    values = meta_of("rfm_segment")[0].values
    assert len(segments) >= 10 and all(set(values[lang]) == segments for lang in ("en", "zh"))
    assert not any(re.search(r"[a-z]", w) for w in values["zh"].values())  # no English in a Chinese reason


def test_a_column_without_metadata_reads_name_and_value_and_an_unknown_language_is_refused():
    assert phrase("score_from_elsewhere", 2.5) == "score from elsewhere: 2.5"
    with pytest.raises(ValueError, match="reasons come in"):
        phrase("rfm_recency_days", 1, "fr")


def test_reasons_point_up_towards_the_tier_and_down_away_from_it_in_both_languages():
    X = pd.DataFrame({"rfm_recency_days": [20.0, 400.0], "ix_webinar_90d": [0.0, 2.0], "cust_industry": ["IT", "IT"]})
    features = list(X.columns)
    contrib = np.array([[0.9, -0.4, 0.0, 0.1], [-0.2, 0.3, -0.05, 0.1]])  # last column: the bias
    en = top_reasons(contrib, X, features)
    assert en[0] == "bought 20 days ago (↑); no webinar in the last 90 days (↓)"  # a zero push is no reason
    assert en[1] == "2 webinars in the last 90 days (↑); bought 400 days ago (↓); industry: IT (↓)"
    zh = top_reasons(contrib, X, features, lang="zh")
    assert zh[0] == "20 天前购买 (↑)；近 90 天没有网络研讨会 (↓)"
    assert " = " not in "".join(en + zh) and not any(r.startswith(("+", "-")) for r in en + zh)
    # an attribute is named as the user's file writes it, not as its feature column
    named = top_reasons(contrib, X, features, names={"cust_industry": "Industry (NACE)"})
    assert named[1].endswith("Industry (NACE): IT (↓)")
    assert phrase("cust_budget_wan", None, "en", name="Budget (10k)") == "Budget (10k) unknown"
    assert phrase("cust_lead_source", "Google", "zh", name="Lead Source") == "线索来源：Google"  # a translation wins


def test_near_duplicate_features_make_one_reason_not_two_that_contradict_each_other():
    """SHAP splits credit between purchases and transaction lines, at times with opposite signs: a rep read
    '14 purchases (↓)' beside '14 transaction lines (↑)'. Summed, the pair is one reason with one arrow."""
    from leadtier.models.explain import reason_groups

    rng = np.random.default_rng(0)
    purchases = rng.poisson(6, 2000).astype(float)
    X = pd.DataFrame(
        {
            "rfm_frequency": purchases,
            "rfm_lines": purchases + rng.integers(0, 2, 2000),  # a line or so more than purchases
            "rfm_recency_days": rng.integers(1, 400, 2000).astype(float),
            "cust_region": rng.choice(["N", "S"], 2000),
        }
    )
    groups = reason_groups(X, list(X.columns))
    assert groups == [["rfm_frequency", "rfm_lines"]]  # recency and the text column stand alone
    contrib = np.zeros((2, 5))
    contrib[0, :3] = [-0.3, 0.5, 0.2]  # lines push up more than purchases push down: net +0.2
    contrib[1, :3] = [-0.4, 0.1, 0.05]  # net -0.3, told by purchases (the one pushing that way)
    both = top_reasons(contrib, X.head(2), list(X.columns))
    assert "(↓)" in both[0] and "(↑)" in both[0]  # without groups, the two contradict each other
    one = top_reasons(contrib, X.head(2), list(X.columns), groups=groups)
    assert one[0].count("transaction line") == 1 and "purchase" not in one[0] and "(↓)" not in one[0], one
    assert "purchase" in one[1] and "transaction line" not in one[1] and one[1].split(";")[-1].endswith("(↓)"), one
    assert reason_groups(X.head(2), list(X.columns)) == []  # too few rows to tell


def test_the_windows_of_one_count_and_never_having_any_make_one_reason():
    """'3 purchases in the last 30 days (↑) … 9 in the last 365 days (↓)' and 'no interaction (↑) … never
    interacted (↓)' read as contradictions to a sales rep: one count's windows are one reason, and for a
    customer who never interacted the missing days since the last contact join the count of them."""
    from leadtier.models.explain import reason_groups

    columns = [
        "rfm_frequency_30d",
        "rfm_frequency_365d",
        "ix_count",
        "ix_count_365d",
        "ix_recency_days",
        "ix_call_30d",
        "ix_call_90d",
        "ix_count_trend_30d",
    ]
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.integers(0, 9, (50, len(columns))).astype(float), columns=columns)
    groups = reason_groups(X, columns)
    assert ["rfm_frequency_30d", "rfm_frequency_365d"] in groups and ["ix_count", "ix_count_365d"] in groups
    assert ["ix_call_30d", "ix_call_90d"] in groups and not any("ix_count_trend_30d" in g for g in groups)
    row = pd.DataFrame([[3.0, 9.0, 0.0, 0.0, np.nan, 0.0, 0.0, 0.0]], columns=columns)  # bought lately, never in touch
    contrib = np.array([[0.5, -0.2, 0.3, -0.1, -0.4, 0.0, 0.0, 0.0, 0.0]])
    said = top_reasons(contrib, row, columns, groups=groups)[0]
    assert said.count("purchase") == 1 and "(↑)" in said.split(";")[0], said
    assert "never interacted" not in said or "no interaction" not in said, said  # one fact, said once
    assert said.count("(↓)") == 1 and "interaction" in said.split(";")[-1], said  # net -0.2: away from the tier


def test_every_feature_column_of_the_demo_feature_table_has_metadata(demo_data):
    """Fails when a family makes a column that features.yaml does not describe: an attribute or interaction
    pattern counts only for the configured attributes and interaction types."""
    from leadtier.pipelines.features import build

    cfg = demo_data
    feats = build(cfg, with_labels=False).features
    attributes = {slug(c) for c in [*cfg.data.tables.customers.categorical, *cfg.data.tables.customers.numeric]}
    columns = [c for c in feats.columns if c != "customer_id"] + ["cust_start_weekday"]  # days_to_win's column
    undescribed = []
    for column in columns:
        found = meta_of(column)
        groups = found[1] if found else {}
        if (
            found is None
            or ("name" in groups and groups["name"] not in attributes)
            or ("type" in groups and groups["type"] not in cfg.features.interaction_types)
        ):
            undescribed.append(column)
    assert not undescribed, f"add these columns to features/sql/features.yaml: {undescribed}"
    assert len(columns) > 80  # every window x interaction type of the demo config
    assert meta_of("rfm_brand_new_measure") is None  # what a new rfm column without an entry gets


# --------------------------------------------------------------------------- with a trained model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from tiny_trained_world(tmp_path_factory, "retier")


def _config(cfg, work, **predict) -> str:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(cfg.data.root)
    raw["predict"] |= predict
    path = work / f"retier-{len(list(work.glob('retier-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.slow
def test_retier_runs_every_stage_prints_moves_and_exits_3_on_drift(world):
    cfg, work = world
    calm = _config(cfg, work, psi_warning=1000.0)
    first = runner.invoke(app, ["retier", "--config", calm, "--as-of", "2026-06-30"])
    assert first.exit_code == 0, (first.output, first.exception)
    assert "no previous predictions" in first.output
    for name in ("features.parquet", "predictions.parquet", "worklist.parquet", "report.html"):
        assert (work / "outputs" / "demo" / name).is_file(), name
    pred = pd.read_parquet(work / "outputs" / "demo" / "predictions.parquet")
    assert str(pd.to_datetime(pred["as_of"]).max().date()) == "2026-06-30"
    wl = pd.read_parquet(work / "outputs" / "demo" / "worklist.parquet")["status"].value_counts()
    said = " ".join(first.output.split())
    assert (
        f"worklist: {wl.get('planned', 0)} planned, {wl.get('deferred', 0)} deferred, "
        f"{wl.get('no capacity', 0)} do not fit the weeks" in said
    ), said

    html = (work / "outputs" / "demo" / "report.html").read_text(encoding="utf-8")
    assert 'href="worklist.csv" class="csvlink"' in html  # the worklist planned from these very predictions
    other = work / "outputs" / "other.parquet"
    assert runner.invoke(app, ["predict", "--config", calm, "--output", str(other)]).exit_code == 0
    res = runner.invoke(
        app, ["report", "--config", calm, "--predictions", str(other), "--output", str(work / "o.html")]
    )
    assert res.exit_code == 0, res.output
    assert 'class="csvlink"' not in (work / "o.html").read_text(encoding="utf-8")  # planned from other predictions

    zh = runner.invoke(app, ["report", "--config", calm, "--lang", "zh"])  # a Chinese report beside it
    assert zh.exit_code == 0 and (work / "outputs" / "demo" / "report.zh.html").is_file(), zh.output
    assert "2026-09-30" not in (work / "outputs" / "demo" / "report.zh.html").read_text(encoding="utf-8")
    second = runner.invoke(app, ["retier", "--config", calm, "--as-of", "2026-09-30"])
    assert second.exit_code == 0, (second.output, second.exception)
    for name in ("report.html", "report.zh.html"):  # both re-dated: none left on the older date
        assert "2026-09-30" in (work / "outputs" / "demo" / name).read_text(encoding="utf-8"), name
    moved = pd.read_csv(work / "outputs" / "demo" / "predictions.migration.csv")
    n_up, n_down = (int((moved["change"] == c).sum()) for c in ("upgraded", "downgraded"))
    assert f"{n_up} upgraded since the last run" in second.output
    assert f"{n_down} downgraded since the last run" in second.output
    assert n_up + n_down > 0 and " -> " in second.output

    touchy = _config(cfg, work, psi_warning=1e-9)
    drifted = runner.invoke(app, ["retier", "--config", touchy, "--as-of", "2026-09-30"])
    assert drifted.exit_code == 3, (drifted.output, drifted.exception)
    assert "above predict.psi_warning" in drifted.output and "exit status 3" in drifted.output

    back = runner.invoke(app, ["retier", "--config", calm, "--as-of", "2026-08-31"])  # earlier than the last run
    assert back.exit_code == 0, back.output
    assert "the last run was as of 2026-09-30, after this one: the moves below go back in time" in back.output

    bad = runner.invoke(app, ["retier", "--config", calm, "--as-of", "yesterday"])
    assert bad.exit_code == 2

    out = work / "outputs" / "demo"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    raw = yaml.safe_load(Path(calm).read_text())
    raw["worklist"]["owner_column"] = "territory"  # fails in the worklist stage, after predict has committed
    late = work / "retier-late-failure.yaml"
    late.write_text(yaml.safe_dump(raw))
    failed = runner.invoke(app, ["retier", "--config", str(late), "--as-of", "2026-07-31"])
    assert failed.exit_code == 2 and "territory" in failed.output, failed.output
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert after == before  # features, predictions, worklist and report: all as the last good run left them


@pytest.mark.slow
def test_worklist_and_report_carry_plain_reasons_by_default(world):
    cfg, work = world
    from leadtier.pipelines import predict, report, worklist

    predict.run(cfg, progress=False)  # no --reasons: the predictions carry none
    assert "reasons" not in pd.read_parquet(cfg.predict.output).columns
    chinese = cfg.model_copy(deep=True)
    chinese.report.lang = "zh"  # worklist.lang unset: the worklist speaks the report's language
    res = worklist.run(chinese)
    everyone = pd.read_parquet(res.output)
    listed = everyone[everyone["status"] != "no capacity"]  # the customers the plan calls
    assert len(listed) > 0 and listed["reasons"].str.len().gt(0).mean() > 0.95
    left_out = everyone.loc[everyone["status"] == "no capacity", "reasons"]
    assert len(left_out) > 0 and not left_out.fillna("").str.len().gt(0).any()  # not explained: capacity bounds it
    assert listed["reasons"].str.contains("(↑)", regex=False).mean() > 0.9
    assert not listed["reasons"].str.contains(" = ", regex=False).any()
    assert listed["reasons"].str.contains("天|次", regex=True).mean() > 0.9  # in Chinese, as asked
    html = report.run(cfg, output=str(work / "why.html")).read_text(encoding="utf-8")
    cells = re.findall(r'<td class="reasons">(.*?)</td>', html)
    assert len(cells) >= cfg.report.top_n  # the top customers of each tier, explained
    assert all("(↑)" in c or "(↓)" in c for c in cells) and not any(" = " in c for c in cells)
    assert "bought" in html or "interaction" in html  # English, the report's language


@pytest.mark.slow
def test_rows_predict_rejected_for_a_bad_cell_leave_the_others_their_reasons_and_revenue(world, caplog):
    cfg, work = world
    from leadtier.pipelines import predict, report, worklist

    frame = pd.read_csv(cfg.data_path(cfg.predict.input), dtype={"customer_id": str})
    frame["annual_revenue_musd"] = frame["annual_revenue_musd"].astype(object)
    frame.loc[3, "annual_revenue_musd"] = "n/a"  # a number column holding text
    frame.loc[5, "created_at"] = "2026-02-31"  # a date that does not exist
    messy = work / "messy.csv"
    frame.to_csv(messy, index=False)
    res = predict.run(cfg, input_path=str(messy), progress=False)
    assert res.rejected == 2 and res.scored == len(frame) - 2
    caplog.clear()  # what predict logged
    with caplog.at_level("WARNING"):
        planned = pd.read_parquet(worklist.run(cfg).output)
        html = report.run(cfg, output=str(work / "messy.html")).read_text(encoding="utf-8")
    listed = planned[planned["status"] != "no capacity"]
    assert len(listed) > 0 and listed["reasons"].str.len().gt(0).mean() > 0.95
    assert not set(frame["customer_id"][[3, 5]]) & set(planned["customer_id"])
    repeated = [r for r in caplog.records if "their rows are rejected" in r.getMessage()]
    assert not repeated, [r.getMessage() for r in repeated]  # predict said it; the rebuilds do not repeat it
    problems = [r.getMessage() for r in caplog.records if "no plain-word reasons" in r.getMessage()]
    problems += [r.getMessage() for r in caplog.records if "cannot rebuild" in r.getMessage()]
    assert not problems, problems
    cells = re.findall(r'<td class="reasons">(.*?)</td>', html)
    assert len(cells) >= cfg.report.top_n and all("(↑)" in c or "(↓)" in c for c in cells)


@pytest.mark.slow
def test_without_a_scoring_file_a_rejected_customers_row_leaves_the_others_their_reasons(world, caplog):
    cfg, work = world
    from leadtier.pipelines import predict, worklist

    own = cfg.model_copy(deep=True)  # scores the customers table itself (no predict.input)
    customers = pd.read_parquet(cfg.data_path(cfg.data.tables.customers.files[0].path))
    customers["annual_revenue_musd"] = customers["annual_revenue_musd"].astype(str)
    customers.loc[4, "annual_revenue_musd"] = "n/a"
    customers.to_parquet(work / "customers_messy.parquet", index=False)
    own.data.tables.customers.files[0].path = str(work / "customers_messy.parquet")
    own.predict.input = None
    own.predict.output = str(work / "own" / "predictions.parquet")
    own.worklist.output = str(work / "own" / "worklist.parquet")
    res = predict.run(own, progress=False)
    assert res.rejected == 1 and res.reasons == {"column 'annual_revenue_musd' is not a number": 1}
    with caplog.at_level("WARNING"):
        planned = pd.read_parquet(worklist.run(own).output)
    listed = planned[planned["status"] != "no capacity"]
    assert len(listed) > 0 and listed["reasons"].str.len().gt(0).mean() > 0.95
    assert not [r for r in caplog.records if "no plain-word reasons" in r.getMessage()]


def test_all_or_nothing_puts_back_what_the_failed_run_wrote_and_nothing_another_run_wrote(tmp_path):
    from leadtier.pipelines.outputs import write_text
    from leadtier.pipelines.retier import all_or_nothing

    kept, made, gone, theirs, untouched = (
        tmp_path / n for n in ("kept.txt", "made.txt", "gone.txt", "theirs.txt", "untouched.txt")
    )
    for path in (kept, gone, theirs, untouched):
        path.write_text(f"old {path.name}")
    paths = [kept, made, gone, theirs, untouched]
    with pytest.raises(RuntimeError, match="stage 3"), all_or_nothing(paths) as wrote:
        for path in (kept, made, theirs):
            write_text(f"new {path.name}", path)  # renamed over the old file, as every stage writes
        gone.unlink()
        wrote([kept, made, gone, theirs])  # the stages committed these
        write_text("another run's", theirs)  # a `leadtier predict` that committed after this run
        write_text("a failed stage's half", untouched)  # never committed by this run: not its to undo
        raise RuntimeError("stage 3 failed")
    assert kept.read_text() == "old kept.txt" and gone.read_text() == "old gone.txt" and not made.exists()
    assert theirs.read_text() == "another run's" and untouched.read_text() == "a failed stage's half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gone.txt", "kept.txt", "theirs.txt", "untouched.txt"]
    with all_or_nothing([kept, made]) as wrote:
        write_text("new", kept)
        wrote([kept])
    assert kept.read_text() == "new" and not any(p.name.endswith(".old") for p in tmp_path.iterdir())


def test_today_is_the_date_in_the_configured_time_zone(demo_data):
    from leadtier.pipelines import retier

    moment = dt.datetime(2026, 12, 6, 20, 30, tzinfo=dt.UTC)  # already 7 December in Shanghai
    cfg = demo_data.model_copy(deep=True)
    assert retier.today(cfg, moment) == dt.date(2026, 12, 6)  # UTC, the default, wherever the job runs
    assert retier.today(cfg, moment.astimezone(ZoneInfo("America/Los_Angeles"))) == dt.date(2026, 12, 6)
    cfg.data.time_zone = "Asia/Shanghai"
    assert retier.today(cfg, moment) == dt.date(2026, 12, 7)


def test_retier_summary_lists_the_largest_moves_first():
    from leadtier.pipelines.retier import RetierResult

    moves = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "previous_tier": ["C", "A"],
            "tier": ["A", "B"],
            "score_change": [30.0, -12.5],
            "change": ["upgraded", "downgraded"],
        }
    )
    text = RetierResult(dt.date(2026, 6, 30), ["predict: ..."], moves, [("rfm_monetary", 0.4)], 0.2).summary()
    assert "1 upgraded since the last run\n  a: C -> A (score +30.0)" in text
    assert "  b: A -> B (score -12.5)" in text
    assert "drift: 1 feature(s) above predict.psi_warning = 0.2 (rfm_monetary 0.40); exit status 3" in text


def test_one_of_a_unit_reads_in_the_singular():
    from leadtier.features.meta import phrase

    assert phrase("rfm_recency_days", 1) == "bought 1 day ago"
    assert phrase("rfm_lines", 1) == "1 transaction line" and phrase("rfm_lines", 2) == "2 transaction lines"
    assert phrase("rfm_recency_days", 2) == "bought 2 days ago"
    assert phrase("rfm_frequency", 1) == "1 purchase" and phrase("rfm_frequency", 11) == "11 purchases"


def test_the_scorer_keeps_the_attribute_names_as_the_users_file_writes_them():
    """'Lead Source' reads better than 'lead source'; a snake_case name is left to the reasons' words."""
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.train import attribute_names

    leads = attribute_names(load_config(REPO / "configs" / "x_education_leads.yaml", data_root="/nowhere"))
    assert leads["cust_lead_source"] == "Lead Source"
    assert attribute_names(load_config(REPO / "configs" / "demo.yaml", data_root="/nowhere")) == {}


@pytest.mark.slow
def test_scoring_under_another_time_zone_than_training_is_warned_of(world, caplog):
    cfg, work = world
    from leadtier.pipelines import predict

    shanghai = cfg.model_copy(deep=True)
    shanghai.data.time_zone = "Asia/Shanghai"
    shanghai.predict.output = str(work / "shanghai" / "predictions.parquet")
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        predict.run(shanghai, progress=False)
    said = [r.getMessage() for r in caplog.records if "trained under" in r.getMessage()]
    assert len(said) == 1 and "data.time_zone is Asia/Shanghai but the model was trained under UTC" in said[0], said
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        predict.run(cfg.model_copy(update={}, deep=True), progress=False)
    assert not [r for r in caplog.records if "trained under" in r.getMessage()]
    alias = cfg.model_copy(deep=True)
    alias.data.time_zone = "Etc/UTC"  # the training clock under another name: nothing to warn of
    alias.predict.output = str(work / "etc_utc" / "predictions.parquet")
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        predict.run(alias, progress=False)
    assert not [r for r in caplog.records if "trained under" in r.getMessage()]


@pytest.mark.slow
def test_scoring_an_old_extract_as_of_a_later_day_is_warned_of(world, caplog):
    """retier scores as of today: inputs that ended months ago would read everyone as quiet since then."""
    cfg, work = world
    from leadtier.pipelines import predict

    later = cfg.model_copy(deep=True)
    later.predict.output = str(work / "later" / "predictions.parquet")
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        later_res = predict.run(later, as_of=cfg.data.as_of + dt.timedelta(days=161), progress=False)
    said = [r.getMessage() for r in caplog.records if "the inputs end" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("the inputs end "), said
    days = later_res.stale_days  # the demo's last event is on the eve of data.as_of: 162
    assert days >= 161 and f"stale inputs: the newest event is {days} days" in later_res.summary()
    assert f"the inputs end {days} days before" in said[0]
    assert f"before the as-of date {cfg.data.as_of + dt.timedelta(days=161)} (newest rows: transactions " in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        predict.run(cfg.model_copy(deep=True), progress=False)  # as of the data's own date: nothing to say
    assert not [r for r in caplog.records if "the inputs end" in r.getMessage()]


def test_an_as_of_date_after_today_is_warned_of(caplog):
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.predict import warn_future_as_of

    cfg = load_config(DEMO_CONFIG, data_root="/nowhere")
    cfg.data.time_zone = "Asia/Shanghai"
    now = dt.datetime(2026, 12, 7, 20, 0, tzinfo=dt.UTC)  # already 8 December in Shanghai
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        assert not warn_future_as_of(cfg, dt.date(2026, 12, 8), now)
        assert warn_future_as_of(cfg, dt.date(2027, 1, 15), now)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "the as-of date 2027-01-15 is after today (2026-12-08 in Asia/Shanghai): the days between have no events "
        "yet, so recency and the counts of recent days read every customer as quieter than they are"
    ]


def test_stale_inputs_are_judged_by_the_newest_event_table(caplog):
    from leadtier.pipelines.predict import STALE_DAYS, warn_stale_inputs

    as_of = dt.date(2026, 12, 7)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        assert warn_stale_inputs([("transactions", dt.date(2026, 6, 29)), ("interactions", None)], as_of) == 161
        assert warn_stale_inputs([("transactions", dt.date(2026, 1, 1)), ("interactions", as_of)], as_of) == 0
        assert warn_stale_inputs([("interactions", as_of - dt.timedelta(days=STALE_DAYS))], as_of) == STALE_DAYS
        assert warn_stale_inputs([], as_of) is None and warn_stale_inputs([("stages", None)], as_of) is None
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "(newest rows: transactions 2026-06-29)" in said[0] and "--as-of 2026-06-30" in said[0]


def test_one_clock_under_two_names_is_the_same_time_zone():
    from leadtier.pipelines.predict import same_clock

    assert same_clock("UTC", "Etc/UTC") and same_clock("Asia/Shanghai", "PRC")
    assert same_clock("America/New_York", "US/Eastern")
    assert same_clock("Europe/Paris", "Europe/Berlin")  # parted in the 1970s, alike for every date read today
    # the same offset in winter, another in summer
    assert not same_clock("Europe/London", "Africa/Abidjan") and not same_clock("Europe/London", "Europe/Paris")
    assert not same_clock("UTC", "Asia/Shanghai") and not same_clock("UTC", "No/Such_Zone")


def test_interaction_types_read_in_the_words_the_config_gives_them(tmp_path):
    """features.type_words: a Chinese report says 现场拜访, not 'site visit'; a built-in type may be renamed."""
    from leadtier.pipelines.config import ConfigError, load_config

    words = {"site_visit": {"en": "site visit|site visits", "zh": "现场拜访"}, "call": {"zh": "电话拜访"}}
    assert phrase("ix_site_visit_30d", 2.0, "zh", words=words) == "近 30 天现场拜访 2 次"
    assert phrase("ix_site_visit_30d", 0.0, "zh", words=words) == "近 30 天没有现场拜访"
    assert phrase("ix_site_visit_30d", 1.0, "en", words=words) == "1 site visit in the last 30 days"
    assert phrase("ix_call_90d", 3.0, "zh", words=words) == "近 90 天电话拜访 3 次"
    assert phrase("ix_call_90d", 3.0, "en", words=words) == "3 calls in the last 90 days"  # no en words: built-in
    no_plural = {"site_visit": {"en": "site visit"}}  # the regular plural
    assert phrase("ix_site_visit_30d", 3.0, "en", words=no_plural) == "3 site visits in the last 30 days"
    X = pd.DataFrame({"ix_site_visit_30d": [4.0, 0.0], "rfm_recency_days": [3.0, 400.0]})
    contrib = np.array([[0.9, 0.1, 0.0], [-0.8, -0.2, 0.0]])
    got = top_reasons(contrib, X, list(X.columns), k=1, lang="zh", words=words)
    assert got[0].startswith("近 30 天现场拜访 4 次 (↑)") and got[1].startswith("近 30 天没有现场拜访 (↓)"), got
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    raw["features"]["type_words"] = {"site_vist": {"zh": "现场拜访"}}  # a type the config does not list
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"type_words names \['site_vist'\], which features.interaction_types"):
        load_config(path)
    raw["features"]["interaction_types"] = []
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"but features.interaction_types lists none"):
        load_config(path)


def test_attributes_read_in_the_words_the_config_gives_them(tmp_path):
    """features.attribute_words: a Chinese report says 来源, not the English column 'source' of the file."""
    from leadtier.pipelines.config import ConfigError, load_config
    from leadtier.pipelines.report import feature_label

    words = {"cust_source": {"zh": "来源"}, "cust_deal_size_k": {"en": "Deal size (k€)", "zh": "项目金额（千欧元）"}}
    assert phrase("cust_source", "tender portal", "zh", words=words) == "来源：tender portal"
    assert phrase("cust_source", "tender portal", "en", words=words) == "source: tender portal"  # no en words
    assert phrase("cust_deal_size_k", 12.0, "en", name="deal_size_k", words=words).startswith("Deal size (k€)")
    assert feature_label("cust_deal_size_k", "zh", words) == "项目金额（千欧元）"
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    raw["features"]["attribute_words"] = {"annual_revenue_musd": {"zh": "年收入（百万美元）"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_config(path).words()["cust_annual_revenue_musd"] == {"zh": "年收入（百万美元）"}
    raw["features"]["attribute_words"] = {"revenue": {"zh": "收入"}}  # not a listed attribute
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"attribute_words names \['revenue'\], which tables.customers does not list"):
        load_config(path)


def test_an_attribute_that_is_money_reads_with_the_currency(tmp_path):
    """tables.customers.money: 'amount: ¥283,487.10 (↑)', not 'amount: 283487.1 (↑)'."""
    from leadtier.pipelines.config import ConfigError, load_config

    X = pd.DataFrame({"cust_amount": [283487.1, None], "cust_floors": [12.0, 3.0]})
    contrib = np.array([[0.9, 0.1, 0.0], [-0.8, -0.2, 0.0]])
    got = top_reasons(contrib, X, list(X.columns), k=1, currency="¥", money=["cust_amount"])
    assert got == ["amount: ¥283,487.10 (↑)", "amount unknown (↓)"], got
    assert top_reasons(contrib, X, list(X.columns), k=1, currency="¥")[0] == "amount: 283487.1 (↑)"  # not money
    raw = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    raw["data"]["tables"]["customers"]["money"] = ["annual_revenue_musd"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    assert load_config(path).data.tables.customers.money == ["annual_revenue_musd"]
    raw["data"]["tables"]["customers"]["money"] = ["region"]  # a category, not an amount
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tables.customers.money names \['region'\], which tables.customers.numeric"):
        load_config(path)
    raw["data"]["tables"]["customers"]["money"] = []
    raw["data"]["tables"]["transactions"]["money"] = ["amount"]  # not read there: an error, not ignored
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"money names attributes of tables.customers only"):
        load_config(path)


def test_a_text_value_the_model_never_saw_is_said_to_be_new_in_a_reason():
    X = pd.DataFrame({"cust_channel": ["抖音", "app"], "rfm_recency_days": [3.0, 400.0]})
    contrib = np.array([[-0.9, 0.1, 0.0], [-0.8, 0.2, 0.0]])
    known = {"cust_channel": ["app", "web"]}
    got = top_reasons(contrib, X, list(X.columns), k=1, lang="zh", known=known)
    assert got[0].endswith("channel：抖音（训练中未出现） (↓)") and got[1].endswith("channel：app (↓)"), got
    en = top_reasons(contrib, X, list(X.columns), k=1, lang="en", known=known)
    assert en[0].endswith("channel: 抖音 (new since training) (↓)"), en


@pytest.mark.slow
def test_predict_writes_reasons_and_segment_names_in_the_report_language(world):
    cfg, work = world
    from leadtier.pipelines import predict

    chinese = cfg.model_copy(deep=True)
    chinese.report.lang = "zh"
    chinese.predict.output = str(work / "zh" / "predictions.parquet")
    predict.run(chinese, progress=False, reasons=True)
    scored = pd.read_parquet(chinese.predict.output)
    assert (
        scored["reasons"].str.contains("天|次").mean() > 0.9 and not scored["reasons"].str.contains(" days ago").any()
    )
    assert scored["segment"].str.contains(r"[\u4e00-\u9fff]").all(), scored["segment"].unique()
