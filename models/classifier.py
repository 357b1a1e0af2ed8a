"""LightGBM tier classifier with scheme-ordered classes and a configurable decision rule."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from leadtier.models.frame import ID_COLUMN, as_model_input, categorical_columns
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.validation import check_is_fitted


def decide(proba: np.ndarray, decision: str = "argmax", cost_matrix: np.ndarray | None = None) -> np.ndarray:
    """Level index per row from probabilities.

    ``argmax`` takes the most probable level. ``min_expected_cost`` takes the level whose
    expected cost ``proba @ cost_matrix`` is lowest, where ``cost_matrix[i, j]`` is the cost of
    predicting level ``j`` for a customer whose true level is ``i``; with ``|i - j|`` costs this is
    the median of the ordered distribution.
    """
    proba = np.asarray(proba, dtype=float)
    if decision == "argmax":
        return proba.argmax(axis=1)
    if decision == "min_expected_cost":
        k = proba.shape[1]
        cost = (
            np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
            if cost_matrix is None
            else np.asarray(cost_matrix, dtype=float)
        )
        if cost.shape != (k, k):
            raise ValueError(f"cost_matrix must be {k}x{k} for {k} levels. Got shape {cost.shape} instead")
        return (proba @ cost).argmin(axis=1)
    raise ValueError(f"decision must be 'argmax' or 'min_expected_cost'. Got {decision!r} instead")


class PriorShiftMixin:
    """Probabilities on the observed tier frequencies, decisions as balanced as asked.

    Class weights shift a model's prior: with balanced weights it sees every present tier as equally
    frequent. :meth:`_set_priors` records both priors at fit time; :meth:`_unshift` moves the weighted
    model's probabilities back to the observed frequencies (before any calibration). The decision
    (:meth:`tier_index`) then divides each tier's probability by its frequency raised to
    ``decision_balance``: 1 decides as if every present tier were equally frequent (a tier wins by
    being likely *for its frequency*, so rare tiers are still predicted), 0 takes the most probable
    tier; None (the default) follows ``class_weight`` (1 for balanced, 0 otherwise)."""

    def _set_priors(self, y_idx: np.ndarray, n_levels: int, class_weight: str | None) -> None:
        counts = np.bincount(y_idx, minlength=n_levels).astype(float)
        self.prior_ = counts / counts.sum()
        present = counts > 0
        self.weighted_prior_ = present / present.sum() if class_weight == "balanced" else self.prior_

    def _unshift(self, proba: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Weighted-model probabilities over the levels ``columns`` -> observed-frequency probabilities."""
        shifted = proba * (self.prior_[columns] / self.weighted_prior_[columns])
        return shifted / np.clip(shifted.sum(axis=1, keepdims=True), 1e-300, None)

    def balance(self) -> float:
        """The decision's balance: ``decision_balance``, or 1 with balanced class weights and 0 without."""
        given = getattr(self, "decision_balance", None)
        if given is not None:
            return float(given)
        return 1.0 if getattr(self, "class_weight", None) == "balanced" else 0.0

    def tier_index(self, proba: np.ndarray, decision_balance: float | None = None) -> np.ndarray:
        """Level index per row from this model's probabilities, by its ``decision`` rule at its
        balance (or the one given)."""
        proba = np.asarray(proba, dtype=float)
        balance = self.balance() if decision_balance is None else decision_balance
        if not 0.0 <= balance <= 1.0:
            raise ValueError(f"decision_balance must lie in [0, 1]. Got {balance!r} instead")
        if hasattr(self, "prior_") and balance > 0:
            present = self.prior_ > 0
            even = present / present.sum()
            shift = np.divide(even, self.prior_, out=np.zeros(len(self.prior_)), where=present)
            proba = proba * shift**balance
            proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-300, None)
        return decide(proba, getattr(self, "decision", "argmax"), getattr(self, "cost_matrix", None))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.tier_index(self.predict_proba(X))]


CALIBRATIONS = ("auto", "none", "temperature", "sigmoid", "isotonic")


