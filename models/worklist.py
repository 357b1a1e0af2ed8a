"""From tiers to a due-dated call list: who to contact, by when, in which week, and who does not fit.

Pure planning rules over a frame (no I/O): every customer whose tier has a service level gets a due date
(plan start + that tier's days); a customer with an interaction within ``defer_days`` before the start
is deferred; the others fill each owner's weeks, ``contacts_per_week`` at a time, in order of expected
value (probability of closing within the horizon x value); those beyond the last week do not fit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

PLANNED, DEFERRED, NO_CAPACITY = "planned", "deferred", "no capacity"
STATUS_ORDER = {PLANNED: 0, DEFERRED: 1, NO_CAPACITY: 2}
INPUT_COLUMNS = ("customer_id", "tier", "p_close", "value")  # plus optional owner, last_contact
NO_OWNER = ""


def fill_values(value: pd.Series, unknown: pd.Series, positive_basis: bool = False) -> tuple[pd.Series, pd.Series]:
    """Each customer's value, and whether it is an estimate: where ``unknown`` (no value given, or no
    past revenue: a lead that has not bought yet is not worth nothing), the median of the known values
    (with ``positive_basis`` of those above 0: a typical buyer, not one who returned more than bought),
    else 1 when none is known. Returns (values, estimated)."""
    value = pd.to_numeric(value, errors="coerce").astype(float)
    estimated = unknown.fillna(True).astype(bool) | value.isna()
    known = value[~estimated & (value > 0)] if positive_basis else value[~estimated]
    fill = float(known.median()) if len(known) else 1.0
    return value.where(~estimated, fill), estimated


def revenue_values(revenue: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values from past revenue (:func:`fill_values`): none yet is unknown, valued as the median buyer;
    a customer who returned more than they bought is known, and worth nothing (expected value 0)."""
    revenue = pd.to_numeric(revenue, errors="coerce")
    return fill_values(revenue, revenue.eq(0), positive_basis=True)


def expected_value(p_close: pd.Series, value: pd.Series) -> pd.Series:
    """Probability of closing within the horizon x value (a missing value counts as 0)."""
    return p_close.astype(float) * value.astype(float).fillna(0.0).clip(lower=0.0)


def due_dates(tiers: pd.Series, start: dt.date, service_days: Mapping[str, int]) -> pd.Series:
    """Plan start + the tier's service level in days; NaT for a tier without one."""
    days = tiers.map(service_days).astype(float)
    return pd.Timestamp(start) + pd.to_timedelta(days, unit="D")


def recently_contacted(last_contact: pd.Series, start: dt.date, defer_days: int | None) -> pd.Series:
    """True where the last interaction falls within ``defer_days`` before ``start``."""
    if not defer_days:
        return pd.Series(False, index=last_contact.index)
    last = pd.to_datetime(last_contact)
    start_ts = pd.Timestamp(start)
    return (last >= start_ts - pd.Timedelta(days=defer_days)) & (last < start_ts)


def _check(frame: pd.DataFrame, service_days: Mapping[str, int], contacts_per_week: int | None, weeks: int) -> None:
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"a worklist needs the columns {list(INPUT_COLUMNS)}. Got {list(frame.columns)} instead")
    if not service_days:
        raise ValueError("no tier has a service level: give at least one tier its days. Got {} instead")
    if contacts_per_week is not None and contacts_per_week < 1:
        raise ValueError(f"contacts per owner per week must be at least 1. Got {contacts_per_week} instead")
    if weeks < 1:
        raise ValueError(f"the plan needs at least one week. Got {weeks} instead")


