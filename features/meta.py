"""Feature values in plain words, from the metadata beside the feature SQL (``features/sql/features.yaml``).

``phrase("rfm_recency_days", 20, "en")`` -> ``"bought 20 days ago"``; ``phrase("ix_webinar_90d", 0, "zh")``
-> ``"近 90 天没有网络研讨会"``. Pure string work over the packaged metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd
import yaml

LANGS = ("en", "zh")
UNITS = ("days", "count", "change", "money", "seconds", "score", "weekday", "category", "number")
_SEPARATOR = {"en": "; ", "zh": "；"}
_ON_DAY = {"en": "at day {days} after its start: ", "zh": "开始后第 {days} 天时："}


@dataclass(frozen=True)
class FeatureMeta:
    pattern: re.Pattern
    unit: str
    texts: dict[str, dict[str, str]]  # lang -> {"text", optional "zero", "missing"}
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # lang -> {category value: words}


@lru_cache(maxsize=1)
def metadata() -> dict[str, Any]:
    """The parsed ``features.yaml``: ``columns`` (a list of :class:`FeatureMeta`, tried in order), ``words``
    and ``weekdays``."""
    text = resources.files("leadtier.features").joinpath("sql", "features.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    columns = []
    for entry in raw["columns"]:
        if entry["unit"] not in UNITS:
            raise ValueError(f"features.yaml: {entry['match']!r} has unit {entry['unit']!r}; known: {list(UNITS)}")
        texts = {g: entry[g] for g in LANGS}
        columns.append(FeatureMeta(re.compile(entry["match"]), entry["unit"], texts, entry.get("values", {})))
    return {"columns": columns, "words": raw.get("words", {}), "weekdays": raw.get("weekdays", {})}


def meta_of(column: str) -> tuple[FeatureMeta, dict[str, str]] | None:
    """The first metadata entry that matches the whole of ``column``, with its named groups; None when none."""
    for meta in metadata()["columns"]:
        m = meta.pattern.fullmatch(column)
        if m:
            return meta, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _number(value: float) -> str:
    """1234 -> '1,234'; 12.345 -> '12.3'."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _plain(value: float) -> str:
    """A number of unknown meaning as people write it: a whole one as an integer, without separators
    (a year 1998, an id 660737), another to four significant digits (12.5, 0.04, 3.142)."""
    if value.is_integer():
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.1f}"


def money(value: float, currency: str | None = None) -> str:
    """1234.5 -> '1,234.50'; with a symbol currency ('£') '£1,234.50', with a code ('EUR') '1,234.50 EUR'."""
    text = f"{abs(value):,.2f}"
    sign = "-" if value < 0 else ""
    if not currency:
        return sign + text
    return f"{sign}{currency}{text}" if not currency.isalpha() else f"{sign}{text} {currency}"


def _duration(seconds: float, lang: str) -> str:
    minutes = seconds / 60
    if lang == "zh":
        return f"{_number(round(minutes, 1))} 分钟" if seconds >= 60 else f"{_number(seconds)} 秒"
    return f"{_number(round(minutes, 1))} min" if seconds >= 60 else f"{_number(seconds)} s"


def name_word(name: str, lang: str, count: float | None = None, words: dict | None = None) -> str:
    """A name part in words: 'webinar' -> 'webinar' / 'webinars' by ``count`` (English), '网络研讨会';
    ``words`` (name -> {lang: 'one|many'}, ``features.type_words``) first, then the metadata's."""
    entry = (words or {}).get(name, {}).get(lang) or metadata()["words"].get(lang, {}).get(name)
    if entry is None:
        words = name.replace("_", " ")
        return _plural(words) if lang == "en" and count is not None and count != 1 else words
    one, _, many = entry.partition("|")
    if not many and lang == "en":  # words given without their plural: the regular one
        many = _plural(one)
    return many if many and count is not None and count != 1 else one


PARTICIPLES = {"sent", "done", "won", "lost", "held", "met", "paid", "made", "seen", "given", "taken", "read", "left"}