class _GivenProbabilities(ClassifierMixin, BaseEstimator):
    """An estimator whose input already is its class probabilities: lets scikit-learn's calibrators
    (``CalibratedClassifierCV`` around it, frozen) work on probabilities computed once."""

    def __init__(self, n_classes: int = 2):
        self.n_classes = n_classes

    def fit(self, X, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def fit_calibrator(proba: np.ndarray, y_idx: np.ndarray, method: str) -> CalibratedClassifierCV:
    """scikit-learn's ``method`` calibrator fitted on probabilities ``proba`` of integer-coded ``y_idx``.

    ``sigmoid`` and ``isotonic`` fit each class's curve with its own offset, so they correct a shifted
    prior; ``temperature`` (one parameter) sharpens or flattens without moving the prior."""
    given = FrozenEstimator(_GivenProbabilities(proba.shape[1]).fit(proba))
    every_row = np.arange(len(y_idx))
    # the probabilities are given, so no folds are needed: one "split" whose test part is every row
    # (scikit-learn's default 5 folds would refuse a tier with fewer than 5 rows)
    return CalibratedClassifierCV(given, method=method, cv=[(every_row, every_row)]).fit(proba, y_idx)


def calibration_losses(proba: np.ndarray, y_idx: np.ndarray, seed: int = 0, folds: int = 5) -> dict[str, float]:
    """Cross-validated log-loss of each calibration on held-out probabilities ``proba`` (rows of
    ``y_idx``): every calibrator is fitted on some folds and scored on the fold it did not see, so the
    choice between them is not biased towards the most flexible one. ``none`` scores ``proba`` as is.
    With a class of fewer than two rows there are no folds and only ``none`` is scored."""
    k = proba.shape[1]
    out = {"none": float(log_loss(y_idx, np.clip(proba, 1e-15, 1), labels=range(k)))}
    n_splits = min(folds, int(np.bincount(y_idx, minlength=k)[np.unique(y_idx)].min()))
    if n_splits < 2:
        return out
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for method in ("temperature", "sigmoid", "isotonic"):
        oof = np.zeros_like(proba)
        for tr, va in cv.split(proba, y_idx):
            oof[va] = fit_calibrator(proba[tr], y_idx[tr], method).predict_proba(proba[va])
        out[method] = float(log_loss(y_idx, np.clip(oof, 1e-15, 1), labels=range(k)))
    return out


class TierClassifier(PriorShiftMixin, ClassifierMixin, BaseEstimator):
    """Multiclass LightGBM over a customer feature table.

    Text columns become categoricals (LightGBM splits on them natively); the id column is
    ignored. ``levels`` fixes the class order (best tier first) so probabilities, metrics and
    scores line up with the scheme.

    ``class_weight='balanced'`` weights the booster's training rows so that rare tiers are found;
    the probabilities are then put back on the observed tier frequencies (the weights' prior shift
    undone) and the decision re-applies the weights (see :meth:`tier_index`).

    ``calibration`` holds out ``calibration_size`` of the rows (stratified), fits LightGBM on the rest
    and calibrates its probabilities on the held-out part with scikit-learn's
    ``CalibratedClassifierCV``: ``temperature``, ``sigmoid`` or ``isotonic``, or ``auto``, which takes
    whichever of those (or none) has the lowest cross-validated log-loss on the held-out rows
    (``calibration_log_loss_`` keeps the figures, ``calibration_`` the choice). With
    ``calibration_cv`` = k >= 2 the calibrator is fitted on k-fold out-of-fold predictions instead and
    the booster is refitted on every row. ``min_data_per_group``, ``cat_smooth``, ``cat_l2`` and
    ``max_cat_to_onehot`` are LightGBM's categorical-split settings (its defaults), there to be tuned.
    ``decision`` turns probabilities into a tier (see :func:`decide`); SHAP contributions always
    explain the uncalibrated booster.
    """

    def __init__(
        self,
        levels: Sequence[str] = ("A", "B", "C", "D", "E"),
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        max_depth: int = -1,
        min_child_samples: int = 20,
        subsample: float = 1.0,
        colsample_bytree: float = 1.0,
        reg_lambda: float = 0.0,
        min_data_per_group: int = 100,
        cat_smooth: float = 10.0,
        cat_l2: float = 10.0,
        max_cat_to_onehot: int = 4,
        class_weight: str | None = "balanced",
        decision: str = "argmax",
        decision_balance: float | None = None,
        cost_matrix: Sequence[Sequence[float]] | None = None,
        calibration: str = "auto",
        calibration_size: float = 0.2,
        calibration_cv: int = 0,
        random_state: int = 0,
        n_jobs: int = 1,
    ):
        self.levels = levels
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.min_data_per_group = min_data_per_group
        self.cat_smooth = cat_smooth
        self.cat_l2 = cat_l2
        self.max_cat_to_onehot = max_cat_to_onehot
        self.class_weight = class_weight
        self.decision = decision
        self.decision_balance = decision_balance
        self.cost_matrix = cost_matrix
        self.calibration = calibration
        self.calibration_size = calibration_size
        self.calibration_cv = calibration_cv
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _encode(self, y: Sequence[str]) -> np.ndarray:
        idx = {c: i for i, c in enumerate(self.classes_)}
        y = pd.Series(y).astype("object")
        unknown = sorted(set(y.dropna()) - set(idx))
        if y.isna().any():
            raise ValueError(f"y has {int(y.isna().sum())} missing tier(s); drop unlabelled rows before fit")
        if unknown:
            raise ValueError(f"y holds tiers {unknown} that are not in levels {list(self.classes_)}")
        return y.map(idx).to_numpy(dtype=int)

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> TierClassifier:
        y_idx, present = self._check(X, y)
        self.feature_names_in_ = np.asarray([c for c in X.columns if c != ID_COLUMN], dtype=object)
        cats = categorical_columns(X[list(self.feature_names_in_)])
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) for c in cats}
        Xm = as_model_input(X, list(self.feature_names_in_), self.categories_)
        # the booster learns with the class weights; its probabilities are moved back to the observed
        # tier frequencies before calibration (see PriorShiftMixin)
        self.present_ = present
        self._set_priors(y_idx, len(self.classes_), self.class_weight)
        cal_proba, cal_y = self._fit_booster(Xm, y_idx, present)
        self._fit_calibrator(cal_proba, cal_y, present)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def _check(self, X: pd.DataFrame, y: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Validate the arguments; sets ``classes_``. Returns y as level indices and the levels present."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame of features. Got {type(X).__name__} instead")
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length. Got {len(X)} and {len(y)} instead")
        if len(self.levels) < 2:
            raise ValueError(f"levels needs at least two tiers. Got {list(self.levels)} instead")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}. Got {self.calibration!r} instead")
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        y_idx = self._encode(y)
        present = np.unique(y_idx)
        if len(present) < 2:
            raise ValueError(f"y holds a single tier {list(self.classes_[present])}; a classifier needs two or more")
        return y_idx, present

    def _booster(self, n_present: int) -> lgb.LGBMClassifier:
        return lgb.LGBMClassifier(
            objective="multiclass" if n_present > 2 else "binary",
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            max_depth=self.max_depth,
            min_child_samples=self.min_child_samples,
            subsample=self.subsample,
            subsample_freq=1 if self.subsample < 1 else 0,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            min_data_per_group=self.min_data_per_group,
            cat_smooth=self.cat_smooth,
            cat_l2=self.cat_l2,
            max_cat_to_onehot=self.max_cat_to_onehot,
            class_weight="balanced" if self.class_weight == "balanced" else None,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            deterministic=True,
            force_col_wise=True,
            verbose=-1,
        )

    def _fit_booster(self, Xm: pd.DataFrame, y_idx: np.ndarray, present: np.ndarray):
        """Fit ``booster_``; returns the calibration rows' prior-corrected probabilities and tiers (None,
        None without calibration): out-of-fold with ``calibration_cv`` (the booster then sees every row),
        else a held-out ``calibration_size`` share the booster never sees."""
        booster = self._booster(len(present))
        fit_params = {"categorical_feature": list(self.categories_) or "auto"}
        if self.calibration == "none":
            self.booster_ = booster.fit(Xm, y_idx, **fit_params)
            return None, None
        if self.calibration_cv >= 2:
            cv = StratifiedKFold(n_splits=self.calibration_cv, shuffle=True, random_state=self.random_state)
            cal_proba, cal_y = np.zeros((len(y_idx), len(present))), np.searchsorted(present, y_idx)
            for tr, va in cv.split(Xm, y_idx):
                fold = clone(booster).fit(Xm.iloc[tr], y_idx[tr], **fit_params)
                cal_proba[va] = self._corrected(fold, Xm.iloc[va])
            self.booster_ = booster.fit(Xm, y_idx, **fit_params)
            return cal_proba, cal_y
        rare = np.bincount(y_idx)[present].min() < 2  # a tier of one row cannot be stratified
        fit_rows, cal_rows = train_test_split(
            np.arange(len(y_idx)),
            test_size=self.calibration_size,
            stratify=None if rare else y_idx,
            random_state=self.random_state,
        )
        self.booster_ = booster.fit(Xm.iloc[fit_rows], y_idx[fit_rows], **fit_params)
        return self._corrected(self.booster_, Xm.iloc[cal_rows]), np.searchsorted(present, y_idx[cal_rows])

    def _fit_calibrator(self, cal_proba, cal_y, present: np.ndarray) -> None:
        """``calibration`` (auto: the lowest cross-validated log-loss on the calibration rows) fitted on
        them; none when a tier is absent from them (a calibrator learns every tier's curve)."""
        self.calibrator_, self.calibration_, self.calibration_log_loss_ = None, "none", {}
        if cal_proba is None or len(np.unique(cal_y)) != len(present):
            return
        self.calibration_log_loss_ = calibration_losses(cal_proba, cal_y, self.random_state)
        method = self.calibration
        if method == "auto":
            method = min(self.calibration_log_loss_, key=self.calibration_log_loss_.get)
        self.calibration_ = method
        if method != "none":
            self.calibrator_ = fit_calibrator(cal_proba, cal_y, method)

    def _input(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "booster_")
        return as_model_input(X, list(self.feature_names_in_), self.categories_)

    def _lgbm_estimators(self) -> list[lgb.LGBMClassifier]:
        """The fitted booster and every copy of it the calibrator holds (pickling may duplicate it)."""
        found = [self.booster_]
        for cc in getattr(getattr(self, "calibrator_", None), "calibrated_classifiers_", []):
            inner = getattr(cc.estimator, "estimator", cc.estimator)  # FrozenEstimator -> LGBMClassifier
            if isinstance(inner, lgb.LGBMClassifier) and all(inner is not e for e in found):
                found.append(inner)
        return found

    @contextlib.contextmanager
    def _threads(self, n_jobs: int | None):
        """Predict with ``n_jobs`` LightGBM threads (fitting keeps ``self.n_jobs``)."""
        if n_jobs is None:
            yield
            return
        estimators = self._lgbm_estimators()
        before = [e.n_jobs for e in estimators]
        for e in estimators:
            e.n_jobs = int(n_jobs)
        try:
            yield
        finally:
            for e, n in zip(estimators, before, strict=True):
                e.n_jobs = n

    def _corrected(self, booster: lgb.LGBMClassifier, Xm: pd.DataFrame) -> np.ndarray:
        """``booster``'s probabilities over the tiers present in training, with the prior shift of the
        class weights undone (columns: ``present_``)."""
        raw = np.zeros((len(Xm), len(self.present_)))
        raw[:, np.searchsorted(self.present_, booster.classes_)] = booster.predict_proba(Xm)
        return self._unshift(raw, self.present_)

    def predict_proba(self, X: pd.DataFrame, n_jobs: int | None = None) -> np.ndarray:
        """Probabilities per level in scheme order, on the observed tier frequencies (calibrated when a
        calibration was chosen). Levels absent from training get 0.

        ``n_jobs`` sets LightGBM's threads for this call only (default: those used for fitting).
        """
        Xm = self._input(X)
        proba = np.zeros((len(X), len(self.classes_)))
        if not hasattr(self, "prior_"):  # pickled by a version that calibrated the weighted booster
            model = self.calibrator_ if getattr(self, "calibrator_", None) is not None else self.booster_
            with self._threads(n_jobs):
                proba[:, model.classes_] = model.predict_proba(Xm)
            return proba
        with self._threads(n_jobs):
            p = self._corrected(self.booster_, Xm)
        proba[:, self.present_] = p if self.calibrator_ is None else self.calibrator_.predict_proba(p)
        return proba

    def contributions(self, X: pd.DataFrame, n_jobs: int | None = None) -> np.ndarray:
        """LightGBM's SHAP values (raw score): shape (rows, levels, features + 1), last column the bias.

        A binary booster explains one raw score (the second class); the first class gets its negative.
        """
        raw = np.asarray(self.booster_.booster_.predict(self._input(X), pred_contrib=True, num_threads=n_jobs or 0))
        f = self.n_features_in_ + 1
        present = self.booster_.classes_
        out = np.zeros((len(X), len(self.classes_), f))
        if len(present) == 2:
            out[:, present[1]] = raw.reshape(len(X), f)
            out[:, present[0]] = -out[:, present[1]]
        else:
            out[:, present] = raw.reshape(len(X), len(present), f)
        return out

    def contributions_for(self, X: pd.DataFrame, level_idx: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        """SHAP values of each row's own level only: shape (rows, features + 1), last column the bias.

        Equal to ``contributions(X)[i, level_idx[i]]`` but about ``levels`` times faster on a multiclass
        booster: each level's raw score is the sum of that level's trees alone, so its SHAP values come
        from a booster holding just those trees (see :func:`single_class_booster`).
        """
        level_idx = np.asarray(level_idx, dtype=int)
        if len(level_idx) != len(X):
            raise ValueError(f"level_idx needs one level per row of X. Got {len(level_idx)} for {len(X)} rows")
        present = list(self.booster_.classes_)
        f = self.n_features_in_ + 1
        out = np.zeros((len(X), f))
        if len(present) == 2:
            return self.contributions(X, n_jobs)[np.arange(len(X)), level_idx]
        Xm = self._input(X)
        cache = self.__dict__.setdefault("_class_boosters", {})  # built on first use, not pickled state
        for level in np.unique(level_idx):
            rows = np.flatnonzero(level_idx == level)
            if level not in present:  # a level the booster never saw has no trees: no contribution
                continue
            k = present.index(level)
            if k not in cache:
                cache[k] = single_class_booster(self.booster_.booster_, k)
            out[rows] = cache[k].predict(Xm.iloc[rows], pred_contrib=True, num_threads=n_jobs or 0)
        return out

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_class_boosters", None)
        return state

    @property
    def feature_importances_(self) -> pd.Series:
        check_is_fitted(self, "booster_")
        gain = self.booster_.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=list(self.feature_names_in_), name="gain").sort_values(ascending=False)


