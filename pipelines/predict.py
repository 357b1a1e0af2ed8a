"""Stage: tier new customers with a registered model (``leadtier predict``).

Every input row is scored or written to the rejects file with its reason (its 1-based position in
the input, its id, why); the summary reconciles ``input rows = scored + rejected``. Features are
built by DuckDB and scored in Arrow batches, so memory stays bounded; the output appears atomically
(temporary file, then rename).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from leadtier.features.label_rules import rule_label_query
from leadtier.features.queries import FAMILY_TABLES
from leadtier.models.drift import DriftAccumulator, migration
from leadtier.models.frame import FeatureMismatchError, numbers_as_float
from leadtier.pipelines import tracking
from leadtier.pipelines.config import Config
from leadtier.pipelines.errors import UserError
from leadtier.pipelines.features import (
    check_families,
    connect,
    doubles,
    fetch_frame,
    register_population,
    staged_families,
)
from leadtier.pipelines.outputs import (
    OutputSet,
    check_suffix,
    neutralise_arrow,
    read_manifest,
    set_stem,
    table_writer,
)
from leadtier.pipelines.sources import InputError, register_all, scoring_spec
from mlflow.exceptions import MlflowException
from tqdm import tqdm

log = logging.getLogger(__name__)

REJECT_RULES = [
    ("customer_id IS NULL", "missing customer_id"),
    ("dup_rank > 1", "duplicate customer_id: only the first occurrence is read"),
    ("created_at IS NOT NULL AND CAST(created_at AS DATE) >= $as_of", "skipped: created on or after the as-of date"),
]
SKIPPED = "skipped: "  # a reason with this prefix leaves a row out by rule or config, not as bad input
CLOSED_RULE = ("closed_before", SKIPPED + "closed (won or lost) before the as-of date")


def scoring_rules(cfg: Config) -> list[tuple[str, str]]:
    """:data:`REJECT_RULES`, and for entities on their own clock (``labels.outcome.kind: days_to_win``:
    a tier counts the days from each one's ``created_at``) those without a start (rejected: no day to
    count from, and the model learnt from none such) and, when the model reads them as of their first
    ``features.entity_as_of_days`` days, those not open that long yet (skipped: their features would
    describe fewer days than the model learnt from, and read as slower than they are)."""
    from leadtier.pipelines.features import entity_clock

    if not entity_clock(cfg):
        return list(REJECT_RULES)
    days = cfg.features.entity_as_of_days
    if not days:
        return [*REJECT_RULES, ("created_at IS NULL", "missing created_at: its tier counts the days from it")]
    young = f"created_at IS NOT NULL AND date_diff('day', CAST(created_at AS DATE), $as_of) < {days}"
    return [
        *REJECT_RULES,
        ("created_at IS NULL", f"missing created_at: the features describe the first {days} days after it"),
        (young, f"{SKIPPED}open fewer than {days} days (the days its features describe)"),
    ]


def tagged_query(source: str, as_of_sql: str, open_only: bool, reject_rules=REJECT_RULES) -> str:
    """Every input row of ``source`` (tagged by ``register_all(tag_rows=True)``) with ``reject_reason``:
    the input rules' ``pre_reject``, then ``reject_rules`` (duplicate ids ranked among the rows the input
    rules keep), then, with ``open_only``, entities won or lost before the as-of date (skipped). Plain SQL
    that DuckDB and Spark both run (a join, not an IN subquery inside CASE, which Spark refuses)."""
    rules = [*reject_rules, CLOSED_RULE]
    reason = "coalesce(pre_reject, CASE " + " ".join(f"WHEN {cond} THEN '{why}'" for cond, why in rules) + " END)"
    closed, join = "false", ""
    if open_only:
        ended = f"CAST(won_at AS DATE) < {as_of_sql} OR CAST(lost_at AS DATE) < {as_of_sql}"
        closed = "c.customer_id IS NOT NULL"
        join = f" LEFT JOIN (SELECT DISTINCT customer_id FROM outcomes WHERE {ended}) AS c USING (customer_id)"
    return (
        f"SELECT *, {reason} AS reject_reason FROM ("
        "SELECT i.*, row_number() OVER (PARTITION BY i.customer_id, i.pre_reject IS NULL ORDER BY i.input_row) "
        f"AS dup_rank, {closed} AS closed_before FROM {source} AS i{join})"
    )


class RejectShareError(UserError, RuntimeError):
    """More input rows were rejected than predict.max_reject_share allows."""


def rejected_rows(why: dict[str, int]) -> int:
    """The rows rejected, of the rows not scored by reason (skipped ones start with SKIPPED)."""
    return sum(n for r, n in why.items() if not r.startswith(SKIPPED))


@dataclass
class PredictResult:
    output: Path | str
    rejects: Path | str | None
    input_rows: int
    scored: int
    reasons: dict[str, int]  # rows not scored by reason; skipped ones start with SKIPPED
    model_uri: str
    model_version: str
    as_of: dt.date
    seconds: float
    engine: str = "DuckDB"
    stale_days: int | None = None  # days from the newest event read to the as-of date (None: no events)

    @property
    def skipped(self) -> int:
        """Rows left out by rule or config (not yet created, predict.open_only), listed in the rejects file too."""
        return sum(n for r, n in self.reasons.items() if r.startswith(SKIPPED))

    @property
    def rejected(self) -> int:
        return rejected_rows(self.reasons)

    def summary(self) -> str:
        lines = [
            f"scored {self.scored} of {self.input_rows} input rows on {self.engine} with {self.model_uri} "
            f"(version {self.model_version or 'n/a'}) as of {self.as_of} in {self.seconds:.1f} s -> {self.output}",
            f"rejected {self.rejected} -> {self.rejects}" if self.rejected else "rejected 0",
        ]
        lines += [f"  {n:>8}  {r}" for r, n in self.reasons.items() if not r.startswith(SKIPPED)]
        if self.skipped:
            lines.append(f"skipped {self.skipped} (not bad input; listed in {self.rejects}):")
            lines += [f"  {n:>8}  {r[len(SKIPPED) :]}" for r, n in self.reasons.items() if r.startswith(SKIPPED)]
        total = self.scored + self.rejected + self.skipped
        verdict = "ok" if self.input_rows == total else "MISMATCH"
        skipped = f" + {self.skipped} skipped" if self.skipped else ""
        lines.append(
            f"reconciled: {self.input_rows} = {self.scored} scored + {self.rejected} rejected{skipped} ({verdict})"
        )
        if self.stale_days is not None and self.stale_days > STALE_DAYS:
            lines.append(stale_line(self.stale_days))
        return "\n".join(lines)


def stale_line(days: int) -> str:
    """The summary's line for inputs that end ``days`` before the as-of date (see :func:`warn_stale_inputs`)."""
    return (
        f"stale inputs: the newest event is {days} days before the as-of date; recency and recent counts, and "
        "any drift they show, come from that gap"
    )


