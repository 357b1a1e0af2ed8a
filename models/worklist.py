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
    ends after the due date). Rows: planned (by owner, week, rank), then deferred, then no capacity."""
    _check(frame, service_days, contacts_per_week, weeks)
    out = frame[frame["tier"].isin(list(service_days))].copy()
    if "owner" not in out.columns:
        out["owner"] = NO_OWNER
    out["owner"] = out["owner"].fillna(NO_OWNER).astype(str)
    out["expected_value"] = expected_value(out["p_close"], out["value"])
    out["due_date"] = due_dates(out["tier"], start, service_days).dt.date
    last = out["last_contact"] if "last_contact" in out.columns else pd.Series(pd.NaT, index=out.index)
    deferred = recently_contacted(last, start, defer_days)
    out = out.sort_values(
        ["owner", "expected_value", "p_close", "customer_id"], ascending=[True, False, False, True], kind="mergesort"
    )
    out["rank"] = out.groupby("owner", sort=False).cumcount() + 1
    slot = out[~deferred.loc[out.index]].groupby("owner", sort=False).cumcount()
    week = (slot // contacts_per_week + 1) if contacts_per_week else pd.Series(1, index=slot.index)
    out["week"] = week.reindex(out.index).astype("Int64")
    too_late = (out["week"] > weeks).fillna(False).to_numpy(dtype=bool)
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
