"""Simple reference models trained and scored on the same split as the tier model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from leadtier.models.classifier import PriorShiftMixin
from leadtier.models.frame import ID_COLUMN, categorical_columns, numeric_columns
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler


def _signed_log1p(x):
    return np.sign(x) * np.log1p(np.abs(x))


class OrderedProbaMixin:
    """predict_proba with columns in scheme order, whatever order the wrapped model uses."""

    levels: Sequence[str]

    def proba_in_levels(self, model, X) -> np.ndarray:
        raw = model.predict_proba(X)
        out = np.zeros((len(X), len(self.levels)))
        pos = {c: i for i, c in enumerate(self.levels)}
        for j, c in enumerate(model.classes_):
            out[:, pos[c]] = raw[:, j]
        return out


class MajorityBaseline(OrderedProbaMixin, ClassifierMixin, BaseEstimator):
    """Always the most frequent training tier, with the training tier shares as probabilities."""

    def __init__(self, levels: Sequence[str] = ("A", "B", "C", "D", "E")):
        self.levels = levels

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> MajorityBaseline:
        self.model_ = DummyClassifier(strategy="prior").fit(np.zeros((len(y), 1)), list(y))
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_in_levels(self.model_, np.zeros((len(X), 1)))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class LogisticBaseline(PriorShiftMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression, a strong linear reference and a candidate tier model.

    Numbers are signed-log transformed, median-imputed with a missing-value flag, held to the range
    seen in training (a linear model must not extrapolate: a tenure longer than any in training scores as
    the longest), and scaled; text
    columns are one-hot encoded with levels rarer than ``min_frequency`` (a share of the rows) pooled
    into one. ``class_weight`` and the decision work as for :class:`TierClassifier`: probabilities on
    the observed tier frequencies, decisions as the weights ask. Each column has its own transformer,
    so the log-odds split exactly into per-column contributions (:meth:`contributions_for`).
    """

    def __init__(
        self,
        levels: Sequence[str] = ("A", "B", "C", "D", "E"),
        C: float = 1.0,
        class_weight: str | None = "balanced",
        min_frequency: float = 0.005,
        decision: str = "argmax",
        decision_balance: float | None = None,
        cost_matrix: Sequence[Sequence[float]] | None = None,
        random_state: int = 0,
    ):
        self.levels = levels
        self.C = C
        self.class_weight = class_weight
        self.min_frequency = min_frequency
        self.decision = decision
        self.decision_balance = decision_balance
        self.cost_matrix = cost_matrix
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> LogisticBaseline:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame of features. Got {type(X).__name__} instead")
        X = X.drop(columns=[ID_COLUMN], errors="ignore")
        cats, nums = categorical_columns(X), numeric_columns(X)
        number = make_pipeline(
            FunctionTransformer(_signed_log1p),
            SimpleImputer(strategy="median", keep_empty_features=True, add_indicator=True),
            MinMaxScaler(clip=True),  # a later value beyond the training range (tenure) is not extrapolated
            StandardScaler(),
        )
        text = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="(missing)"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=self.min_frequency),
        )
        prep = ColumnTransformer([(c, clone(number), [c]) for c in nums] + [(c, clone(text), [c]) for c in cats])
        self.columns_ = cats + nums
        self.cats_ = cats
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        idx = {c: i for i, c in enumerate(self.classes_)}
        unknown = sorted(set(y) - set(idx))
        if unknown:
            raise ValueError(f"y holds tiers {unknown} that are not in levels {list(self.classes_)}")
        y_idx = np.array([idx[v] for v in y], dtype=int)
        self._set_priors(y_idx, len(self.classes_), self.class_weight)
        self.model_ = Pipeline(
            [
                ("prep", prep),
                (
                    "lr",
                    LogisticRegression(
                        C=self.C, class_weight=self.class_weight, max_iter=3000, random_state=self.random_state
                    ),
                ),
            ]
        ).fit(self._prep(X), y_idx)
        self.feature_names_in_ = np.asarray(self.columns_, dtype=object)
        self.n_features_in_ = len(self.columns_)
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) for c in cats}
        return self

    def _prep(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X[self.columns_].copy()
        for c in self.cats_:
            X[c] = X[c].astype("object").where(X[c].notna(), np.nan)
        return X

    def predict_proba(self, X: pd.DataFrame, n_jobs: int | None = None) -> np.ndarray:
        """Probabilities per level in scheme order, on the observed tier frequencies (``n_jobs`` unused)."""
        lr = self.model_.named_steps["lr"]
        out = np.zeros((len(X), len(self.classes_)))
        out[:, lr.classes_] = self._unshift(self.model_.predict_proba(self._prep(X)), lr.classes_)
        return out

    def contributions_for(self, X: pd.DataFrame, level_idx: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        """Each row's log-odds for its own level split by column: shape (rows, columns + 1), last the
        intercept (the weighted model's, like the booster's SHAP values). Levels absent from training
        contribute nothing."""
        prep, lr = self.model_.named_steps["prep"], self.model_.named_steps["lr"]
        Z = prep.transform(self._prep(X))
        Z = Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z)
        # two levels: one log-odds, the second level's; the first gets its negative (as LightGBM's)
        coef = lr.coef_ if len(lr.classes_) > 2 else np.vstack([-lr.coef_[0], lr.coef_[0]])
        bias = lr.intercept_ if len(lr.classes_) > 2 else np.array([-lr.intercept_[0], lr.intercept_[0]])
        pos = {int(c): i for i, c in enumerate(lr.classes_)}
        out = np.zeros((len(X), len(self.columns_) + 1))
        for level in np.unique(level_idx):
            rows = np.flatnonzero(level_idx == level)
            if level not in pos:
                continue
            w = coef[pos[level]]
            for j, col in enumerate(self.columns_):
                part = prep.output_indices_[col]
                out[rows, j] = Z[rows, part] @ w[part]
            out[rows, -1] = bias[pos[level]]
        return out

    @property
    def feature_importances_(self) -> pd.Series:
        """Mean absolute coefficient per column over its encoded parts and the levels."""
        prep, lr = self.model_.named_steps["prep"], self.model_.named_steps["lr"]
        size = np.abs(lr.coef_).mean(axis=0)
        gain = [float(size[prep.output_indices_[c]].sum()) for c in self.columns_]
        return pd.Series(gain, index=self.columns_, name="gain").sort_values(ascending=False)


class RfmScorecard(OrderedProbaMixin, ClassifierMixin, BaseEstimator):
    """The classic hand-weighted RFM method: R, F and M quintile scores summed (3..15 for buyers, 0 for
    customers who never bought).

    Higher sums go to better tiers, with cut points that reproduce the training tier shares;
    probabilities are the (Laplace-smoothed) training tier mix of customers with the same sum.
    Needs the ``rfm_r_score``, ``rfm_f_score`` and ``rfm_m_score`` features.
    """

    def __init__(self, levels: Sequence[str] = ("A", "B", "C", "D", "E"), weights=(1.0, 1.0, 1.0)):
        self.levels = levels
        self.weights = weights

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        cols = ["rfm_r_score", "rfm_f_score", "rfm_m_score"]
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"the RFM scorecard needs columns {missing}, absent from the feature table")
        return np.round(X[cols].fillna(0).to_numpy(dtype=float) @ np.asarray(self.weights, dtype=float), 6)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """The scorecard itself, no fit needed: each row's weighted R + F + M quintile score sum (higher
        is better; 0 for a customer who never bought)."""
        return self._score(X)

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> RfmScorecard:
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        score = self._score(X)
        y = np.asarray(list(y), dtype=object)
        shares = pd.Series(y).value_counts(normalize=True).reindex(self.classes_, fill_value=0).to_numpy()
        # best tier = highest scores: cut the score distribution at the cumulative tier shares
        cum = np.cumsum(shares)[:-1]
        self.cuts_ = np.quantile(score, 1 - cum) if len(score) else np.zeros(len(cum))
        idx = {c: i for i, c in enumerate(self.classes_)}
        table = pd.crosstab(score, pd.Series([idx[v] for v in y]))
        table = table.reindex(columns=range(len(self.classes_)), fill_value=0) + 1.0
        self.proba_by_score_ = table.div(table.sum(axis=1), axis=0)
        self.prior_ = (shares * len(y) + 1) / (len(y) + len(shares))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        score = self._score(X)
        out = self.proba_by_score_.reindex(score).to_numpy(dtype=float, copy=True)
        missing = np.isnan(out).any(axis=1)
        out[missing] = self.prior_
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        score = self._score(X)
        # level i when score falls between cut i-1 and cut i (cuts descend from the best tier)
        pos = np.searchsorted(-self.cuts_, -score, side="left")
        return self.classes_[np.clip(pos, 0, len(self.classes_) - 1)]


