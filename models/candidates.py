"""Candidate tier models and the rule that picks one inside the training window.

The candidates are the tuned LightGBM (:class:`~leadtier.models.classifier.TierClassifier`), the
logistic regression (:class:`~leadtier.models.baselines.LogisticBaseline`), CatBoost
(:class:`~leadtier.models.catboost_tiers.CatBoostTiers`) and probability averages of them
(:class:`AveragedTiers`). :func:`choose` scores each on validation rows drawn from the
training rows only, never on the evaluation rows, and returns the choice with its reasons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from leadtier.models.classifier import PriorShiftMixin
from leadtier.models.metrics import HIGHER_IS_BETTER, paired_bootstrap, tier_metrics
from sklearn.base import BaseEstimator, ClassifierMixin, clone

CANDIDATES = ("lightgbm", "logreg", "catboost", "average", "average3")


class AveragedTiers(PriorShiftMixin, ClassifierMixin, BaseEstimator):
    """The mean of its members' probabilities (each on the observed tier frequencies).

    ``members`` are unfitted estimators with ``predict_proba`` in scheme order, ``contributions_for``
    and ``feature_importances_``, fitted on the same rows. The decision rule and class-weight priors
    are the first member's. Reasons average the members' per-column log-odds contributions.
    """

    def __init__(self, members: Sequence = ()):
        self.members = members

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> AveragedTiers:
        if len(self.members) < 2:
            raise ValueError(f"an average needs at least two members. Got {len(self.members)} instead")
        self.members_ = [clone(m).fit(X, y) for m in self.members]
        first = self.members_[0]
        self.classes_ = np.asarray(first.classes_, dtype=object)
        for m in self.members_[1:]:
            if list(m.classes_) != list(self.classes_):
                raise ValueError(f"members disagree on the levels: {list(m.classes_)} vs {list(self.classes_)}")
        self.prior_, self.weighted_prior_ = first.prior_, first.weighted_prior_
        self.decision, self.cost_matrix = first.decision, first.cost_matrix
        self.feature_names_in_ = np.asarray(first.feature_names_in_, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.categories_ = {k: v for m in reversed(self.members_) for k, v in getattr(m, "categories_", {}).items()}
        return self

    def predict_proba(self, X: pd.DataFrame, n_jobs: int | None = None) -> np.ndarray:
        return np.mean([m.predict_proba(X, n_jobs=n_jobs) for m in self.members_], axis=0)

    def contributions_for(self, X: pd.DataFrame, level_idx: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        names = list(self.feature_names_in_)
        out = np.zeros((len(X), len(names) + 1))
        for m in self.members_:
            own = m.contributions_for(X, level_idx, n_jobs=n_jobs)
            cols = [names.index(c) for c in m.feature_names_in_]
            out[:, cols] += own[:, :-1]
            out[:, -1] += own[:, -1]
        return out / len(self.members_)

    @property
    def feature_importances_(self) -> pd.Series:
        """Each member's importances as shares of its total, averaged."""
        shares = [m.feature_importances_ / max(float(m.feature_importances_.sum()), 1e-300) for m in self.members_]
        mean = pd.concat(shares, axis=1).reindex(list(self.feature_names_in_)).fillna(0).mean(axis=1)
        return mean.rename("gain").sort_values(ascending=False)


@dataclass
class Choice:
    """Which candidate won on the validation rows, the scores behind it and the rule, in words."""

    name: str
    scores: dict[str, float]
    metric: str
    n_validation: int
    reasons: list[str] = field(default_factory=list)
    self_training: str | None = None  # "kept" or "discarded" when self-training was judged


