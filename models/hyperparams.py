"""The tier classifier's tunable hyper-parameters and the values LightGBM accepts for each.

A search space in config may name only these; ``check_dimension`` says what is wrong with one
dimension before any trial runs (LightGBM itself would only fail inside a trial).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class Tunable(NamedTuple):
    kind: str  # int | float
    low: float
    high: float = math.inf
    low_open: bool = False  # low itself is not allowed


TUNABLE: dict[str, Tunable] = {
    "n_estimators": Tunable("int", 1),
    "learning_rate": Tunable("float", 0, low_open=True),
    "num_leaves": Tunable("int", 2, 131072),
    "max_depth": Tunable("int", -1),
    "min_child_samples": Tunable("int", 0),
    "subsample": Tunable("float", 0, 1, low_open=True),
    "colsample_bytree": Tunable("float", 0, 1, low_open=True),
    "reg_lambda": Tunable("float", 0),
    "min_data_per_group": Tunable("int", 1),
    "cat_smooth": Tunable("float", 0),
    "cat_l2": Tunable("float", 0),
    "max_cat_to_onehot": Tunable("int", 1),
}


def _range(t: Tunable) -> str:
    return f"{'(' if t.low_open else '['}{t.low:g}, {t.high:g}{']' if math.isfinite(t.high) else ')'}"


def check_dimension(name: str, kind: str, values: list[Any]) -> str | None:
    """What is wrong with searching ``name`` as ``kind`` over ``values`` (low/high or the choices); None if fine."""
    if name not in TUNABLE:
        return f"{name!r} is not a tunable hyper-parameter; allowed: {sorted(TUNABLE)}"
    t = TUNABLE[name]
    if t.kind == "int" and kind == "float":
        return f"{name} takes whole numbers: use type: int. Got type: float instead"
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return f"{name} takes finite numbers. Got {v!r} instead"
        if t.kind == "int" and float(v) != int(v):
            return f"{name} takes whole numbers. Got {v!r} instead"
        below = v <= t.low if t.low_open else v < t.low
        if below or v > t.high:
            return f"{name} must lie in {_range(t)}. Got {v!r} instead"
    return None
