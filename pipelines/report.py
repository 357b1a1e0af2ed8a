"""Stage: the self-contained HTML tier and segment report (``leadtier report``).

Three layers, so the data work is testable without MLflow:

* :func:`build_context` turns a predictions frame plus model facts into plain aggregates
  (vectorised: a million scored customers take seconds);
* :func:`render` fills ``pipelines/templates/report.html.j2`` with strings from
  ``pipelines/i18n/<lang>.yaml``: one HTML file with inline CSS and SVG charts, no external URLs;
* :func:`run` reads the predictions file, loads the model that made them from the registry,
  rebuilds the scored customers' features for past revenue and segment profiles, and writes
  the report atomically.

Personal data: only the columns listed in :data:`PREDICTION_COLUMNS` are ever read from the
predictions frame; nothing per customer is rendered except the top N per tier and the worklist's
rows (customer id, tier, score, due date, owner, action, reasons: the call-first section and at most
``report.worklist_rows`` rows of the worklist table, which sorts, searches and downloads them as CSV with
a little inline script).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml
from leadtier.features.meta import format_value, meta_of, phrase
from leadtier.models.metrics import HIGHER_IS_BETTER, beaten_on
from leadtier.models.schemes import TierScheme
from leadtier.models.segments import is_days_since, segment_medians
from leadtier.models.text import clip
from leadtier.models.worklist import PLANNED, STATUS_ORDER
from leadtier.pipelines.config import today
from markupsafe import Markup, escape

log = logging.getLogger(__name__)
ENTITY_COUNTS = ("entities", "labelled", "censored", "unlabelled")

LANGS = ("en", "zh")
REQUIRED_COLUMNS = ("customer_id", "tier", "score", "segment_id")
# Everything the report may read from a predictions file (plus proba_<code> per level).
PREDICTION_COLUMNS = (
    "customer_id",
    "tier",
    "score",
    "segment_id",
    "segment",
    "model_version",
    "as_of",
    "reasons",
    "past_revenue",  # optional: when predict records it, the report skips the feature rebuild
    "tier_days_left",  # optional, entities on their own clock: the worklist calls before the tier's window closes
)
MODEL_KEYS = ("model", "logreg", "rfm_scorecard", "stage_now", "majority")
CARD_METRICS = (
    "macro_f1",
    "balanced_accuracy",
    "qwk",
    "log_loss",
    "brier",
    "ece",
    "roc_auc",
    "pr_auc",
    "lift_top_decile",
)
# Profile columns shown on segment cards, in this order, when present.
KEY_FEATURES = (
    "rfm_recency_days",
    "rfm_frequency",
    "rfm_monetary",
    "ix_count_30d",
    "ix_recency_days",
    "cust_tenure_days",
)
MAX_PROFILE_ROWS = 6
SHORT_CODE = 3  # tier codes all this short (A, IV, 90) name their tiers in the segment cards; else every one by label
CHANGES = ("upgraded", "downgraded", "unchanged", "new", "gone")
REVENUE_COLUMN = "rfm_monetary"
WORKLIST_ROWS = 1000  # the default of report.worklist_rows; all of them are in the worklist's CSV
INFLATED = 1.5  # a tier holding this many times the customers its probabilities expect is named in a note
CALL_FIRST_ROWS = 25  # rows of the call-first section (the first week's highest expected values)


# --------------------------------------------------------------------------- strings and formats


@lru_cache(maxsize=16)
def strings(lang: str, entity: str = "customer") -> dict[str, Any]:
    """The report's strings for ``lang`` from ``pipelines/i18n/<lang>.yaml``, written for customers; another
    ``entity`` (``report.entity``: lead, deal, account) takes the customer's place in every text."""
    if lang not in LANGS:
        raise ValueError(f"report language must be one of {list(LANGS)}. Got {lang!r} instead")
    text = resources.files("leadtier.pipelines").joinpath("i18n", f"{lang}.yaml").read_text(encoding="utf-8")
    texts = yaml.safe_load(text)
    nouns = texts["entity_nouns"]
    if entity not in nouns:
        raise ValueError(f"report entity must be one of {list(nouns)}. Got {entity!r} instead")
    if entity == "customer":
        return texts
    swap = _swap_en if lang == "en" else _swap_zh
    return _each_text(texts, lambda value: swap(value, nouns["customer"], nouns[entity]))


def _each_text(texts: Any, change) -> Any:
    """``texts`` (nested dicts and lists of strings) with ``change`` applied to every string value."""
    if isinstance(texts, dict):
        return {k: _each_text(v, change) for k, v in texts.items()}
    if isinstance(texts, list):
        return [_each_text(v, change) for v in texts]
    return change(texts) if isinstance(texts, str) else texts


# "customer", "Customers", "a customer": the word, its plural and an article before it
_EN_NOUN = re.compile(r"(?<!\{)\b(?:([Aa]n?) )?([Cc]ustomer)(s?)\b(?!\})")


def _swap_en(text: str, customer: list[str], noun: list[str]) -> str:
    """English ``text`` with ``noun`` (singular, plural) for the customer, keeping capitals and the article
    right ('a customer' -> 'an account'); ``{placeholders}`` such as ``{customers_seen}`` are not words."""

    def word(m: re.Match) -> str:
        article, written, plural = m.groups()
        out = noun[1] if plural else noun[0]
        out = out[:1].upper() + out[1:] if written[0].isupper() else out
        if article:
            a = "an" if out[0].lower() in "aeiou" else "a"
            out = f"{a[0].upper() + a[1:] if article[0].isupper() else a} {out}"
        return out

    return _EN_NOUN.sub(word, text)


def _swap_zh(text: str, customer: list[str], noun: list[str]) -> str:
    """Chinese ``text`` with ``noun`` (measure word, noun) for the customer's (位, 客户)."""
    return text.replace(customer[0] + customer[1], noun[0] + noun[1]).replace(customer[1], noun[1])


@lru_cache(maxsize=1)
def _template_source() -> str:
    return resources.files("leadtier.pipelines").joinpath("templates", "report.html.j2").read_text(encoding="utf-8")


def feature_label(column: str, lang: str, words: dict | None = None) -> str:
    """A readable name for a feature column: the report's own name, else its plain-word phrase from the
    feature metadata with the value left out ('… purchases in the last 90 days'; an attribute's
    'balance: …' is 'balance'; interaction types in ``words``, see ``features.type_words``), else the
    column name."""
    named = strings(lang).get("features", {}).get(column)
    if named:
        return named
    if meta_of(column) is None:
        return column
    text = phrase(column, "…", lang, words=words)
    return text.removesuffix(": …").removesuffix("：…")