def plan(
    frame: pd.DataFrame,
    start: dt.date,
    service_days: Mapping[str, int],
    contacts_per_week: int | None = None,
    weeks: int = 4,
    defer_days: int | None = None,
) -> pd.DataFrame:
    """The worklist: one row per customer whose tier has a service level, with ``expected_value``,
    ``due_date``, ``status`` (planned / deferred / no capacity), the owner's ``rank`` by expected value,
    the ``week`` (1-based) and its ``week_start`` (planned rows only) and ``late`` (the planned week
    ends after the due date; an optional ``close_by`` column, the last day the tier can still happen,
    caps the due date). The ``contacts_per_week * weeks`` customers of highest expected value
    (not deferred) are planned, the earliest due date first (then by rank), which keeps the longest delay
    past a due date as short as any order can. Rows: planned (by owner, week, rank), then deferred, then
    no capacity."""
    _check(frame, service_days, contacts_per_week, weeks)
    out = frame[frame["tier"].isin(list(service_days))].copy()
    if "owner" not in out.columns:
        out["owner"] = NO_OWNER
    out["owner"] = out["owner"].fillna(NO_OWNER).astype(str)
    out["expected_value"] = expected_value(out["p_close"], out["value"])
    due = due_dates(out["tier"], start, service_days)
    if "close_by" in out.columns:  # the last day the tier can still happen: no later than that
        due = pd.concat([due, pd.to_datetime(out["close_by"])], axis=1).min(axis=1)
    out["due_date"] = due.dt.date
    last = out["last_contact"] if "last_contact" in out.columns else pd.Series(pd.NaT, index=out.index)
    deferred = recently_contacted(last, start, defer_days)
    out = out.sort_values(
        ["owner", "expected_value", "p_close", "customer_id"], ascending=[True, False, False, True], kind="mergesort"
    )
    out["rank"] = out.groupby("owner", sort=False).cumcount() + 1
    callable_ = out[~deferred.loc[out.index]]
    if contacts_per_week:  # the highest expected values fill the weeks; the earliest due is called first
        fits = callable_.groupby("owner", sort=False).cumcount() < contacts_per_week * weeks
        called = callable_[fits].sort_values(["owner", "due_date", "rank"], kind="mergesort")
        week = called.groupby("owner", sort=False).cumcount() // contacts_per_week + 1
    else:
        week = pd.Series(1, index=callable_.index)
    out["week"] = week.reindex(out.index).astype("Int64")
    too_late = (out["week"].isna() & ~deferred.loc[out.index]).to_numpy(dtype=bool)
    out["status"] = np.where(deferred.loc[out.index], DEFERRED, np.where(too_late, NO_CAPACITY, PLANNED))
    out.loc[out["status"] != PLANNED, "week"] = pd.NA
    starts = pd.Timestamp(start) + pd.to_timedelta((out["week"].astype(float) - 1) * 7, unit="D")
    out["week_start"] = starts.dt.date.where(out["status"] == PLANNED, None)
    ends = starts + pd.Timedelta(days=6)
    out["late"] = (out["status"] == PLANNED) & (ends.dt.date > out["due_date"])
    order = out["status"].map(STATUS_ORDER)
    out = out.assign(_order=order).sort_values(["_order", "owner", "week", "rank"], kind="mergesort")
    return out.drop(columns="_order").reset_index(drop=True)


def shortfall(worklist: pd.DataFrame) -> pd.DataFrame:
    """Per owner: planned, deferred and not fitting customers, and the expected value left out."""
    counts = pd.crosstab(worklist["owner"], worklist["status"]).reindex(columns=list(STATUS_ORDER), fill_value=0)
    left_out = worklist[worklist["status"] == NO_CAPACITY].groupby("owner")["expected_value"].sum()
    counts["expected_value_left_out"] = left_out.reindex(counts.index, fill_value=0.0)
    return counts.reset_index()


# --------------------------------------------------------------------------- does the list beat plain sorting?


def _score_groups(score) -> tuple[np.ndarray, int]:
    """Each row's group of equal scores, numbered from the highest score down, and the number of groups."""
    values, group = np.unique(-np.asarray(score, dtype=float), return_inverse=True)
    return group, len(values)


