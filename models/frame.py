"""Split a feature table into model inputs without touching the caller's frame."""

from __future__ import annotations

import pandas as pd

ID_COLUMN = "customer_id"


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
    out = frame.copy()
    for c in out.columns:
        if c != ID_COLUMN and pd.api.types.is_numeric_dtype(out[c].dtype) and out[c].dtype != "float64":
            out[c] = out[c].astype("float64")
    return out


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
            out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return out