def validation_predictions(
    make: Mapping[str, Callable[[], object]],
    X: pd.DataFrame,
    y: Sequence[str],
    splits: Iterable[tuple[np.ndarray, np.ndarray]],
    candidates: Sequence[str],
    averages: Mapping[str, Sequence[str]],
) -> tuple[list, dict[str, tuple[np.ndarray, list]]]:
    """The true tiers of the validation rows (pooled over ``splits``) and each candidate's probabilities
    and tiers on them. A model of ``make`` is fitted on each split's fitting rows; an entry of
    ``averages`` (name -> member names) is the mean of its members' probabilities, decided by the first
    member's rule (as :class:`AveragedTiers`), without refitting."""
    needed = list(dict.fromkeys(m for c in candidates for m in (averages.get(c) or [c])))
    y = np.asarray(list(y), dtype=object)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in candidates}
    truth: list = []
    for fit_rows, val_rows in splits:
        truth.extend(y[val_rows])
        fitted = {name: make[name]().fit(X.iloc[fit_rows], list(y[fit_rows])) for name in needed}
        proba = {name: m.predict_proba(X.iloc[val_rows]) for name, m in fitted.items()}
        for c in candidates:
            members = averages.get(c) or [c]
            p = np.mean([proba[m] for m in members], axis=0)
            first = fitted[members[0]]
            parts[c].append((p, first.classes_[first.tier_index(p)]))
    if not truth:
        raise ValueError("choose needs validation rows; every split was empty")
    pooled = {c: (np.vstack([p for p, _ in ps]), list(np.concatenate([t for _, t in ps]))) for c, ps in parts.items()}
    return truth, pooled


def choose(
    make: Mapping[str, Callable[[], object]],
    X: pd.DataFrame,
    y: Sequence[str],
    splits: Iterable[tuple[np.ndarray, np.ndarray]],
    levels: Sequence[str],
    metric: str,
    candidates: Sequence[str] | None = None,
    averages: Mapping[str, Sequence[str]] | None = None,
    rule: str = "significant",
    tolerance: float = 0.0,
    resamples: int = 1000,
    seed: int = 0,
) -> Choice:
    """Pick one of ``candidates`` (in order of preference; default: every model of ``make``) by
    ``metric`` on validation rows taken from the training rows (see :func:`validation_predictions`).

    ``rule='significant'``: the first candidate stays unless another beats it with the whole 95 %
    paired-bootstrap interval of the gain (``resamples`` draws) above ``tolerance``; of those that do,
    the best scoring wins. A switch on a gain within noise would trade a known model for noise.
    ``rule='best'``: the best score wins, an earlier candidate when within ``tolerance`` of it."""
    if rule not in ("significant", "best"):
        raise ValueError(f"rule must be 'significant' or 'best'. Got {rule!r} instead")
    averages = dict(averages or {})
    candidates = list(candidates or [*make, *averages])
    unknown = [c for c in candidates if c not in make and c not in averages]
    if unknown or not candidates:
        raise ValueError(f"candidates must be names of {[*make, *averages]}. Got {candidates} instead")
    truth, pooled = validation_predictions(make, X, y, splits, candidates, averages)
    scores = {c: tier_metrics(truth, p, levels, y_pred=t).get(metric, np.nan) for c, (p, t) in pooled.items()}
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    defined = {c: v for c, v in scores.items() if np.isfinite(v)}
    shown = ", ".join(f"{c} {v:.4f}" for c, v in scores.items())
    where = f"on {len(truth)} validation rows from the training rows"
    if not defined:
        return Choice(candidates[0], scores, metric, len(truth), [f"{candidates[0]} kept: {metric} undefined {where}"])
    if rule == "best" or candidates[0] not in defined:
        best = max(sign * v for v in defined.values())
        name = next(c for c in candidates if c in defined and sign * defined[c] >= best - tolerance)
        return Choice(name, scores, metric, len(truth), [f"{name} chosen {where} (best {metric}): {shown}"])
    first = candidates[0]
    gains = {}
    for c in candidates[1:]:
        g = paired_bootstrap(truth, {c: pooled[c], first: pooled[first]}, c, levels, [metric], resamples, seed=seed)
        gains[c] = g.get(first, {}).get(metric)
    beaten = [c for c, g in gains.items() if g is not None and g["low"] > tolerance]
    name = max(beaten, key=lambda c: sign * defined.get(c, -np.inf)) if beaten else first
    versus = ", ".join(f"{c} {g['gain']:+.4f} [{g['low']:+.4f}, {g['high']:+.4f}]" for c, g in gains.items() if g)
    verdict = f"{name} chosen" if beaten else f"{first} kept: no candidate beats it beyond noise"
    why = f"{verdict} {where} ({metric}: {shown}; gain over {first} [95 % interval]: {versus or 'none'})"
    return Choice(name, scores, metric, len(truth), [why])
