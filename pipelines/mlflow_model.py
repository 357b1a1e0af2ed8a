"""The MLflow pyfunc wrapper around :class:`leadtier.models.scorer.TierScorer`."""

from __future__ import annotations

import joblib
import mlflow.pyfunc
import pandas as pd
from leadtier.features.meta import LANGS
from leadtier.models.frame import FeatureMismatchError
from leadtier.models.text import clip
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class LeadtierModel(mlflow.pyfunc.PythonModel):
    """Customer feature table in; tier, per-tier probabilities, 0-100 score and segment out."""

    def load_context(self, context) -> None:
        self.scorer = joblib.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = params or {}
        if params.get("lang", "en") not in LANGS:
            raise MlflowException(
                f"params.lang must be {' or '.join(LANGS)}. Got {clip(repr(params.get('lang')), 40)} instead",
                error_code=INVALID_PARAMETER_VALUE,
            )
        try:
            return self.scorer.score(
                pd.DataFrame(model_input),
                lang=params.get("lang", "en"),
                reasons=bool(params.get("reasons", False)),
                n_jobs=int(params.get("n_jobs") or 0) or None,  # 0: the threads it was trained with
            )
        except FeatureMismatchError as exc:  # the REST server answers 400 with this message, not a generic one
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