def rebatch(reader, size: int):
    """Tables of exactly ``size`` rows (the last may be shorter), whatever batches the engine hands
    out: the row groups, hence the output bytes, then do not depend on thread timing."""
    pending: list[pa.RecordBatch] = []
    n = 0
    for batch in reader:
        pending.append(batch)
        n += batch.num_rows
        while n >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size)
            rest = table.slice(size)
            pending, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(pending)


def scoring_threads(cfg: Config) -> int:
    """LightGBM threads for scoring: ``predict.n_jobs``, or one per CPU core this process may use."""
    return cfg.predict.n_jobs or len(os.sched_getaffinity(0))


SIDE_KINDS = ["drift", "migration", "rejects"]  # <stem>.<kind>.csv beside the predictions, one set with them


def input_facts(cfg: Config, input_path: str | None) -> dict:
    """What the manifest records of the input: a file given with ``--input`` (``predict.input`` is in the
    config, and moves with ``--data-root``)."""
    return {"input": str(cfg.data_path(input_path).resolve())} if input_path else {}


def with_scored_input(cfg: Config, manifest: dict | None) -> Config:
    """``cfg`` whose ``predict.input`` is the file the predictions' run scored (``predict --input``, as
    its manifest records), for the stages that read owners, values and features of the same customers."""
    scored = (manifest or {}).get("input")
    if not scored or scored == cfg.predict.input:
        return cfg
    return cfg.model_copy(update={"predict": cfg.predict.model_copy(update={"input": scored})})


