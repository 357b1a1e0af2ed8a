"""Self-training: learn from the labelled subset, then also from confidently tiered unlabelled customers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def self_train(
    make_classifier: Callable[[], object],
    X: pd.DataFrame,
    y: list[str],
    X_unlabelled: pd.DataFrame,
    threshold: float = 0.8,
    max_rounds: int = 3,
):
    """Fit, pseudo-label unlabelled rows whose top probability is at least ``threshold``, refit;
    repeat until no new row qualifies or ``max_rounds``. Returns (classifier, rows added per round)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1]. Got {threshold} instead")
    clf = make_classifier().fit(X, y)
    added: list[int] = []
    pool = X_unlabelled
    X_all, y_all = X, list(y)
    for _ in range(max_rounds):
        if pool.empty:
            break
        proba = clf.predict_proba(pool)
        sure = proba.max(axis=1) >= threshold
        if not sure.any():
            break
        X_all = pd.concat([X_all, pool[sure]], ignore_index=True)
        y_all = y_all + list(np.asarray(clf.classes_)[proba[sure].argmax(axis=1)])
        pool = pool[~sure]
        added.append(int(sure.sum()))
        clf = make_classifier().fit(X_all, y_all)
    return clf, added