def _plural(words: str) -> str:
    """English plural of a name's last word, by the regular rules: 'site visit' -> 'site visits', 'status' ->
    'statuses', 'reply' -> 'replies'. A last word that reads as a plural ('visits') or a past participle
    ('proposal sent', 'email opened'), or is not a plain lower-case word ('SMS'), is left as written."""
    head, _, last = words.rpartition(" ")
    already_plural = last.endswith("s") and not last.endswith(("ss", "us"))
    if already_plural or last.endswith("ed") or last in PARTICIPLES or not last.isalpha() or not last.islower():
        return words
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in tuple("aeiou"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _attribute_word(slugged: str, lang: str, written: str | None, words: dict | None = None) -> str:
    """An attribute's name in words: the config's for ``lang`` (``features.attribute_words``, in ``words``
    under ``cust_<slug>``), else the metadata's ('线索来源'), else the column as the user's file writes it
    ('Budget (EUR)'), else the slug in words ('budget eur')."""
    given = (words or {}).get(f"cust_{slugged}", {}).get(lang)
    if given:
        return given
    if slugged in metadata()["words"].get(lang, {}) or not written:
        return name_word(slugged, lang)
    return written


def format_value(value: Any, unit: str, lang: str = "en", currency: str | None = None) -> str:
    """One value in words for its ``unit`` (a present value; see :func:`phrase` for missing ones)."""
    if isinstance(value, str):
        return value
    if unit == "category":  # an attribute: text as written, a number as written ('514', not '514.0')
        try:
            return _plain(float(value))
        except (TypeError, ValueError):
            return str(value)
    v = float(value)
    if unit == "money":
        return money(v, currency)
    if unit == "seconds":
        return _duration(v, lang)
    if unit == "weekday" and v.is_integer() and 1 <= v <= 7:
        return metadata()["weekdays"][lang][int(v) - 1]
    if unit == "change":
        return ("+" if v > 0 else "") + _number(v)
    if unit == "days":
        return _number(round(v))
    return _number(v)


def phrase(
    column: str,
    value: Any,
    lang: str = "en",
    currency: str | None = None,
    name: str | None = None,
    words: dict | None = None,
    unit: str | None = None,
) -> str:
    """``column`` = ``value`` in plain words in ``lang``; a column without metadata reads 'name: value'.
    ``unit`` overrides the metadata's (``money`` for an attribute listed under ``tables.customers.money``).
    ``name``: the attribute's column as the user's file writes it ('Budget (EUR)'), for ``cust_budget_eur``;
    ``words``: interaction type -> {lang: 'one|many'} (``features.type_words``), and ``cust_<attribute>`` ->
    {lang: its name} (``features.attribute_words``)."""
    if lang not in LANGS:
        raise ValueError(f"reasons come in {list(LANGS)}. Got {lang!r} instead")
    found = meta_of(column)
    if found is None:
        shown = "?" if _missing(value) else format_value(value, "number", lang, currency)
        return f"{column.replace('_', ' ')}: {shown}"
    meta, groups = found
    texts = meta.texts[lang]
    missing = _missing(value)
    count = None if missing or isinstance(value, str) else float(value)
    fields = {
        "w": groups.get("w", ""),
        "type": name_word(groups["type"], lang, count, words) if "type" in groups else "",
        "name": _attribute_word(groups["name"], lang, name, words) if "name" in groups else "",
    }
    if missing:
        template = texts.get("missing") or texts["text"].replace("{v}", "?")
        return template.format(**fields, v="?")
    if count == 0 and "zero" in texts:  # "no webinar in the last 90 days": the singular
        fields["type"] = name_word(groups["type"], lang, 1, words) if "type" in groups else ""
        return texts["zero"].format(**fields, v="0")
    named = meta.values.get(lang, {}).get(value) if isinstance(value, str) else None  # 'champions' -> '重要价值客户'
    text = texts["text"].format(**fields, v=named or format_value(value, unit or meta.unit, lang, currency))
    if lang == "en" and count is not None and round(count) == 1 and meta.unit in ("days", "count"):
        text = _ONE.sub(r"\1 \2", text)  # "bought 1 days ago" -> "bought 1 day ago"
    return text


_NOUNS = "day|purchase|interaction|order|line|change|visit|product|call|email|meeting|kind"
_ONE = re.compile(rf"\b(1) ((?:\w+ )?(?:{_NOUNS}))s\b")


def join_reasons(parts: list[str], lang: str = "en") -> str:
    """Phrases into one cell: '; ' in English, '；' in Chinese."""
    return _SEPARATOR[lang].join(p for p in parts if p)


def on_day(reasons: list[str], days: int, lang: str = "en") -> list[str]:
    """Reasons about an entity described as of ``days`` after its own start (not as of today), so
    prefixed: 'at day 14 after its start: emailed 3 days ago (↑)'; empty reasons stay empty."""
    head = _ON_DAY[lang].format(days=days)
    return [head + r if r else r for r in reasons]