class StageNowBaseline(ClassifierMixin, BaseEstimator):
    """Purchase stages (``labels.outcome.kind: purchase_stage``, best level first: loyal, repeat, first-time,
    prospect) as the snapshot finds them, and how customers usually move on from there.

    Each customer's stage at the snapshot comes from the RFM features: no purchase, one, two or more
    (``rfm_frequency``) and, with ``window`` (the column counting the purchases in the ``horizon_days``
    before the snapshot, ``rfm_frequency_<horizon>d``), at least ``loyal`` of those. Probabilities are
    the (Laplace-smoothed) training mix of the stages reached by the horizon's end per stage at the
    snapshot; the prediction is the most common of them. A model that cannot beat it has learned no
    more than where customers already stand.
    """

    STAGES = 4  # loyal, repeat, first-time, prospect: the scheme's levels in order

    def __init__(self, levels: Sequence[str] = ("loyal", "repeat", "first_time", "prospect"), loyal: int = 3,
                 window: str | None = None):  # fmt: skip
        self.levels = levels
        self.loyal = loyal
        self.window = window

    def stage_now(self, X: pd.DataFrame) -> np.ndarray:
        """Per row, the stage at the snapshot: 0 loyal, 1 repeat, 2 first-time, 3 prospect."""
        needed = ["rfm_frequency", *([self.window] if self.window else [])]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise ValueError(f"the stage-at-the-snapshot baseline needs columns {missing}, absent from the features")
        bought = X["rfm_frequency"].fillna(0).to_numpy(dtype=float)
        stage = np.where(bought >= 2, 1, np.where(bought == 1, 2, 3))
        if self.window:
            stage = np.where(X[self.window].fillna(0).to_numpy(dtype=float) >= self.loyal, 0, stage)
        return stage

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> StageNowBaseline:
        if self.loyal < 2:
            raise ValueError(f"loyal must be at least 2 purchases. Got {self.loyal} instead")
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        idx = {c: i for i, c in enumerate(self.classes_)}
        counts = np.ones((self.STAGES, len(self.classes_)))  # Laplace smoothing
        np.add.at(counts, (self.stage_now(X), np.asarray([idx[v] for v in y], dtype=int)), 1.0)
        self.proba_by_stage_ = counts / counts.sum(axis=1, keepdims=True)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_by_stage_[self.stage_now(X)]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