def fmt_num(value: Any, digits: int | None = None) -> str:
    """Thousands separators; integers without decimals, small numbers with one or two."""
    if value is None:
        return "–"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    if digits is not None:
        return f"{v:,.{digits}f}"
    if v == int(v) or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.1f}" if abs(v) >= 1 else f"{v:,.2f}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage: 0.2345 -> '23.5%'."""
    if value is None:
        return "–"
    v = float(value)
    if not math.isfinite(v):
        return "–"
    return f"{100 * v:.{digits}f}%"


def fmt_money(value: Any, currency: str | None = None, digits: int = 0) -> str:
    """An amount with thousands separators and ``report.currency``: a symbol before it ('£1,235'), a code
    after it ('1,235 EUR'), nothing when none is configured."""
    text = fmt_num(value, digits)
    if not currency or text == "–":
        return text
    sign, text = ("-", text[1:]) if text.startswith("-") else ("", text)
    return f"{sign}{text} {currency}" if currency.isalpha() else f"{sign}{currency}{text}"


TIER_ANCHORS = ((27, 127, 75), (107, 179, 74), (224, 176, 46), (224, 123, 57), (192, 57, 43))


def tier_colors(n: int) -> list[str]:
    """One colour per level, best first: dark green, green, amber, orange, red (interpolated for other n)."""
    if n <= 1:
        return ["#{:02x}{:02x}{:02x}".format(*TIER_ANCHORS[0])]
    out = []
    for i in range(n):
        pos = i * (len(TIER_ANCHORS) - 1) / (n - 1)
        lo = min(int(pos), len(TIER_ANCHORS) - 2)
        f = pos - lo
        rgb = [round(a + (b - a) * f) for a, b in zip(TIER_ANCHORS[lo], TIER_ANCHORS[lo + 1], strict=True)]
        out.append("#{:02x}{:02x}{:02x}".format(*rgb))
    return out


# --------------------------------------------------------------------------- inline SVG charts


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def svg_tier_bars(tiers: list[dict], with_revenue: bool, s: dict[str, Any]) -> Markup:
    """Horizontal bars: share of customers (and of past revenue) per tier."""
    label_w, bar_w, right = 215, 355, 100
    bar_h, gap = 16, 14
    rows_h = bar_h * (2 if with_revenue else 1)
    top = 30
    height = top + len(tiers) * (rows_h + gap) + 4
    width = label_w + bar_w + right
    vmax = max([t["pct"] for t in tiers] + ([t["revenue_pct"] or 0 for t in tiers] if with_revenue else [])) or 1
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(s["chart_tier_sizes" if with_revenue else "chart_tier_counts"])}">',
        f'<rect x="{label_w}" y="6" width="12" height="12" fill="#4a6fa5"/>'
        f'<text x="{label_w + 18}" y="16" class="legend">{escape(s["legend_customers"])}</text>',
    ]
    if with_revenue:
        parts.append(
            f'<rect x="{label_w + 170}" y="6" width="12" height="12" fill="#d9a441"/>'
            f'<text x="{label_w + 188}" y="16" class="legend">{escape(s["legend_revenue"])}</text>'
        )
    y = top
    for t in tiers:
        parts.append(
            f'<rect x="0" y="{y}" width="6" height="{rows_h}" fill="{t["color"]}"/>'
            f'<text x="12" y="{y + rows_h / 2 + 4:.0f}" class="lbl"><title>{escape(t["label"])}</title>'
            f"{escape(_truncate(t['label'], 28))}</text>"
        )
        w = bar_w * t["pct"] / vmax
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{max(w, 1):.1f}" height="{bar_h - 2}" fill="#4a6fa5">'
            f"<title>{escape(t['label'])}: {t['count']:,} ({fmt_pct(t['pct'])})</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h - 5}" class="val">'
            f"{fmt_pct(t['pct'])} · {t['count']:,}</text>"
        )
        if with_revenue:
            rp = t["revenue_pct"] or 0.0
            w = bar_w * rp / vmax
            yr = y + bar_h
            parts.append(
                f'<rect x="{label_w}" y="{yr}" width="{max(w, 1):.1f}" height="{bar_h - 2}" fill="#d9a441">'
                f"<title>{escape(t['label'])}: {fmt_pct(rp)}</title></rect>"
                f'<text x="{label_w + w + 6:.1f}" y="{yr + bar_h - 5}" class="val">{fmt_pct(rp)}</text>'
            )
        y += rows_h + gap
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_lorenz(points: list[tuple[float, float]], top20: float, s: dict[str, Any]) -> Markup:
    """Cumulative share of revenue (y) against share of customers, largest first (x)."""
    w, h, pad_l, pad_b, pad_t, pad_r = 360, 250, 56, 36, 10, 14
    pw, ph = w - pad_l - pad_r, h - pad_b - pad_t

    def xy(x: float, y: float) -> str:
        return f"{pad_l + x * pw:.1f},{pad_t + (1 - y) * ph:.1f}"

    line = " ".join(xy(x, y) for x, y in points)
    grid = []
    for g in (0, 0.25, 0.5, 0.75, 1.0):
        gy, gx = pad_t + (1 - g) * ph, pad_l + g * pw
        grid.append(
            f'<line x1="{pad_l}" x2="{pad_l + pw}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>'
            f'<text x="{pad_l - 6}" y="{gy + 4:.1f}" class="tick" text-anchor="end">{g:.0%}</text>'
            f'<text x="{gx:.1f}" y="{pad_t + ph + 15}" class="tick" text-anchor="middle">{g:.0%}</text>'
        )
    mx, my = xy(0.2, top20).split(",")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{escape(s["lorenz_title"])}">{"".join(grid)}'
        f'<line x1="{pad_l}" y1="{pad_t + ph}" x2="{pad_l + pw}" y2="{pad_t}" class="diag"/>'
        f'<polyline points="{line}" class="curve"/>'
        f'<line x1="{mx}" x2="{mx}" y1="{pad_t + ph}" y2="{my}" class="mark"/>'
        f'<line x1="{pad_l}" x2="{mx}" y1="{my}" y2="{my}" class="mark"/>'
        f'<circle cx="{mx}" cy="{my}" r="4" class="dot"><title>20% → {fmt_pct(top20)}</title></circle>'
        f'<text x="{float(mx) + 7:.1f}" y="{float(my) + 14:.1f}" class="val">{fmt_pct(top20)}</text>'
        f'<text x="{pad_l + pw / 2:.1f}" y="{h - 3}" class="tick" text-anchor="middle">'
        f"{escape(s['lorenz_x'])}</text>"
        f'<text transform="translate(12,{pad_t + ph / 2:.1f}) rotate(-90)" class="tick" text-anchor="middle">'
        f"{escape(s['lorenz_y'])}</text>"
        f"</svg>"
    )


def svg_stack(mix: list[dict]) -> Markup:
    """A 100 % stacked bar of tier shares (tier mix of one segment)."""
    parts = ['<svg class="stack" viewBox="0 0 300 16" preserveAspectRatio="none" role="img">']
    x = 0.0
    for m in mix:
        if m["pct"] <= 0:
            continue
        w = 300 * m["pct"]
        parts.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="16" fill="{m["color"]}">'
            f"<title>{escape(m['label'])}: {m['count']:,} ({fmt_pct(m['pct'])})</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return Markup("".join(parts))


# --------------------------------------------------------------------------- context


def check_predictions(predictions: pd.DataFrame, scheme: TierScheme, source: str) -> None:
    """Scored customers with the columns of `leadtier predict`, each once, in tiers of ``scheme``; a
    :class:`~leadtier.pipelines.sources.InputError` naming ``source`` (the file) and the column otherwise."""
    from leadtier.pipelines.sources import InputError

    if not isinstance(predictions, pd.DataFrame):
        raise TypeError(f"predictions must be a pandas DataFrame. Got {type(predictions).__name__} instead")
    _check_columns(predictions, source)
    unknown = sorted(set(pd.unique(predictions["tier"].astype(str))) - set(scheme.codes))
    if unknown:
        raise InputError(
            f"predictions {source}: column 'tier' holds {unknown[:10]}, which are not levels of the scheme "
            f"{scheme.codes}; were they made by a model with another tier scheme?"
        )
    repeated = predictions["customer_id"][predictions["customer_id"].duplicated()]
    if len(repeated):
        examples = ", ".join(clip(v, quote=True) for v in pd.unique(repeated.astype(str))[:3])
        raise InputError(
            f"predictions {source}: column 'customer_id' repeats {len(repeated)} id(s), e.g. {examples}; "
            "one `leadtier predict` run scores each customer once"
        )


def _check_columns(predictions: pd.DataFrame, source: str) -> None:
    from leadtier.pipelines.sources import InputError

    if predictions.empty:
        raise InputError(f"the predictions in {source} hold no scored customers: nothing to report")
    missing = [c for c in REQUIRED_COLUMNS if c not in predictions.columns]
    if missing:
        raise InputError(
            f"the predictions in {source} lack the columns {missing}; expected the output of `leadtier predict` "
            f"({', '.join(REQUIRED_COLUMNS)}, proba_<tier>, segment, model_version, as_of)"
        )


def scored_as_of(cfg, predictions: pd.DataFrame) -> dt.date:
    """The date the predictions were scored as of (the latest of their ``as_of`` column), else the date
    ``predict`` scores as of (``predict.as_of``, else ``data.as_of``)."""
    if "as_of" in predictions.columns:
        vals = pd.to_datetime(pd.Series(pd.unique(predictions["as_of"].dropna())), errors="coerce").dropna()
        if len(vals):
            return vals.max().date()
    return cfg.predict.as_of or cfg.data.as_of


def _segment_name(names: dict, sid: int, lang: str, fallback: str | None) -> str:
    entry = names.get(sid, names.get(str(sid))) if names else None
    if isinstance(entry, dict) and entry.get(lang):
        return str(entry[lang])
    if isinstance(entry, str) and entry:
        return entry
    return fallback or f"#{sid}"


def _as_of_text(values: pd.Series | None) -> str:
    if values is None:
        return "–"
    uniq = pd.unique(values.dropna())
    if len(uniq) == 0:
        return "–"
    texts = sorted({(v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)[:10]) for v in uniq})
    return texts[0] if len(texts) == 1 else f"{texts[0]} – {texts[-1]}"


def positions(keys, ids) -> np.ndarray:
    """Row of each of ``ids`` in ``keys`` (first occurrence; -1 when absent).

    Hashes plain Python strings: pandas' ``isin``/``map`` on Arrow-backed strings take seconds
    per million rows, this takes about one.
    """
    index = pd.Index(np.asarray(keys, dtype=object).astype(str).astype(object), dtype=object)
    wanted = np.asarray(ids, dtype=object).astype(str).astype(object)
    if index.is_unique:
        return index.get_indexer(wanted)
    first = np.flatnonzero(~index.duplicated())
    found = index[first].get_indexer(wanted)
    return np.where(found >= 0, first[np.maximum(found, 0)], -1)


def _align_revenue(revenue: pd.Series | None, predictions: pd.DataFrame) -> np.ndarray | None:
    """Past revenue per predictions row; a Series indexed by ``customer_id`` is matched by id."""
    if revenue is None:
        return None
    values = pd.to_numeric(revenue, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if revenue.index.name == "customer_id":
        pos = positions(revenue.index, predictions["customer_id"])
        out = np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan) if len(values) else np.full(len(pos), np.nan)
    else:
        if len(revenue) != len(predictions):
            raise ValueError(
                f"revenue must have one value per predictions row ({len(predictions)}) or be indexed by "
                f"customer_id. Got {len(revenue)} values instead"
            )
        if revenue.index.equals(predictions.index) or not revenue.index.isin(predictions.index).all():
            out = values
        else:
            out = revenue.reindex(predictions.index).to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(out), out, 0.0)


def _concentration(rev: np.ndarray) -> dict[str, Any]:
    """Share of revenue from the top 20 % / 25 % of customers and the share bringing 80 %."""
    n = len(rev)
    pos = np.clip(rev, 0.0, None)  # refunds beyond purchases do not count as negative revenue
    total = float(pos.sum())
    if total <= 0:
        return {"total": 0.0}
    ordered = np.sort(pos)[::-1]
    cum = np.cumsum(ordered) / total

    def top_share(q: float) -> float:
        k = max(1, math.ceil(q * n))
        return float(cum[k - 1])

    k80 = int(np.searchsorted(cum, 0.8 - 1e-12)) + 1
    xs = np.linspace(0, 1, 101)
    idx = np.clip(np.ceil(xs * n).astype(int) - 1, 0, n - 1)
    ys = np.where(xs == 0, 0.0, cum[idx])
    return {
        "total": total,
        "top20": top_share(0.20),
        "top25": top_share(0.25),
        "customers_for_80": k80 / n,
        "buyers": float((pos > 0).mean()),
        "points": list(zip(xs.tolist(), ys.tolist(), strict=True)),
    }


def _model_card(
    metrics: dict | None, scheme: TierScheme, s: dict[str, Any], lang: str, info: dict, gains: dict | None = None
) -> dict[str, Any]:
    metrics = metrics or {}
    vs_logreg = (gains or {}).get("logreg") or {}
    keys = [k for k in MODEL_KEYS if isinstance(metrics.get(k), dict) and metrics[k]]
    rows = []
    for m in CARD_METRICS:
        vals = {k: metrics[k].get(m) for k in keys}
        finite = {k: float(v) for k, v in vals.items() if v is not None and math.isfinite(float(v))}
        if not finite:
            continue
        higher = HIGHER_IS_BETTER[m]
        best_v = max(finite.values()) if higher else min(finite.values())
        g = vs_logreg.get(m)
        rows.append(
            {
                "metric": m,
                "label": s.get(f"metric_{m}", m),
                "higher": higher,
                "gain": None
                if g is None
                else {
                    "text": f"{g['gain']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]",
                    "within_noise": g["low"] <= 0 <= g["high"],
                },
                "values": [
                    {
                        "key": k,
                        "value": finite.get(k),
                        "best": k in finite and math.isclose(finite[k], best_v, abs_tol=1e-12),
                    }
                    for k in keys
                ],
            }
        )
    per_tier = []
    model_metrics = metrics.get("model") or {}
    for lv in scheme.levels:
        p, r = model_metrics.get(f"precision_{lv.code}"), model_metrics.get(f"recall_{lv.code}")
        if p is not None or r is not None:
            per_tier.append({"code": lv.code, "label": scheme.label(lv.code, lang), "precision": p, "recall": r})
    return {
        **_measured(info.get("protocol") or {}, model_metrics, s, lambda c: _tier_name(scheme, c, lang)),
        "plain_text": _plain_sentence(model_metrics, metrics.get("majority") or {}, scheme, s, lang),
        "name": info.get("name") or "–",
        "version": info.get("version") or "–",
        "uri": info.get("uri") or "",
        "train_as_of": info.get("train_as_of") or "–",
        "run_id": info.get("run_id") or "",
        "models": [{"key": k, "label": s.get(f"model_{k}", k)} for k in keys],
        "rows": rows,
        "per_tier": per_tier,
        "available": bool(rows),
        "has_gain": any(r["gain"] for r in rows),
        "verdict_text": _verdict(vs_logreg, s),
        "beaten_text": _beaten(gains or {}, s),
    }


def _beaten(gains: dict, s: dict) -> str:
    """One sentence per baseline other than the logistic regression (:func:`_verdict` speaks of it) that
    scores better than the model beyond noise: in which of the card's metrics (not ECE, which the majority
    baseline's constant training shares win by construction); '' when none does."""
    shown = [k for k in MODEL_KEYS if k not in ("model", "logreg")]  # the card's baselines
    beaten = beaten_on({b: g for b, g in gains.items() if b in shown}, [m for m in CARD_METRICS if m != "ece"])
    return " ".join(
        s["beaten_by"].format(
            model=s.get(f"model_{b}", b), names=s["verdict_list"].join(s.get(f"metric_{m}", m) for m in metrics)
        )
        for b, metrics in beaten.items()
    )


