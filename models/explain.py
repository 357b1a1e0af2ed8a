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
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.2f}"
    return str(v)


def top_reasons(contrib: np.ndarray, X: pd.DataFrame, features: list[str], k: int = 3) -> list[str]:
    """For each row, the ``k`` features pushing hardest towards its tier and the ``k`` pushing away.

    ``contrib`` holds each row's SHAP values for its own tier, shape (rows, features [+ 1 bias]), as
    from ``TierClassifier.contributions_for``; a feature with a zero contribution is never a reason.
    """
    picked = np.asarray(contrib)[:, : len(features)]  # drop the bias column
    order = np.argsort(-picked, axis=1, kind="stable")
    up, down = order[:, :k], order[:, ::-1][:, :k]
    names = [describe(f) for f in features]
    rows = np.arange(len(picked))[:, None]
    cols = np.unique(np.concatenate([up.ravel(), down.ravel()])) if len(picked) else np.array([], dtype=int)
    values = {j: X[features[j]].to_numpy(dtype=object) for j in cols}  # only the columns some row cites
    up_pos, down_neg = picked[rows, up] > 0, picked[rows, down] < 0
    out = []
    for i in range(len(picked)):
        parts = [f"+ {names[j]} = {_value(values[j][i])}" for j, ok in zip(up[i], up_pos[i], strict=True) if ok]
        parts += [f"- {names[j]} = {_value(values[j][i])}" for j, ok in zip(down[i], down_neg[i], strict=True) if ok]
        out.append("; ".join(parts))
    return out
