"""Optuna search for the tier classifier's hyper-parameters, cross-validated on training rows only."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from leadtier.models.classifier import TierClassifier
from leadtier.models.metrics import HIGHER_IS_BETTER, tier_metrics
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold


def suggest(trial: optuna.Trial, space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Draw one point of the configured search space."""
    params: dict[str, Any] = {}
    for name, dim in space.items():
        kind = dim["type"]
        if kind == "int":
            params[name] = trial.suggest_int(name, int(dim["low"]), int(dim["high"]), log=bool(dim.get("log")))
        elif kind == "float":
            params[name] = trial.suggest_float(name, float(dim["low"]), float(dim["high"]), log=bool(dim.get("log")))
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(dim["choices"]))
        else:
            raise ValueError(f"search dimension {name!r} has type {kind!r}; allowed: int, float, categorical")
    return params


def tune(
    X: pd.DataFrame,
    y: Sequence[str],
    levels: Sequence[str],
    space: Mapping[str, Mapping[str, Any]],
    n_trials: int,
    timeout_s: float | None,
    cv_folds: int = 3,
    metric: str = "macro_f1",
    seed: int = 0,
    base_params: Mapping[str, Any] | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    groups: Sequence | None = None,
) -> optuna.Study:
    """TPE search with median pruning after each fold; returns the finished study.

    ``groups`` (e.g. customer ids when several snapshots are stacked) keeps a customer's rows in
    one fold. Reproducible for a given seed as long as ``n_trials`` completes before ``timeout_s``.
    """
    y = np.asarray(list(y), dtype=object)
    if groups is None:
        folds = list(StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed).split(X, y))
    else:
        splitter = StratifiedGroupKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
        folds = list(splitter.split(X, y, groups=np.asarray(groups)))
    direction = "maximize" if HIGHER_IS_BETTER[metric] else "minimize"

    def objective(trial: optuna.Trial) -> float:
        params = {**(base_params or {}), **suggest(trial, space)}
        scores = []
        for i, (tr, va) in enumerate(folds):
            clf = TierClassifier(levels=levels, random_state=seed, **params).fit(X.iloc[tr], y[tr])
            proba = clf.predict_proba(X.iloc[va])
            scores.append(tier_metrics(y[va], proba, levels, y_pred=clf.predict(X.iloc[va]))[metric])
            trial.report(float(np.mean(scores)), i)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
    )
    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=list(callbacks))
    return study