def _verdict(gains: dict, s: dict) -> str:
    """The model against the logistic regression in one sentence, metric by metric: better or worse beyond
    noise (the whole 95 % interval on one side of 0), or not; '' without intervals."""
    sides: dict[str, list[str]] = {"better": [], "worse": [], "same": []}
    for m in CARD_METRICS:
        g = gains.get(m)
        if g is None:
            continue
        side = "better" if g["low"] > 0 else "worse" if g["high"] < 0 else "same"
        sides[side].append(s.get(f"metric_{m}", m))
    parts = [s[f"verdict_{k}"].format(names=s["verdict_list"].join(v)) for k, v in sides.items() if v]
    return f"{s['verdict_intro']}{s['verdict_join'].join(parts)}{s['verdict_end']}" if parts else ""


def _tier_name(scheme, code: str, lang: str) -> str:
    """A tier's name in ``lang`` ('High value'), or its code when the scheme has no such level."""
    return scheme.label(code, lang) if code in scheme.codes else code


def _measured(protocol: dict, metrics: dict, s: dict, name=str) -> dict[str, Any]:
    """What the model card says was measured: the protocol, the row counts and the chosen model (``name``:
    a tier's name by its code). Empty strings for a model logged without them."""
    kind = protocol.get("evaluation")
    words = {
        "holdout": lambda: s["protocol_holdout"].format(share=round(100 * protocol.get("test_size", 0))),
        "kfold": lambda: s["protocol_kfold"].format(folds=protocol.get("folds")),
        "ordered_holdout": lambda: (
            s["protocol_ordered_holdout"].format(
                share=round(100 * protocol.get("newest_share", 0)), order_by=protocol.get("order_by")
            )
            + (f" {s['protocol_outcomes_later']}" if isinstance(protocol.get("entities"), dict) else "")
        ),
        "backtest": lambda: s["protocol_backtest"].format(
            train=", ".join(protocol.get("train_snapshots", [])), eval=", ".join(protocol.get("eval_snapshots", []))
        ),
    }
    rows = protocol.get("rows")
    counts = ""
    if isinstance(rows, dict):
        backtest = "rows_counts_backtest" if "customers_seen" in rows else "rows_counts_snapshots"  # older models
        template = {"kfold": s["rows_counts_kfold"], "backtest": s[backtest]}.get(kind, s["rows_counts"])
        counts = template.format(**{k: f"{int(v):,}" for k, v in rows.items()})
        if "refit" in rows:
            counts += " " + s["rows_refit"].format(refit=f"{int(rows['refit']):,}")
    chosen = protocol.get("model")
    return {
        "protocol_text": words[kind]() if kind in words else "",
        "rows_text": " ".join(t for t in (counts, *_label_notes(protocol, s, name)) if t),
        "kind_text": s["model_kind"].format(kind=s.get(f"kind_{chosen}", chosen)) if chosen else "",
    }


def _unlabelled_why(reasons: dict, s: dict) -> str:
    """' (120 closed within the first 7 days; 3 no start date)' in the report's language, '' without any:
    each reason the label query gives (its number of days as ``{days}``) looked up in ``unlabelled_reasons``."""
    parts = []
    for reason, n in reasons.items():
        days = re.search(r"\d+", reason)
        key = re.sub(r"\d+", "{days}", reason, count=1)
        text = s["unlabelled_reasons"].get(key)
        parts.append(f"{int(n):,} " + (text.format(days=days.group()) if text and days else text or reason))
    return s["unlabelled_why"].format(reasons=s["list_separator"].join(parts)) if parts else ""


def _label_notes(protocol: dict, s: dict, name=str) -> list[str]:
    """What the labels left out: entities on their own clock (labelled, censored, unlabelled), the
    censored ones the survival model learned from, and features that stand in for having a label."""
    notes = []
    entities = protocol.get("entities")
    if isinstance(entities, dict) and "censored" in entities:
        why = _unlabelled_why(entities.get("unlabelled_reasons") or {}, s)
        counts = {k: f"{int(entities[k]):,}" for k in ENTITY_COUNTS}
        notes.append(s["entities_counts"].format(**counts, why=why))
    survival = protocol.get("survival")
    if isinstance(survival, dict):
        notes.append(s["survival_recovered"].format(n=f"{int(survival['rows_recovered']):,}"))
    if protocol.get("censoring_proxies"):
        notes.append(s["censoring_proxies"].format(names=", ".join(protocol["censoring_proxies"])))
    gaps = protocol.get("share_gaps")
    if isinstance(gaps, dict) and gaps:
        named = s["list_separator"].join(
            s["share_gap"].format(
                tier=name(k), expected=f"{100 * v['expected']:.1f}", observed=f"{100 * v['observed']:.1f}"
            )
            for k, v in gaps.items()
        )
        timed = protocol.get("evaluation") in ("ordered_holdout", "backtest")
        notes.append(s["share_gaps" if timed else "share_gaps_untimed"].format(gaps=named))
    giveaways = protocol.get("giveaways")
    if isinstance(giveaways, dict) and giveaways:
        named = ", ".join(f"{k} ({v['tier']}, AUC {float(v['auc']):.2f})" for k, v in giveaways.items())
        notes.append(s["giveaways"].format(names=named))
    return notes


ZH_NUMERALS = "零一二三四五六七八九十"  # a share 'about 5 in 6' reads 约六分之五


def _plain_sentence(metrics: dict, majority: dict, scheme: TierScheme, s: dict[str, Any], lang: str) -> str:
    """One sentence a marketer reads: for two tiers how well the model ranks (in the words of the scheme's
    positive tier) and how many it expects in that tier against how many were; otherwise how often the
    tier is right, how far off the misses are, and how often always naming the most common tier would be
    right (a share the model may not beat when one tier dominates)."""
    n_levels, best = len(scheme.levels), scheme.codes[0]
    if n_levels == 2 and metrics.get("roc_auc") is not None and metrics.get("lift_top_decile") is not None:
        text = s["plain_auc"].format(
            auc=round(100 * metrics["roc_auc"]), lift=f"{metrics['lift_top_decile']:.1f}", tier=scheme.label(best, lang)
        )
        observed, expected = metrics.get(f"observed_share_{best}"), metrics.get(f"mean_proba_{best}")
        if observed is None or expected is None:
            return text
        return text + s["plain_rate"].format(expected=f"{100 * expected:.1f}", observed=f"{100 * observed:.1f}")
    accuracy = metrics.get("accuracy")
    if accuracy is None or not math.isfinite(accuracy):
        return ""
    share = Fraction(accuracy).limit_denominator(10)
    k, n = share.numerator, share.denominator
    text = s["plain_accuracy"].format(k=k, n=n, k_zh=ZH_NUMERALS[k], n_zh=ZH_NUMERALS[n], pct=round(100 * accuracy))
    adjacent = metrics.get("adjacent_miss_share")
    if adjacent is not None and math.isfinite(adjacent) and n_levels > 2:
        text += s["plain_adjacent"].format(adj=round(100 * adjacent))
    else:
        text += s["plain_end"]
    common = majority.get("accuracy")
    if common is not None and math.isfinite(common):
        text += s["plain_majority"].format(pct=round(100 * common))
    return text


