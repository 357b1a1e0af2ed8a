"""Per-customer reasons from LightGBM's own SHAP contributions (``pred_contrib``), in words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

_FAMILY = {"rfm": "", "ix": "", "cust": ""}
_WORDS = {
    "rfm_recency_days": "days since last purchase",
    "rfm_frequency": "purchases",
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
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and float(v).is_integer()):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.2f}"
    return str(v)


def top_reasons(
    contrib: np.ndarray, tier_idx: np.ndarray, X: pd.DataFrame, features: list[str], k: int = 3
) -> list[str]:
    """For each row, the ``k`` features pushing hardest towards its tier and the ``k`` pushing away.

    ``contrib`` has shape (rows, classes, features + 1) as from ``TierClassifier.contributions``.
    """
    n = len(tier_idx)
    picked = contrib[np.arange(n), tier_idx, : len(features)]  # drop the bias column
    order = np.argsort(-picked, axis=1, kind="stable")
    up, down = order[:, :k], order[:, ::-1][:, :k]
    values = X[features]
    out = []
    for i in range(n):
        row = values.iloc[i]
        parts = [f"+ {describe(features[j])} = {_value(row.iloc[j])}" for j in up[i] if picked[i, j] > 0]
        parts += [f"- {describe(features[j])} = {_value(row.iloc[j])}" for j in down[i] if picked[i, j] < 0]
        out.append("; ".join(parts))
    return out