def _captured(group: np.ndarray, n_groups: int, weight: np.ndarray, counts: np.ndarray, share: float) -> float:
    """:func:`captured_share` from precomputed score groups; ``counts``: how often each row counts."""
    size = np.bincount(group, counts, n_groups)
    held = np.bincount(group, counts * weight, n_groups)
    total = held.sum()
    if total <= 0:
        return float("nan")
    top = max(1.0, float(np.floor(round(size.sum() * share, 9))))  # rows in the top share, as lift_top_share
    taken = np.clip(top - (np.cumsum(size) - size), 0, size)
    fraction = np.divide(taken, size, out=np.zeros_like(taken), where=size > 0)
    return float(fraction @ held / total)


def captured_share(score, weight, share: float) -> float:
    """The share of the total ``weight`` (wins as 0/1, revenue) held by the ``share`` of rows with the
    highest ``score``: what the first ``share`` of an ordering captures.

    Rows tied on the score at the cut count with the fraction of their tie group that fits (the expected
    share under a random order of the ties), the convention of
    :func:`leadtier.models.metrics.lift_top_share`; NaN when the weights sum to 0."""
    weight = np.asarray(weight, dtype=float)
    group, n_groups = _score_groups(score)
    return _captured(group, n_groups, weight, np.ones(len(weight)), share)


def capture_gains(
    orders: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    shares: tuple[float, ...],
    reference: str,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[float, dict[str, dict]]]:
    """What the first ``share`` of each ordering captures of each weight, and how much more ``reference``
    captures than each other ordering, with a paired bootstrap interval.

    ``orders`` maps a name to a score per row (higher first); ``weights`` a name to a non-negative
    amount per row (e.g. wins as 0/1, revenue). Every resample draws the rows (customers) with
    replacement once and scores all orderings on that draw, as
    :func:`leadtier.models.metrics.paired_bootstrap` does for the tier metrics. Returns
    ``{weight: {share: {"captured": {order: value}, "gains": {order: {gain, low, high}}}}}``; a gain
    has no interval (low, high NaN) when fewer than half of the draws define it."""
    if reference not in orders:
        raise ValueError(f"reference {reference!r} is not among the orderings {sorted(orders)}")
    if n_resamples < 2 or not 0 < confidence < 1:
        raise ValueError(f"need n_resamples >= 2 and 0 < confidence < 1. Got {n_resamples}, {confidence} instead")
    n = len(orders[reference])
    groups = {name: _score_groups(s) for name, s in orders.items()}
    w = {name: np.asarray(v, dtype=float) for name, v in weights.items()}
    if any(len(v) != n for v in (*w.values(), *orders.values())):
        raise ValueError(f"every ordering and weight needs one value per row ({n} rows)")

    def table(counts: np.ndarray) -> np.ndarray:  # [weight, share, order]
        return np.array(
            [[[_captured(*groups[o], w[k], counts, s) for o in orders] for s in shares] for k in w], dtype=float
        )

    point = table(np.ones(n))
    rng = np.random.default_rng(seed)
    draws = np.stack([table(rng.multinomial(n, np.full(n, 1 / n)).astype(float)) for _ in range(n_resamples)])
    return _gain_table(point, draws, list(orders), reference, list(w), shares, confidence)


def _gain_table(point, draws, names, reference, weights, shares, confidence) -> dict:
    """:func:`capture_gains`'s answer from the captured shares ``[weight, share, order]`` of the whole
    rows (``point``) and of each draw (``draws``, one more leading axis)."""
    ref, tail = names.index(reference), (1 - confidence) / 2 * 100
    out: dict[str, dict[float, dict[str, dict]]] = {}
    for i, k in enumerate(weights):
        out[k] = {}
        for j, s in enumerate(shares):
            gains = {}
            for o, name in enumerate(names):
                if o == ref:
                    continue
                diff = draws[:, i, j, ref] - draws[:, i, j, o]
                diff = diff[np.isfinite(diff)]
                enough = len(diff) >= len(draws) / 2
                low, high = np.percentile(diff, [tail, 100 - tail]) if enough else (np.nan, np.nan)
                gains[name] = {"gain": float(point[i, j, ref] - point[i, j, o]), "low": float(low), "high": float(high)}
            out[k][s] = {"captured": dict(zip(names, point[i, j].tolist(), strict=True)), "gains": gains}
    return out