def _migration(migration: pd.DataFrame, scheme: TierScheme, s: dict[str, Any], lang: str) -> dict[str, Any]:
    missing = [c for c in ("previous_tier", "tier", "change") if c not in migration.columns]
    if missing:
        raise ValueError(f"migration frame lacks the columns {missing}")
    counts = migration["change"].astype(str).value_counts()
    total = int(len(migration))
    known = [*CHANGES, *sorted(set(counts.index) - set(CHANGES))]
    rows = [
        {
            "change": c,
            "label": s.get(f"change_{c}", c),
            "count": int(counts.get(c, 0)),
            "pct": int(counts.get(c, 0)) / total,
        }
        for c in known
    ]
    codes = scheme.codes
    prev = migration["previous_tier"].astype("object").where(migration["previous_tier"].notna(), "__new__")
    cur = migration["tier"].astype("object").where(migration["tier"].notna(), "__gone__")
    cross = pd.crosstab(prev.astype(str), cur.astype(str))
    row_keys = [*codes, *(["__new__"] if "__new__" in cross.index else [])]
    col_keys = [*codes, *(["__gone__"] if "__gone__" in cross.columns else [])]
    other_r = sorted(set(cross.index) - set(row_keys))
    other_c = sorted(set(cross.columns) - set(col_keys))
    row_keys += other_r
    col_keys += other_c
    cross = cross.reindex(index=row_keys, columns=col_keys, fill_value=0)

    def name(code: str) -> str:
        if code == "__new__":
            return s["change_new"]
        if code == "__gone__":
            return s["change_gone"]
        return scheme.label(code, lang) if code in codes else code

    return {
        "total": total,
        "rows": rows,
        "columns": [{"label": name(c), "short": c if c in codes else name(c)} for c in col_keys],
        "matrix": [{"label": name(r), "counts": [int(v) for v in cross.loc[r].to_numpy()]} for r in row_keys],
    }


def _drift(drift: pd.DataFrame, lang: str, words: dict | None = None) -> dict[str, Any]:
    missing = [c for c in ("feature", "psi") if c not in drift.columns]
    if missing:
        raise ValueError(f"drift frame lacks the columns {missing}")
    d = drift.copy()
    d["psi"] = pd.to_numeric(d["psi"], errors="coerce")
    if "warning" not in d.columns:
        d["warning"] = d["psi"] > 0.2
    d = d.sort_values(["warning", "psi"], ascending=[False, False], na_position="last")
    noise = pd.to_numeric(d["psi_noise"], errors="coerce") if "psi_noise" in d.columns else pd.Series(np.nan, d.index)
    rows = [
        {
            "feature": str(f),
            "label": feature_label(str(f), lang, words),
            "psi": None if pd.isna(p) else float(p),
            "noise": None if pd.isna(n) else float(n),
            "warning": bool(w),
        }
        for f, p, n, w in zip(d["feature"], d["psi"], noise, d["warning"].fillna(False), strict=True)
    ]
    drifting = [r for r in rows if r["warning"]]
    has_noise = any(r["noise"] is not None for r in rows)
    return {"rows": rows, "drifting": drifting, "n_warnings": len(drifting), "total": len(rows), "noise": has_noise}


def _version_notes(info: dict, version: str, n: int, s: dict) -> list[str]:
    """Warnings for the reader when the tiers may not be what production scores today."""
    notes = []
    counts = {f"v{v}": c for v, c in (info.get("version_counts") or {}).items()}
    if counts and sum(counts.values()) < n:  # some rows say which version, others do not
        counts["?"] = n - sum(counts.values())
    if len(counts) > 1:
        parts = ", ".join(f"{v}: {c / max(n, 1):.1%}" for v, c in counts.items())
        notes.append(s["note_mixed_versions"].format(versions=parts, version=version))
    champion = str(info.get("champion_version") or "")
    version = str(version)
    if info.get("version_from_champion"):
        notes.append(s["note_no_version"].format(version=version))
    elif "champion_version" in info and not champion:
        notes.append(s["note_no_champion"].format(version=version))
    elif champion and version and version != champion:
        notes.append(s["note_not_champion"].format(version=version, champion=champion))
    return notes


@dataclass
class _Scored:
    """What every section of the report reads: the scored customers, one entry per predictions row."""

    predictions: pd.DataFrame
    scheme: TierScheme
    lang: str
    s: dict[str, Any]  # the strings of ``lang``, for the report's entity
    tiers: pd.Series  # tier code per row (text)
    seg_ids: pd.Series  # segment id per row (-1: none)
    colors: dict[str, str]  # tier code -> colour
    tier_counts: pd.Series  # customers per tier code, in scheme order
    rev: np.ndarray | None  # past revenue per row, None when not known
    conc: dict[str, Any] | None  # revenue concentration (:func:`_concentration`)

    @property
    def codes(self) -> list[str]:
        return self.scheme.codes

    @property
    def n(self) -> int:
        return len(self.predictions)

    @property
    def has_revenue(self) -> bool:
        return bool(self.conc and self.conc["total"] > 0)


def _scored(predictions: pd.DataFrame, scheme: TierScheme, revenue, lang: str, entity: str) -> _Scored:
    codes = scheme.codes
    tiers = predictions["tier"].astype(str)
    rev = _align_revenue(revenue, predictions)
    return _Scored(
        predictions=predictions,
        scheme=scheme,
        lang=lang,
        s=strings(lang, entity),
        tiers=tiers,
        seg_ids=pd.to_numeric(predictions["segment_id"], errors="coerce").fillna(-1).astype("int64"),
        colors=dict(zip(codes, tier_colors(len(codes)), strict=True)),
        tier_counts=tiers.value_counts().reindex(codes, fill_value=0),
        rev=rev,
        conc=_concentration(rev) if rev is not None else None,
    )


def _tier_rows(b: _Scored) -> list[dict]:
    """Size and (when known) revenue of each tier, in scheme order."""
    rev_by_tier = (
        pd.Series(np.clip(b.rev, 0, None)).groupby(b.tiers.to_numpy()).sum().reindex(b.codes, fill_value=0.0)
        if b.has_revenue
        else None
    )
    rows = []
    for code in b.codes:
        cnt = int(b.tier_counts[code])
        r = float(rev_by_tier[code]) if rev_by_tier is not None else None
        proba = b.predictions.get(f"proba_{code}")
        rows.append(
            {
                "code": code,
                "label": b.scheme.label(code, b.lang),
                "color": b.colors[code],
                "count": cnt,
                "pct": cnt / b.n,
                # how many the probabilities put there: each customer counts in one tier, so it differs from count
                "expected": float(pd.to_numeric(proba, errors="coerce").sum()) if proba is not None else None,
                "revenue": r,
                "revenue_pct": r / b.conc["total"] if b.has_revenue else None,
                "avg_revenue": (r / cnt if cnt else None) if b.has_revenue else None,
            }
        )
    return rows


def _summary(b: _Scored, tier_rows: list[dict], model_info: dict) -> dict[str, Any]:
    """The summary section; sets ``model_info["version"]`` to the version(s) behind the predictions."""
    predictions = b.predictions
    versions = (
        [str(v) for v in pd.unique(predictions["model_version"].dropna().astype(str)) if str(v)]
        if "model_version" in predictions.columns
        else []
    )
    version = model_info.get("version") or (", ".join(sorted(versions)) if versions else "")
    model_info["version"] = version
    conc, has_revenue = b.conc, b.has_revenue
    summary = {
        "n_customers": b.n,
        "as_of": _as_of_text(predictions["as_of"]) if "as_of" in predictions.columns else "–",
        "model_name": model_info.get("name") or "–",
        "model_version": version or "–",
        "scheme_title": b.scheme.title_zh if b.lang == "zh" else b.scheme.title_en,
        "tiers": tier_rows,
        "revenue_state": "ok" if has_revenue else ("zero" if b.rev is not None else "missing"),
        "revenue_total": conc["total"] if has_revenue else None,
        "chart": svg_tier_bars(tier_rows, has_revenue, b.s),
        "version_notes": _version_notes(model_info, version, b.n, b.s),
        "inflated": [
            b.s["inflated_tier"].format(tier=t["label"], count=f"{t['count']:,}", expected=f"{t['expected']:,.0f}")
            for t in tier_rows
            if t["expected"] is not None and t["count"] >= max(INFLATED * t["expected"], t["expected"] + 10)
        ],
    }
    if has_revenue:
        summary.update(
            {
                "top20_share": conc["top20"],
                "top25_share": conc["top25"],
                "customers_for_80": conc["customers_for_80"],
                "buyers_share": conc["buyers"],
                "most_from_top": conc["top25"] > 0.5,
                "lorenz": svg_lorenz(conc["points"], conc["top20"], b.s),
            }
        )
    return summary


def _playbook(
    b: _Scored,
    tier_rows: list[dict],
    rules: list[dict] | None = None,
    outcome: dict | None = None,
    currency: str | None = None,
    first_day: int = 0,
) -> list[dict]:
    """Each tier's meaning, follow-up action, checklists (what must be true of each party) and mean score;
    with labels from rules (``rules``: the
    training's ``[{tier, when}]``) the rule that gave the tier, and with labels from outcomes
    (``outcome``: the training's ``labels.outcome``) what happened to earn it: what the model learnt,
    whatever the scheme's meaning says."""
    mean_score = pd.to_numeric(b.predictions["score"], errors="coerce").groupby(b.tiers.to_numpy()).mean()
    zh = b.lang == "zh"
    happened = outcome_words(outcome, b.scheme.codes, b.lang, currency, first_day) if outcome else {}
    given: dict[str, list[str]] = {}
    for r in rules or []:
        given.setdefault(str(r["tier"]), []).append(str(r["when"]))
    return [
        {
            **row,
            "rule": " OR ".join(f"({w})" if len(given[lv.code]) > 1 else w for w in given[lv.code])
            if lv.code in given
            else "",
            "meaning": (lv.meaning_zh if zh else lv.meaning_en) or "",
            "outcome": happened.get(lv.code, ""),
            "action": (lv.action_zh if zh else lv.action_en) or "",
            "checklists": [
                {"party": c.party_zh if zh else c.party_en, "items": c.zh if zh else c.en}
                for c in lv.checklists.values()
            ],
            "avg_score": float(mean_score[lv.code]) if lv.code in mean_score.index else None,
        }
        for lv, row in zip(b.scheme.levels, tier_rows, strict=True)
    ]


