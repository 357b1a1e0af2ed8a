"""Single features that tell too much: censoring proxies and one-tier giveaways.

A feature that alone predicts whether a row *has* a label (for example a field filled in only once a deal
closes, or the days an entity has been open) lets a model learn the label's availability instead of the
tier. ``label_presence_auc`` measures each feature's power to do that as a ROC AUC, oriented so that 0.5
is none and 1.0 is perfect whichever way the feature points. ``tier_giveaway_auc`` measures the same for
each tier against the others: an attribute that alone picks out one tier (a deal's current stage picks out
the lost ones) may be recorded after the outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

RARE = "__rare__"


def _score(column: pd.Series, has_label: np.ndarray, min_count: int) -> np.ndarray:
    """A number per row that orders it by the column: numbers as they are (missing lowest), categories
    by their share of labelled rows (categories with fewer than ``min_count`` rows pooled, so an id-like
    column does not separate the rows by memorising them)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        values = column.astype("float64").to_numpy()
        finite = values[np.isfinite(values)]
        low = finite.min() - 1.0 if finite.size else 0.0
        return np.where(np.isfinite(values), values, low)
    text = column.astype("object").where(column.notna(), "__missing__").astype(str)
    counts = text.map(text.value_counts())
    pooled = text.where(counts >= min_count, RARE)
    rate = pd.Series(has_label, index=column.index).groupby(pooled).transform("mean")
    return rate.to_numpy(dtype="float64")


def label_presence_auc(
    X: pd.DataFrame, has_label, min_count: int = 20, max_rows: int = 200_000, seed: int = 0
) -> pd.Series:
    """Per column of ``X``: the oriented ROC AUC (0.5 to 1.0) of that column alone predicting ``has_label``,
    highest first. Rows beyond ``max_rows`` are sampled (seeded). Empty when every row, or none, has a label.
    """
    y = np.asarray(has_label, dtype=bool)
    if len(y) != len(X):
        raise ValueError(f"has_label must have one value per row of X ({len(X)}). Got {len(y)} instead")
    if y.all() or not y.any():
        return pd.Series(dtype="float64", name="label_presence_auc")
    if len(y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False))
        X, y = X.iloc[keep], y[keep]
    aucs = {}
    for col in X.columns:
        score = _score(X[col], y, min_count)
        auc = float(roc_auc_score(y, score)) if np.ptp(score) > 0 else 0.5
        aucs[col] = max(auc, 1.0 - auc)
    return pd.Series(aucs, name="label_presence_auc", dtype="float64").sort_values(ascending=False, kind="stable")


def tier_giveaway_auc(
    X: pd.DataFrame, tiers, min_count: int = 20, max_rows: int = 50_000, seed: int = 0
) -> pd.DataFrame:
    """Per column of ``X``: the tier that column alone picks out best from the others and its oriented
    ROC AUC (:func:`label_presence_auc` of ``tiers == tier``), and the lowest such AUC over the tiers
    (near 1 for every tier: the column determines the tier); columns ``tier``, ``auc`` and ``every_tier_auc``,
    highest ``auc`` first. Rows beyond ``max_rows`` are sampled (seeded); tiers with fewer than
    ``min_count`` rows are skipped."""
    y = pd.Series(tiers, index=X.index).astype(str)
    if len(y) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), max_rows, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
    per_tier = {
        tier: label_presence_auc(X, (y == tier).to_numpy(), min_count=min_count, max_rows=max_rows, seed=seed)
        for tier, n in y.value_counts().sort_index().items()
        if min_count <= n < len(y)
    }
    if not per_tier:
        return pd.DataFrame({"tier": pd.Series(dtype="str"), "auc": [], "every_tier_auc": []})
    table = pd.DataFrame(per_tier).reindex(X.columns)
    out = pd.DataFrame({"tier": table.idxmax(axis=1), "auc": table.max(axis=1), "every_tier_auc": table.min(axis=1)})
    return out.sort_values("auc", ascending=False, kind="stable")