def single_class_booster(booster: lgb.Booster, k: int) -> lgb.Booster:
    """A one-output booster made of the trees of class ``k`` of a multiclass ``booster``.

    LightGBM stores a multiclass model as ``num_class`` trees per iteration, tree ``i`` belonging to
    class ``i % num_class``; class ``k``'s raw score is the sum of its own trees. The copy keeps the
    header (features, categorical mappings), drops the other classes' trees and says it has one class.
    """
    text = booster.model_to_string()
    n_class = int(re.search(r"^num_class=(\d+)$", text, flags=re.M).group(1))
    head, rest = text.split("\nTree=0\n", 1)
    trees_text, tail = rest.split("\nend of trees\n", 1)
    trees = re.split(r"\nTree=\d+\n", "\n" + "Tree=0\n" + trees_text)[1:]
    mine = trees[k::n_class]
    head = re.sub(r"^num_class=\d+$", "num_class=1", head, flags=re.M)
    head = re.sub(r"^num_tree_per_iteration=\d+$", "num_tree_per_iteration=1", head, flags=re.M)
    head = re.sub(r"^objective=.*$", "objective=regression", head, flags=re.M)
    head = re.sub(r"^tree_sizes=.*\n", "", head, flags=re.M)
    body = "".join(f"Tree={i}\n{t.strip(chr(10))}\n\n" for i, t in enumerate(mine))
    return lgb.Booster(model_str=f"{head.rstrip(chr(10))}\n\n{body}end of trees\n{tail}")