def side_file(out_path: Path, kind: str) -> Path:
    """``predictions.parquet`` -> ``predictions.drift.csv`` / ``predictions.migration.csv``; a Spark folder
    ``run.2024-06`` -> ``run.2024-06.drift.csv`` (as spark-predict names them)."""
    return out_path.with_name(f"{set_stem(out_path.name)}.{kind}.csv")


_TIER_COLUMNS = ["customer_id", "tier", "score"]


def _read_tiers(path: Path, suffix: str | None = None) -> pd.DataFrame:
    """The id, tier and score columns of a predictions file (its format by ``suffix``, default its own):
    all that tier migration needs."""
    if (suffix or path.suffix).lower() == ".parquet":
        return pd.read_parquet(path, columns=_TIER_COLUMNS)
    return pd.read_csv(path, usecols=_TIER_COLUMNS, dtype={"customer_id": str})


def positions_said(spec) -> bool:
    """Ids that are row positions (:func:`~leadtier.pipelines.sources.ids_are_positions`): said, and no
    tier changes since the last run are written (row 10 of two files is not one customer)."""
    from leadtier.pipelines.sources import ids_are_positions

    if not ids_are_positions(spec):
        return False
    log.info("customer_id is each row's position in its file: no tier changes since the last run are compared")
    return True


def _previous_output(path: Path) -> pd.DataFrame | None:
    """The last run's tiers, for tier migration (None when there is no readable previous output)."""
    if not path.is_file():
        return None
    try:
        return _read_tiers(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("previous predictions %s unreadable, no migration table: %s", path, exc)
        return None


def scorer_of(model):
    """The model's :class:`~leadtier.models.scorer.TierScorer` (None for a pyfunc of another kind)."""
    try:
        return model.unwrap_python_model().scorer
    except AttributeError:  # not a leadtier pyfunc: no drift reference
        return None


STALE_DAYS = 30  # inputs whose newest event is older than this before the as-of date are warned of


def newest_events_sql(cfg: Config, as_of: dt.date, has_table) -> str | None:
    """SQL (DuckDB and Spark alike) for the newest event date before ``as_of`` of each event table the
    feature families read (``has_table(name)``: it is registered); None when the features read no events."""
    read = [FAMILY_TABLES[f] for f in cfg.features.families if f != "customers" and has_table(FAMILY_TABLES[f])]
    if not read:
        return None
    return " UNION ALL ".join(
        f"SELECT '{t}' AS events, CAST(max(ts) AS DATE) AS newest FROM {t} WHERE ts < DATE '{as_of.isoformat()}'"
        for t in read
    )


def warn_stale_inputs(newest: list[tuple[str, dt.date | None]], as_of: dt.date) -> int | None:
    """Warn when every event table ends more than :data:`STALE_DAYS` days before ``as_of`` (an old extract
    scored as of today): the features see nothing after that day. ``newest``: (table, its newest event
    date before ``as_of``) as :func:`newest_events_sql` gives. Returns the days, None without events."""
    dated = {t: d for t, d in newest if d is not None}
    if not dated:
        return None
    last = max(dated.values())
    days = (as_of - last).days
    if days > STALE_DAYS:
        ends = ", ".join(f"{t} {d}" for t, d in dated.items())
        log.warning(
            "the inputs end %d days before the as-of date %s (newest rows: %s): the features see nothing after "
            "that day, so recency and the counts of recent days read customers as quiet since then; refresh the "
            "extracts, or score as of the day after their end (--as-of %s)",
            days,
            as_of,
            ends,
            last + dt.timedelta(days=1),
        )
    return days


def warn_open_only(scorer, cfg: Config) -> None:
    """Warn when the scorer rules out tiers by days open but ``predict.open_only`` scores closed entities too."""
    if getattr(scorer, "latest_open_days", None) and not cfg.predict.open_only:
        log.warning(
            "predict.open_only is off: every entity is scored as still open (neither won nor lost) at the as-of "
            "date, so one open longer than a tier's window is never in that tier and a lost one reads as open; set "
            "predict.open_only to skip closed ones"
        )


def same_clock(a: str, b: str) -> bool:
    """Whether time zones ``a`` and ``b`` are one clock under two names (UTC and Etc/UTC, Asia/Shanghai and
    PRC): the same UTC offset on every day from 2000 to 2049 (zones that parted before, such as Europe/Paris
    and Europe/Berlin, read today's dates alike). A name this machine does not know counts as another clock."""
    if a == b:
        return True
    try:
        za, zb = ZoneInfo(a), ZoneInfo(b)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    start = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC)
    moments = (start + dt.timedelta(days=d) for d in range(50 * 365))
    return all(m.astimezone(za).utcoffset() == m.astimezone(zb).utcoffset() for m in moments)


