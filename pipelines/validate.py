"""Checks on the registered input tables: one message per problem, with table, column, row count
and a few examples. Errors stop the run (InputError); warnings are logged and kept with the run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import duckdb
from leadtier.features.inputs import AS_WRITTEN, spelling_pairs
from leadtier.models.text import clip
from leadtier.pipelines.config import Config
from leadtier.pipelines.sources import InputError, TableStats, spelt_otherwise

log = logging.getLogger(__name__)


@dataclass
class Problem:
    level: str  # "error" | "warning" | "info" (what the config asked for, e.g. an exclusion)
    table: str
    file: str
    column: str
    rows: int
    examples: list[str]
    message: str
    file_column: str = ""  # the column's name in the files, when the config maps it from another one

    def __str__(self) -> str:
        ex = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        rows = f"{self.rows} row(s) " if self.rows else ""  # 0: a problem of the column, not of rows
        if self.column == "*":  # a problem of whole rows, not of one column
            return f"{self.file}: {self.table}: {rows}{self.message}{ex}"
        if self.file_column and self.file_column != self.column:
            return f"{self.file}: column {self.file_column!r} ({self.table}.{self.column}): {rows}{self.message}{ex}"
        return f"{self.file}: column {self.column!r} of {self.table}: {rows}{self.message}{ex}"


def _check(con, table, column, level, where, message, files: str, select: str | None = None) -> Problem | None:
    n = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchall()[0][0]
    if not n:
        return None
    sql = f"SELECT DISTINCT {select or column} FROM {table} WHERE {where} LIMIT 3"  # three different examples
    ex = [clip(r[0]) for r in con.execute(sql).fetchall()]
    return Problem(level, table, files, column, int(n), ex, message)


EVENT_TABLES = ("transactions", "interactions", "stages")
LOG_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}  # info: what config asked
Check = tuple[str, str, str, str, str, str | None]  # (table, column, level, bad rows' WHERE, message, example)


def named_files(files: list[str], most: int = 3) -> str:
    """The files of a table for a message: all of a few; of many, the first two and the last with the count
    (a table of 24 monthly exports is no 2,000-character line)."""
    if len(files) <= most:
        return ", ".join(files)
    return f"{files[0]}, {files[1]}, ..., {files[-1]} ({len(files)} files)"


def _future(table: str, as_of: dt.date) -> Check:
    return (
        table,
        "ts",
        "warning",
        f"ts >= DATE '{as_of.isoformat()}'",
        f"are dated on or after the as-of date {as_of} (the future: no feature uses them)",
        "ts",
    )


DUPLICATE_IDS = (
    "share a customer_id with another row (ids must be unique; a file of events, one row per visit or order, "
    "is no customers file: give its events as transactions or interactions and set "
    "tables.customers.derive_from instead)"
)


def _customer_checks(cfg: Config, as_of: dt.date) -> list[Check]:
    unique = "customer_id IN (SELECT customer_id FROM customers GROUP BY 1 HAVING count(*) > 1)"
    checks: list[Check] = [("customers", "customer_id", "error", unique, DUPLICATE_IDS, None)]
    if not cfg.data.tables.customers.derive_from:  # derived customers: their later transactions say it already
        later = f"were created on or after the as-of date {as_of} (they do not exist yet: no feature row)"
        checks.append(
            (
                "customers",
                "created_at",
                "warning",
                f"CAST(created_at AS DATE) >= DATE '{as_of.isoformat()}'",
                later,
                "customer_id",
            )
        )
    return checks


NO_INVOICE = "have no invoice_id (each counts as a purchase of its own, one per customer and timestamp)"


def _event_checks(cfg: Config, tables: set[str], as_of: dt.date) -> list[Check]:
    checks: list[Check] = []
    if "transactions" in tables:
        checks += [
            ("transactions", "amount", "warning", "amount IS NULL", "have no amount (count as 0)", "invoice_id"),
            ("transactions", "invoice_id", "warning", "invoice_id IS NULL", NO_INVOICE, "customer_id"),
            ("transactions", "ts", "warning", "ts IS NULL", "have no timestamp (ignored)", "invoice_id"),
            _future("transactions", as_of),
        ]
    if "interactions" in tables:
        types = ", ".join("'" + t + "'" for t in cfg.features.interaction_types) or "NULL"
        unlisted = "have a type not listed in features.interaction_types (only in totals)"
        checks += [
            ("interactions", "type", "warning", f"type NOT IN ({types}) OR type IS NULL", unlisted, "type"),
            ("interactions", "ts", "warning", "ts IS NULL", "have no timestamp (ignored)", "customer_id"),
            ("interactions", "duration_s", "warning", "duration_s < 0", "have a negative duration", None),
            _future("interactions", as_of),
        ]
    if "stages" in tables and "stages" in cfg.features.families:
        order = ", ".join("'" + st.replace("'", "''") + "'" for st in cfg.features.stage_order)
        unlisted = "have a stage not listed in features.stage_order (a change, never a position: closed stages)"
        checks.append(("stages", "stage", "info", f"stage NOT IN ({order})", unlisted, "stage"))
        checks.append(("stages", "ts", "warning", "ts IS NULL", "have no timestamp (ignored)", "customer_id"))
    if "labels" in tables:
        absent = "customer_id NOT IN (SELECT customer_id FROM customers)"
        checks.append(
            (
                "labels",
                "customer_id",
                "warning",
                absent,
                "label customers absent from the customers table (not used)",
                None,
            )
        )
    return checks


def _reading_problems(stats: dict[str, TableStats], files: dict[str, str]) -> list[Problem]:
    """What reading the tables counted: rows without an id, exact duplicates, rows excluded by a rule."""
    problems = []
    for name, st in stats.items():
        if st.missing_id:
            problems.append(
                Problem(
                    "warning", name, files[name], "customer_id", st.missing_id, [], "have no customer id (excluded)"
                )
            )
        if st.restated:
            restated = "are restated in a later file (restated_by: the later file's rows are kept)"
            problems.append(Problem("info", name, files[name], "*", st.restated, [], restated))
        if st.duplicates_dropped:
            duplicates = "are exact duplicates of another row (kept once)"
            problems.append(Problem("warning", name, files[name], "*", st.duplicates_dropped, [], duplicates))
        for rule, n in st.excluded.items():
            if n:
                problems.append(
                    Problem("info", name, files[name], "*", n, [], f"match exclusion rule {rule!r} (excluded)")
                )
    return problems


COPY_CHECK_ROWS = 2_000_000  # above this many rows a table is not searched for copies (a pass of its own)


def _copies(con, cfg: Config, stats: dict[str, TableStats], files: dict[str, str]) -> list[Problem]:
    """Event rows identical to another row of their table, each counted as an event of its own because
    ``drop_exact_duplicates`` is off: a warning per table (an export that repeats rows counts them twice).
    A table of more than :data:`COPY_CHECK_ROWS` rows is not searched (it would cost a third of the
    feature build); an info line says so."""
    problems = []
    for table in (t for t in EVENT_TABLES if t in stats):
        spec = getattr(cfg.data.tables, table, None)
        if spec is None or spec.drop_exact_duplicates:
            continue
        if sum(stats[table].files.values()) > COPY_CHECK_ROWS:
            log.info("%s: not searched for exact copies of rows (over %d rows)", table, COPY_CHECK_ROWS)
            continue
        # rows whose whole content hashes alike (a 64-bit hash: a collision in a billion rows is unlikely)
        n = con.execute(f"SELECT count(*) - count(DISTINCT hash(t)) FROM {table} AS t")
        copies = int(n.fetchall()[0][0])
        if copies:
            message = (
                "are exact copies of another row, each counted as an event of its own (set "
                f"tables.{table}.drop_exact_duplicates: true when the export repeats rows)"
            )
            problems.append(Problem("warning", table, files[table], "*", copies, [], message))
    return problems


def _unseen_stages(con, cfg: Config, files: str) -> list[Problem]:
    """A stage of ``features.stage_order`` that no row of the stage log has (a misspelling, another
    language): a warning naming the stages the log does have."""
    seen = [
        r[0] for r in con.execute("SELECT DISTINCT stage FROM stages WHERE stage IS NOT NULL ORDER BY 1").fetchall()
    ]
    unseen = [st for st in cfg.features.stage_order if st not in set(seen)]
    if not unseen:
        return []
    shown = [clip(st) for st in seen[:12]] + (["..."] if len(seen) > 12 else [])
    message = f"features.stage_order lists {unseen}, which no row has; the stages in the log: {shown}"
    return [Problem("warning", "stages", files, "stage", 0, [], message)]


def check_inputs(
    con: duckdb.DuckDBPyConnection, cfg: Config, stats: dict[str, TableStats], as_of: dt.date
) -> list[Problem]:
    """Every check but :func:`check_event_customers` on the tables registered in ``con``; log the
    problems, raise on errors (before any feature is built), return them all."""
    files = {t: named_files(s.files) for t, s in stats.items()}
    checks = _customer_checks(cfg, as_of) + _event_checks(cfg, set(stats), as_of)
    problems = [p for p in (_check(con, t, c, lvl, w, m, files.get(t, t), sel) for t, c, lvl, w, m, sel in checks) if p]
    problems += _reading_problems(stats, files) + _copies(con, cfg, stats, files)
    if "stages" in stats and "stages" in cfg.features.families:
        problems += _unseen_stages(con, cfg, files["stages"])
    for p in problems:
        p.file_column = _file_column(cfg, p.table, p.column)
    for p in problems:
        if p.level != "error":  # errors are the one line the run stops with
            log.log(LOG_LEVELS[p.level], "%s", p)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        raise InputError("; ".join(str(p) for p in errors))
    return problems


def _file_column(cfg: Config, table: str, column: str) -> str:
    """The name every file of ``table`` gives canonical ``column`` (``columns: {customer_id: deal_id}``), or
    '' when the files name it differently or the column is not mapped."""
    spec = getattr(cfg.data.tables, table, None)
    names = {fs.columns.get(column, column) for fs in spec.files} if spec is not None else set()
    return names.pop() if len(names) == 1 else ""


def check_event_customers(
    con: duckdb.DuckDBPyConnection,
    stats: dict[str, TableStats],
    as_of: dt.date,
    counted: Mapping[str, int] | None = None,
    cfg: Config | None = None,
) -> list[Problem]:
    """Event rows dated before ``as_of`` (the only ones a feature could use) that name a customer absent
    from the customers table: logged warnings; the rows are ignored. With ``cfg``, each warning names the
    id column as the files write it.

    ``counted`` (table -> rows the feature families counted for known customers, see
    ``leadtier.features.queries.FAMILY_ROW_COUNTS``) replaces the anti-join by a count over the timestamps: rows
    before ``as_of`` minus ``counted`` is the number of such rows, and only when it is not zero is the
    table searched for them (for examples; a different count there means a family no longer counts
    every row it reads, and is logged).
    """
    files = {t: named_files(s.files) for t, s in stats.items()}
    before = f"ts < DATE '{as_of.isoformat()}'"
    problems = []
    for table in (t for t in EVENT_TABLES if t in stats):
        expected = None
        if counted is not None and table in counted:
            expected = con.execute(f"SELECT count(*) FROM {table} WHERE {before}").fetchall()[0][0] - counted[table]
            if expected == 0:
                continue
        problem = _check(
            con,
            table,
            "customer_id",
            "warning",
            f"{before} AND customer_id NOT IN (SELECT customer_id FROM customers)",
            f"are dated before the as-of date {as_of} and name customers absent from the customers table (ignored)",
            files[table],
        )
        if expected is not None and (problem.rows if problem else 0) != expected:
            log.warning(
                "%s: the feature families left %d row(s) before %s uncounted but %d name unknown customers; "
                "a family no longer counts every row it reads (features.queries.FAMILY_ROW_COUNTS)",
                table,
                expected,
                as_of,
                problem.rows if problem else 0,
            )
        if problem:
            problem.message += _spelt_otherwise(con, f"(SELECT * FROM {table} WHERE {before})")
            problem.file_column = _file_column(cfg, table, "customer_id") if cfg is not None else ""
            log.warning("%s", problem)
            problems.append(problem)
    return problems


def _spelt_otherwise(con, rows: str) -> str:
    """For event ``rows`` (a table or subquery) naming unknown customers: ids that match a customer once case,
    separators and leading zeros are ignored ('57254' for '057254': ids a spreadsheet read as numbers)."""
    pairs = con.execute(
        f"{spelling_pairs(rows, 'customer_id', AS_WRITTEN, 'customers', 'customer_id', AS_WRITTEN)} LIMIT 3"
    ).fetchall()
    return spelt_otherwise(pairs, "ids the customers table spells otherwise or with leading zeros (keep ids as text)")


def validate(
    con: duckdb.DuckDBPyConnection, cfg: Config, stats: dict[str, TableStats], as_of: dt.date
) -> list[Problem]:
    """Every check on the tables registered in ``con``: :func:`check_inputs` (raises on errors) and
    :func:`check_event_customers`. Returns all problems."""
    return check_inputs(con, cfg, stats, as_of) + check_event_customers(con, stats, as_of, cfg=cfg)


def as_records(problems: list[Problem]) -> list[dict]:
    return [asdict(p) for p in problems]
