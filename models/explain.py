"""Per-customer reasons from LightGBM's own SHAP contributions (``pred_contrib``), in plain words.

The words come from the feature metadata beside the SQL (:mod:`leadtier.features.meta`): a reason reads
``bought 20 days ago (↑)`` when the feature pushed towards the customer's tier and ``no webinar in the last
90 days (↓)`` when it pushed away from it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from leadtier.features.meta import join_reasons, phrase

UP, DOWN = "↑", "↓"
NEW_VALUE = {"en": " (new since training)", "zh": "（训练中未出现）"}  # a text value the model never saw


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values per row, largest first (ties: lower index first)."""
    k = min(k, values.shape[1])
    if k == 0:
        return np.zeros((len(values), 0), dtype=int)
    part = (
        np.argpartition(-values, k - 1, axis=1)[:, :k]
        if k < values.shape[1]
        else np.tile(np.arange(values.shape[1]), (len(values), 1))
    )
    rows = np.arange(len(values))[:, None]
    # order the k picked columns by value (descending), then by column index
    order = np.lexsort((part, -values[rows, part]), axis=1)
    return part[rows, order]


def _phrases(
    values: pd.Series,
    feature: str,
    lang: str,
    currency: str | None,
    name: str | None,
    words: dict | None,
    known: list[str] | None = None,
    unit: str | None = None,
) -> np.ndarray:
    """Every value of one column in words, each distinct value phrased once; a text value outside ``known``
    (the values the model learned) says it is new, since the model learned nothing about it."""
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    seen = set(known) if known is not None else None
    said = [
        phrase(feature, v, lang, currency, name, words, unit)
        + (NEW_VALUE[lang] if seen is not None and isinstance(v, str) and v not in seen else "")
        for v in uniq
    ]
    said.append(phrase(feature, None, lang, name=name, words=words))
    return np.array(said, dtype=object)[codes]  # code -1 (missing) picks the last entry


NEAR_DUPLICATE = 0.9  # |Spearman rho| at or above which two numeric features tell the same story


def reason_groups(
    X: pd.DataFrame, features: list[str], threshold: float = NEAR_DUPLICATE, sample: int = 20_000, seed: int = 0
) -> list[list[str]]:
    """Groups of numeric ``features`` that are near-duplicates on the rows of ``X`` (``|Spearman rho| >=
    threshold`` between every two members, so that no chain of likes joins unlike ends: purchases and
    transaction lines, spend and its quintile), joined with the windows of one count (purchases in the last
    30 and in the last 365 days; :func:`_stem`). SHAP splits credit between such features, at times with
    opposite signs ('14 purchases (↓)' beside '14 transaction lines (↑)'); :func:`top_reasons` sums each
    group's contributions into one reason. At most ``sample`` rows (seeded) are read; groups keep the order
    of ``features``."""
    numeric = [f for f in features if f in X.columns and pd.api.types.is_numeric_dtype(X[f])]
    if len(numeric) < 2 or len(X) < 3:
        return _merged([], features)
    rows = X[numeric].sample(n=sample, random_state=seed) if len(X) > sample else X[numeric]
    rho = rows.astype(float).corr(method="spearman", min_periods=3).abs().fillna(0.0).to_numpy()
    groups: list[list[int]] = []
    for i in range(len(numeric)):  # joins the first group it is a near-duplicate of every member of
        home = next((g for g in groups if all(rho[i, j] >= threshold for j in g)), None)
        if home is None:
            groups.append([i])
        else:
            home.append(i)
    return _merged([[numeric[i] for i in g] for g in groups], features)


_STEMS = (  # the windows of one count are one story: 3 purchases in 30 days (↑) and 9 in 365 days (↓) contradict
    (re.compile(r"^ix_count(_\d+d)?$"), "ix_count"),
    (re.compile(r"^rfm_frequency(_\d+d)?$"), "rfm_frequency"),
    (re.compile(r"^rfm_amount_\d+d$|^rfm_monetary$"), "rfm_amount"),
    (re.compile(r"^ix_(?!count_|distinct_types_|duration_s_)(?P<type>.+)_\d+d$"), "ix_type"),
)


def _stem(column: str) -> str | None:
    """The count a column is one window of ('ix_meeting_90d' -> 'ix_type:meeting'), None for any other."""
    for pattern, stem in _STEMS:
        m = pattern.match(column)
        if m:
            return f"{stem}:{m.group('type')}" if "type" in pattern.groupindex else stem
    return None


