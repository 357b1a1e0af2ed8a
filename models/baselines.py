"""Simple reference models trained and scored on the same split as the tier model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from models.frame import ID_COLUMN, categorical_columns, numeric_columns


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


class LogisticBaseline(OrderedProbaMixin, ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression: signed-log, median-imputed, scaled numbers plus one-hot text."""

    def __init__(self, levels: Sequence[str] = ("A", "B", "C", "D", "E"), C: float = 1.0,
                 class_weight: str | None = "balanced", random_state: int = 0):
        self.levels = levels
        self.C = C
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Sequence[str]) -> LogisticBaseline:
        X = X.drop(columns=[ID_COLUMN], errors="ignore")
        cats, nums = categorical_columns(X), numeric_columns(X)
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(FunctionTransformer(_signed_log1p), SimpleImputer(strategy="median",
                 keep_empty_features=True), StandardScaler()), nums),
                ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"),
                 OneHotEncoder(handle_unknown="ignore", min_frequency=5)), cats),
            ]
        )
        self.columns_ = cats + nums
        self.cats_ = cats
        self.model_ = Pipeline([
            ("prep", prep),
            ("lr", LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=3000,
                                      random_state=self.random_state)),
        ]).fit(self._prep(X), list(y))
        self.classes_ = np.asarray(list(self.levels), dtype=object)
        return self

    def _prep(self, X: pd.DataFrame) -> pd.DataFrame:
        X = X.copy()
        for c in self.cats_:
            X[c] = X[c].astype("object").where(X[c].notna(), np.nan)
        return X

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba_in_levels(self.model_, self._prep(X[self.columns_]))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