def outcome_words(
    outcome: dict, codes: list[str], lang: str, currency: str | None = None, first_day: int = 0
) -> dict[str, str]:
    """Tier code -> what happened to earn it under ``labels.outcome`` (``outcome``: its fields), in words:
    'next purchase 0–30 days after the snapshot', ...; {} when the levels do not match its windows. Its
    ``codes`` (the scheme's when labelled) place the windows when the model left empty tiers out.
    ``first_day``: for ``days_to_win``, the days after its start that the features describe, in which a
    win gives no tier (``features.entity_as_of_days``)."""
    labelled = [str(c) for c in outcome.get("codes") or codes]  # the codes before empty tiers were left out
    return {c: w for c, w in _outcome_windows(outcome, labelled, lang, currency, first_day).items() if c in codes}


def _outcome_windows(
    outcome: dict, codes: list[str], lang: str, currency: str | None, first_day: int
) -> dict[str, str]:
    """:func:`outcome_words` for the codes the labels were made in."""
    s = strings(lang)
    kind = outcome.get("kind")
    if kind == "revenue_next_days":
        cuts, days = [float(c) for c in outcome.get("cut_points", [])], int(outcome["horizon_days"])
        if not cuts or len(codes) != len(cuts) + 1:
            return {}
        words = [s["outcome_revenue_at_least"].format(amount=fmt_money(c, currency), days=days) for c in cuts]
        words.append(s["outcome_revenue_below"].format(amount=fmt_money(cuts[-1], currency), days=days))
        return dict(zip(codes, words, strict=True))
    if kind == "purchase_stage":
        if len(codes) != 4:
            return {}
        days, loyal = int(outcome["horizon_days"]), int(outcome.get("loyal_purchases", 3))
        keys = ("outcome_stage_loyal", "outcome_stage_repeat", "outcome_stage_first", "outcome_stage_prospect")
        return {code: s[key].format(days=days, n=loyal) for code, key in zip(codes, keys, strict=True)}
    prefix = "outcome_win" if kind == "days_to_win" else "outcome_purchase"
    bounds, horizon = [int(t) for t in outcome.get("thresholds_days", [])], int(outcome["horizon_days"])
    if len(codes) != len(bounds) + 2:
        return {}
    lows = [first_day if kind == "days_to_win" else 0, *(t + 1 for t in bounds)]
    words = [s[prefix].format(low=lo, high=hi) for lo, hi in zip(lows, [*bounds, horizon], strict=True)]
    return dict(zip(codes, [*words, s[f"{prefix}_none"].format(days=horizon)], strict=True))


def _segment_cards(
    b: _Scored,
    cross: pd.DataFrame,
    segment_names: dict | None,
    segment_profile: pd.DataFrame | None,
    currency: str | None = None,
    words: dict | None = None,
) -> list[dict]:
    """One card per segment, largest first: name, size, revenue share, profile (amounts of money with
    ``currency``) and tier mix."""
    profile = segment_profile if segment_profile is not None else pd.DataFrame()
    if len(profile):
        profile = profile.copy()
        profile.index = pd.to_numeric(pd.Series(profile.index), errors="coerce").fillna(-1).astype("int64").to_numpy()
    shown = profile_columns(profile)
    fallback_names: dict[int, str] = {}
    if "segment" in b.predictions.columns:
        first = pd.DataFrame({"sid": b.seg_ids.to_numpy(), "name": b.predictions["segment"].to_numpy()})
        fallback_names = first.drop_duplicates("sid").set_index("sid")["name"].astype(str).to_dict()
    seg_rev = pd.Series(np.clip(b.rev, 0, None)).groupby(b.seg_ids.to_numpy()).sum() if b.has_revenue else None
    codes_short = all(len(c) <= SHORT_CODE for c in b.codes)  # one choice per scheme: never 'low' beside '高意向'
    cards = []
    for sid in sorted(cross.index):
        size = int(cross.loc[sid].sum())
        mix = [
            {
                "code": c,
                "label": b.scheme.label(c, b.lang),
                "short": c if codes_short else b.scheme.label(c, b.lang),  # 'A', 'IV'; '高意向' for 'high'
                "color": b.colors[c],
                "count": int(cross.loc[sid, c]),
                "pct": int(cross.loc[sid, c]) / size if size else 0.0,
            }
            for c in b.codes
        ]
        prof = []
        if sid in profile.index:
            prof = [
                {
                    "column": c,
                    "label": feature_label(c, b.lang, words),
                    "text": _profile_value(c, profile.loc[sid, c], currency, b.lang),
                }
                for c in shown
            ]
        cards.append(
            {
                "id": int(sid),
                "name": _segment_name(segment_names or {}, int(sid), b.lang, fallback_names.get(sid)),
                "size": size,
                "pct": size / b.n,
                "revenue_pct": float(seg_rev.get(sid, 0.0)) / b.conc["total"] if b.has_revenue else None,
                "profile": prof,
                "mix": mix,
                "bar": svg_stack(mix),
            }
        )
    cards.sort(key=lambda c: -c["size"])
    return cards


def _profile_value(column: str, value: Any, currency: str | None, lang: str = "en") -> str:
    """A segment's median of ``column`` as the card shows it: money with ``currency``, a duration in minutes
    or seconds, else a number; a
    "days since" column without a median (most of the segment never bought) in words ('never bought')."""
    if is_days_since(column) and pd.isna(value):
        return phrase(column, None, lang)
    found = meta_of(column)
    if found and found[0].unit == "money":
        return fmt_money(value, currency)
    if found and found[0].unit == "seconds" and not pd.isna(value):
        return format_value(float(value), "seconds", lang)  # 7,303 s reads '121.7 min'
    if re.search(r"(^|_)year(_|$)", column) and not pd.isna(value) and 1800 <= float(value) <= 2200:
        return f"{float(value):.0f}"  # a year: 2006, not 2,006
    return fmt_num(value)


def _tier_segment(b: _Scored, cross: pd.DataFrame, cards: list[dict]) -> dict[str, Any]:
    """Customers per tier (rows) and segment (columns, in the cards' order)."""
    seg_order = [c["id"] for c in cards]  # largest first, as on the cards
    names = {c["id"]: c["name"] for c in cards}
    ts = cross.T.reindex(index=b.codes, columns=seg_order, fill_value=0)
    return {
        "columns": [{"id": sid, "name": names[sid]} for sid in seg_order],
        "rows": [
            {
                "code": code,
                "label": b.scheme.label(code, b.lang),
                "color": b.colors[code],
                "counts": [int(v) for v in ts.loc[code].to_numpy()],
                "total": int(ts.loc[code].sum()),
            }
            for code in b.codes
        ],
        "col_totals": [int(v) for v in ts.sum(axis=0).to_numpy()],
        "total": b.n,
    }


def listed_tiers(codes: list[str]) -> list[str]:
    """The tiers whose top customers the report lists: all but the lowest (a tier to move out of active
    follow-up), unless the scheme has a single tier."""
    return list(codes[:-1]) if len(codes) > 1 else list(codes)


def _top_customers(b: _Scored, segment_names: dict[int, str], top_n: int) -> list[dict]:
    """The ``top_n`` highest-scored customers of each tier but the lowest (:func:`listed_tiers`), with
    probability, segment and reasons."""
    predictions = b.predictions
    has_reasons = "reasons" in predictions.columns
    cols = ["customer_id", "tier", "score"] + (["reasons"] if has_reasons else [])
    small = predictions[cols].copy()
    small["tier"] = b.tiers.to_numpy()
    small["score"] = pd.to_numeric(small["score"], errors="coerce")
    small["_sid"] = b.seg_ids.to_numpy()
    small["_row"] = np.arange(b.n)
    best = (
        small.sort_values(["score", "_row"], ascending=[False, True], kind="stable")
        .groupby("tier", sort=False)
        .head(top_n)
    )
    top = []
    codes_short = all(len(c) <= SHORT_CODE for c in b.codes)  # 'A', 'IV' on the badge; no 'first_time' there
    for code in listed_tiers(b.codes):
        part = best[best["tier"] == code]
        pcol = f"proba_{code}"
        probs = (
            pd.to_numeric(predictions[pcol].to_numpy()[part["_row"].to_numpy()], errors="coerce")
            if pcol in predictions.columns
            else [None] * len(part)
        )
        rows = []
        for i, (cid, score, sid) in enumerate(zip(part["customer_id"], part["score"], part["_sid"], strict=True)):
            reason = part["reasons"].iloc[i] if has_reasons else None
            rows.append(
                {
                    "customer_id": str(cid),
                    "score": None if pd.isna(score) else float(score),
                    "proba": None if probs[i] is None or pd.isna(probs[i]) else float(probs[i]),
                    "segment": segment_names.get(int(sid), f"#{sid}"),
                    "reasons": ""
                    if reason is None or (isinstance(reason, float) and math.isnan(reason))
                    else str(reason),
                }
            )
        top.append(
            {
                "code": code,
                "badge": code if codes_short else "\u00a0",  # a colour chip without the code
                "label": b.scheme.label(code, b.lang),
                "color": b.colors[code],
                "count": int(b.tier_counts[code]),
                "rows": rows,
            }
        )
    return top


