"""Split a feature table into model inputs without touching the caller's frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

ID_COLUMN = "customer_id"
# entities on their own clock: days from each one's start to the as-of date. Not a model feature (it
# would tell how long the outcome was observed); the scorer reads it to rule out tiers already passed.
OPEN_DAYS = "open_days"


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Text and category columns (pandas 3 gives text the ``str`` dtype, older pandas ``object``)."""
    return [
        c
        for c in frame.columns
        if c != ID_COLUMN
        and (
            isinstance(frame[c].dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(frame[c].dtype)
            or frame[c].dtype == object
        )
    ]


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if c != ID_COLUMN and pd.api.types.is_numeric_dtype(frame[c].dtype) and not pd.api.types.is_bool_dtype(frame[c])
    ] + [c for c in frame.columns if c != ID_COLUMN and pd.api.types.is_bool_dtype(frame[c])]


def numbers_as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Every numeric feature as float64, so that a count with a missing value and the model's
    signature (all numbers are doubles) always agree. Returns a new frame."""
    cast = {
        c: "float64"
        for c in frame.columns
        if c != ID_COLUMN and pd.api.types.is_numeric_dtype(frame[c].dtype) and frame[c].dtype != "float64"
    }
    return frame.astype(cast) if cast else frame.copy(deep=False)


class FeatureMismatchError(ValueError):
    """The feature table lacks columns the model was trained with."""


def check_columns(frame: pd.DataFrame, expected: list[str], what: str = "feature table") -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"the {what} must be a pandas DataFrame. Got {type(frame).__name__} instead")
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise FeatureMismatchError(
            f"the {what} lacks {len(missing)} column(s) the model was trained with: {missing[:10]}"
            + (" ..." if len(missing) > 10 else "")
        )


def as_model_input(frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """A new frame with ``columns``: categoricals use the training categories (unseen -> NaN)."""
    check_columns(frame, columns)
    out = pd.DataFrame(index=frame.index)
    for c in columns:
        if c in categories:
            values = frame[c].astype("object").where(frame[c].notna(), None)
            out[c] = pd.Categorical(values, categories=categories[c])
        else:
            out[c] = as_float(frame[c])
    return out


def as_float(values: pd.Series) -> pd.Series:
    """A column as float64 (text that is not a number -> NaN); float64 columns pass through uncopied."""
    if values.dtype == "float64":
        return values
    return pd.to_numeric(values, errors="coerce").astype("float64")


def float_matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The ``columns`` of ``frame`` as one float64 array (missing and non-numbers -> NaN)."""
    out = np.empty((len(frame), len(columns)), dtype="float64")
    for j, c in enumerate(columns):
        out[:, j] = as_float(frame[c]).to_numpy(dtype="float64", na_value=np.nan)
    return out
