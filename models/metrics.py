"""Evaluation metrics for ordered tiers, built on scikit-learn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    recall_score,
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
    "mean_proba_gap": False,
    "adjacent_miss_share": True,
    "c_index": True,  # survival figures (leadtier.models.survival.survival_metrics)
    "c_index_uno": True,
    "integrated_brier": False,
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


def _encode(y: Sequence[str], levels: list[str], what: str) -> np.ndarray:
    idx = {c: i for i, c in enumerate(levels)}
    unknown = sorted(set(y) - set(levels))
    if unknown:
        raise ValueError(f"{what} {unknown} are not levels of the scheme {levels}")
    return np.array([idx[v] for v in y], dtype=int)


def _normalised(proba: np.ndarray, n_rows: int, n_levels: int) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (n_rows, n_levels):
        raise ValueError(f"proba must have shape ({n_rows}, {n_levels}). Got {proba.shape} instead")
    return proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)  # undo output rounding


def _scores(y_idx: np.ndarray, pred_idx: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The metrics of one set of predictions that do not name a tier (integer-coded levels)."""
    k = proba.shape[1]
    onehot = np.eye(k)[y_idx]
    out = {
        "macro_f1": f1_score(y_idx, pred_idx, average="macro", labels=range(k), zero_division=0),
        # the mean recall of the tiers present, as balanced_accuracy_score, without its warning about a
        # predicted tier no evaluated row has
        "balanced_accuracy": recall_score(y_idx, pred_idx, labels=np.unique(y_idx), average="macro", zero_division=0),
        "qwk": cohen_kappa_score(y_idx, pred_idx, weights="quadratic", labels=list(range(k))),
        "accuracy": accuracy_score(y_idx, pred_idx),
        "log_loss": log_loss(y_idx, np.clip(proba, 1e-15, 1), labels=range(k)),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "ece": expected_calibration_error(y_idx, proba),
    }
    out.update(_two_level_scores(y_idx, proba))
    return {m: float(v) for m, v in out.items()}