def worklist_head(worklist: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The first ``limit`` rows of the worklist, most urgent first: the planned ones by week and expected
    value (across owners), then the deferred ones, then those that do not fit."""
    if limit < 1:
        raise ValueError(f"the report embeds at least one worklist row. Got {limit} instead")
    keys = pd.DataFrame(
        {
            "order": worklist["status"].map(STATUS_ORDER).fillna(len(STATUS_ORDER)).to_numpy(dtype=float),
            "week": pd.to_numeric(worklist["week"], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
            "ev": -pd.to_numeric(worklist["expected_value"], errors="coerce").fillna(0.0).to_numpy(dtype=float),
            "id": worklist["customer_id"].astype(str).to_numpy(),
        },
        index=worklist.index,
    )
    order = keys.sort_values(["order", "week", "ev", "id"], kind="mergesort", na_position="last").index
    return worklist.loc[order[:limit]]


def _present(value: Any) -> Any:
    """``value``, or None for a missing one (None, NaN, NaT, pd.NA)."""
    return None if value is None or (not isinstance(value, str) and bool(pd.isna(value))) else value


def _iso(value: Any) -> str:
    value = _present(value)
    return "" if value is None else (value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)[:10])


BADGE_WIDTH = 14  # a tier label this narrow is the worklist's badge (in the report's language), else the code


def _width(text: str) -> int:
    """Columns ``text`` takes: a wide (East Asian) character counts two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _worklist_rows(b: _Scored, rows: pd.DataFrame, currency: str | None) -> list[dict]:
    """Worklist rows as the report shows them: tier badge, score, chance to close, expected value (money
    with ``currency`` when the values are money, marked ≈ when the customer's value was estimated), due
    date, week, status, owner, action and reasons."""
    out = []
    for r in rows.to_dict("records"):
        code, status = str(r["tier"]), str(r["status"])
        ev = _present(r.get("expected_value"))
        ev_text = fmt_money(ev, currency) if currency is not None else fmt_num(ev)
        estimated = bool(_present(r.get("value_estimated")))
        week = _present(r.get("week"))
        label = b.scheme.label(code, b.lang) if code in b.codes else code
        out.append(
            {
                "customer_id": str(r["customer_id"]),
                "tier": code,
                "label": label,
                "badge": label
                if _width(label) <= BADGE_WIDTH
                else code,  # '高价值'; 'A' for 'A - closes within 1 month'
                "color": b.colors.get(code, "#616e7c"),
                "score": _present(r.get("score")),
                "p_close": _present(r.get("p_close")),
                "expected_value": ev,
                "ev_text": f"≈{ev_text}" if estimated else ev_text,
                "estimated": estimated,
                "due": _iso(r.get("due_date")),
                "week": None if week is None else int(week),
                "late": bool(_present(r.get("late"))),
                "status": status,
                "status_label": b.s.get(f"status_{status.replace(' ', '_')}", status),
                "owner": str(_present(r.get("owner")) or ""),
                "action": str(_present(r.get("action")) or ""),
                "reasons": str(_present(r.get("reasons")) or ""),
            }
        )
    return out


def _money_currency(worklist: pd.DataFrame, currency: str | None) -> str | None:
    """``currency`` ('' when none is configured) when the worklist's values are money, None when every
    value is the placeholder 1 (no value column and no past revenue: expected value is a probability)."""
    values = pd.to_numeric(worklist["value"], errors="coerce") if "value" in worklist.columns else pd.Series([1.0])
    return None if values.fillna(1.0).eq(1.0).all() else (currency or "")


def _call_first(b: _Scored, worklist: pd.DataFrame | None, note: str | None, currency: str | None) -> dict:
    """The first week of the worklist, highest expected value first (at most :data:`CALL_FIRST_ROWS`);
    without a worklist, the ``note`` saying why."""
    if worklist is None:
        return {"available": False, "note": note or b.s["call_first_none"], "rows": []}
    week1 = worklist[(worklist["status"] == PLANNED) & (pd.to_numeric(worklist["week"], errors="coerce") == 1)]
    starts = pd.to_datetime(pd.Series(week1["week_start"]), errors="coerce").dropna()
    start = starts.min().date() if len(starts) else None
    return {
        "available": True,
        "note": note or "",
        "rows": _worklist_rows(b, worklist_head(week1, CALL_FIRST_ROWS), _money_currency(worklist, currency)),
        "total": len(week1),
        "start": start.isoformat() if start else "–",
        "end": (start + dt.timedelta(days=6)).isoformat() if start else "–",
        "has_owner": bool(week1["owner"].fillna("").astype(str).ne("").any()),
    }


def _worklist(
    b: _Scored,
    worklist: pd.DataFrame | None,
    limit: int,
    csv_path: str | None,
    currency: str | None,
    close_tiers: list[str] | None = None,
) -> dict | None:
    """The whole worklist, its first ``limit`` rows embedded (:func:`worklist_head`), with counts per
    status, the path of the full CSV and the heading of its chance column: the chance of the tiers it
    adds up (the best tier unless ``close_tiers`` says otherwise)."""
    if worklist is None:
        return None
    s = strings(b.lang)
    tiers = [t for t in (close_tiers or b.codes[:1]) if t in b.codes]
    named = s["list_separator"].join(b.scheme.label(t, b.lang) for t in tiers)  # the tooltip: names are long
    chance = s["chance_of"].format(tiers=" + ".join(tiers))
    head = worklist_head(worklist, limit)
    counts = worklist["status"].astype(str).value_counts()
    rows = _worklist_rows(b, head, _money_currency(worklist, currency))
    return {
        "rows": rows,
        "shown": len(head),
        "total": len(worklist),
        "csv": csv_path or "",
        "counts": {k.replace(" ", "_"): int(counts.get(k, 0)) for k in STATUS_ORDER},
        "estimated": sum(r["estimated"] for r in rows),
        "has_owner": bool(worklist["owner"].fillna("").astype(str).ne("").any()),
        "chance": chance,
        "chance_title": s["chance_of"].format(tiers=named),
    }


def build_context(
    predictions: pd.DataFrame,
    scheme: TierScheme,
    segment_names: dict | None = None,
    segment_profile: pd.DataFrame | None = None,
    metrics: dict | None = None,
    model_info: dict | None = None,
    revenue: pd.Series | None = None,
    lang: str = "en",
    top_n: int = 10,
    *,
    migration: pd.DataFrame | None = None,
    drift: pd.DataFrame | None = None,
    gains: dict | None = None,
    source: str = "frame",
    worklist: pd.DataFrame | None = None,
    worklist_note: str | None = None,
    worklist_csv: str | None = None,
    worklist_rows: int = WORKLIST_ROWS,
    worklist_close_tiers: list[str] | None = None,
    currency: str | None = None,
    generated: dt.date | None = None,
    entity: str = "customer",
    left_out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Aggregate scored customers into everything the report shows (pure: no I/O, no MLflow).

    ``segment_names``: {segment_id: {"en": ..., "zh": ...}}; ``segment_profile``: medians per
    segment_id (one column per feature; a ``size`` column is ignored; ``attrs["of_training"]``: of the
    training customers, not the scored ones); ``metrics``: the scorer's
    ``test_metrics`` ({"model"|"logreg"|"rfm_scorecard"|"majority": {metric: value}}); ``model_info``: name,
    version, uri, train_as_of, run_id; ``revenue``: past revenue, one value per predictions row
    or indexed by customer_id (missing = 0). ``migration`` and ``drift`` add optional sections.
    ``gains``: the scorer's ``test_gains_95ci`` ({baseline: {metric: {gain, low, high}}}); the model
    card shows the gain over the logistic regression with its interval.
    ``worklist``: the plan of :func:`leadtier.pipelines.worklist.planned` (with reasons): the call-first
    section shows its first week, the worklist section its first ``worklist_rows`` rows and links
    ``worklist_csv``, the full list; without one the call-first section says ``worklist_note``.
    ``worklist_close_tiers``: the tiers whose probabilities its chance column adds up (``worklist.close_tiers``).
    ``currency``: ``report.currency``, written with every amount of money. ``entity``: ``report.entity``,
    the word for one scored row in every text. ``left_out``: the input rows the predictions do not hold
    (:func:`left_out_rows`), said under the count of scored ones. Only the columns in
    :data:`PREDICTION_COLUMNS` and ``proba_<tier>`` are read."""
    check_predictions(predictions, scheme, source)
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1. Got {top_n} instead")
    b = _scored(predictions, scheme, revenue, lang, entity)
    model_info = dict(model_info or {})
    tier_rows = _tier_rows(b)
    cross = pd.crosstab(b.seg_ids.to_numpy(), b.tiers.to_numpy()).reindex(columns=b.codes, fill_value=0)
    cards = _segment_cards(b, cross, segment_names, segment_profile, currency, model_info.get("type_words"))
    return {
        "lang": lang,
        "entity": entity,
        "generated": (generated or dt.datetime.now(dt.UTC).date()).isoformat(),
        "top_n": int(top_n),
        "currency": currency or "",
        "call_first": _call_first(b, worklist, worklist_note, currency),
        "worklist": _worklist(b, worklist, worklist_rows, worklist_csv, currency, worklist_close_tiers),
        "summary": {**_summary(b, tier_rows, model_info), "left_out": left_out},
        "playbook": _playbook(
            b,
            tier_rows,
            model_info.get("label_rules"),
            model_info.get("label_outcome"),
            currency,
            int(model_info.get("entity_days") or 0),
        ),
        **_segment_sections(b, cross, cards, model_info, of_training=_of_training(segment_profile)),
        "model_card": _model_card(metrics, scheme, b.s, lang, model_info, gains),
        "top": _top_customers(b, {c["id"]: c["name"] for c in cards}, top_n),
        "top_left_out": [
            {"label": scheme.label(c, lang), "action": getattr(scheme.level(c), f"action_{lang}")}
            for c in b.codes
            if c not in listed_tiers(b.codes)
        ],
        "has_reasons": "reasons" in predictions.columns,
        "migration": _migration(migration, scheme, b.s, lang) if migration is not None and len(migration) else None,
        "drift": _drift(drift, lang, model_info.get("type_words")) if drift is not None and len(drift) else None,
    }


def _of_training(profile: pd.DataFrame | None) -> bool:
    """Whether the segment medians ``profile`` are of the training customers, not the scored ones."""
    return bool(profile is not None and profile.attrs.get("of_training"))


def _segment_sections(
    b: _Scored, cross: pd.DataFrame, cards: list[dict], model_info: dict, of_training: bool
) -> dict[str, Any]:
    """The segment cards with the tiers' legend (and whether their medians are of the training customers),
    the tier x segment table, and the segments' agreement with the
    tiers (adjusted mutual information, from training)."""
    legend = [{"label": b.scheme.label(c, b.lang), "color": b.colors[c]} for c in b.codes]
    return {
        "segments": {
            "cards": cards,
            "legend": legend,
            "of_training": of_training,
        },
        "tier_segment": _tier_segment(b, cross, cards),
        "segments_ami": model_info.get("segments_tier_ami"),
    }


# --------------------------------------------------------------------------- render


def reason_text(reason: str, s: dict[str, Any]) -> str:
    """A reason of the rejects file (always English) in the report's language: the first template of
    ``s["reject_reasons"]`` that the whole reason fits, each ``{field}`` standing for any text that is
    kept; a reason no template fits is shown as written."""
    for template, text in s["reject_reasons"].items():
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+?)", re.escape(template))
        m = re.fullmatch(pattern, reason, flags=re.S)
        if m:
            return text.format(**m.groupdict())
    return reason


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["reason"] = reason_text
    env.filters["num"] = fmt_num
    env.filters["pct"] = fmt_pct
    env.filters["money"] = fmt_money
    return env


def render(context: dict[str, Any], lang: str | None = None) -> str:
    """The report as one HTML document (inline CSS and SVG, no external resources)."""
    lang = lang or context.get("lang", "en")
    if context.get("lang", lang) != lang:
        raise ValueError(
            f"the context was built for lang {context.get('lang')!r} but render was asked for {lang!r}; "
            "build the context in the language you render"
        )
    s = strings(lang, context.get("entity", "customer"))
    template = _environment().from_string(_template_source())
    return template.render(c=context, s=s, lang=lang)


# --------------------------------------------------------------------------- stage


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read only the report's columns from a Parquet or CSV predictions file, or from the folder of Parquet
    parts partitioned by tier that ``spark-predict`` writes (its rows ordered by ``customer_id``).

    Raises :class:`leadtier.pipelines.sources.InputError` (a ValueError) naming the file when it is empty,
    lacks required columns or has an unknown extension.
    """
    from leadtier.pipelines.sources import InputError

    path = Path(path)
    if path.is_dir():
        frame = _read_partitioned(path)
        _check_columns(frame, str(path))
        return frame
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path} (run `leadtier predict` first)")
    suffix = path.suffix.lower()
    wanted = _report_columns

    if suffix not in (".parquet", ".csv"):
        raise InputError(
            f"predictions file {path} must end in .parquet or .csv. Got {suffix or 'no extension'} instead"
        )
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=wanted(names))
        else:
            header = pd.read_csv(path, nrows=0).columns.tolist()
            text_cols = {c: str for c in ("customer_id", "tier", "model_version", "segment", "reasons") if c in header}
            frame = pd.read_csv(path, usecols=wanted(header), dtype=text_cols, keep_default_na=True)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"predictions file {path} cannot be read as {suffix[1:].upper()}: {clip(first, 200)}; "
            "is it the output of `leadtier predict`?"
        ) from None
    _check_columns(frame, str(path))
    return frame


