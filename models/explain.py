"""Per-customer reasons from LightGBM's own SHAP contributions (``pred_contrib``), in plain words.

The words come from the feature metadata beside the SQL (:mod:`leadtier.features.meta`): a reason reads
``bought 20 days ago (↑)`` when the feature pushed towards the customer's tier and ``no webinar in the last
90 days (↓)`` when it pushed away from it.
"""

from __future__ import annotations

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
) -> np.ndarray:
    """Every value of one column in words, each distinct value phrased once; a text value outside ``known``
    (the values the model learned) says it is new, since the model learned nothing about it."""
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    seen = set(known) if known is not None else None
    said = [
        phrase(feature, v, lang, currency, name, words)
        + (NEW_VALUE[lang] if seen is not None and isinstance(v, str) and v not in seen else "")
        for v in uniq
    ]
    said.append(phrase(feature, None, lang, name=name, words=words))
    return np.array(said, dtype=object)[codes]  # code -1 (missing) picks the last entry


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
) -> list[str]:
    """For each row, the ``k`` features pushing hardest towards its tier (``↑``) and the ``k`` pushing away
    (``↓``), in plain words in ``lang``; money with ``currency`` when given; ``names``: feature -> the
    attribute's column as the user's file writes it; ``words``: interaction type -> {lang: words};
    ``known``: text feature -> the values the model learned (others read as new).

    ``contrib`` holds each row's SHAP values for its own tier, shape (rows, features [+ 1 bias]), as
    from ``TierClassifier.contributions_for``; a feature with a zero contribution is never a reason.
    """
    picked = np.asarray(contrib)[:, : len(features)]  # drop the bias column
    n = len(picked)
    up, down = _top(picked, k), _top(-picked, k)
    rows = np.arange(n)[:, None]
    up_ok, down_ok = picked[rows, up] > 0, picked[rows, down] < 0
    # one phrase per (row, slot): "words (↑)" or "" when the feature does not push that way
    phrases = np.full((n, 2 * k), "", dtype=object)
    for j in np.unique(np.concatenate([up[up_ok], down[down_ok]])) if n else []:
        f = features[j]
        texts = _phrases(X[f], f, lang, currency, (names or {}).get(f), words, (known or {}).get(f))
        for arrow, slots, ok, offset in ((UP, up, up_ok, 0), (DOWN, down, down_ok, k)):
            r, slot = np.nonzero((slots == j) & ok)
            phrases[r, slot + offset] = [f"{t} ({arrow})" for t in texts[r]]
    return [join_reasons(row, lang) for row in phrases.tolist()]