def warn_time_zone(scorer, cfg: Config) -> None:
    """Warn when ``data.time_zone`` differs from the one the model was trained under: the same timestamps
    then fall on other dates, and day counts and as-of cut-offs move by up to a day."""
    trained = (getattr(scorer, "metadata", None) or {}).get("time_zone")
    if trained and not same_clock(trained, cfg.data.time_zone):
        log.warning(
            "data.time_zone is %s but the model was trained under %s: timestamps near midnight fall on other "
            "dates than in training, so day counts and the as-of cut-off can differ by a day; score under %s",
            cfg.data.time_zone,
            trained,
            trained,
        )


def warn_future_as_of(cfg: Config, as_of: dt.date, now: dt.datetime | None = None) -> bool:
    """Warn when ``as_of`` lies after today (in ``data.time_zone``): the days up to it have no events yet, so
    every customer reads as quieter than they are. Returns whether it does."""
    from leadtier.pipelines.config import today

    day = today(cfg, now)
    if as_of <= day:
        return False
    log.warning(
        "the as-of date %s is after today (%s in %s): the days between have no events yet, so recency and the "
        "counts of recent days read every customer as quieter than they are",
        as_of,
        day,
        cfg.data.time_zone,
    )
    return True


def warn_not_champion(client, uri: str, version: str) -> None:
    """Warn when ``uri`` names a registered version that is not its model's champion (``--model
    models:/name/2``): the tiers are not the ones production scores today, as the report says too."""
    if not version or not uri.startswith("models:/") or "@" in uri:
        return
    name = uri[len("models:/") :].partition("/")[0]
    try:
        champion = str(client.get_model_version_by_alias(name, "champion").version)
    except MlflowException:  # no champion yet: nothing to differ from
        return
    if champion != version:
        log.warning(
            "scoring with version %s of %s, which is not the champion (version %s): these tiers are not the ones "
            "production scores",
            version,
            name,
            champion,
        )


def warn_scoring_settings(scorer, cfg: Config) -> None:
    """What either engine's predict warns of before scoring: settings that differ from what the model expects."""
    warn_open_only(scorer, cfg)
    warn_time_zone(scorer, cfg)


def register_scored_input(con, cfg: Config, spec, as_of: dt.date) -> pd.DataFrame:
    """Table ``customers`` in ``con``: the rows of the scoring input ``spec`` that ``predict`` scores as of
    ``as_of``, as every stage that rebuilds their features must see them (a row predict rejected for a
    bad cell must not stop the worklist's reasons). Returns the rejected and skipped rows with reasons."""
    register_all(con, cfg, customers=spec, with_labels=False, drop_missing_ids=False, tag_rows=True)
    return _split_rejects(con, as_of, cfg.predict.open_only, scoring_rules(cfg))