def _two_level_scores(y_idx: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC and top-decile lift of a two-level scheme ({} otherwise, or with one class only)."""
    if proba.shape[1] != 2 or len(set(y_idx)) != 2:
        return {}
    pos = proba[:, 0]  # the first level is the positive one (e.g. converted)
    is_pos = (y_idx == 0).astype(int)
    return {
        "roc_auc": float(roc_auc_score(is_pos, pos)),
        "pr_auc": float(average_precision_score(is_pos, pos)),
        "lift_top_decile": lift_top_share(pos, is_pos, 0.1),
    }


def lift_top_share(score: np.ndarray, is_pos: np.ndarray, share: float = 0.1) -> float:
    """Positive rate among the ``share`` of rows with the highest ``score``, over the overall rate.

    Rows tied on the score at the cut share the remaining places in proportion (each counts with the
    fraction of its tie group that fits), so the figure does not depend on row order: all scores equal
    gives 1.0."""
    score, is_pos = np.asarray(score, dtype=float), np.asarray(is_pos, dtype=float)
    _, group = np.unique(-score, return_inverse=True)  # groups from the highest score down
    return _grouped_lift(np.bincount(group, is_pos), np.bincount(group).astype(float), share)


def _grouped_lift(pos: np.ndarray, size: np.ndarray, share: float = 0.1) -> float:
    """:func:`lift_top_share` from (weighted) positives and rows per score group, highest score first."""
    n, n_pos = size.sum(), pos.sum()
    if n <= 0 or n_pos <= 0:
        return float("nan")
    top = max(1.0, float(np.floor(round(n * share, 9))))  # rows in the top share, filled group by group
    taken = np.clip(top - (np.cumsum(size) - size), 0, size)
    fraction = np.divide(taken, size, out=np.zeros_like(taken), where=size > 0)
    return float(fraction @ pos / top / (n_pos / n))


class _Resampler:
    """One model's predictions, prepared so that a bootstrap draw is scored from counts and sums.

    A draw is given as ``counts``: how often each evaluation row was drawn. A resample needs the
    metrics thousands of times and scikit-learn's input checks would dominate, so each metric is a
    weighted sum of per-row terms computed once: macro-F1, balanced accuracy and QWK from the draw's
    confusion counts, ROC-AUC and PR-AUC from counts per distinct score, log-loss, Brier and ECE
    from per-row terms. Each follows scikit-learn's definition (and
    :func:`expected_calibration_error`), which a test checks value by value against :func:`_scores`;
    rows tied on the score share the top decile of the lift in proportion.
    """

    def __init__(self, y_idx: np.ndarray, pred_idx: np.ndarray, proba: np.ndarray, n_bins: int = 10):
        k = self.k = proba.shape[1]
        conf = proba.max(axis=1)
        self.cell = y_idx * k + pred_idx  # confusion-matrix cell of each row
        self.w = np.subtract.outer(np.arange(k), np.arange(k)).astype(float) ** 2
        self.loss = -np.log(np.clip(proba[np.arange(len(y_idx)), y_idx], 1e-15, 1))
        self.sq = np.sum((proba - np.eye(k)[y_idx]) ** 2, axis=1)
        self.n_bins = n_bins
        self.bin = np.minimum((conf * n_bins).astype(int), n_bins - 1)
        self.gap = (proba.argmax(axis=1) == y_idx) - conf  # correct minus confidence
        if k == 2:
            # distinct scores of the positive (first) level from highest to lowest, and each row's group
            scores, self.group = np.unique(-proba[:, 0], return_inverse=True)
            self.n_groups = len(scores)
            self.is_pos = (y_idx == 0).astype(float)

    def scores(self, counts: np.ndarray) -> dict[str, float]:
        k, n = self.k, counts.sum()
        cm = np.bincount(self.cell, counts, k * k).reshape(k, k)
        tp, n_true, n_pred = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
        f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros(k), where=(n_true + n_pred) > 0)
        seen = n_true > 0
        chance = (self.w * np.outer(n_true, n_pred) / n).sum()
        out = {
            "macro_f1": float(f1.mean()),
            "balanced_accuracy": float((tp[seen] / n_true[seen]).mean()),
            "qwk": float(1 - (self.w * cm).sum() / chance) if chance > 0 else float("nan"),
            "log_loss": float(counts @ self.loss / n),
            "brier": float(counts @ self.sq / n),
            "ece": float(np.abs(np.bincount(self.bin, counts * self.gap, self.n_bins)).sum() / n),
        }
        if k == 2:
            pos = np.bincount(self.group, counts * self.is_pos, self.n_groups)  # per score, highest first
            neg = np.bincount(self.group, counts * (1 - self.is_pos), self.n_groups)
            n_pos, n_neg = pos.sum(), neg.sum()
            if n_pos > 0 and n_neg > 0:
                below = n_neg - np.cumsum(neg)  # negatives scored lower than each group
                out["roc_auc"] = float(pos @ (below + neg / 2) / (n_pos * n_neg))
                hits, seen_rows = np.cumsum(pos), np.cumsum(pos + neg)
                precision = np.divide(hits, seen_rows, out=np.zeros_like(hits), where=seen_rows > 0)
                out["pr_auc"] = float(pos @ precision / n_pos)
                out["lift_top_decile"] = _grouped_lift(pos, pos + neg, 0.1)
        return out


def tier_metrics(
    y_true: Sequence[str], proba: np.ndarray, levels: Sequence[str], y_pred: Sequence[str] | None = None
) -> dict[str, float]:
    """Headline metrics for tier predictions; ``proba`` columns follow ``levels`` (best first)."""
    levels = list(levels)
    y_idx = _encode(np.asarray(y_true, dtype=object), levels, "true tiers")
    proba = _normalised(proba, len(y_idx), len(levels))
    pred_idx = proba.argmax(axis=1) if y_pred is None else _encode(y_pred, levels, "predicted tiers")
    out = _scores(y_idx, pred_idx, proba)
    prec, rec, _, _ = precision_recall_fscore_support(y_idx, pred_idx, labels=range(len(levels)), zero_division=0)
    for i, code in enumerate(levels):
        out[f"precision_{code}"] = float(prec[i])
        out[f"recall_{code}"] = float(rec[i])
    return out


def paired_bootstrap(
    y_true: Sequence[str],
    predictions: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    reference: str,
    levels: Sequence[str],
    keys: Sequence[str],
    n_resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """How much better ``reference`` scores than each other entry of ``predictions``, with an interval.

    ``predictions`` maps a name to (probabilities, predicted tiers) on the rows of ``y_true``. Every
    resample draws the evaluation rows with replacement once and scores all models on that draw, so
    the interval is for the paired difference. ``gain`` is positive when ``reference`` is better
    (for log-loss, Brier and ECE: lower). The interval covers which customers happened to be
    evaluated, not the randomness of retraining. Returns ``{name: {metric: {gain, low, high}}}``
    for the metrics in ``keys`` that both sides have and that at least half of the draws define
    (a draw can leave QWK or an AUC-type metric undefined, e.g. with one true tier; it is skipped).
    """
    levels = list(levels)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1. Got {confidence!r} instead")
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be at least 2. Got {n_resamples!r} instead")
    if reference not in predictions:
        raise ValueError(f"reference {reference!r} is not among the predictions {sorted(predictions)}")
    y_idx = _encode(np.asarray(y_true, dtype=object), levels, "true tiers")
    coded = {
        name: (_normalised(proba, len(y_idx), len(levels)), _encode(pred, levels, f"predicted tiers of {name!r}"))
        for name, (proba, pred) in predictions.items()
    }
    point = {name: _scores(y_idx, pred, proba) for name, (proba, pred) in coded.items()}
    sign = {m: 1.0 if HIGHER_IS_BETTER.get(m, True) else -1.0 for m in keys}
    others = [name for name in coded if name != reference]
    fast = {name: _Resampler(y_idx, pred, proba) for name, (proba, pred) in coded.items()}
    draws: dict[str, dict[str, list[float]]] = {name: {m: [] for m in keys} for name in others}
    rng = np.random.default_rng(seed)
    n = len(y_idx)
    for _ in range(n_resamples):
        counts = rng.multinomial(n, np.full(n, 1 / n)).astype(float)  # n rows drawn with replacement
        scored = {name: r.scores(counts) for name, r in fast.items()}
        for name in others:
            for m in keys:
                # a draw may lack a metric (AUC with one class) or leave it undefined (QWK with one tier)
                diff = sign[m] * (scored[reference].get(m, np.nan) - scored[name].get(m, np.nan))
                if np.isfinite(diff):
                    draws[name][m].append(diff)
    tail = (1 - confidence) / 2 * 100
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in others:
        out[name] = {}
        for m in keys:
            gain = sign[m] * (point[reference].get(m, np.nan) - point[name].get(m, np.nan))
            if np.isfinite(gain) and len(draws[name][m]) >= n_resamples / 2:
                low, high = np.percentile(draws[name][m], [tail, 100 - tail])
                out[name][m] = {"gain": float(gain), "low": float(low), "high": float(high)}
    return out


def mean_probability_gap(y_true: Sequence[str], proba: np.ndarray, levels: Sequence[str]) -> float:
    """Calibration in the large: the largest gap, over the levels, between the mean predicted
    probability of a level and how often it occurs (for two levels, the positive rate's gap)."""
    levels = list(levels)
    y_idx = _encode(np.asarray(y_true, dtype=object), levels, "true tiers")
    proba = _normalised(proba, len(y_idx), len(levels))
    observed = np.bincount(y_idx, minlength=len(levels)) / max(len(y_idx), 1)
    return float(np.abs(proba.mean(axis=0) - observed).max())


def level_shares(y_true: Sequence[str], proba: np.ndarray, levels: Sequence[str]) -> dict[str, float]:
    """Per level, how often it occurs (``observed_share_<level>``) and its mean predicted probability
    (``mean_proba_<level>``): the two agree when the probabilities mean what they say."""
    levels = list(levels)
    y_idx = _encode(np.asarray(y_true, dtype=object), levels, "true tiers")
    proba = _normalised(proba, len(y_idx), len(levels))
    observed = np.bincount(y_idx, minlength=len(levels)) / max(len(y_idx), 1)
    out = {f"observed_share_{lv}": float(o) for lv, o in zip(levels, observed, strict=True)}
    return out | {f"mean_proba_{lv}": float(m) for lv, m in zip(levels, proba.mean(axis=0), strict=True)}


def share_gaps(metrics: dict, levels: Sequence[str], n: int, floor: float = 0.02, z: float = 3.0) -> dict:
    """The levels whose mean predicted probability (``mean_proba_<level>``, :func:`level_shares`) is off
    their observed share on the ``n`` evaluation rows by more than ``floor`` and by more than ``z``
    binomial standard errors of that share (more than chance explains): {level: {"observed", "expected"}}."""
    out = {}
    for lv in levels:
        observed, expected = metrics.get(f"observed_share_{lv}"), metrics.get(f"mean_proba_{lv}")
        if observed is None or expected is None or n <= 0:
            continue
        noise = z * float(np.sqrt(max(observed * (1 - observed), 1.0 / n) / n))
        if abs(expected - observed) > max(floor, noise):
            out[str(lv)] = {"observed": round(float(observed), 4), "expected": round(float(expected), 4)}
    return out


def adjacent_miss_share(y_true: Sequence[str], y_pred: Sequence[str], levels: Sequence[str]) -> float:
    """Of the rows whose predicted tier is wrong, the share that is one tier off (NaN with no miss)."""
    levels = list(levels)
    true_idx = _encode(np.asarray(y_true, dtype=object), levels, "true tiers")
    pred_idx = _encode(np.asarray(y_pred, dtype=object), levels, "predicted tiers")
    off = np.abs(true_idx - pred_idx)
    return float((off == 1).sum() / (off > 0).sum()) if (off > 0).any() else float("nan")


def confusion(y_true: Sequence[str], y_pred: Sequence[str], levels: Sequence[str]) -> pd.DataFrame:
    """Counts with true tiers as rows and predicted tiers as columns, both in scheme order."""
    m = confusion_matrix(list(y_true), list(y_pred), labels=list(levels))
    return pd.DataFrame(m, index=pd.Index(levels, name="true"), columns=pd.Index(levels, name="predicted"))


def beaten_on(gains: dict[str, dict[str, dict[str, float]]], metrics: Sequence[str]) -> dict[str, list[str]]:
    """Of :func:`paired_bootstrap`'s ``gains`` of a model over each baseline: the baselines that score
    better than the model beyond noise (the gain's whole interval below 0), each with the ``metrics``
    (in their order) where they do."""
    out: dict[str, list[str]] = {}
    for baseline, by_metric in gains.items():
        worse = [m for m in metrics if m in by_metric and by_metric[m]["high"] < 0]
        if worse:
            out[baseline] = worse
    return out


def compare(candidate: dict[str, float], reference: dict[str, float], keys: Sequence[str]) -> dict[str, bool]:
    """Metric by metric: does ``candidate`` beat ``reference`` (strictly)?"""
    out = {}
    for k in keys:
        if k in candidate and k in reference:
            better = candidate[k] > reference[k] if HIGHER_IS_BETTER.get(k, True) else candidate[k] < reference[k]
            out[k] = bool(better)
    return out
