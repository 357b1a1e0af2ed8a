"""Per-customer reasons from LightGBM's own SHAP contributions (``pred_contrib``), in words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_WORDS = {
    "rfm_recency_days": "days since last purchase",
    "rfm_frequency": "purchases",
    "rfm_lines": "transaction lines",
    "rfm_monetary": "net spend",
    "rfm_monetary_div_frequency": "average order value",
    "rfm_first_purchase_days": "days since first purchase",
    "rfm_gap_mean_days": "average days between purchases",
    "ix_recency_days": "days since last interaction",
    "ix_count": "interactions",
    "cust_tenure_days": "days as a customer",
}


def describe(feature: str) -> str:
    """'ix_quote_request_30d' -> 'quote request in the last 30 days'."""
    if feature in _WORDS:
        return _WORDS[feature]
    m = re.match(r"^(rfm|ix|cust)_(.*?)(?:_(\d+)d)?$", feature)
    if not m:
        return feature.replace("_", " ")
    _, body, window = m.groups()
    text = _WORDS.get(f"{m.group(1)}_{body}", body.replace("_", " "))
    if body.startswith("frequency_trend") or body.endswith("trend"):
        return f"{text.replace(' trend', '')} trend (last 30 days vs the 30 before)"
    return f"{text} in the last {window} days" if window else text


def _value(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.2f}"
    return str(v)


def _texts(values: pd.Series) -> np.ndarray:
    """Every value of one column in words (see ``_value``), each distinct value formatted once."""
    codes, uniq = pd.factorize(values, use_na_sentinel=True)
    words = np.array([*(_value(v) for v in uniq), "missing"], dtype=object)
    return words[codes]  # code -1 (missing) picks the last entry


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


def top_reasons(contrib: np.ndarray, X: pd.DataFrame, features: list[str], k: int = 3) -> list[str]:
    """For each row, the ``k`` features pushing hardest towards its tier and the ``k`` pushing away.

    ``contrib`` holds each row's SHAP values for its own tier, shape (rows, features [+ 1 bias]), as
    from ``TierClassifier.contributions_for``; a feature with a zero contribution is never a reason.
    """
    picked = np.asarray(contrib)[:, : len(features)]  # drop the bias column
    n = len(picked)
    up, down = _top(picked, k), _top(-picked, k)
    rows = np.arange(n)[:, None]
    up_ok, down_ok = picked[rows, up] > 0, picked[rows, down] < 0
    # one phrase per (row, slot): "+ name = value" or "" when the feature does not push that way
    phrases = np.full((n, 2 * k), "", dtype=object)
    for j in np.unique(np.concatenate([up[up_ok], down[down_ok]])) if n else []:
        name = describe(features[j])
        texts = _texts(X[features[j]])
        for sign, slots, ok in (("+", up, up_ok), ("-", down, down_ok)):
            r, slot = np.nonzero((slots == j) & ok)
            phrases[r, slot + (0 if sign == "+" else k)] = [f"{sign} {name} = {t}" for t in texts[r]]
    return ["; ".join(p for p in row if p) for row in phrases.tolist()]
