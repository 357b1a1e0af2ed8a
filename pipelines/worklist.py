"""Stage: a due-dated call list from the latest predictions (``leadtier worklist``).

Reads the predictions set ``leadtier predict`` committed, the owner and value columns of the scoring
input (when configured or present), and each customer's last interaction; plans with
:func:`leadtier.models.worklist.plan`; writes the worklist as Parquet and CSV, committed together
(:class:`~leadtier.pipelines.outputs.OutputSet`; CSV cells neutralised against spreadsheet formulas).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from leadtier.features.inputs import NULL_MARKERS, TEXT, lit, number_value
from leadtier.features.meta import money
from leadtier.models.scorer import DAYS_LEFT
from leadtier.models.text import clip
from leadtier.models.worklist import DEFERRED, NO_CAPACITY, PLANNED, fill_values, plan, revenue_values, shortfall
from leadtier.pipelines.config import Config
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.outputs import OutputSet, check_manifest, check_suffix, table_writer
from leadtier.pipelines.report import strings
from leadtier.pipelines.sources import read_columns

log = logging.getLogger(__name__)

COLUMNS = [
    "owner",
    "week",
    "week_start",
    "rank",
    "customer_id",
    "tier",
    "tier_name",
    "score",
    "p_close",
    "value",
    "value_estimated",
    "expected_value",
    "due_date",
    "late",
    "action",
    "reasons",
    "status",
    "status_name",
    "last_contact",
]


class WorklistError(UserError):
    """The worklist cannot be made from these predictions and this config."""


@dataclass
class WorklistResult:
    output: Path
    csv: Path
    counts: dict[str, int]
    late: int
    shortfall: pd.DataFrame
    start: dt.date
    currency: str | None = None  # the values are money: report.currency ('' when none is set); None: not money
    estimated: int = 0  # customers without a known value, valued at ``estimate`` (the median of the others)
    estimate: float | None = None
    deferring: bool = True  # worklist.defer_contacted_days is set
    unlisted: dict[str, int] = field(default_factory=dict)  # rows of tiers without service days, by tier
    close_tiers: tuple[str, ...] = ("A",)  # worklist.close_tiers (else the best tier): what p_close sums

    def summary(self) -> str:
        c = self.counts
        deferred = f"{c[DEFERRED]} deferred (contacted recently), " if self.deferring else ""
        lines = [
            f"worklist from {self.start}: {c[PLANNED]} planned, {deferred}"
            f"{c[NO_CAPACITY]} do not fit -> {self.output} and {self.csv.name}",
        ]
        if self.unlisted:
            tiers = ", ".join(f"{t} ({n})" for t, n in self.unlisted.items())
            lines.append(
                f"{sum(self.unlisted.values())} not listed: tiers {tiers} have no days in worklist.service_days"
            )
        if self.estimated and self.currency is not None:
            lines.append(
                f"{self.estimated} without a known value (none given, or no revenue yet) valued at the median "
                f"of the others, {money(self.estimate, self.currency)} (column value_estimated)"
            )
        if self.late:
            lines.append(f"{self.late} planned in a week that ends after their due date")
        for row in self.shortfall[self.shortfall[NO_CAPACITY] > 0].to_dict("records"):
            left = row["expected_value_left_out"]
            what = (
                f"expected value left out {money(left, self.currency)}"
                if self.currency is not None
                else f"expected tier {' or '.join(self.close_tiers)} customers left out {left:,.2f}"  # each counts 1
            )
            lines.append(f"  {row['owner'] or '(no owner)'}: {row[NO_CAPACITY]} do not fit, {what}")
        return "\n".join(lines)


def _input_path(cfg: Config) -> Path | None:
    """The scoring input (``predict.input``, else the customers file); None when customers are derived."""
    spec = cfg.data.tables.customers
    source = cfg.predict.input or (spec.files[0].path if spec.files else None)
    return cfg.data_path(source) if source else None


def _joined_column(cfg: Config, frame: pd.DataFrame, column: str) -> pd.Series | None:
    """``column`` of a lookup table of ``tables.customers.joins`` (named as the features name it: the join's
    prefix, then the lookup file's column) for each row of ``frame``, matched by key as the features join
    it (keys as text; a row without a key gets none); None when no lookup table has it."""
    for name, join in cfg.data.tables.customers.joins.items():
        own = column.removeprefix(join.prefix) if column.startswith(join.prefix) else None
        lookup_path = cfg.data_path(join.path)
        if own is None or own == join.lookup_key or not lookup_path.is_file():
            continue
        what = f"tables.customers.joins.{name}"
        lookup, names = read_columns(
            lookup_path, what, [join.lookup_key, own], [join.lookup_key], join.format, join.encoding
        )
        if own not in names or join.lookup_key not in names:
            continue
        lookup = lookup[lookup[join.lookup_key].notna()].drop_duplicates(join.lookup_key)
        return frame[join.by].map(lookup.set_index(join.lookup_key)[own])  # a missing key maps to nothing
    return None


def customer_attributes(cfg: Config) -> pd.DataFrame:
    """customer_id, and owner / value where the scoring input (or a lookup table joined to it) has them
    (configured columns must exist)."""
    wl = cfg.worklist
    path = _input_path(cfg)
    if path is None or not path.is_file():
        if wl.owner_column or wl.value_column:
            raise WorklistError(f"worklist.owner_column / value_column need the scoring input file. Got {path}")
        return pd.DataFrame(columns=["customer_id"])
    spec = cfg.data.tables.customers
    fs = spec.files[0]  # the scoring input is read as the first customers file (predict replaces its path)
    derived_id = fs.derived.get("customer_id")
    id_col = "customer_id" if derived_id else fs.columns.get("customer_id", "customer_id")
    wanted = {id_col: "customer_id", (wl.owner_column or "owner"): "owner"}
    if wl.value_column:
        wanted[wl.value_column] = "value"
    keys = [j.by for j in spec.joins.values()]
    frame, names = read_columns(
        path, "the scoring input", [*wanted, *keys], keys, fs.format, fs.encoding, id_col, derived_id
    )
    if id_col not in frame.columns:
        raise WorklistError(f"the scoring input {path} has no customer id column {id_col!r}. Got {names}")
    for key, col in (("owner_column", wl.owner_column), ("value_column", wl.value_column)):
        if col and col not in frame.columns:
            joined = _joined_column(cfg, frame, col)
            if joined is None:
                lookups = [cfg.data_path(j.path).name for j in spec.joins.values()]
                also = f" nor in the lookup tables {lookups}" if lookups else ""
                raise WorklistError(
                    f"worklist.{key}: column {col!r} is not in the scoring input {path}{also}. "
                    f"Columns of {path.name}: {names}"
                )
            frame[col] = joined
    frame = frame[[c for c in wanted if c in frame.columns]].rename(columns=wanted)
    frame["customer_id"] = frame["customer_id"].astype(str)
    if "value" in frame.columns:
        na = [v.lower() for v in spec.na_values]
        frame["value"] = _numbers(
            frame["value"], wl.value_column, path, cfg.predict.max_reject_share, na, fs.decimal, fs.thousands
        )
    return frame.drop_duplicates("customer_id")


def _numbers(
    raw: pd.Series, column: str, path: Path, max_share: float, na_values=(), decimal: str = ".", thousands: str = ""
) -> pd.Series:
    """``raw`` as numbers ('n/a', 'null' and ``na_values`` are missing; text with a ``decimal`` comma reads
    '1.234,56' as 1234.56, with a ``thousands`` mark '1,234.56', as the tables do); a cell that is not one is
    unknown (with a warning naming examples), unless more than ``max_share`` of the rows have one: then the
    column is no number column and the run stops. A value below 0 is unknown too (with a warning): it is
    no worth of a deal."""
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        raise WorklistError(f"worklist.value_column: column {column!r} of {path} holds {raw.dtype} values, not numbers")
    text = raw.astype("string").str.strip()
    if pd.api.types.is_numeric_dtype(raw):
        values = pd.to_numeric(raw).where(lambda v: np.isfinite(v))
    else:  # the tables' own rule for text numbers, so a value reads as the features read it
        cell = text.mask(text.str.lower().isin([*NULL_MARKERS, *na_values]))
        sql = f"SELECT {number_value('cell', TEXT, 'float', decimal, thousands)} FROM frame"
        con = duckdb.connect()
        con.register("frame", pd.DataFrame({"cell": cell.astype(object)}))
        values = pd.Series(con.execute(sql).df().iloc[:, 0].to_numpy(), index=raw.index, dtype=float)
    infinite = text.str.lower().str.lstrip("+-").isin(["inf", "infinity"])  # missing, as the tables read them
    bad = values.isna() & text.notna() & ~text.str.lower().isin(["", *NULL_MARKERS, *na_values]) & ~infinite
    where = f"worklist.value_column: column {column!r} of {path}"
    negative = values < 0
    if negative.any():  # a refund or a typo, not what winning the deal is worth
        shown = ", ".join(clip(v, quote=True) for v in pd.unique(text[negative])[:3])
        log.warning("%s: %d value(s) are below 0 (e.g. %s): valued as unknown", where, int(negative.sum()), shown)
        values = values.mask(negative)
    if not bad.any():
        return values
    examples = ", ".join(clip(v, quote=True) for v in pd.unique(text[bad])[:3])
    if bad.mean() > max_share:
        raise WorklistError(
            f"{where} is not a number in {int(bad.sum())} of {len(raw)} rows, e.g. {examples}; name a column of "
            "numbers (a deal's value), or leave value_column out to value customers by past revenue"
        )
    log.warning("%s: %d cell(s) are not numbers (e.g. %s): valued as unknown", where, int(bad.sum()), examples)
    return values


def last_contacts(cfg: Config, start: dt.date) -> pd.DataFrame:
    """customer_id, last_contact: each customer's last interaction before ``start`` (of the types
    ``worklist.contact_types``, when set; a listed type the table never has is a warning); empty without
    an interactions table."""
    if cfg.data.tables.interactions is None:
        return pd.DataFrame(columns=["customer_id", "last_contact"])
    from leadtier.pipelines.features import connect, fetch_frame
    from leadtier.pipelines.sources import register_table

    con = connect(cfg)
    try:
        register_table(con, cfg, "interactions")  # the customers file is the scoring input's business
        types = cfg.worklist.contact_types
        only = f" AND CAST(type AS VARCHAR) IN ({', '.join(lit(t) for t in types)})" if types is not None else ""
        sql = (
            "SELECT CAST(customer_id AS VARCHAR) AS customer_id, max(ts) AS last_contact FROM interactions "
            f"WHERE ts < DATE '{start.isoformat()}'{only} GROUP BY 1"
        )
        if types:
            seen = {r[0] for r in con.execute("SELECT DISTINCT CAST(type AS VARCHAR) FROM interactions").fetchall()}
            if set(types) - seen:
                log.warning(
                    "worklist.contact_types: %s never occur in the interactions (types there: %s)",
                    sorted(set(types) - seen),
                    clip(", ".join(sorted(map(str, seen - {None}))), 300),
                )
        return fetch_frame(con, sql)
    finally:
        con.close()


def close_tiers(cfg: Config) -> list[str]:
    """The tiers whose probabilities, summed, are ``p_close``: ``worklist.close_tiers``, else the best tier."""
    return list(cfg.worklist.close_tiers or cfg.scheme.codes[:1])


def _p_close(pred: pd.DataFrame, cfg: Config) -> pd.Series:
    tiers = close_tiers(cfg)
    cols = [f"proba_{t}" for t in tiers]
    missing = [c for c in cols if c not in pred.columns]
    if missing:
        raise WorklistError(f"the predictions lack {missing}, needed for worklist.close_tiers {tiers}")
    return pred[cols].sum(axis=1)


def build(cfg: Config, pred: pd.DataFrame, attrs: pd.DataFrame, contacts: pd.DataFrame, start, lang: str):
    """The planning frame from predictions, customer attributes and last contacts, then the plan."""
    frame = pred.merge(attrs, on="customer_id", how="left").merge(contacts, on="customer_id", how="left")
    frame["p_close"] = _p_close(frame, cfg)
    if DAYS_LEFT in frame.columns and "as_of" in frame.columns:  # entities on their own clock
        frame["close_by"] = pd.to_datetime(frame["as_of"]) + pd.to_timedelta(frame[DAYS_LEFT], unit="D")
    if "value" in frame.columns:  # worklist.value_column: a missing value is not known
        frame["value"], frame["value_estimated"] = fill_values(frame["value"], frame["value"].isna())
    elif "past_revenue" in frame.columns:  # no revenue yet is not known either; returns beyond purchases are
        frame["value"], frame["value_estimated"] = revenue_values(frame["past_revenue"])
    if "value" not in frame.columns or frame["value_estimated"].all():  # no value known: each counts 1
        frame["value"], frame["value_estimated"] = 1.0, False
        money_values = False
    else:
        money_values = True
    if "reasons" not in frame.columns:
        frame["reasons"] = ""
    wl = cfg.worklist
    out = plan(frame, start, wl.service_days, wl.contacts_per_week, wl.weeks, wl.defer_contacted_days)
    scheme = cfg.scheme
    out["tier_name"] = out["tier"].map(lambda t: scheme.label(t, lang))
    out["action"] = out["tier"].map(lambda t: getattr(scheme.level(t), f"action_{lang}"))
    said = strings(lang)
    out["status_name"] = out["status"].map(lambda st: said[f"status_{st.replace(' ', '_')}"])  # as the report
    for col in COLUMNS:
        if col not in out.columns:
            out[col] = None
    out = out[COLUMNS]
    out.attrs["money_values"] = money_values  # the values are amounts of money, not a count of 1 each
    return out


def run(cfg: Config, predictions: str | None = None, output: str | None = None, lang: str | None = None):
    """Plan the worklist from ``predictions`` (default ``predict.output``) into ``output`` (default
    ``worklist.output``) and the CSV beside it."""
    from leadtier.pipelines.predict import SIDE_KINDS, with_scored_input
    from leadtier.pipelines.report import check_predictions, read_predictions

    if not cfg.worklist.service_days:
        raise WorklistError("worklist.service_days is empty: give each tier to call its days, e.g. {A: 7, B: 30}")
    pred_path = Path(predictions or cfg.predict.output)
    manifest = check_manifest(pred_path, SIDE_KINDS) if pred_path.exists() else None  # a file or a Spark folder
    cfg = with_scored_input(cfg, manifest)
    pred = read_predictions(pred_path)
    check_predictions(pred, cfg.scheme, str(pred_path))
    lang = lang or cfg.worklist.lang or cfg.report.lang
    out, start = planned(cfg, pred, lang)
    source = predictions_source(pred_path, manifest)
    res = _write(with_reasons(cfg, out, pred, lang), check_suffix(output or cfg.worklist.output), start, source)
    if out.attrs.get("money_values"):  # some customer's value is known (given, or past revenue)
        res.currency = cfg.report.currency or ""
    res.deferring = bool(cfg.worklist.defer_contacted_days)
    res.close_tiers = tuple(close_tiers(cfg))
    tiers = pred["tier"].astype(str)
    res.unlisted = {t: int((tiers == t).sum()) for t in cfg.scheme.codes if t not in cfg.worklist.service_days}
    res.unlisted = {t: n for t, n in res.unlisted.items() if n}
    return res


PAST_START_DAYS = 30  # a plan that starts longer ago than this is a warning


def warn_past_start(cfg: Config, start: dt.date, now: dt.datetime | None = None) -> int:
    """A plan that starts more than :data:`PAST_START_DAYS` before today (a placeholder ``data.as_of``, old
    predictions) has its due dates in the past: a warning says so and how to move it. Returns the days."""
    from leadtier.pipelines.config import today

    days = (today(cfg, now) - start).days
    if days > PAST_START_DAYS and cfg.worklist.start is None:
        log.warning(
            "worklist: the plan starts %s, the predictions' as-of date, %d days before today, so its due dates "
            "are past; predict as of today (retier does when no --as-of is given), or set worklist.start",
            start,
            days,
        )
    return days


def planned(cfg: Config, pred: pd.DataFrame, lang: str) -> tuple[pd.DataFrame, dt.date]:
    """The worklist of the predictions ``pred`` (without plain-word reasons) and its first day: owners and
    values from the scoring input, last contacts from the interactions before that day."""
    from leadtier.pipelines.report import scored_as_of

    start = cfg.worklist.start or scored_as_of(cfg, pred)
    warn_past_start(cfg, start)
    return build(cfg, pred, customer_attributes(cfg), last_contacts(cfg, start), start, lang), start


def with_reasons(cfg: Config, out: pd.DataFrame, pred: pd.DataFrame, lang: str) -> pd.DataFrame:
    """``out`` with the reasons in plain words in ``lang`` of each customer the plan will call (planned or
    deferred: the team's capacity bounds them, see :mod:`leadtier.pipelines.reasons`); customers that do
    not fit, and every row when the model cannot be had, keep the predictions' own reasons."""
    from leadtier.pipelines.reasons import explain

    called = out["status"].isin([PLANNED, DEFERRED]).to_numpy()
    extra = [c for c in ("model_version", "as_of") if c in pred.columns]
    rows = out.loc[called, ["customer_id", "tier"]].merge(
        pred[["customer_id", *extra]].drop_duplicates("customer_id"), on="customer_id", how="left"
    )
    why = explain(cfg, rows, lang) if len(rows) else None
    if why is not None:
        out = out.copy()
        out.loc[called, "reasons"] = why.to_numpy()
    return out


def predictions_source(pred_path: Path, manifest: dict | None) -> dict[str, str]:
    """What a worklist records of the predictions it was planned from: their path and the predict run that
    wrote them (its manifest's run id; '' for a file written without one)."""
    return {"predictions": str(pred_path.resolve()), "predictions_run": str((manifest or {}).get("run_id") or "")}


def made_from(cfg: Config) -> dict[str, str] | None:
    """The predictions the worklist at ``worklist.output`` was planned from (:func:`predictions_source`);
    None when there is none, or its manifest does not say (written before worklists recorded it)."""
    from leadtier.pipelines.outputs import OutputSet, read_manifest

    manifest = read_manifest(OutputSet(Path(cfg.worklist.output), []).manifest) or {}
    return {k: manifest[k] for k in ("predictions", "predictions_run")} if "predictions" in manifest else None


def _write(out: pd.DataFrame, path: Path, start: dt.date, source: dict | None = None) -> WorklistResult:
    if path.suffix.lower() != ".parquet":
        raise WorklistError(f"the worklist output must end in .parquet (the CSV goes beside it). Got {path} instead")
    csv_path = path.with_suffix(".csv")
    with OutputSet(path, []) as outset:
        outset.sides = {"csv": csv_path}  # <stem>.csv, not <stem>.csv.csv: the same rows, for spreadsheets
        outset.open(uuid.uuid4().hex)
        outset.stage(path, table_writer(out, path))
        outset.stage(csv_path, table_writer(out, csv_path))
        outset.commit(facts=source)
    counts = {s: int((out["status"] == s).sum()) for s in (PLANNED, DEFERRED, NO_CAPACITY)}
    res = WorklistResult(path, csv_path, counts, int(out["late"].sum()), shortfall(out), start)
    guessed = out["value_estimated"].fillna(False).astype(bool)
    if guessed.any():
        res.estimated, res.estimate = int(guessed.sum()), float(out.loc[guessed, "value"].iloc[0])
    return res
