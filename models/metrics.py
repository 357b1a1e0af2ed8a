"""Evaluation metrics for ordered tiers, built on scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

HIGHER_IS_BETTER = {
    "macro_f1": True,
    "balanced_accuracy": True,
    "qwk": True,
    "accuracy": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "roc_auc": True,
    "pr_auc": True,
    "lift_top_decile": True,
}


def expected_calibration_error(y_idx: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """Top-label ECE: gap between confidence and accuracy, weighted over equal-width bins."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_idx).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def tier_metrics(
    y_true: Sequence[str], proba: np.ndarray, levels: Sequence[str], y_pred: Sequence[str] | None = None
) -> dict[str, float]:
    """Headline metrics for tier predictions; ``proba`` columns follow ``levels`` (best first)."""
    levels = list(levels)
    y_true = np.asarray(y_true, dtype=object)
    unknown = sorted(set(y_true) - set(levels))
    if unknown:
        raise ValueError(f"true tiers {unknown} are not levels of the scheme {levels}")
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(y_true), len(levels)):
        raise ValueError(f"proba must have shape ({len(y_true)}, {len(levels)}). Got {proba.shape} instead")
    proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)  # undo output rounding
    idx = {c: i for i, c in enumerate(levels)}
    y_idx = np.array([idx[v] for v in y_true])
    pred_idx = proba.argmax(axis=1) if y_pred is None else np.array([idx[v] for v in y_pred])
    onehot = np.eye(len(levels))[y_idx]
    out = {
        "macro_f1": f1_score(y_idx, pred_idx, average="macro", labels=range(len(levels)), zero_division=0),
        "balanced_accuracy": balanced_accuracy_score(y_idx, pred_idx),
        "qwk": cohen_kappa_score(y_idx, pred_idx, weights="quadratic", labels=list(range(len(levels)))),
        "accuracy": accuracy_score(y_idx, pred_idx),
        "log_loss": log_loss(y_idx, np.clip(proba, 1e-15, 1), labels=range(len(levels))),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error(y_idx, proba),
    }
    prec, rec, _, support = precision_recall_fscore_support(y_idx, pred_idx, labels=range(len(levels)), zero_division=0)
    for i, code in enumerate(levels):
        out[f"precision_{code}"] = prec[i]
        out[f"recall_{code}"] = rec[i]
    if len(levels) == 2 and len(set(y_idx)) == 2:
        pos = proba[:, 0]  # the first level is the positive one (e.g. converted)
        is_pos = (y_idx == 0).astype(int)
        out["roc_auc"] = roc_auc_score(is_pos, pos)
        out["pr_auc"] = average_precision_score(is_pos, pos)
        top = np.argsort(-pos, kind="stable")[: max(1, len(pos) // 10)]
        out["lift_top_decile"] = is_pos[top].mean() / max(is_pos.mean(), 1e-12)
    return {k: float(v) for k, v in out.items()}


def confusion(y_true: Sequence[str], y_pred: Sequence[str], levels: Sequence[str]) -> pd.DataFrame:
    """Counts with true tiers as rows and predicted tiers as columns, both in scheme order."""
    m = confusion_matrix(list(y_true), list(y_pred), labels=list(levels))
    return pd.DataFrame(m, index=pd.Index(levels, name="true"), columns=pd.Index(levels, name="predicted"))


def compare(candidate: dict[str, float], reference: dict[str, float], keys: Sequence[str]) -> dict[str, bool]:
    """Metric by metric: does ``candidate`` beat ``reference`` (strictly)?"""
    out = {}
    for k in keys:
        if k in candidate and k in reference:
            better = candidate[k] > reference[k] if HIGHER_IS_BETTER.get(k, True) else candidate[k] < reference[k]
            out[k] = bool(better)
    return out
