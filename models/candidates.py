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
from leadtier.models.text import signed
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
        self.decision_balance = first.balance()
        self.feature_names_in_ = np.asarray(first.feature_names_in_, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.categories_ = {k: v for m in reversed(self.members_) for k, v in getattr(m, "categories_", {}).items()}
        return self

    def balance(self) -> float:
        """The first member's decision balance (also for averages pickled before it was copied here)."""
        given = getattr(self, "decision_balance", None)
        return float(given) if given is not None else self.members_[0].balance()

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


BALANCES = (1.0, 0.75, 0.5, 0.25, 0.0)  # decision balances tried
DECISION_METRICS = ("macro_f1", "qwk", "balanced_accuracy")  # primary metrics of the tiers, not the probabilities


@dataclass
class Choice:
    """Which candidate won on the validation rows, the scores behind it and the rule, in words; the
    decision's balance (None: the model's own) and each balance's score when one was chosen."""

    name: str
    scores: dict[str, float]
    metric: str
    n_validation: int
    reasons: list[str] = field(default_factory=list)
    self_training: str | None = None  # "kept" or "discarded" when self-training was judged
    decision_balance: float | None = None
    balance_scores: dict[float, float] = field(default_factory=dict)
    gains: dict[str, dict[str, float]] = field(default_factory=dict)  # rule 'significant': each over the first


@dataclass
class Validation:
    """Validation rows pooled over the splits: their true tiers and, per candidate, one (probabilities,
    fitted model deciding them) pair per split."""

    truth: list
    parts: dict[str, list[tuple[np.ndarray, object]]]

    def pooled(self, candidate: str, decision_balance: float | None = None) -> tuple[np.ndarray, list]:
        """The candidate's probabilities and tiers on every validation row (tiers at ``decision_balance``,
        default the model's own)."""
        parts = self.parts[candidate]
        tiers = [m.classes_[m.tier_index(p, decision_balance)] for p, m in parts]
        return np.vstack([p for p, _ in parts]), list(np.concatenate(tiers))


def validation_predictions(
    make: Mapping[str, Callable[[], object]],
    X: pd.DataFrame,
    y: Sequence[str],
    splits: Iterable[tuple[np.ndarray, np.ndarray]],
    candidates: Sequence[str],
    averages: Mapping[str, Sequence[str]] | None = None,
) -> Validation:
    """Each candidate's probabilities on the validation rows of ``splits``. A model of ``make`` is
    fitted on each split's fitting rows; an entry of ``averages`` (name -> member names) is the mean of
    its members' probabilities, decided by the first member's rule (as :class:`AveragedTiers`),
    without refitting."""
    averages = dict(averages or {})
    needed = list(dict.fromkeys(m for c in candidates for m in (averages.get(c) or [c])))
    y = np.asarray(list(y), dtype=object)
    parts: dict[str, list[tuple[np.ndarray, object]]] = {c: [] for c in candidates}
    truth: list = []
    for fit_rows, val_rows in splits:
        truth.extend(y[val_rows])
        fitted = {name: make[name]().fit(X.iloc[fit_rows], list(y[fit_rows])) for name in needed}
        proba = {name: m.predict_proba(X.iloc[val_rows]) for name, m in fitted.items()}
        for c in candidates:
            members = averages.get(c) or [c]
            parts[c].append((np.mean([proba[m] for m in members], axis=0), fitted[members[0]]))
    if not truth:
        raise ValueError("choose needs validation rows; every split was empty")
    return Validation(truth, parts)


def choose_balance(
    validation: Validation,
    candidate: str,
    levels: Sequence[str],
    metric: str,
    balances: Sequence[float] = BALANCES,
    rule: str = "significant",
    tolerance: float = 0.0,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, dict[float, float], str]:
    """The decision balance (see :class:`~leadtier.models.classifier.PriorShiftMixin`) for ``candidate``
    by ``metric`` on the validation rows, each balance's score, and the verdict in words. How far the
    decision should favour rare tiers depends on how well the model tells them apart, which only
    held-out rows show. The model's own balance is the first candidate of :func:`pick` under ``rule``:
    another replaces it only when it is better beyond noise (``significant``) or at all (``best``)."""
    own = validation.parts[candidate][0][1].balance()
    order = [own, *(float(b) for b in balances if float(b) != own)]
    pooled = {b: validation.pooled(candidate, b) for b in order}
    names = {b: f"{b:g}" for b in order}
    choice = pick(
        validation.truth,
        {names[b]: p for b, p in pooled.items()},
        levels,
        metric,
        [names[b] for b in order],
        rule,
        tolerance,
        resamples,
        seed,
    )
    chosen = next(b for b in order if names[b] == choice.name)
    return chosen, {b: choice.scores[names[b]] for b in order}, choice.reasons[0]


def pick(
    truth: list,
    pooled: Mapping[str, tuple[np.ndarray, list]],
    levels: Sequence[str],
    metric: str,
    candidates: Sequence[str],
    rule: str = "significant",
    tolerance: float = 0.0,
    resamples: int = 1000,
    seed: int = 0,
) -> Choice:
    """One of ``candidates`` (in order of preference) by ``metric`` on validation rows whose true tiers
    are ``truth`` and whose (probabilities, tiers) per candidate are ``pooled``; see :func:`choose`."""
    if rule not in ("significant", "best"):
        raise ValueError(f"rule must be 'significant' or 'best'. Got {rule!r} instead")
    scores = {c: tier_metrics(truth, pooled[c][0], levels, y_pred=pooled[c][1]).get(metric, np.nan) for c in candidates}
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
    versus = ", ".join(
        f"{c} {signed(g['gain'])} [{signed(g['low'])}, {signed(g['high'])}]" for c, g in gains.items() if g
    )
    verdict = f"{name} chosen" if beaten else f"{first} kept: no candidate beats it beyond noise"
    why = f"{verdict} {where} ({metric}: {shown}; gain over {first} [95 % interval]: {versus or 'none'})"
    kept = {c: {k: float(g[k]) for k in ("gain", "low", "high")} for c, g in gains.items() if g}
    return Choice(name, scores, metric, len(truth), [why], gains=kept)


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
    balance_of: Callable[[Validation, str], float | None] | None = None,
) -> tuple[Choice, Validation]:
    """Pick one of ``candidates`` (in order of preference; default: every model of ``make``) by
    ``metric`` on validation rows taken from the training rows (see :func:`validation_predictions`,
    returned beside the choice).

    ``rule='significant'``: the first candidate stays unless another beats it with the whole 95 %
    paired-bootstrap interval of the gain (``resamples`` draws) above ``tolerance``; of those that do,
    the best scoring wins. A switch on a gain within noise would trade a known model for noise.
    ``rule='best'``: the best score wins, an earlier candidate when within ``tolerance`` of it.
    ``balance_of(validation, candidate)``: the decision balance each candidate is judged at (its own best on
    these rows, say), so that none loses for a balance that suits another; default: each model's own."""
    if rule not in ("significant", "best"):
        raise ValueError(f"rule must be 'significant' or 'best'. Got {rule!r} instead")
    averages = dict(averages or {})
    candidates = list(candidates or [*make, *averages])
    unknown = [c for c in candidates if c not in make and c not in averages]
    if unknown or not candidates:
        raise ValueError(f"candidates must be names of {[*make, *averages]}. Got {candidates} instead")
    validation = validation_predictions(make, X, y, splits, candidates, averages)
    balances = {c: balance_of(validation, c) if balance_of else None for c in candidates}
    pooled = {c: validation.pooled(c, balances[c]) for c in candidates}
    choice = pick(validation.truth, pooled, levels, metric, candidates, rule, tolerance, resamples, seed)
    if balance_of:
        each = ", ".join(f"{c} {b:g}" for c, b in balances.items() if b is not None)
        choice.reasons.append(f"each candidate judged at its own decision balance on these rows: {each}")
    return choice, validation