def _report_columns(cols: list[str]) -> list[str]:
    return [c for c in cols if c in PREDICTION_COLUMNS or c.startswith("proba_")]


def _read_partitioned(path: Path) -> pd.DataFrame:
    """The report's columns of a Spark predictions folder (Parquet parts under ``tier=<code>``, the codes
    read as text: tier 90 stays '90')."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    from leadtier.pipelines.sources import InputError

    try:
        parts = ds.dataset(
            path,
            format="parquet",
            partitioning=ds.partitioning(pa.schema([("tier", pa.string())]), flavor="hive"),
            exclude_invalid_files=True,
            ignore_prefixes=[".", "_"],
        )
        frame = parts.to_table(columns=_report_columns(parts.schema.names)).to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"predictions folder {path} cannot be read as Parquet parts: {clip(first, 200)}; "
            "is it the output of `leadtier spark-predict`?"
        ) from None
    if "tier" in frame.columns:
        frame["tier"] = frame["tier"].astype(object).where(frame["tier"].notna(), None)
    if "customer_id" in frame.columns:
        frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    return frame


def profile_columns(profile: pd.DataFrame) -> list[str]:
    """The profile columns a segment card shows (at most :data:`MAX_PROFILE_ROWS`): the known behaviour
    features present, then the other columns whose segment medians differ the most (relative to their
    size), so that data without transactions or interactions still gets cards that tell segments apart."""
    cols = [c for c in profile.columns if c != "size"]
    key = [c for c in KEY_FEATURES if c in cols]
    medians = profile[[c for c in cols if c not in key]].apply(pd.to_numeric, errors="coerce")
    spread = (medians.max() - medians.min()) / (medians.abs().mean() + 1e-9)
    others = [c for c in spread.sort_values(ascending=False, kind="stable").index if spread[c] > 0]
    return [*key, *others][:MAX_PROFILE_ROWS]


_WINDOW = re.compile(r"_(\d+)d$")


def _lean_config(cfg, needed: list[str]):
    """``cfg`` with only the feature windows and interaction types that the ``needed`` columns use.

    The report needs a handful of columns; the full feature SQL (every window x interaction type)
    costs twice as much on a million customers. The 30-day window is always kept: the SQL files
    derive 30-day trends from it.
    """
    windows = cfg.features.windows_days
    wanted = {int(m.group(1)) for c in needed if (m := _WINDOW.search(c))}
    keep = [w for w in windows if w in wanted or w == 30] or windows
    types = [t for t in cfg.features.interaction_types if any(c.startswith(f"ix_{t}_") for c in needed)]
    features = cfg.features.model_copy(update={"windows_days": keep, "interaction_types": types})
    return cfg.model_copy(update={"features": features})


def _past_features(cfg, predictions: pd.DataFrame, needed: list[str]) -> pd.DataFrame | None:
    """The scored customers' ``needed`` features, one row per predictions row (NaN when not found),
    rebuilt as of the predictions' date.

    Uses the customers file that ``predict`` scored by default (``predict.input``). Returns None,
    with a warning, when the inputs cannot be read any more or hold under 99 % of the scored customers.
    """
    from leadtier.pipelines.reasons import features_of

    as_of = scored_as_of(cfg, predictions)
    ids = predictions["customer_id"].astype(str).tolist()
    try:
        feats = features_of(_lean_config(cfg, needed), ids, as_of)
        if any(c not in feats.columns for c in needed):  # a column the lean query does not make
            feats = features_of(cfg, ids, as_of)
    except (OSError, ValueError) as exc:  # missing or changed input files: report without them
        log.warning("cannot rebuild the scored customers' features (%s); the report has no past revenue", exc)
        return None
    keep = [c for c in dict.fromkeys(needed) if c in feats.columns]
    pos = positions(feats["customer_id"], predictions["customer_id"])
    matched = float((pos >= 0).mean())
    if matched < 0.99:  # another file was scored: wrong figures would look right, so show none
        log.warning(
            "only %.1f%% of scored customers were found in %s (were other customers scored?); the report shows "
            "no past revenue, and segment profiles from the training data",
            100 * matched,
            cfg.predict.input or "the customers table",
        )
        return None
    values = feats[keep].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    aligned = np.full((len(pos), len(keep)), np.nan)
    aligned[pos >= 0] = values[pos[pos >= 0]]
    return pd.DataFrame(aligned, columns=keep, index=predictions.index)


def _described_model(cfg, frame: pd.DataFrame, pred_path: Path) -> dict[str, Any]:
    """Which registered version the report describes: the one behind most predictions, else the champion.

    Returns its ``version`` and ``uri``, the current ``champion`` ('' when none) and the predictions per
    version (``counts``, empty when they carry none)."""
    from leadtier.pipelines import tracking

    versions = frame["model_version"].dropna().astype(str) if "model_version" in frame.columns else None
    versions = versions[versions != ""] if versions is not None else pd.Series([], dtype=str)
    client = tracking.setup(cfg)
    champion = tracking.champion_version(client, cfg)  # '' when none yet: the report says so
    counts: dict[str, int] = {}
    if len(versions):
        counts = {str(k): int(v) for k, v in versions.value_counts().items()}
        version = next(iter(counts))
        if len(counts) > 1:
            log.warning("predictions come from several model versions %s; the report describes v%s", counts, version)
        uri = f"models:/{cfg.mlflow.model_name}/{version}"
    else:
        if not champion:
            raise tracking.ModelLoadError(
                f"{pred_path}: the predictions carry no model_version and {cfg.mlflow.model_name!r} has no champion "
                "to describe them with"
            )
        uri, version = tracking.champion_uri(cfg), champion
        log.warning("predictions carry no model_version; describing the current champion v%s", version)
    if champion and version != champion:
        log.warning("the report describes v%s, which is not the current champion (v%s)", version, champion)
    return {"version": version, "uri": uri, "champion": champion, "counts": counts}


def _revenue_and_profile(
    cfg, frame: pd.DataFrame, train_profile: pd.DataFrame | None
) -> tuple[pd.Series | None, pd.DataFrame | None]:
    """Past revenue per predictions row (None: unknown) and the segment profiles of the scored customers
    (the training data's ``train_profile`` when their features cannot be rebuilt or are not needed)."""
    shown = profile_columns(train_profile) if train_profile is not None else []
    revenue, profile = None, None
    if "past_revenue" in frame.columns:
        revenue = pd.to_numeric(frame["past_revenue"], errors="coerce")
    else:
        feats = _past_features(cfg, frame, [REVENUE_COLUMN, *shown])
        if feats is not None:
            if REVENUE_COLUMN in feats.columns:
                revenue = feats[REVENUE_COLUMN]  # one value per predictions row
            cols = [c for c in shown if c in feats.columns]
            if cols:
                seg_ids = pd.to_numeric(frame["segment_id"], errors="coerce").to_numpy()
                profile = segment_medians(feats, cols, seg_ids)
    if profile is None and train_profile is not None:  # the cards say whose medians they show
        profile = train_profile.copy()
        profile.attrs["of_training"] = True
    return revenue, profile


def _report_context(
    frame: pd.DataFrame,
    scorer,
    described: dict[str, Any],
    revenue: pd.Series | None,
    profile: pd.DataFrame | None,
    lang: str,
    cfg,
    *,
    migration: pd.DataFrame | None,
    drift: pd.DataFrame | None,
    source: Path,
    action: dict[str, Any],
    left_out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`build_context` for the model ``described`` (:func:`_described_model`) with the worklist
    arguments in ``action``; a problem with the predictions (e.g. tiers the model's scheme does not know)
    is an :class:`InputError`."""
    from leadtier.pipelines.sources import InputError

    seg, meta = scorer.segmenter, scorer.metadata or {}
    try:
        return build_context(
            frame,
            scorer.scheme,
            segment_names=getattr(seg, "names_", {}),
            segment_profile=profile,
            metrics=meta.get("test_metrics"),
            gains=meta.get("test_gains_95ci"),
            model_info={
                "name": cfg.mlflow.model_name,
                "version": described["version"],
                "uri": described["uri"],
                "train_as_of": meta.get("as_of"),
                "run_id": meta.get("run_id"),
                "protocol": meta.get("protocol"),
                "segments_tier_ami": meta.get("segments_tier_ami"),
                "label_rules": meta.get("label_rules"),
                "label_outcome": meta.get("label_outcome"),
                "entity_days": meta.get("entity_days"),
                "type_words": meta.get("type_words"),
                "version_counts": described["counts"],
                "champion_version": described["champion"],
                "version_from_champion": not described["counts"],
            },
            revenue=revenue,
            lang=lang,
            top_n=cfg.report.top_n,
            migration=migration,
            drift=drift,
            source=str(source),
            currency=cfg.report.currency,
            worklist_rows=cfg.report.worklist_rows,
            generated=today(cfg),
            entity=cfg.report.entity,
            left_out=left_out,
            **action,
        )
    except ValueError as exc:  # one clear CLI message
        raise InputError(str(exc)) from None


def top_rows(predictions: pd.DataFrame, top_n: int, tiers: list[str] | None = None) -> np.ndarray:
    """Positions of the customers the report lists: the ``top_n`` highest scores of each of ``tiers``
    (default every tier; as :func:`_top_customers` picks them)."""
    score = pd.to_numeric(predictions["score"], errors="coerce").to_numpy()
    small = pd.DataFrame({"tier": predictions["tier"].astype(str).to_numpy(), "score": score})
    small["_row"] = np.arange(len(small))
    if tiers is not None:
        small = small[small["tier"].isin([str(t) for t in tiers])]
    best = small.sort_values(["score", "_row"], ascending=[False, True], kind="stable").groupby("tier").head(top_n)
    return np.sort(best["_row"].to_numpy())


def report_worklist(cfg, frame: pd.DataFrame, lang: str) -> tuple[pd.DataFrame | None, str | None]:
    """The worklist of these predictions, planned as ``leadtier worklist`` plans it
    (:func:`leadtier.pipelines.worklist.planned`), and None; or None and, when its inputs cannot be
    read, the reason in ``lang`` (no worklist configured: None, None)."""
    if not cfg.worklist.service_days:
        return None, None
    from leadtier.pipelines import worklist as stage
    from leadtier.pipelines.sources import InputError

    try:
        plan, _ = stage.planned(cfg, frame, lang)
    except (OSError, InputError) as exc:
        log.warning("the report has no call list: the worklist's inputs cannot be read (%s)", exc)
        return None, strings(lang)["call_first_failed"].format(error=exc)
    return plan, None


def with_reasons(
    cfg, frame: pd.DataFrame, worklist: pd.DataFrame | None, scorer, lang: str
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``frame`` and ``worklist`` with plain-word reasons in ``lang`` for the customers the report shows
    (the top customers and the embedded worklist rows, only those: see :mod:`leadtier.pipelines.reasons`);
    unchanged when their features cannot be rebuilt."""
    from leadtier.pipelines.reasons import explain

    picked = top_rows(frame, cfg.report.top_n, listed_tiers(scorer.scheme.codes))
    shown = worklist_head(worklist, cfg.report.worklist_rows) if worklist is not None else None
    rows = picked
    if shown is not None:
        pos = positions(frame["customer_id"], shown["customer_id"])
        rows = np.unique(np.concatenate([picked, pos[pos >= 0]]))
    why = explain(cfg, frame.iloc[rows], lang, scorer=scorer)
    if why is None:
        return frame, worklist
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons.iloc[picked] = why.to_numpy()[np.searchsorted(rows, picked)]
    if shown is not None:
        by_id = dict(zip(frame["customer_id"].astype(str).to_numpy()[rows], why.to_numpy(), strict=True))
        ids = worklist["customer_id"].astype(str)
        listed = ids.index.isin(shown.index)
        worklist = worklist.assign(reasons=worklist["reasons"].where(~listed, ids.map(by_id)))
    return frame.assign(reasons=reasons), worklist


def _csv_link(cfg, out_path: Path, pred_path: Path, manifest: dict | None) -> str | None:
    """The worklist's CSV relative to the report (a link that works offline); None when none is written, or
    when it was planned from other predictions than the report's (another run, another file)."""
    from leadtier.pipelines.worklist import made_from, predictions_source

    csv = Path(cfg.worklist.output).with_suffix(".csv")
    if not csv.is_file() or made_from(cfg) != predictions_source(pred_path, manifest):
        return None
    return Path(os.path.relpath(csv.resolve(), out_path.resolve().parent)).as_posix()


def run(
    cfg,
    predictions: str | Path | None = None,
    output: str | Path | None = None,
    lang: str | None = None,
    *,
    migration: pd.DataFrame | None = None,
    drift: pd.DataFrame | None = None,
) -> Path:
    """Read predictions, load their model, rebuild past revenue, write the HTML report.

    When the predictions carry a ``past_revenue`` column the features are not rebuilt: segment
    profiles then come from the training data (``segmenter.profile_``).
    """
    from leadtier.pipelines import tracking
    from leadtier.pipelines.outputs import write_text
    from leadtier.pipelines.predict import with_scored_input

    t = {"start": time.perf_counter()}
    lang = lang or cfg.report.lang
    strings(lang)  # fail early on an unknown language
    pred_path = Path(predictions or cfg.predict.output)
    out_path = Path(output or cfg.report.output)
    if output is None and lang != cfg.report.lang:  # report.html stays in the configured language
        out_path = out_path.with_name(f"{out_path.stem}.{lang}{out_path.suffix}")
    frame, migration, drift, manifest = read_prediction_set(pred_path, migration, drift)  # before MLflow: fails fast
    cfg = with_scored_input(cfg, manifest)  # owners, values and features of the customers that run scored
    t["read"] = time.perf_counter()
    described = _described_model(cfg, frame, pred_path)
    scorer = tracking.load_model(described["uri"]).unwrap_python_model().scorer
    t["model"] = time.perf_counter()
    revenue, profile = _revenue_and_profile(cfg, frame, getattr(scorer.segmenter, "profile_", None))
    t["features"] = time.perf_counter()
    worklist, note = report_worklist(cfg, frame, lang)
    frame, worklist = with_reasons(cfg, frame, worklist, scorer, lang)
    action = {
        "worklist": worklist,
        "worklist_note": note,
        "worklist_csv": _csv_link(cfg, out_path, pred_path, manifest),
        "worklist_close_tiers": cfg.worklist.close_tiers or None,
    }
    extra = {"migration": migration, "drift": drift, "source": pred_path, "action": action}
    extra["left_out"] = left_out_rows(pred_path, manifest)
    ctx = _report_context(frame, scorer, described, revenue, profile, lang, cfg, **extra)
    html_text = render(ctx, lang)
    path = write_text(html_text, out_path)
    t["end"] = time.perf_counter()
    log.info(
        "wrote %s report on %d rows (%.0f KB) in %.1f s (read %.1f, model %.1f, features %.1f, report %.1f) -> %s",
        lang,
        len(frame),
        len(html_text.encode()) / 1024,
        t["end"] - t["start"],
        t["read"] - t["start"],
        t["model"] - t["read"],
        t["features"] - t["model"],
        t["end"] - t["features"],
        path,
    )
    return path


def left_out_rows(pred_path: Path, manifest: dict | None, shown: int = 5) -> dict[str, Any] | None:
    """The input rows the predictions at ``pred_path`` do not hold, from the rejects file the same run
    wrote (by the set's ``manifest``; a run stopped by predict.max_reject_share leaves its rejects beside
    the last good predictions): rejected (bad input) and skipped (by rule or config) counts, the ``shown``
    commonest reasons and the file's name; None when every input row was scored or no run says so."""
    from leadtier.pipelines.predict import SKIPPED, side_file

    path = side_file(pred_path, "rejects")
    files = (manifest or {}).get("files", {})
    ours, theirs = files.get(pred_path.name) or {}, files.get(path.name) or {}
    if not path.is_file() or not ours.get("run_id") or theirs.get("run_id") != ours["run_id"]:
        return None
    reasons = pd.read_csv(path, usecols=["reason"], dtype=str)["reason"].fillna("").value_counts()
    if reasons.empty:
        return None
    skipped = reasons.index.str.startswith(SKIPPED)
    return {
        "rejected": int(reasons[~skipped].sum()),
        "skipped": int(reasons[skipped].sum()),
        "reasons": [{"reason": str(r), "count": int(n)} for r, n in reasons.head(shown).items()],
        "more": max(len(reasons) - shown, 0),
        "file": path.name,
    }


def read_prediction_set(pred_path: Path, migration: pd.DataFrame | None, drift: pd.DataFrame | None):
    """The predictions of the set one predict run committed (a half-done commit is finished first), its
    migration and drift files unless given, and its manifest (None for a file written without one)."""
    from leadtier.pipelines.outputs import check_manifest
    from leadtier.pipelines.predict import SIDE_KINDS, side_file

    manifest = check_manifest(pred_path, SIDE_KINDS) if pred_path.exists() else None
    frame = read_predictions(pred_path)
    if migration is None and side_file(pred_path, "migration").is_file():
        migration = pd.read_csv(side_file(pred_path, "migration"), dtype={"customer_id": str})
    if drift is None and side_file(pred_path, "drift").is_file():
        drift = pd.read_csv(side_file(pred_path, "drift"))
    return frame, migration, drift, manifest