def scoring_features(cfg: Config, source: str, as_of: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature table of the scoring input ``source`` as ``predict`` builds it before scoring (RFM
    quintiles ranked against the configured customers, rows ``predict`` would reject or skip left out), for a
    REST client to send; and the rows left out with their reasons (``input_row``, ``customer_id``, ``reason``)."""
    check_families(cfg)
    as_of = as_of or cfg.predict.as_of or cfg.data.as_of
    con = connect(cfg, extra_files=[source])
    try:
        population = register_population(con, cfg)
        rejects = register_scored_input(con, cfg, scoring_spec(cfg, source), as_of)
        with staged_families(con, cfg, as_of, population) as sql:
            warn_stale_inputs(_newest_events(con, cfg, as_of), as_of)
            return numbers_as_float(fetch_frame(con, sql, numbers_as_double=True)), rejects
    finally:
        con.close()


def _split_rejects(con, as_of: dt.date, open_only: bool = False, rules=REJECT_RULES) -> pd.DataFrame:
    """Tag every input row by ``rules``; move rejected and skipped rows (with ``open_only`` also entities
    closed before ``as_of``) out of ``customers``. Returns them with their reasons."""
    # customers holds every input row with input_row, input_id and pre_reject (register_all(tag_rows=True)):
    # first the input rules, then the reject rules; duplicate ids are ranked among the rows they keep
    con.execute(
        "CREATE OR REPLACE TEMP TABLE customers__tagged AS " + tagged_query("customers", "$as_of", open_only, rules),
        {"as_of": as_of},
    )
    rejects = fetch_frame(
        con,
        "SELECT input_row, input_id AS customer_id, reject_reason AS reason FROM customers__tagged "
        "WHERE reject_reason IS NOT NULL ORDER BY input_row",
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE customers AS SELECT * EXCLUDE (input_row, input_id, pre_reject, dup_rank, "
        "closed_before, reject_reason) "
        "FROM customers__tagged WHERE reject_reason IS NULL ORDER BY input_row"
    )
    return rejects


def run(
    cfg: Config,
    model_uri: str | None = None,
    input_path: str | None = None,
    output: str | None = None,
    as_of: dt.date | None = None,
    batch_size: int = 100_000,
    progress: bool = True,
    reasons: bool = False,
) -> PredictResult:
    """Score ``input_path`` (default ``predict.input``, else the customers table) into ``output`` and its
    side files, committed together as one set (:class:`~leadtier.pipelines.outputs.OutputSet`)."""
    out_path = check_suffix(output or cfg.predict.output)
    tracking.check_store(cfg, model_uri)
    with OutputSet(out_path, SIDE_KINDS) as outset:
        outset.open(uuid.uuid4().hex)  # one run per output set at a time; finishes a killed run's commit
        return _run(cfg, outset, model_uri, input_path, as_of, batch_size, progress, reasons)


def _run(
    cfg: Config,
    outset: OutputSet,
    model_uri: str | None,
    input_path: str | None,
    as_of: dt.date | None,
    batch_size: int,
    progress: bool,
    reasons: bool,
) -> PredictResult:
    t0 = time.perf_counter()
    check_families(cfg)
    as_of = as_of or cfg.predict.as_of or cfg.data.as_of
    warn_future_as_of(cfg, as_of)
    out_path = outset.main
    client = tracking.setup(cfg)
    uri = model_uri or tracking.champion_uri(cfg)
    version = tracking.resolve_version(client, uri)
    warn_not_champion(client, uri, version)
    model = tracking.load_model(uri)
    scorer = scorer_of(model)
    warn_scoring_settings(scorer, cfg)
    source = input_path or cfg.predict.input
    spec = scoring_spec(cfg, source)
    con = connect(cfg, extra_files=[source] if source else [])  # reads these files and no other
    try:
        population = register_population(con, cfg) if source else "customers"  # RFM ranks as in training
        rejects = register_scored_input(con, cfg, spec, as_of)
        input_rows = len(rejects) + con.execute("SELECT count(*) FROM customers").fetchall()[0][0]
        check_has_rows(cfg, source, input_rows)
        rejects_path = out_path.with_name(out_path.stem + ".rejects.csv")
        why = {str(k): int(v) for k, v in rejects["reason"].value_counts().items()} if len(rejects) else {}
        check_reject_share(cfg, outset, input_rows, why, table_writer(rejects, rejects_path))
        previous = None if positions_said(spec) else _previous_output(out_path)
        drift = DriftAccumulator(scorer.drift_reference) if getattr(scorer, "drift_reference", None) else None
        job = {"reasons": reasons, "n_jobs": scoring_threads(cfg), "lang": cfg.report.lang}  # words of report.lang
        with _feature_mismatch_is_retrain(uri), staged_families(con, cfg, as_of, population) as sql:
            stale = warn_stale_inputs(_newest_events(con, cfg, as_of), as_of)
            sql = with_rule_tiers(cfg, sql)
            scored = _score_batches(
                con, sql, model, outset, version, as_of, batch_size, progress, input_rows - len(rejects), job, drift
            )
    finally:
        con.close()
    _stage_sides(cfg, outset, drift, previous if scored else None, scorer.scheme.codes)
    if len(rejects):
        outset.stage(rejects_path, table_writer(rejects, rejects_path))
    outset.commit(facts=input_facts(cfg, input_path))  # files not staged (no migration, no rejects) go
    return PredictResult(
        output=out_path,
        rejects=rejects_path,
        input_rows=input_rows,
        scored=scored,
        reasons=why,
        model_uri=uri,
        model_version=version,
        as_of=as_of,
        seconds=time.perf_counter() - t0,
        stale_days=stale,
    )


RULE_TIER = "rule_tier"  # with labels from rules: the tier the first rule that holds gives (none: no rule holds)


def rule_tiers_sql(cfg: Config) -> str | None:
    """With ``labels.source: rules``, the scored customers' ``customer_id`` and :data:`RULE_TIER` (SQL over
    table ``customers``, DuckDB's dialect); None otherwise."""
    if cfg.labels.source != "rules" or not cfg.labels.rules:
        return None
    query = rule_label_query([(r.tier, r.when) for r in cfg.labels.rules])
    return f"SELECT customer_id, tier AS {RULE_TIER} FROM ({query}) AS r"


def with_rule_tiers(cfg: Config, sql: str) -> str:
    """The feature query ``sql`` with :data:`RULE_TIER` beside the features (still ordered by id) when the
    labels come from rules: where a rule's columns are known the rule is the better answer, and the
    predictions show it beside the model's tier."""
    rules = rule_tiers_sql(cfg)
    if rules is None:
        return sql
    return (
        f"SELECT f.*, r.{RULE_TIER} FROM ({sql}) AS f LEFT JOIN ({rules}) AS r "
        "ON CAST(f.customer_id AS VARCHAR) = CAST(r.customer_id AS VARCHAR) ORDER BY f.customer_id"
    )


def _newest_events(con, cfg: Config, as_of: dt.date) -> list[tuple[str, dt.date | None]]:
    names = "SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()"
    tables = {r[0] for r in con.execute(names).fetchall()}
    sql = newest_events_sql(cfg, as_of, tables.__contains__)
    return [tuple(r) for r in con.execute(sql).fetchall()] if sql else []


@contextlib.contextmanager
def _feature_mismatch_is_retrain(uri: str):
    """A model that cannot score today's feature table (definitions or config changed since it was
    trained) is a :class:`tracking.ModelLoadError` that says to retrain it."""
    try:
        yield
    except (MlflowException, FeatureMismatchError) as exc:
        msg = exc.message if isinstance(exc, MlflowException) else str(exc)
        raise tracking.ModelLoadError(
            f"model {uri} cannot score the current feature table ({msg.splitlines()[-1][:300]}); "
            "the feature definitions or config changed since it was trained: retrain it"
        ) from None


def _stage_sides(cfg: Config, outset: OutputSet, drift, previous: pd.DataFrame | None, levels: list[str]) -> None:
    """Stage the drift file and, when an earlier run's tiers exist (and this run scored someone), the
    migration of tiers since then."""
    stage_drift(outset, drift, cfg.predict.psi_warning)
    if previous is None:  # no earlier run, or nothing scored (every row rejected): no tiers to compare
        return
    out_path, moved_path = outset.main, outset.sides["migration"]
    moved = migration(previous, _read_tiers(outset.staged(out_path), out_path.suffix), levels)
    outset.stage(moved_path, table_writer(moved, moved_path))


def check_has_rows(cfg: Config, source: str | None, input_rows: int) -> None:
    """A scoring input (``source``, or the customers table) without a single row is an error on either
    engine: scoring it would replace the last predictions with none (a half-written export, a header only)."""
    if not input_rows:
        spec = cfg.data.tables.customers
        paths = [source] if source else [f.path for f in spec.files]
        where = ", ".join(str(cfg.data_path(p)) for p in paths) or f"customers derived from {spec.derive_from}"
        raise InputError(f"{where}: the scoring input has no rows; nothing scored, nothing replaced")


def check_reject_share(cfg: Config, outset, input_rows: int, why: dict[str, int], write_rejects) -> None:
    """Before scoring, on either engine: when more input rows were rejected than predict.max_reject_share
    allows, commit the rejects alone (``write_rejects(tmp)`` writes them) and raise
    :class:`RejectShareError`. No predictions file, not even briefly; an earlier run's predictions, drift and
    migration stay as they were (the next run's baseline). Rows skipped by config are not rejects."""
    n_rejected = rejected_rows(why)
    share = n_rejected / max(input_rows, 1)
    if share <= cfg.predict.max_reject_share:
        return
    if n_rejected:
        outset.stage(outset.sides["rejects"], write_rejects)
    manifest = getattr(outset, "manifest", None)  # a Spark run's set on a cluster has none
    kept = {k: v for k, v in (read_manifest(manifest) or {}).items() if k == "input"} if manifest else {}
    outset.commit("stopped by predict.max_reject_share", keep=[outset.main, *outset.sides.values()], facts=kept)
    raise RejectShareError(
        f"{n_rejected} of {input_rows} input rows ({share:.1%}) were rejected, more than "
        f"predict.max_reject_share = {cfg.predict.max_reject_share:.1%}; no predictions written. "
        f"Reasons: {_counted(why, rejected=True)}"
        + (f" (not counted, skipped: {_counted(why, rejected=False)})" if n_rejected < sum(why.values()) else "")
        + f". See {outset.sides['rejects']}"
    )


def _counted(why: dict[str, int], rejected: bool) -> str:
    """'3 missing customer_id; 1 duplicate customer_id: ...': the rejected (or skipped) reasons, commonest first."""
    rows = sorted(((n, r) for r, n in why.items() if r.startswith(SKIPPED) != rejected), key=lambda x: (-x[0], x[1]))
    return "; ".join(f"{n} {r.removeprefix(SKIPPED)}" for n, r in rows)


EMPTY_IN_TRAINING = 0.5  # a feature missing for fewer training rows than this, and for every scored one, is named


def stage_drift(outset, drift: DriftAccumulator | None, threshold: float) -> None:
    """Stage the drift file of ``outset`` from ``drift`` (no file without a drift reference) and log each
    feature above ``threshold`` and each with values training never saw. Both engines."""
    if drift is None:
        return
    table = drift.table(threshold)
    outset.stage(outset.sides["drift"], table_writer(table, outset.sides["drift"]))
    for row in table[table["warning"]].itertuples():
        log.warning(
            "drift: feature %s has PSI %.3f > %.2f against the model's reference snapshot (every customer as of the "
            "latest date it was trained or evaluated on; sampling alone: up to %.3f)",
            row.feature,
            row.psi,
            threshold,
            row.psi_noise,
        )
    for row in table[table["unseen_values"] > 0].itertuples():
        log.warning(
            "feature %s: %d row(s) with values never seen in training (the model learned nothing about them); e.g. %s",
            row.feature,
            row.unseen_values,
            row.unseen_examples,
        )
    empty = table[(table["missing_share"] == 1) & (table["training_missing_share"] < EMPTY_IN_TRAINING)]
    if len(empty):
        log.warning(
            "%d feature(s) have no value in any scored row, though training had one for most customers: %s; "
            "is a column of the scoring input empty, or named otherwise than in the training data? (A feature of "
            "purchases or interactions is also empty when no scored customer has that history yet: new ones.)",
            len(empty),
            ", ".join(f"{r.feature} ({1 - r.training_missing_share:.0%} in training)" for r in empty.itertuples()),
        )


def _score_batches(
    con,
    sql,
    model,
    outset: OutputSet,
    version: str,
    as_of: dt.date,
    batch_size: int,
    progress: bool,
    total: int,
    params: dict | None = None,
    drift: DriftAccumulator | None = None,
) -> int:
    """Stream feature batches through the model into the predictions file of ``outset`` (staged: a
    temporary file that the set's commit renames)."""
    rel = doubles(con.sql(sql))  # numbers arrive as float64, as the model expects
    reader = rel.to_arrow_reader(batch_size) if hasattr(rel, "to_arrow_reader") else rel.record_batch(batch_size)
    parquet = outset.main.suffix.lower() == ".parquet"
    n = 0

    def scored_table(batch) -> pa.Table:
        frame = numbers_as_float(batch.to_pandas())
        rule = frame.pop(RULE_TIER) if RULE_TIER in frame.columns else None
        scored = model.predict(tracking.read_only(model, frame.drop(columns=["customer_id"])), params=params)
        if drift is not None and len(frame):
            drift.add(frame)
        scored.insert(0, "customer_id", frame["customer_id"].astype(str).to_numpy())
        if rule is not None:
            scored.insert(scored.columns.get_loc("tier") + 1, RULE_TIER, rule.astype(object).to_numpy())
        if "rfm_monetary" in frame.columns:  # what the report needs for revenue shares
            scored["past_revenue"] = frame["rfm_monetary"].to_numpy()
        table = pa.Table.from_pandas(scored, preserve_index=False).replace_schema_metadata(None)
        table = table.append_column("model_version", pa.array([version] * len(frame), pa.string()))
        table = table.append_column("as_of", pa.array([as_of] * len(frame), pa.date32()))
        return table if parquet else neutralise_arrow(table)  # a spreadsheet must not run an id as a formula

    def write(tmp: Path) -> None:
        nonlocal n
        writer = None
        try:
            with tqdm(total=total, unit="rows", desc="scoring", disable=not progress, mininterval=1.0) as bar:
                for batch in rebatch(reader, batch_size):
                    if not batch.num_rows:
                        continue
                    table = scored_table(batch)
                    if writer is None:
                        writer = (
                            pq.ParquetWriter(tmp, table.schema, compression="zstd")
                            if parquet
                            else pacsv.CSVWriter(tmp, table.schema)
                        )
                    writer.write_table(table)
                    n += batch.num_rows
                    bar.update(batch.num_rows)
            if writer is None:  # nothing to score (every row skipped): a valid empty file with every column
                table = scored_table(reader.schema.empty_table())
                writer = pq.ParquetWriter(tmp, table.schema) if parquet else pacsv.CSVWriter(tmp, table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()

    try:
        outset.stage(outset.main, write)
    finally:  # an open result would make DuckDB refuse to drop tables or close, hiding why the write failed
        reader.close()
    return n
