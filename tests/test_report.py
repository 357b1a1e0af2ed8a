"""Unit tests of the HTML report's data work and rendering (no MLflow, no network)."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from leadtier.models.schemes import TierLevel, TierScheme
from leadtier.pipelines import report
from leadtier.pipelines.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u4e00-\u9fff]")
PLANTED = {"email": "planted@example.com", "contact_name": "Planted Person", "phone": "+1-555-0100-planted"}


@pytest.fixture(scope="module")
def scheme5() -> TierScheme:
    return load_config(ROOT / "configs" / "demo.yaml").scheme


@pytest.fixture(scope="module")
def scheme2() -> TierScheme:
    return TierScheme(
        title_en="Conversion",
        title_zh="是否成交",
        levels=[
            TierLevel(
                code="converted",
                en="Converted",
                zh="已成交",
                meaning_en="Bought",
                meaning_zh="已购买",
                action_en="Hand over to account management",
                action_zh="移交客户经理",
            ),
            TierLevel(
                code="not_converted",
                en="Not converted",
                zh="未成交",
                meaning_en="Not yet",
                meaning_zh="尚未购买",
                action_en="Keep nurturing",
                action_zh="继续培育",
            ),
        ],
    )


SEGMENT_NAMES = {
    0: {"en": "recent buyers, high spend", "zh": "近期购买、高消费"},
    1: {"en": "quiet, lapsed buyers", "zh": "互动少、久未购买"},
}
PROFILE = pd.DataFrame(
    {
        "size": [10, 20],
        "rfm_recency_days": [12.0, 300.0],
        "rfm_monetary": [5000.0, 0.0],
        "ix_count_30d": [3.0, 0.0],
        "some_new_feature": [1.5, 2.5],
    },
    index=pd.Index([0, 1], name="segment_id"),
)
METRICS = {
    "model": {
        "macro_f1": 0.61,
        "balanced_accuracy": 0.60,
        "qwk": 0.75,
        "log_loss": 1.10,
        "brier": 0.55,
        "ece": 0.05,
        "precision_A": 0.7,
        "recall_A": 0.65,
    },
    "logreg": {
        "macro_f1": 0.55,
        "balanced_accuracy": 0.62,
        "qwk": 0.70,
        "log_loss": 1.00,
        "brier": 0.60,
        "ece": 0.04,
    },
    "rfm_scorecard": {
        "macro_f1": 0.40,
        "balanced_accuracy": 0.41,
        "qwk": 0.78,
        "log_loss": 1.30,
        "brier": 0.65,
        "ece": 0.08,
    },
    "majority": {
        "macro_f1": 0.08,
        "balanced_accuracy": 0.20,
        "qwk": 0.0,
        "log_loss": 1.60,
        "brier": 0.80,
        "ece": 0.10,
    },
}
INFO = {"name": "leadtier-demo", "version": "7", "train_as_of": "2026-06-30", "run_id": "abc123"}


def make_predictions(
    scheme: TierScheme,
    tiers: list[str],
    scores: list[float] | None = None,
    segments: list[int] | None = None,
    personal: bool = True,
) -> pd.DataFrame:
    n = len(tiers)
    codes = scheme.codes
    scores = scores if scores is not None else list(np.linspace(90, 10, n))
    segments = segments if segments is not None else [i % 2 for i in range(n)]
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "tier": tiers,
            "score": scores,
        }
    )
    for code in codes:
        frame[f"proba_{code}"] = [0.8 if t == code else 0.2 / (len(codes) - 1) for t in tiers]
    frame["segment_id"] = segments
    frame["segment"] = [SEGMENT_NAMES.get(s, {"en": f"seg {s}"})["en"] for s in segments]
    frame["model_version"] = "7"
    frame["as_of"] = pd.Timestamp("2026-06-30").date()
    if personal:
        for col, value in PLANTED.items():
            frame[col] = value
    return frame


def context(scheme, frame, revenue=None, lang="en", top_n=3, **kw):
    return report.build_context(
        frame, scheme, SEGMENT_NAMES, PROFILE, METRICS, INFO, revenue=revenue, lang=lang, top_n=top_n, **kw
    )


START = dt.date(2026, 6, 30)


def make_worklist(frame, lang="en", owners=("ann", "bob"), values=None, **settings) -> pd.DataFrame:
    """The worklist `leadtier worklist` plans from ``frame`` with the demo config's service levels (A 7,
    B 30, C 90 days), two owners, and a reason per row."""
    from leadtier.pipelines import worklist

    cfg = load_config(ROOT / "configs" / "demo.yaml")
    cfg.worklist = cfg.worklist.model_copy(update=settings)
    attrs = pd.DataFrame(
        {"customer_id": frame["customer_id"], "owner": [owners[i % len(owners)] for i in range(len(frame))]}
    )
    if values is not None:
        attrs["value"] = values
    contacts = pd.DataFrame(
        {"customer_id": pd.Series([], dtype=str), "last_contact": pd.Series([], dtype="datetime64[ns]")}
    )
    out = worklist.build(cfg, frame, attrs, contacts, START, lang)
    out["reasons"] = [f"bought {i} days ago (↑)" for i in range(len(out))]
    return out


# --------------------------------------------------------------------------- numbers


def test_tier_counts_and_revenue_shares(scheme5):
    tiers = ["A", "A", "B", "B", "B", "C", "E", "E", "E", "E"]
    frame = make_predictions(scheme5, tiers)
    revenue = pd.Series([500.0, 300.0, 100.0, 50.0, 50.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    ctx = context(scheme5, frame, revenue)
    rows = {t["code"]: t for t in ctx["summary"]["tiers"]}
    assert [rows[c]["count"] for c in "ABCDE"] == [2, 3, 1, 0, 4]
    assert rows["A"]["pct"] == pytest.approx(0.2)
    assert rows["E"]["pct"] == pytest.approx(0.4)
    assert rows["A"]["revenue_pct"] == pytest.approx(800 / 1000)
    assert rows["B"]["revenue_pct"] == pytest.approx(200 / 1000)
    assert rows["E"]["revenue_pct"] == pytest.approx(0.0)
    assert rows["A"]["avg_revenue"] == pytest.approx(400.0)
    assert rows["D"]["avg_revenue"] is None
    s = ctx["summary"]
    assert s["n_customers"] == 10
    assert s["revenue_total"] == pytest.approx(1000.0)
    # top 20 % of 10 customers = the 2 biggest spenders: 500 + 300 of 1000
    assert s["top20_share"] == pytest.approx(0.8)
    assert s["top25_share"] == pytest.approx(0.9)  # ceil(2.5) = 3 customers
    assert s["customers_for_80"] == pytest.approx(0.2)
    assert s["buyers_share"] == pytest.approx(0.5)
    assert s["most_from_top"] is True
    assert s["as_of"] == "2026-06-30"
    assert s["model_version"] == "7"
    # playbook carries counts, meanings and actions in scheme order
    assert [p["code"] for p in ctx["playbook"]] == list("ABCDE")
    assert ctx["playbook"][0]["action"] == scheme5.level("A").action_en
    # tier x segment table with totals
    ts = ctx["tier_segment"]
    assert sum(r["total"] for r in ts["rows"]) == ts["total"] == 10
    assert sum(ts["col_totals"]) == 10
    assert ts["rows"][0]["counts"] == [1, 1]  # A: customers 0 (segment 0) and 1 (segment 1)

    html = report.render(ctx, "en")
    assert "80.0%" in html and "revenue-answer" in html


def test_revenue_by_customer_id_equals_positional(scheme5):
    frame = make_predictions(scheme5, ["A", "B", "C", "D", "E"])
    values = [10.0, 20.0, 30.0, 0.0, np.nan]
    by_pos = context(scheme5, frame, pd.Series(values))
    by_id = context(scheme5, frame, pd.Series(values, index=pd.Index(frame["customer_id"], name="customer_id")))
    assert by_pos["summary"]["tiers"] == by_id["summary"]["tiers"]
    assert by_pos["summary"]["tiers"][2]["revenue_pct"] == pytest.approx(0.5)


def test_revenue_missing_or_zero_is_explained(scheme5):
    frame = make_predictions(scheme5, ["A", "B", "E"])
    none_ctx = context(scheme5, frame)
    assert none_ctx["summary"]["revenue_state"] == "missing"
    assert report.strings("en")["no_revenue"] in report.render(none_ctx, "en")
    zero_ctx = context(scheme5, frame, pd.Series([0.0, 0.0, 0.0]))
    assert zero_ctx["summary"]["revenue_state"] == "zero"
    assert report.strings("zh")["zero_revenue"] in report.render(
        context(scheme5, frame, pd.Series([0.0] * 3), lang="zh"), "zh"
    )


def test_two_level_scheme(scheme2):
    tiers = ["converted"] * 3 + ["not_converted"] * 7
    frame = make_predictions(scheme2, tiers)
    ctx = context(scheme2, frame, pd.Series(np.arange(10, dtype=float)))
    assert [t["count"] for t in ctx["summary"]["tiers"]] == [3, 7]
    html = report.render(ctx, "en")
    assert "Hand over to account management" in html and "Keep nurturing" in html
    zh = report.render(context(scheme2, frame, lang="zh"), "zh")
    assert "已成交" in zh and "移交客户经理" in zh


def test_top_customers_per_tier(scheme5):
    tiers = ["A"] * 6 + ["B"] * 2
    scores = [50, 90, 70, 95, 10, 60, 40, 45]
    frame = make_predictions(scheme5, tiers, scores=scores)
    ctx = context(scheme5, frame, top_n=3)
    top = {t["code"]: t for t in ctx["top"]}
    assert [r["customer_id"] for r in top["A"]["rows"]] == ["C0003", "C0001", "C0002"]
    assert [r["score"] for r in top["A"]["rows"]] == [95, 90, 70]
    assert all(r["proba"] == pytest.approx(0.8) for r in top["A"]["rows"])
    assert len(top["B"]["rows"]) == 2 and top["C"]["rows"] == []
    assert top["A"]["rows"][0]["segment"] == SEGMENT_NAMES[1]["en"]
    assert not ctx["has_reasons"]
    assert top["A"]["badge"] == "A"  # short codes name their tier on the badge


def test_top_customers_of_a_scheme_with_long_codes_show_no_code_on_the_badge(scheme2):
    best = scheme2.codes[0]  # 'converted': a code, not words for a marketer
    ctx = context(scheme2, make_predictions(scheme2, [best] * 3 + [scheme2.codes[1]] * 3), lang="zh")
    (top,) = ctx["top"]
    html = report.render(ctx, "zh")
    assert top["badge"] == "\u00a0" and f">{best}</span>" not in html and scheme2.label(best, "zh") in html


def test_top_lists_leave_out_the_lowest_tier(scheme5, scheme2):
    frame = make_predictions(scheme5, list("ABCDE") * 3)
    ctx = context(scheme5, frame)
    assert [t["code"] for t in ctx["top"]] == list("ABCD")
    e = {"tier": scheme5.label("E", "en"), "action": scheme5.level("E").action_en}
    assert ctx["top_left_out"] == [{"label": e["tier"], "action": e["action"]}] and e["action"]
    html = report.render(ctx, "en")
    assert 'data-tier="E"' not in html and 'data-tier="D"' in html
    assert report.strings("en")["top_left_out_action"].format(**e) in html
    silent = scheme5.model_copy(
        update={"levels": [*scheme5.levels[:-1], scheme5.levels[-1].model_copy(update={"action_en": ""})]}
    )
    assert report.strings("en")["top_left_out"].format(tier=e["tier"]) in report.render(context(silent, frame), "en")
    # the lowest tier's own playbook action, not one advice for every scheme (level I of a relationship
    # scheme is still visited)
    lowest = scheme5.levels[-1].model_copy(update={"action_en": "Visit each quarter", "action_zh": "每季度拜访"})
    acted = scheme5.model_copy(update={"levels": [*scheme5.levels[:-1], lowest]})
    for lang in ("en", "zh"):
        html = report.render(context(acted, frame, lang=lang), lang)
        said = report.strings(lang)["top_left_out_action"].format(tier=acted.label("E", lang), action=lowest.action_en)
        assert (said if lang == "en" else lowest.action_zh) in html and "move it out of active" not in html
    assert len(report.top_rows(frame, 2, report.listed_tiers(scheme5.codes))) == 8  # what gets explained
    two = context(scheme2, make_predictions(scheme2, ["converted", "not_converted"] * 2))
    assert [t["code"] for t in two["top"]] == ["converted"]


def test_reasons_shown_when_present(scheme5):
    frame = make_predictions(scheme5, ["A", "B"])
    frame["reasons"] = ["+ many quote requests in 30 days; - no purchase in 180 days", None]
    ctx = context(scheme5, frame)
    html = report.render(ctx, "en")
    assert "+ many quote requests in 30 days; - no purchase in 180 days" in html
    assert f"<th>{report.strings('en')['reasons']}</th>" in html
    plain = report.render(context(scheme5, make_predictions(scheme5, ["A", "B"])), "en")
    assert f"<th>{report.strings('en')['reasons']}</th>" not in plain


def test_segment_cards_profile_labels(scheme5):
    frame = make_predictions(scheme5, ["A", "B", "C", "E"], segments=[0, 0, 1, 1])
    ctx = context(scheme5, frame, lang="zh")
    cards = {c["id"]: c for c in ctx["segments"]["cards"]}
    assert cards[0]["name"] == "近期购买、高消费" and cards[0]["size"] == 2
    labels = [p["label"] for p in cards[0]["profile"]]
    assert "距上次购买天数" in labels and "历史收入" in labels
    assert [m["count"] for m in cards[1]["mix"]] == [0, 0, 1, 0, 1]
    assert [m["short"] for m in cards[1]["mix"]] == list("ABCDE")  # a short code names its tier
    words = ("high", "medium", "low")  # 'low' is as short as 'IV', but beside 'high' it is a word: all by label
    intent = scheme5.model_copy(
        update={
            "levels": [
                lv.model_copy(update={"code": c, "zh": f"{c}意向"})
                for lv, c in zip(scheme5.levels[:3], words, strict=True)
            ]
        }
    )
    mixed = context(intent, make_predictions(intent, ["high", "low"], segments=[0, 1]), lang="zh")
    assert [m["short"] for m in mixed["segments"]["cards"][0]["mix"]] == ["high意向", "medium意向", "low意向"]
    # without known features the card falls back to the column names
    bare = report.build_context(
        frame, scheme5, SEGMENT_NAMES, PROFILE[["size", "some_new_feature"]], METRICS, INFO, lang="en"
    )
    assert bare["segments"]["cards"][0]["profile"][0]["label"] == "some_new_feature"
    # a duration reads in minutes, not as a bare count of seconds
    assert report._profile_value("ix_duration_s_30d", 7303.0, None, "en") == "121.7 min"
    assert report._profile_value("ix_duration_s_30d", 7303.0, None, "zh") == "121.7 分钟"


def test_segment_cards_name_long_tier_codes_in_the_readers_language(scheme2):
    frame = make_predictions(scheme2, ["converted", "not_converted"], segments=[0, 0])
    html = report.render(context(scheme2, frame, lang="zh"), "zh")
    assert "已成交 50%" in html and "converted 50%" not in html


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_segment_that_never_bought_shows_it_and_training_medians_say_so(scheme5, lang):
    frame = make_predictions(scheme5, ["A", "B", "C", "E"], segments=[0, 0, 1, 1])
    never = PROFILE.assign(rfm_recency_days=[12.0, np.nan])  # most of segment 1 never bought
    s = report.strings(lang)
    html = report.render(report.build_context(frame, scheme5, SEGMENT_NAMES, never, METRICS, INFO, lang=lang), lang)
    card = html[html.index('id="segment-1"') :]
    assert ("never bought" if lang == "en" else "从未购买") in card[: card.index("</table>")]
    assert f"{s['profile']}</th>" in html and s["profile_of_training"] not in html
    trained = never.copy()
    trained.attrs["of_training"] = True  # the report could not rebuild the scored customers' features
    html = report.render(report.build_context(frame, scheme5, SEGMENT_NAMES, trained, METRICS, INFO, lang=lang), lang)
    assert f"{s['profile_of_training']}</th>" in html


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_with_labels_from_rules_the_playbook_shows_the_rule_that_gave_each_tier(scheme5, lang):
    frame = make_predictions(scheme5, list("ABCDE"))
    rules = [
        {"tier": "A", "when": "tender = 'won' AND level >= 3"},
        {"tier": "B", "when": "tender = 'open'"},
        {"tier": "B", "when": "tender = 'won'"},
    ]
    ctx = report.build_context(
        frame, scheme5, SEGMENT_NAMES, PROFILE, METRICS, {**INFO, "label_rules": rules}, lang=lang
    )
    rule = {p["code"]: p["rule"] for p in ctx["playbook"]}
    assert rule == {"A": rules[0]["when"], "B": "(tender = 'open') OR (tender = 'won')", "C": "", "D": "", "E": ""}
    html = report.render(ctx, lang)
    assert html.count(f"<b>{report.strings(lang)['label_rule']}:</b>") == 2
    assert "<code>tender = &#39;won&#39; AND level &gt;= 3</code>" in html
    plain = report.render(context(scheme5, frame, lang=lang), lang)  # labels from people or outcomes
    assert report.strings(lang)["label_rule"] not in plain


def test_model_card_marks_best(scheme5):
    ctx = context(scheme5, make_predictions(scheme5, ["A", "B"]))
    rows = {r["metric"]: r for r in ctx["model_card"]["rows"]}
    best = {m: [v["key"] for v in r["values"] if v["best"]] for m, r in rows.items()}
    assert best["macro_f1"] == ["model"]
    assert best["balanced_accuracy"] == ["logreg"]
    assert best["log_loss"] == ["logreg"]  # lower is better
    assert best["qwk"] == ["rfm_scorecard"]  # the rule baseline is shown, and can win
    assert [v["key"] for v in rows["macro_f1"]["values"]] == ["model", "logreg", "rfm_scorecard", "majority"]
    html = report.render(ctx, "en")
    assert "RFM quintile scorecard" in html
    assert html.count('class="n best"') == len(rows)
    assert report.strings("en")["metrics_note"].split()[0] in html
    assert report.strings("en")["gain_vs_logreg"] not in html  # no intervals given: no column
    gains = {
        "logreg": {
            "macro_f1": {"gain": 0.0216, "low": 0.0031, "high": 0.0402},
            "log_loss": {"gain": 0.0104, "low": -0.0052, "high": 0.0263},
        }
    }
    with_gains = context(scheme5, make_predictions(scheme5, ["A", "B"]), gains=gains)
    rows = {r["metric"]: r for r in with_gains["model_card"]["rows"]}
    assert rows["macro_f1"]["gain"] == {"text": "+0.022 [+0.003, +0.040]", "within_noise": False}
    assert rows["log_loss"]["gain"]["within_noise"] and rows["qwk"]["gain"] is None
    html = report.render(with_gains, "en")
    assert report.strings("en")["gain_vs_logreg"] in html and "+0.022 [+0.003, +0.040]</td>" in html
    assert f"+0.010 [-0.005, +0.026] ({report.strings('en')['within_noise']})" in html
    verdict = "Against the logistic regression on the same rows: better beyond noise in Macro-F1; no difference"
    assert f"{verdict} beyond noise in Log-loss." in html  # what the interval column says, in one sentence
    worse = {"logreg": {"macro_f1": {"gain": -0.03, "low": -0.05, "high": -0.01}}}
    zh = report.render(context(scheme5, make_predictions(scheme5, ["A", "B"]), lang="zh", gains=worse), "zh")
    assert "与同一批客户上的逻辑回归相比：宏平均 F1显著更差。" in zh
    # a rule baseline that beats the model beyond noise is said in words, not only marked best in the table
    rule = {
        "logreg": worse["logreg"],
        "rfm_scorecard": {
            "macro_f1": {"gain": -0.046, "low": -0.061, "high": -0.033},
            "qwk": {"gain": -0.01, "low": -0.03, "high": 0.01},  # within noise: not claimed
        },
        "majority": {
            "macro_f1": {"gain": 0.3, "low": 0.25, "high": 0.35},
            "ece": {"gain": -0.02, "low": -0.03, "high": -0.01},
        },
        "survival": {"macro_f1": {"gain": -0.05, "low": -0.07, "high": -0.03}},  # a rival model, not on the card
    }
    html = report.render(context(scheme5, make_predictions(scheme5, ["A", "B"]), gains=rule), "en")
    said = "“RFM quintile scorecard (rule)” scores better than the model beyond noise in Macro-F1 on these evaluation"
    assert said in html and "Majority baseline” scores" not in html and "“Logistic regression” scores" not in html
    assert "“survival”" not in html
    zh = report.render(context(scheme5, make_predictions(scheme5, ["A", "B"]), lang="zh", gains=rule), "zh")
    assert "的宏平均 F1显著优于模型" in zh
    assert 'class="plain verdict beaten"' not in report.render(with_gains, "en")
    assert report.strings("zh")["gain_vs_logreg"] in report.render(
        context(scheme5, make_predictions(scheme5, ["A", "B"]), lang="zh", gains=gains), "zh"
    )
    none = report.build_context(make_predictions(scheme5, ["A"]), scheme5, SEGMENT_NAMES, PROFILE, None, INFO)
    assert not none["model_card"]["available"]
    assert report.strings("en")["no_metrics"] in report.render(none, "en")


def test_version_notes_tell_the_reader_which_model_made_the_tiers(scheme5):
    s = report.strings("en")
    frame = make_predictions(scheme5, list("ABCDE") * 2)

    def notes(**info):
        ctx = report.build_context(frame, scheme5, SEGMENT_NAMES, PROFILE, METRICS, {**INFO, **info})
        return ctx["summary"]["version_notes"]

    assert notes() == []  # nothing known about the registry: nothing to say
    assert notes(version=3, champion_version="3", version_counts={"3": 10}) == []  # 3 and "3" are one version
    assert notes(version="3", champion_version="4", version_counts={"3": 10}) == [
        s["note_not_champion"].format(version="3", champion="4")
    ]
    assert notes(version="3", champion_version="", version_counts={"3": 10}) == [
        s["note_no_champion"].format(version="3")
    ]
    mixed = notes(version="3", champion_version="3", version_counts={"3": 7, "2": 2})
    assert mixed == [s["note_mixed_versions"].format(versions="v3: 70.0%, v2: 20.0%, ?: 10.0%", version="3")]
    assert notes(version="4", champion_version="4", version_from_champion=True) == [
        s["note_no_version"].format(version="4")
    ]


# --------------------------------------------------------------------------- languages


def _headings(lang: str) -> list[str]:
    return [v for k, v in report.strings(lang).items() if k.startswith("h_")]


def full_context(scheme, lang: str, **kw) -> dict:
    """A context with every section: revenue, migration, drift and the worklist, in ``lang``."""
    frame = make_predictions(scheme, list("ABCDEABCDE"))
    extra = {"migration": _migration(), "drift": _drift(), "worklist": make_worklist(frame, lang)}
    return context(scheme, frame, pd.Series(np.arange(10, dtype=float)), lang=lang, **extra, **kw)


def test_zh_output_is_chinese(scheme5):
    html = report.render(full_context(scheme5, "zh"), "zh")
    assert '<html lang="zh">' in html and '<meta charset="utf-8">' in html
    for lv in scheme5.levels:
        assert lv.zh in html and lv.action_zh in html and lv.meaning_zh in html
    for heading in _headings("zh"):
        assert heading in html
    for heading in _headings("en"):
        assert f">{heading}<" not in html, heading
    for lv in scheme5.levels:
        assert lv.en not in html
    assert "近期购买、高消费" in html and "recent buyers, high spend" not in html


def test_en_output_is_english(scheme5):
    html = report.render(full_context(scheme5, "en"), "en")
    assert '<html lang="en">' in html
    for lv in scheme5.levels:
        assert lv.en in html and lv.action_en in html
    for heading in _headings("en"):
        assert f">{heading}<" in html, heading
    assert not CJK.search(html), CJK.search(html)


def test_every_reason_predict_gives_reads_in_chinese_in_the_chinese_report():
    from leadtier.features import inputs
    from leadtier.pipelines import predict

    from tests.conftest import REPO

    cfg = load_config(REPO / "configs" / "demo_b2b.yaml")  # entities on their own clock: the most reasons
    reasons = [why for _, why in [*predict.scoring_rules(cfg), predict.CLOSED_RULE]]
    assert len(reasons) == 6
    reasons += [inputs.MISSING_ID, inputs.MARKER_ID, inputs.PADDED_ID, "derived column 'x' does not evaluate"]
    reasons += ["column 'order date' does not parse as a date", "excluded by tables.customers.exclude['tests']"]
    zh, en = report.strings("zh", "deal"), report.strings("en", "deal")
    for reason in reasons:
        assert CJK.search(report.reason_text(reason, zh)), reason
        assert report.reason_text(reason, en) == reason
    unknown = "a reason no template knows {x}"
    assert report.reason_text(unknown, zh) == unknown


def test_i18n_files_have_the_same_keys():
    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
        return out

    en, zh = report.strings("en"), report.strings("zh")
    assert keys(en) == keys(zh)
    assert all(isinstance(v, str) and v for v in zh.values() if not isinstance(v, dict))


def _visible_text(html: str) -> str:
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


@pytest.mark.parametrize(
    ("lang", "entity", "word", "customer"),
    [
        ("en", "deal", "Deals scored", "ustomer"),
        ("en", "lead", "Leads scored", "ustomer"),
        ("zh", "deal", "评分商机数", "客户"),
        ("zh", "lead", "评分线索数", "客户"),
    ],
)
def test_the_report_names_what_a_row_is(scheme5, lang, entity, word, customer):
    """A report on deals or leads says deals or leads wherever it would say customers."""
    text = _visible_text(report.render(full_context(scheme5, lang, entity=entity), lang))
    for lv in scheme5.levels:  # the scheme's own words are the company's ("customer case studies")
        for said in (getattr(lv, f"{part}_{lang}") for part in ("action", "meaning")):
            text = text.replace(said, " ")
    assert word in text
    assert customer not in text, text[max(0, text.find(customer) - 80) : text.find(customer) + 80]
    plain = _visible_text(report.render(full_context(scheme5, lang), lang))
    assert customer in plain and word not in plain


def test_entity_words_keep_capitals_articles_and_placeholders():
    en = report.strings("en", "account")
    assert en["value_estimated_title"].startswith("The value of this account is unknown")
    assert "{customers_seen} of the evaluated accounts" in en["rows_counts_backtest"]
    assert report._swap_en(
        "A customer, a customer's tier; Customers", ["customer", "customers"], ["account", "accounts"]
    ) == ("An account, an account's tier; Accounts")
    placeholders = report._swap_en("{customers} of {customer}", ["customer", "customers"], ["deal", "deals"])
    assert placeholders == "{customers} of {customer}"  # a placeholder keeps its name
    assert report.strings("zh", "lead")["rows_counts"].startswith("{train} 条线索用于训练")
    with pytest.raises(ValueError, match="report entity must be one of .*Got 'patient' instead"):
        report.strings("en", "patient")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_summary_says_which_input_rows_were_not_scored_and_where_they_are_listed(scheme5, tmp_path, lang):
    pred = tmp_path / "predictions.parquet"
    run = {"files": {"predictions.parquet": {"run_id": "r2"}, "predictions.rejects.csv": {"run_id": "r2"}}}
    assert report.left_out_rows(pred, run) is None  # every row scored: no rejects file, no note
    reasons = ["duplicate customer_id: only the first occurrence is read"] * 3 + [
        "missing customer_id",
        "skipped: closed (won or lost) before the as-of date",
        *[f"column 'c{i}' does not parse as a date" for i in range(5)],
    ]
    pd.DataFrame({"input_row": range(2, 12), "customer_id": "x", "reason": reasons}).to_csv(
        tmp_path / "predictions.rejects.csv", index=False
    )
    left = report.left_out_rows(pred, run)
    # a run stopped by predict.max_reject_share left its rejects beside the last good predictions: not theirs
    stopped = {"files": {"predictions.parquet": {"run_id": "r1"}, "predictions.rejects.csv": {"run_id": "r2"}}}
    assert report.left_out_rows(pred, stopped) is None and report.left_out_rows(pred, None) is None
    assert (left["rejected"], left["skipped"], left["more"], left["file"]) == (9, 1, 3, "predictions.rejects.csv")
    assert left["reasons"][0] == {"reason": reasons[0], "count": 3}
    frame = make_predictions(scheme5, list("ABCDE"))
    html = report.render(context(scheme5, frame, lang=lang, left_out=left), lang)
    s = report.strings(lang)
    assert s["left_out_note"].format(rejected=9, skipped=1, file="predictions.rejects.csv") in html
    said = {"en": reasons[0], "zh": "customer_id 重复：只读取第一次出现的行"}[lang]  # in the report's language
    assert f"3 · {said}" in html and s["left_out_more"].format(n=3) in html
    assert 'id="left-out"' not in report.render(context(scheme5, frame, lang=lang), lang)


def test_render_language_must_match_context(scheme5):
    ctx = context(scheme5, make_predictions(scheme5, ["A"]), lang="en")
    with pytest.raises(ValueError, match="lang"):
        report.render(ctx, "zh")
    with pytest.raises(ValueError, match="en.*zh"):
        report.strings("fr")


# --------------------------------------------------------------------------- safety


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_no_external_urls_and_no_personal_data(scheme5, lang):
    frame = make_predictions(scheme5, list("ABCDE") * 4)
    frame["reasons"] = "+ many quote requests"
    ctx = context(
        scheme5,
        frame,
        pd.Series(np.arange(20, dtype=float)),
        lang=lang,
        migration=_migration(),
        drift=_drift(),
    )
    html = report.render(ctx, lang)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "@import" not in html and "url(" not in html
    for value in PLANTED.values():
        assert value not in html
    assert "planted" not in html.lower()


def test_text_is_escaped(scheme5):
    names = {0: {"en": "<script>alert(1)</script>", "zh": "x"}, 1: {"en": "ok", "zh": "y"}}
    frame = make_predictions(scheme5, ["A", "B"])
    frame["reasons"] = ["<img src=x onerror=alert(1)>", ""]
    html = report.render(report.build_context(frame, scheme5, names, PROFILE, METRICS, INFO), "en")
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_empty_predictions_raise_naming_the_file(scheme5, tmp_path):
    empty = make_predictions(scheme5, ["A"]).iloc[0:0]
    with pytest.raises(ValueError, match="scored.parquet"):
        report.build_context(empty, scheme5, source="scored.parquet")
    path = tmp_path / "empty_predictions.parquet"
    empty.to_parquet(path, index=False)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        report.read_predictions(path)
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    with pytest.raises(ValueError, match="empty_predictions.parquet"):
        report.run(cfg, predictions=path, output=tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_bad_predictions_are_explained(scheme5, tmp_path):
    frame = make_predictions(scheme5, ["A", "Z"])
    with pytest.raises(ValueError, match="'Z'"):
        context(scheme5, frame)
    with pytest.raises(ValueError, match="segment_id"):
        context(scheme5, frame.drop(columns=["segment_id"]))
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        report.read_predictions(tmp_path / "nope.parquet")


def test_read_predictions_csv_keeps_codes_as_text_and_drops_personal(tmp_path):
    scheme = TierScheme(
        title_en="Deal heat",
        title_zh="成交热度",
        levels=[TierLevel(code="90", en="90%", zh="90%"), TierLevel(code="30", en="30%", zh="30%")],
    )
    frame = make_predictions(scheme, ["90", "30", "90"])
    frame["customer_id"] = ["007", "008", "009"]
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    back = report.read_predictions(path)
    assert not set(PLANTED) & set(back.columns)
    assert back["customer_id"].tolist() == ["007", "008", "009"]
    ctx = report.build_context(back, scheme, SEGMENT_NAMES, PROFILE, METRICS, INFO)
    assert [t["count"] for t in ctx["summary"]["tiers"]] == [2, 1]


# --------------------------------------------------------------------------- optional sections


def _migration() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "previous_tier": ["B", "A", "C", None, "E", "D"],
            "tier": ["A", "B", "C", "A", None, "D"],
            "change": ["upgraded", "downgraded", "unchanged", "new", "gone", "unchanged"],
        }
    )


def _drift() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": ["rfm_recency_days", "ix_count_30d", "odd_col"],
            "psi": [0.05, 0.31, 0.12],
            "warning": [False, True, False],
        }
    )


def test_optional_sections_only_when_given(scheme5):
    frame = make_predictions(scheme5, list("ABCDE"))
    plain = report.render(context(scheme5, frame), "en")
    assert 'id="migration"' not in plain and 'id="drift"' not in plain
    ctx = context(scheme5, frame, migration=_migration(), drift=_drift())
    mig = {r["change"]: r["count"] for r in ctx["migration"]["rows"]}
    assert mig == {"upgraded": 1, "downgraded": 1, "unchanged": 2, "new": 1, "gone": 1}
    assert [r["change"] for r in ctx["migration"]["rows"]] == list(report.CHANGES)
    assert ctx["drift"]["rows"][0]["feature"] == "ix_count_30d"  # warnings first
    assert ctx["drift"]["n_warnings"] == 1
    html = report.render(ctx, "en")
    assert 'id="migration"' in html and 'id="drift"' in html
    assert html.count('<tr class="warn">') == 1
    assert "Interactions in the last 30 days" in html


# --------------------------------------------------------------------------- scale


def test_large_input_stays_small(scheme5):
    rng = np.random.default_rng(0)
    n = 60_000
    codes = np.array(scheme5.codes)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:07d}" for i in range(n)],
            "tier": codes[rng.integers(0, len(codes), n)],
            "score": rng.uniform(0, 100, n).round(2),
            "segment_id": rng.integers(0, 2, n),
            "reasons": "+ many quote requests in 30 days; - no purchase in 180 days",
            "email": "planted@example.com",
        }
    )
    for c in codes:
        frame[f"proba_{c}"] = rng.uniform(0, 1, n)
    revenue = pd.Series(rng.lognormal(6, 2, n))
    top_n = 50
    ctx = report.build_context(
        frame, scheme5, SEGMENT_NAMES, PROFILE, METRICS, INFO, revenue=revenue, lang="en", top_n=top_n
    )
    html = report.render(ctx, "en")
    assert len(html.encode()) < 5_000_000
    assert sum(len(t["rows"]) for t in ctx["top"]) == top_n * (len(codes) - 1)  # not the lowest tier
    assert html.count('<td class="id">') == top_n * (len(codes) - 1)
    for t in ctx["top"]:
        scores = [r["score"] for r in t["rows"]]
        assert scores == sorted(scores, reverse=True)


# --------------------------------------------------------------------------- call first and the worklist


def _sections(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', html)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_call_first_opens_the_report_with_the_first_week_of_the_worklist(scheme5, lang):
    frame = make_predictions(scheme5, list("ABCDE") * 8, scores=list(np.linspace(95, 5, 40)))
    wl = make_worklist(frame, lang, contacts_per_week=3, weeks=2, values=np.arange(40, dtype=float) + 100)
    ctx = context(scheme5, frame, lang=lang, worklist=wl, drift=_drift(), migration=_migration())
    cf = ctx["call_first"]
    week1 = wl[(wl["status"] == "planned") & (wl["week"] == 1)]
    assert cf["available"] and cf["total"] == len(week1) == 6  # two owners, three calls each
    assert {r["customer_id"] for r in cf["rows"]} == set(week1["customer_id"])
    evs = [r["expected_value"] for r in cf["rows"]]
    assert evs == sorted(evs, reverse=True)
    first = cf["rows"][0]
    assert first["due"] and first["owner"] in ("ann", "bob") and first["reasons"].endswith("(↑)")
    assert first["action"] == getattr(scheme5.level(first["tier"]), f"action_{lang}")
    assert (cf["start"], cf["end"]) == ("2026-06-30", "2026-07-06")
    html = report.render(ctx, lang)
    s = report.strings(lang)
    assert _sections(html)[:3] == ["call-first", "worklist", "summary"]
    assert re.search(r'<nav[^>]*>\s*<a href="#call-first">', html)
    calls = html[html.index('<section id="call-first">') : html.index('<section id="worklist">')]
    assert f"<h2>{s['h_call_first']}</h2>" in calls and f"<th>{s['owner']}</th>" in calls
    assert calls.count("<tr>") == 1 + len(cf["rows"]) and first["action"] in calls
    assert all(f'data-label="{s[k]}"' in calls for k in ("due_date", "action", "reasons"))  # phone cards


def test_worklist_table_is_capped_says_so_and_links_the_full_csv(scheme5):
    frame = make_predictions(scheme5, list("ABCDE") * 8)
    wl = make_worklist(frame, contacts_per_week=4, weeks=2)
    ctx = context(scheme5, frame, worklist=wl, worklist_rows=7, worklist_csv="../demo/worklist.csv")
    w = ctx["worklist"]
    assert (w["shown"], w["total"]) == (7, len(wl)) and len(w["rows"]) == 7
    assert sum(w["counts"].values()) == len(wl) and w["counts"]["no_capacity"] > 0
    head = report.worklist_head(wl, 7)
    assert head["status"].tolist() == ["planned"] * 7 and head["week"].tolist() == [1] * 7  # most urgent first
    html = report.render(ctx, "en")
    s = report.strings("en")
    assert s["worklist_shown"].format(shown=7, total=len(wl)) in html
    assert '<a href="../demo/worklist.csv" class="csvlink">' in html
    table = html[html.index('<table id="worklist-table"') : html.index("</table>", html.index('id="worklist-table"'))]
    assert table.count("<tr>") == 1 + 7
    keys = re.findall(r'data-key="([a-z_]+)"', table)
    assert keys == [
        "customer_id",
        "tier",
        "score",
        "p_close",
        "expected_value",
        "due_date",
        "week",
        "status",
        "owner",
        "reasons",
    ]
    assert 'id="worklist-search"' in html and 'id="worklist-download"' in html and "new Blob(" in html
    # the chance column says which tiers it adds up: the best one, or worklist.close_tiers
    head = '<th class="n" data-key="p_close" data-type="num" title="Chance: A - closes within 1 month">Chance: A</th>'
    assert head in table  # a short heading; the tiers' names in its tooltip
    two = context(scheme5, frame, worklist=wl, worklist_close_tiers=["A", "B"], lang="zh")["worklist"]
    assert two["chance"] == "概率：A + B" and two["chance_title"] == "概率：A类 - 1个月内成交；B类 - 3个月内成交"
    all_rows = report.render(context(scheme5, frame, worklist=wl), "en")
    assert s["worklist_all_shown"].format(total=len(wl)) in all_rows and s["worklist_no_csv"] in all_rows


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_estimated_value_is_marked_in_the_worklist_and_explained(scheme5, lang):
    frame = make_predictions(scheme5, list("ABCDE") * 8)
    values = np.arange(40, dtype=float) + 100
    values[::4] = np.nan  # ten customers without a known value
    wl = make_worklist(frame, lang, contacts_per_week=40, weeks=2, values=values)
    ctx = context(scheme5, frame, lang=lang, worklist=wl)
    rows = ctx["worklist"]["rows"]
    unknown = set(frame["customer_id"][::4])
    assert {r["customer_id"] for r in rows if r["estimated"]} == unknown & {r["customer_id"] for r in rows}
    assert all(r["ev_text"].startswith("≈") == r["estimated"] for r in rows)
    html = report.render(ctx, lang)
    s = report.strings(lang)
    n = sum(r["estimated"] for r in rows)
    assert n > 0 and s["value_estimated_note"].format(n=n) in html
    assert html.count(f'title="{s["value_estimated_title"]}"') == n
    known = make_worklist(frame, lang, contacts_per_week=40, weeks=2, values=np.arange(40, dtype=float) + 100)
    assert 'id="worklist-estimated"' not in report.render(context(scheme5, frame, lang=lang, worklist=known), lang)


def test_without_a_worklist_the_call_first_section_says_why(scheme5):
    frame = make_predictions(scheme5, list("ABCDE"))
    html = report.render(context(scheme5, frame), "en")
    assert _sections(html)[0] == "call-first" and 'id="worklist"' not in html
    assert report.strings("en")["call_first_none"] in html
    failed = report.strings("zh")["call_first_failed"].format(error="interactions.csv not found")
    zh = report.render(context(scheme5, frame, lang="zh", worklist_note=failed), "zh")
    assert failed in zh and _sections(zh)[0] == "call-first"


def test_money_carries_the_configured_currency(scheme5):
    frame = make_predictions(scheme5, list("ABCDE") * 2)
    revenue = pd.Series(np.arange(10, dtype=float) * 1000)
    assert report.fmt_money(1234.5, "£") == "£1,234" and report.fmt_money(-1234.5, "EUR") == "-1,234 EUR"
    assert report.fmt_money(1234.5, None) == "1,234" and report.fmt_money(None, "£") == "–"
    html = report.render(context(scheme5, frame, revenue, currency="£"), "en")
    assert re.search(r'<td class="n">£\d', html)  # average past revenue per tier
    assert re.search(
        r'<td class="n">[\d,]+ EUR</td>', report.render(context(scheme5, frame, revenue, currency="EUR"), "en")
    )
    valued = make_worklist(frame, values=np.full(10, 2000.0))
    ctx = context(scheme5, frame, worklist=valued, currency="£")
    assert all(r["ev_text"].startswith("£") for r in ctx["worklist"]["rows"])
    unvalued = context(scheme5, frame, worklist=make_worklist(frame), currency="£")  # values are the placeholder 1
    assert not any("£" in r["ev_text"] for r in unvalued["worklist"]["rows"])
    # a segment's past revenue on its card carries the currency; counts and days do not
    seg = make_predictions(scheme5, ["A", "B", "C", "E"], segments=[0, 0, 1, 1])
    card = {p["column"]: p["text"] for p in context(scheme5, seg, currency="£")["segments"]["cards"][0]["profile"]}
    assert card["rfm_monetary"] == "£5,000" and card["rfm_recency_days"] == "12"
    assert "£5,000" in report.render(context(scheme5, seg, currency="£"), "en")


def test_drift_is_folded_to_the_features_that_drift_with_readable_names(scheme5):
    drift = pd.DataFrame(
        {
            "feature": ["rfm_recency_days", "ix_webinar_90d", "rfm_frequency_90d", "odd_col"],
            "psi": [0.05, 0.41, 0.02, 0.3],
            "warning": [False, True, False, True],
        }
    )
    frame = make_predictions(scheme5, list("ABCDE"))
    for lang, webinar in (("en", "… webinar in the last 90 days"), ("zh", "近 90 天网络研讨会 … 次")):
        ctx = context(scheme5, frame, lang=lang, drift=drift)
        assert [r["feature"] for r in ctx["drift"]["drifting"]] == ["ix_webinar_90d", "odd_col"]
        assert ctx["drift"]["drifting"][0]["label"] == webinar
        html = report.render(ctx, lang)
        shown = html[html.index('<table id="drifting"') : html.index("</table>", html.index('id="drifting"'))]
        assert webinar in shown and "odd_col" in shown
        assert report.feature_label("rfm_recency_days", lang) not in shown  # stable: only in the fold
        assert '<details class="noprint">' in html
    calm = context(scheme5, frame, drift=drift.assign(warning=False))
    assert report.strings("en")["drift_none"] in report.render(calm, "en")
    assert report.strings("en")["drift_noise_note"] not in report.render(calm, "en")  # an older drift file
    # a PSI above the threshold but within sampling noise is shown with that noise, and explained
    noisy = context(
        scheme5, frame, drift=drift.assign(psi_noise=[0.9, 0.1, 0.9, 0.9], warning=[False, True, False, False])
    )
    html = report.render(noisy, "en")
    assert (
        report.strings("en")["drift_noise_note"] in html
        and f'<th class="n">{report.strings("en")["psi_noise"]}</th>' in html
    )
    assert [r["noise"] for r in noisy["drift"]["rows"]][:1] == [0.1]  # the drifting one first


def test_reasons_are_computed_once_for_the_top_customers_and_the_embedded_worklist(scheme5, monkeypatch):
    from leadtier.pipelines import reasons

    frame = make_predictions(scheme5, list("ABCDE") * 30)
    wl = make_worklist(frame, contacts_per_week=5).assign(reasons="")
    asked = []

    def fake_explain(cfg, rows, lang, scorer=None):
        asked.append(rows["customer_id"].tolist())
        return pd.Series([f"why {c}" for c in rows["customer_id"]], index=rows.index, dtype=object)

    monkeypatch.setattr(reasons, "explain", fake_explain)
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    scorer = SimpleNamespace(scheme=scheme5)
    cfg.report.worklist_rows = 20
    out, listed = report.with_reasons(cfg, frame, wl, scorer, "en")
    assert len(asked) == 1 and len(asked[0]) == len(set(asked[0]))
    head = report.worklist_head(wl, 20)
    top = frame.iloc[report.top_rows(frame, cfg.report.top_n, list("ABCD"))]
    assert set(asked[0]) == set(head["customer_id"]) | set(top["customer_id"])
    assert (listed.loc[head.index, "reasons"] == "why " + head["customer_id"]).all()
    assert (listed.drop(index=head.index)["reasons"] == "").all()
    assert (out["reasons"].dropna() == "why " + out["customer_id"][out["reasons"].notna()]).all()
    assert out["reasons"].notna().sum() == len(top)


def test_positions_find_the_first_of_repeated_ids():
    from leadtier.pipelines.report import positions

    assert positions(["a", "b", "a", "c", "b"], ["b", "a", "x", "c"]).tolist() == [1, 0, -1, 3]
    assert positions(["a", "b"], ["b", "z"]).tolist() == [1, -1]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_model_card_counts_censored_entities_and_names_proxies_and_giveaways(scheme5, lang):
    protocol = {
        "evaluation": "ordered_holdout",
        "newest_share": 0.25,
        "order_by": "created_at",
        "rows": {"train": 964, "evaluation": 322, "overlap": 0},
        "entities": {
            "entities": 1500,
            "labelled": 1286,
            "censored": 200,
            "unlabelled": 14,
            "unlabelled_reasons": {
                "closed within its first 7 days (its features would show it)": 12,
                "no start date": 2,
            },
        },
        "survival": {"rows_recovered": 214, "train_rows": 1178},
        "censoring_proxies": {"days_open": 0.97},
        "giveaways": {"cust_stage": {"tier": "E", "auc": 0.986}},
        "share_gaps": {"A": {"observed": 0.236, "expected": 0.115}},
        "model": "survival",
    }
    frame = make_predictions(scheme5, list("ABCDE") * 4)
    ctx = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": protocol})
    text = ctx["model_card"]["rows_text"] + ctx["model_card"]["kind_text"]
    assert all(n in text for n in ("1,500", "1,286", "200", "days_open", "cust_stage (E, AUC 0.99)"))
    why = {
        "en": "14 had no label (12 closed within the first 7 days, the days the features describe; 2 no start date).",
        "zh": "14 个无标签（12 在开始后 7 天内已结束（特征所描述的时段内）；2 无开始日期）。",
    }
    assert why[lang] in text
    gap = {  # the tier by its name, not its code
        "en": "(A - closes within 1 month: 11.5 % expected, 23.6 % observed)",
        "zh": "（A类 - 1个月内成交：预计 11.5%，实际 23.6%）",
    }
    assert gap[lang] in text
    later = {"en": "live figures may be somewhat lower", "zh": "实际效果可能略低"}  # outcomes after the newest began
    assert later[lang] in ctx["model_card"]["protocol_text"]
    none = {**protocol, "entities": {"entities": 1500, "labelled": 1300, "censored": 200, "unlabelled": 0}}
    card = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": none})["model_card"]["rows_text"]
    assert ("0 had no label." if lang == "en" else "0 个无标签。") in card  # no empty brackets
    people = {k: v for k, v in protocol.items() if k not in ("entities", "survival")}  # labels from people
    plain = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": people})
    assert later[lang] not in plain["model_card"]["protocol_text"]
    folds = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": {**people, "evaluation": "kfold"}})
    untimed = {"en": "they are not calibrated on rows like these", "zh": "模型在这类样本上未能校准"}
    assert untimed[lang] in folds["model_card"]["rows_text"]  # no time to move in: no talk of shares moving
    assert untimed[lang] not in text
    assert ("censored" if lang == "en" else "删失") in text
    assert ("too good" if lang == "en" else "偏高") in text
    html = report.render(ctx, lang)
    assert "1,286" in html and "days_open" in html and "cust_stage" in html


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_backtests_model_card_counts_snapshots_and_says_its_customers_were_trained_on_earlier(scheme5, lang):
    protocol = {
        "evaluation": "backtest",
        "train_snapshots": ["2025-01-01", "2025-04-01"],
        "eval_snapshots": ["2025-10-01"],
        "rows": {"train": 9071, "evaluation": 3124, "overlap": 0, "customers_seen": 2706},
    }
    frame = make_predictions(scheme5, list("ABCDE"))
    text = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": protocol})["model_card"]["rows_text"]
    assert text == report.strings(lang)["rows_counts_backtest"].format(
        train="9,071", evaluation="3,124", overlap="0", customers_seen="2,706"
    )
    assert ("customers trained the model" if lang == "en" else "位客户用于训练") not in text
    older = {**protocol, "rows": {"train": 9071, "evaluation": 3124, "overlap": 0}}  # a model logged before
    text = report.build_context(frame, scheme5, lang=lang, model_info={"protocol": older})["model_card"]["rows_text"]
    assert text == report.strings(lang)["rows_counts_snapshots"].format(train="9,071", evaluation="3,124", overlap="0")


def test_an_attribute_feature_is_labelled_by_its_name_alone():
    assert report.feature_label("cust_balance", "en") == "balance"
    assert report.feature_label("cust_预算万元", "zh") == "预算万元"
    assert report.feature_label("ix_count_30d", "en") == "Interactions in the last 30 days"  # the report's own


def test_the_tier_table_shows_how_many_the_probabilities_expect_beside_the_decided_count(scheme5):
    frame = make_predictions(scheme5, list("AABBC") * 4)
    ctx = context(scheme5, frame)
    rows = {t["code"]: t for t in ctx["summary"]["tiers"]}
    for code in scheme5.codes:
        assert rows[code]["expected"] == pytest.approx(frame[f"proba_{code}"].sum())
    html = report.render(ctx, "en")
    table = html[html.index('id="tier-sizes"') : html.index("</table>", html.index('id="tier-sizes"'))]
    assert report.strings("en")["expected_count"] in table
    assert f'<td class="n">{rows["A"]["expected"]:,.0f}</td>' in table
    assert report.strings("en")["expected_note"] in html


def test_training_figures_draw_chinese_names_with_an_installed_cjk_font():
    import warnings

    from leadtier.pipelines import plots

    if not plots._cjk_font():
        pytest.skip("no CJK font installed (make browser installs fonts-wqy-microhei)")
    cm = pd.DataFrame([[5, 1], [2, 7]], index=["高意向", "低意向"], columns=["高意向", "低意向"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for every box it draws
        for fig in (
            plots.confusion(cm, "混淆矩阵"),
            plots.importance(pd.Series({"cust_预算_万元": 3.0, "rfm_x": 1.0})),
        ):
            fig.savefig(io.BytesIO(), format="png")


def test_without_a_cjk_font_the_training_figures_say_so_once_and_pass_other_warnings_on(monkeypatch, caplog):
    import logging
    import warnings

    from leadtier.pipelines import plots

    monkeypatch.setattr(plots, "_cjk_font", lambda: [])  # as on a machine with no Chinese font
    log = logging.getLogger("leadtier.test")
    with warnings.catch_warnings(record=True) as escaped, caplog.at_level("WARNING", logger="leadtier.test"):
        warnings.simplefilter("always")
        with plots.glyphs_missing_said_once(log):
            plots.importance(pd.Series({"cust_预算_万元": 3.0, "ix_拜访_30d": 1.0})).savefig(io.BytesIO(), format="png")
            warnings.warn("something else", UserWarning, stacklevel=1)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "are in no installed font" in said[0] and "fonts-wqy-microhei" in said[0], said
    assert [str(w.message) for w in escaped] == ["something else"]


def test_a_worklist_badge_is_a_short_tier_label_in_the_reports_language_else_the_code(scheme5, scheme2):
    from types import SimpleNamespace

    rows = pd.DataFrame({"customer_id": ["1", "2"], "tier": ["converted", "A"], "status": ["planned"] * 2})
    rows.loc[2] = ["3", "not_converted", "planned"]
    cases = ((scheme2, "zh", ["已成交", "A", "未成交"]), (scheme2, "en", ["Converted", "A", "Not converted"]))
    for scheme, lang, badges in (*cases, (scheme5, "zh", ["converted", "A", "not_converted"])):
        b = SimpleNamespace(scheme=scheme, lang=lang, codes=scheme.codes, colors={}, s=report.strings(lang))
        got = report._worklist_rows(b, rows, None)
        assert [r["badge"] for r in got] == badges  # 'A类 - 1个月内成交' is too long for a badge: its code


def test_the_plain_sentence_names_the_positive_tier_and_the_share_always_guessing_would_reach(scheme2, scheme5):
    two = scheme2
    best = two.codes[0]
    metrics = {"roc_auc": 0.9, "lift_top_decile": 7.26, f"observed_share_{best}": 0.0149, f"mean_proba_{best}": 0.0139}
    text = report._plain_sentence(metrics, {"accuracy": 0.985}, two, report.strings("en"), "en")
    assert f"whose tier turned out to be “{two.label(best, 'en')}”" in text and "higher 90 %" in text
    assert text.endswith("It expects 1.4 % of the evaluated customers to be in that tier; 1.5 % were.")
    five = scheme5
    metrics = {"accuracy": 0.875, "adjacent_miss_share": 0.6}
    text = report._plain_sentence(metrics, {"accuracy": 0.982}, five, report.strings("en"), "en")
    assert "about 7 in 8 evaluated customers in the right tier (88 %); 60 % of the misses are one tier off." in text
    assert text.endswith("Always naming the most common tier would be right for 98 %.")  # it does not beat that
    zh = report._plain_sentence(metrics, {}, five, report.strings("zh"), "zh")
    assert zh.endswith("只差一级。") and "约八分之七的被评估客户" in zh, zh  # not '约 8 分之 7'


def test_the_playbook_says_what_happened_to_earn_each_tier_under_outcome_labels():
    codes = ["A", "B", "C", "D", "E"]
    purchase = {"kind": "days_to_next_purchase", "thresholds_days": [7, 14, 30], "horizon_days": 45}
    words = report.outcome_words(purchase, codes, "en")
    assert words["A"] == "next purchase 0–7 days after the snapshot" and words["C"].startswith("next purchase 15–30")
    assert (words["D"], words["E"]) == (
        "next purchase 31–45 days after the snapshot",
        "no purchase within 45 days of the snapshot",
    )
    win = report.outcome_words({"kind": "days_to_win", "thresholds_days": [], "horizon_days": 90}, ["won", "not"], "zh")
    assert win == {"won": "开始后第 0–90 天内成交", "not": "丢单，或开始后 90 天内未成交"}
    late = report.outcome_words(
        {"kind": "days_to_win", "thresholds_days": [30], "horizon_days": 90}, "ABC", "en", None, 14
    )
    assert late["A"] == "won 14–30 days after its start"  # a win within the 14 days the features describe: no tier
    revenue = {"kind": "revenue_next_days", "cut_points": [1000, 100], "horizon_days": 180}
    assert report.outcome_words(revenue, ["high", "mid", "low"], "en", "£")["low"] == (
        "revenue below £100 in the 180 days after the snapshot"
    )
    assert report.outcome_words(purchase, ["A", "B"], "en") == {}  # levels that do not match the windows: no claim
    # labels.allow_empty_tiers left B out: the windows still belong to the tiers the labels were made in
    narrowed = report.outcome_words(purchase | {"codes": codes}, ["A", "C", "D", "E"], "en")
    assert set(narrowed) == {"A", "C", "D", "E"} and narrowed["C"] == words["C"] and narrowed["E"] == words["E"]
    stage = {"kind": "purchase_stage", "loyal_purchases": 4, "horizon_days": 180}
    stages = report.outcome_words(stage, ["loyal", "repeat", "first_time", "prospect"], "en")
    assert stages["loyal"] == "4 or more purchases in the 180 days after the snapshot"
    assert stages["prospect"] == "no purchase by 180 days after the snapshot"
    assert report.outcome_words(stage, ["loyal", "repeat", "first_time", "prospect"], "zh")["first_time"] == (
        "截至快照后第 180 天累计仅购买 1 次"
    )


def test_the_playbook_renders_the_outcome_beside_a_scheme_meaning_it_may_contradict(scheme5):
    frame = make_predictions(scheme5, list("ABCDE"))
    outcome = {"kind": "days_to_next_purchase", "thresholds_days": [7, 14, 30], "horizon_days": 45}
    ctx = report.build_context(frame, scheme5, SEGMENT_NAMES, PROFILE, METRICS, {**INFO, "label_outcome": outcome})
    html = report.render(ctx, "en")
    assert "<b>Labelled from what happened:</b> next purchase 0–7 days after the snapshot</div>" in html
    assert html.count("<b>Labelled from what happened:</b>") == 5


def test_a_tier_holding_far_more_customers_than_its_probabilities_expect_is_named(scheme2):
    best, rest = scheme2.codes
    frame = make_predictions(scheme2, [best] * 40 + [rest] * 60)
    frame[f"proba_{best}"] = 0.1  # the balanced decision put 40 in the rare tier; the probabilities expect 10
    frame[f"proba_{rest}"] = 0.9
    ctx = report.build_context(frame, scheme2, SEGMENT_NAMES, PROFILE, METRICS, INFO)
    notes = ctx["summary"]["inflated"]
    assert notes == [
        f"“{scheme2.label(best, 'en')}” holds 40 customers though their probabilities of it add up to about 10: "
        "many in it are far from sure to belong there, so within it call by score (train.decision and "
        "decision_balance set how readily a customer is put in a rarer tier)."
    ]
    assert notes[0] in report.render(ctx, "en")
    fair = report.build_context(make_predictions(scheme2, [best] * 40 + [rest] * 60), scheme2, SEGMENT_NAMES)
    assert fair["summary"]["inflated"] == []


def test_a_segments_typical_year_reads_as_a_year():
    assert report._profile_value("cust_year_established", 2006.0, None) == "2006"  # not 2,006
    assert report._profile_value("cust_employees", 2006.0, None) == "2,006"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_playbook_shows_what_must_be_true_of_each_party_at_a_relationship_level(lang):
    """The relationship scheme (客情关系) says per level what the project owner and the installer do."""
    relationship = load_config(ROOT / "configs" / "demo.yaml").schemes["relationship"]
    html = report.render(
        context(relationship, make_predictions(relationship, ["IV", "III", "II", "I"]), lang=lang), lang
    )
    party, item = {
        "en": ("Project owner:", "Our product is the only brand in the tender"),
        "zh": ("甲方：", "招标文件中我方产品为唯一品牌"),
    }[lang]
    assert f"<b>{party}</b><ul><li>" in html and f"<li>{item}</li>" in html
    assert html.count('class="meaning checklist"') == 8  # two parties at each of the four levels