def _merged(groups: list[list[str]], features: list[str]) -> list[list[str]]:
    """``groups`` joined with the windows of each count (:func:`_stem`), overlapping ones made one; in the
    order of ``features``, groups of one left out."""
    by_stem: dict[str, list[str]] = {}
    for f in features:
        stem = _stem(f)
        if stem is not None:
            by_stem.setdefault(stem, []).append(f)
    merged: list[set[str]] = []
    for group in [*groups, *by_stem.values()]:
        joined = set(group).union(*[m for m in merged if m & set(group)])
        merged = [m for m in merged if not m & set(group)] + [joined]
    order = {f: i for i, f in enumerate(features)}
    out = [sorted(m, key=order.__getitem__) for m in merged if len(m) > 1]
    return sorted(out, key=lambda g: order[g[0]])


NEVER_WITH = {"ix_recency_days": "ix_count", "rfm_recency_days": "rfm_frequency"}  # "never" is "none at all"


def _grouped(
    picked: np.ndarray, features: list[str], groups: list[list[str]] | None, X: pd.DataFrame | None = None
) -> np.ndarray:
    """``picked`` with each group's contributions summed onto one member per row: the one pushing hardest in
    the direction of the sum (its words then stand for the group); the other members get 0. For a row of
    ``X`` that never interacted (never bought), the days since the last one (missing) join the count of
    them (0): 'never interacted (↓)' and 'no interaction (↑)' are one fact."""
    if not groups and X is None:
        return picked
    out = picked.copy()
    rows = np.arange(len(out))
    at = {f: i for i, f in enumerate(features)}
    for days, count in NEVER_WITH.items():
        if X is not None and days in at and count in at and days in X.columns:
            never = X[days].isna().to_numpy()
            out[never, at[count]] += out[never, at[days]]
            out[never, at[days]] = 0.0
    for group in groups or []:
        idx = np.array([at[f] for f in group if f in at], dtype=int)
        if len(idx) < 2:
            continue
        total = out[:, idx].sum(axis=1)
        lead = idx[(out[:, idx] * np.sign(total)[:, None]).argmax(axis=1)]
        out[:, idx] = 0.0
        out[rows, lead] = total
    return out


def top_reasons(
    contrib: np.ndarray,
    X: pd.DataFrame,
    features: list[str],
    k: int = 3,
    lang: str = "en",
    currency: str | None = None,
    names: dict[str, str] | None = None,
    words: dict | None = None,
    known: dict[str, list[str]] | None = None,
    groups: list[list[str]] | None = None,
    money: list[str] | None = None,
) -> list[str]:
    """For each row, the ``k`` features pushing hardest towards its tier (``↑``) and the ``k`` pushing away
    (``↓``), in plain words in ``lang``; money with ``currency`` when given; ``names``: feature -> the
    attribute's column as the user's file writes it; ``words``: interaction type -> {lang: words};
    ``known``: text feature -> the values the model learned (others read as new); ``groups``: near-duplicate
    features (:func:`reason_groups`), each group one reason; ``money``: attribute features that are amounts
    of money (shown with ``currency``).

    ``contrib`` holds each row's SHAP values for its own tier, shape (rows, features [+ 1 bias]), as
    from ``TierClassifier.contributions_for``; a feature with a zero contribution is never a reason.
    """
    picked = _grouped(np.asarray(contrib, dtype=float)[:, : len(features)], features, groups, X)  # no bias
    n = len(picked)
    up, down = _top(picked, k), _top(-picked, k)
    rows = np.arange(n)[:, None]
    up_ok, down_ok = picked[rows, up] > 0, picked[rows, down] < 0
    # one phrase per (row, slot): "words (↑)" or "" when the feature does not push that way
    phrases = np.full((n, 2 * k), "", dtype=object)
    for j in np.unique(np.concatenate([up[up_ok], down[down_ok]])) if n else []:
        f = features[j]
        unit = "money" if f in (money or ()) else None
        texts = _phrases(X[f], f, lang, currency, (names or {}).get(f), words, (known or {}).get(f), unit)
        for arrow, slots, ok, offset in ((UP, up, up_ok, 0), (DOWN, down, down_ok, k)):
            r, slot = np.nonzero((slots == j) & ok)
            phrases[r, slot + offset] = [f"{t} ({arrow})" for t in texts[r]]
    return [join_reasons(row, lang) for row in phrases.tolist()]
