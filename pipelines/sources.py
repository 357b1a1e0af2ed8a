"""Read the configured input files under canonical table and column names, on DuckDB or Spark.

Each logical table (customers, transactions, interactions, labels) becomes a temp table or view
whose columns have the canonical names of ``config.CANONICAL_COLUMNS`` plus any declared
attribute columns. Problems a user can fix (a missing file, a missing mapped column, dates that
do not parse) raise :class:`InputError` naming the file, the column and how many rows.

The rules (casts, ids, bad values, duplicates, ``exclude``) are the SQL of
:mod:`leadtier.features.inputs`, run here for both engines: an engine only reads a file into a view
(:class:`DuckEngine`, ``leadtier.pipelines.spark.SparkEngine``) and runs SQL written for DuckDB.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import sqlglot
from leadtier.features import inputs as rules
from leadtier.features.inputs import ident
from leadtier.features.queries import slug
from leadtier.models.text import clip
from leadtier.pipelines.config import CANONICAL_COLUMNS, OPTIONAL_COLUMNS, Config, FileSpec, JoinSpec, TableSpec
from leadtier.pipelines.errors import UserError
from sqlglot import exp

log = logging.getLogger(__name__)


class InputError(UserError, ValueError):
    """An input file cannot be used as configured."""


@dataclass
class TableStats:
    """What happened to the rows of one table on the way in."""

    table: str
    files: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    restated: int = 0  # rows replaced by a later file's rows with the same ``restated_by`` values
    excluded: dict[str, int] = field(default_factory=dict)
    missing_id: int = 0
    rows: int = 0
    # files' rows without a usable id, counted on the source rows
    raw_missing_id: int = 0
    # rows whose id is a missing-value marker or has spaces around it, by reason (part of missing_id)
    bad_ids: dict[str, int] = field(default_factory=dict)
    # per column: NaN / inf / -inf values read as missing
    not_finite: dict[str, int] = field(default_factory=dict)
    # per lookup table (``joins``): rows, rows without a key, rows whose key the lookup table does not have
    joins: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "rows_read": sum(self.files.values()),
            "files": self.files,
            "duplicates_dropped": self.duplicates_dropped,
            "restated": self.restated,
            "excluded": self.excluded,
            "missing_id": self.missing_id,
            "bad_ids": self.bad_ids,
            "not_finite": self.not_finite,
            "joins": self.joins,
            "rows": self.rows,
        }


def _reader(path: Path, fmt: str, text_columns: list[str] = (), encoding: str = "utf-8", sample: int = -1) -> str:
    """DuckDB table function for one file; ``text_columns`` of a CSV are read as text, never
    guessed as numbers (an id '007' or '1.5' must stay as written); the others' types are sniffed from
    ``sample`` rows (-1: all)."""
    fmt = _format(path, fmt)
    if fmt == "csv" and encoding in TRANSCODED:
        path, encoding = utf8_copy(path, encoding), "utf-8"
    lit = "'" + str(path).replace("'", "''") + "'"
    if fmt == "parquet":
        return f"read_parquet({lit})"
    options = "" if encoding == "utf-8" else f", encoding = '{encoding}'"
    if text_columns:
        pairs = ", ".join("'" + c.replace("'", "''") + "': 'VARCHAR'" for c in text_columns)
        options += f", types = {{{pairs}}}"
    return f"read_csv({lit}, header = true, sample_size = {int(sample)}{options})"


ENCODING_HINT = (
    "Set encoding: latin-1 (Western European text), utf-16, gbk or gb18030 (Simplified Chinese, as Excel on "
    "Chinese Windows saves CSV), big5 or shift_jis for this file in the config; text in another encoding "
    "must be converted to UTF-8 first, e.g. iconv -f EUC-KR -t UTF-8"
)
TRANSCODED = ("gbk", "gb18030", "big5", "shift_jis")  # read through a UTF-8 copy (DuckDB reads no such text)


def codec(encoding: str) -> str:
    """Python's codec for a file's configured ``encoding`` (UTF-8 with or without a byte-order mark)."""
    return encoding if encoding in ("latin-1", "utf-16", *TRANSCODED) else "utf-8-sig"


def utf8_copy(path: Path, encoding: str) -> Path:
    """A UTF-8 copy of the text file ``path`` written in ``encoding`` (one of :data:`TRANSCODED`), kept in
    the temporary folder under a name of the file's path, size and time, so it is made once per version
    of the file. A byte the encoding has no character for is an error naming its offset."""
    import hashlib
    import os
    import tempfile

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{encoding}".encode()
    folder = Path(tempfile.gettempdir()) / "leadtier-utf8"
    copy = folder / f"{hashlib.sha256(key).hexdigest()[:24]}{path.suffix or '.csv'}"
    if copy.is_file():
        return copy
    folder.mkdir(parents=True, exist_ok=True)
    part = copy.with_suffix(f".{os.getpid()}.part")
    done = 0
    try:
        with path.open("r", encoding=encoding, newline="") as src, part.open("w", encoding="utf-8", newline="") as dst:
            for block in iter(lambda: src.read(1 << 20), ""):
                dst.write(block)
                done += len(block)
    except UnicodeDecodeError as exc:
        part.unlink(missing_ok=True)
        raise InputError(
            f"{path}: is not {encoding} text: byte 0x{exc.object[exc.start]:02x} cannot be read "
            f"(about character {done + exc.start:,} of the file). {ENCODING_HINT}"
        ) from None
    part.replace(copy)
    return copy


def _format(path: Path, fmt: str) -> str:
    return fmt if fmt != "auto" else ("parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv")


def _unreadable(path: Path, table: str, exc: duckdb.Error) -> InputError:
    """DuckDB's reason a file cannot be read, plus what to do; never the file's content (DuckDB quotes the
    offending line, which may hold personal data) nor its dump of sniffer settings."""
    lines = str(exc).split("\n\n")[0].split("The search space used was")[0].strip().splitlines()
    if any(line.startswith("Original Line") for line in lines):  # CSV Error on Line: N / <content...> / reason
        lines = [lines[0], lines[-1]] if len(lines) > 2 and not lines[-1].startswith("Original Line") else lines[:1]
    if _format(path, "auto") == "csv" and _starts_with(path, b"PK\x03\x04"):  # DuckDB may call it a wrong encoding
        return InputError(
            f"{path}: cannot be read as {table} data: it is a zip archive or Excel workbook, not CSV text; "
            "save it as CSV or Parquet"
        )
    reason = "; ".join(line.strip() for line in lines).rstrip(".")
    hint = ""
    if "not utf-8 encoded" in reason:
        hint = f" {ENCODING_HINT}"
    return InputError(f"{path}: cannot be read as {table} data: {reason[:400]}.{hint}")


def read_columns(
    path: Path,
    what: str,
    columns: list[str],
    keys: list[str] = (),
    fmt: str = "auto",
    encoding: str = "utf-8",
    id_column: str | None = None,
    derived_id: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """The ``columns`` one file has, read as the tables read it (a CSV's as written, never guessed), with
    ``keys`` as text as joins compare them and ``id_column`` as the customer ids predict writes ('12346'
    for a float 12346.0); with ``derived_id`` (the table's ``derived`` customer_id, e.g. its row number)
    a ``customer_id`` column from it; and every column name of the file. ``what`` names the data in an
    error (an unreadable file is an InputError)."""
    con = duckdb.connect()
    try:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(path, fmt, [], encoding)}").fetchall()]
        present = [c for c in dict.fromkeys(columns) if c in names]
        if not present and not derived_id:
            return pd.DataFrame(), names
        reader = _reader(path, fmt, present, encoding)
        values = {c: f"CAST({ident(c)} AS VARCHAR)" if c in keys else ident(c) for c in present}
        if derived_id:  # computed over the file's rows in order, as the tables compute it
            values = {"customer_id": rules.id_value(f"CAST(({derived_id}) AS VARCHAR)", rules.TEXT)} | values
        if id_column in values and not derived_id:
            types = dict(r[:2] for r in con.execute(f"DESCRIBE SELECT {ident(id_column)} FROM {reader}").fetchall())
            cls = _duck_class(types[id_column])
            float_text = (
                cls == rules.TEXT
                and con.execute(f"SELECT {rules.float_text_check(ident(id_column))} FROM {reader}").fetchone()[0]
            )
            values[id_column] = rules.id_value(ident(id_column), cls, bool(float_text))
        shown = ", ".join(f"{v} AS {ident(c)}" for c, v in values.items())
        return con.execute(f"SELECT {shown} FROM {reader}").df(), names
    except duckdb.Error as exc:
        raise _unreadable(path, what, exc) from None
    finally:
        con.close()


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def _csv_header(path: Path, encoding: str):
    """A CSV's dialect (sniffed from its header line) and header fields; None when no dialect fits."""
    import csv

    with path.open(newline="", encoding=codec(encoding), errors="replace") as fh:
        try:
            dialect = csv.Sniffer().sniff(fh.readline(), delimiters=",;\t|")
            fh.seek(0)
            return dialect, next(csv.reader(fh, dialect), [])  # the first record: a quoted name may span lines
        except csv.Error:
            return None


_DATA_NAME = re.compile(
    r"[+-]?[0-9]+([.,][0-9]+)?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T].*)?|[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2,4}"
)


SPACED = (
    " (its one column suggests fields separated by spaces, which are not split: separate them by ',', ';', a "
    "tab or '|')"
)


def _header_is_data(names: list[str]) -> bool:
    """Whether every column name of a file is a number or a date ('00035', '19970101', '191.12'), as when
    a file without a header line has its first row read as one (DuckDB makes a repeated name 'x_1')."""
    return bool(names) and all(_DATA_NAME.fullmatch(re.sub(r"_[0-9]+$", "", n.strip())) for n in names)


def _ragged_line(path: Path, encoding: str) -> str | None:
    """Where a CSV's rows stop matching its header's field count (DuckDB then reads one column)."""
    import csv

    sniffed = _csv_header(path, encoding)
    if sniffed is None:
        return None
    dialect, header = sniffed
    with path.open(newline="", encoding=codec(encoding), errors="replace") as fh:
        rows = csv.reader(fh, dialect)
        try:
            next(rows, None)
            for row in rows:
                if row and len(row) != len(header):  # line_num: the file's line where the record ends
                    return f"line {rows.line_num} has {len(row)} fields, the header has {len(header)}"
        except csv.Error:  # a field past the csv module's limit: no finding; the caller's own error stands
            return None
    return None


def _repeated_names(path: Path, encoding: str) -> list[str]:
    """The names a CSV's header line holds more than once."""
    sniffed = _csv_header(path, encoding)
    header = sniffed[1] if sniffed else []
    folded = [h.lower() for h in header]  # DuckDB's names are case-insensitive: 'Region' and 'region' clash
    return sorted({h for h, f in zip(header, folded, strict=True) if h and folded.count(f) > 1})


def _duck_class(dtype: str) -> str:
    """The class (``leadtier.features.inputs``) of a DuckDB type."""
    if dtype == "VARCHAR":
        return rules.TEXT
    if dtype in {"FLOAT", "DOUBLE"} or dtype.startswith("DECIMAL"):
        return rules.FLOAT
    if dtype.startswith(("TIMESTAMP", "DATE")):
        return rules.TEMPORAL
    if dtype == "BOOLEAN":
        return rules.BOOL
    return rules.INT if dtype.endswith("INT") or dtype in {"HUGEINT", "UHUGEINT"} else rules.OTHER


MIN_THOUSANDS_DOTS = 5  # decimal numbers in a column, all with three digits after the point, before a warning


class DuckEngine:
    """The input rules on DuckDB: files read by ``read_csv`` / ``read_parquet``, SQL run as written."""

    name = "DuckDB"
    errors: tuple[type[Exception], ...] = (duckdb.Error,)

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def set_time_zone(self, tz: str) -> None:
        self.con.execute(f"SET TimeZone = {rules.lit(tz)}")

    def read(self, view: str, path: Path, fs: FileSpec, table: str, text_columns: set[str]) -> dict[str, str]:
        """View ``view`` over the file; CSV columns in ``text_columns`` as text. Returns column -> class."""
        rel = _reader(path, fs.format, encoding=fs.encoding)
        is_csv = rel.startswith("read_csv")
        try:
            cols = self._types(rel)
        except duckdb.Error as exc:
            text = is_csv and path.is_file() and not _starts_with(path, b"PK\x03\x04")  # not a zip (an Excel file)
            where = _ragged_line(path, fs.encoding) if text else None  # e.g. a last line cut short: no dialect fits
            if where:
                raise InputError(f"{path}: cannot split the rows into columns: {where}") from None
            raise _unreadable(path, table, exc) from None
        twice = _repeated_names(path, fs.encoding) if is_csv and path.is_file() else []
        if twice:
            log.warning(
                "%s: column(s) %s appear more than once in the header; the first of each is read, the others as %s",
                path,
                twice,
                [c for c in cols if any(re.fullmatch(rf"{re.escape(t)}_\d+", c, re.IGNORECASE) for t in twice)],
            )
        if len(cols) == 1 and rel.startswith("read_csv") and any(d in next(iter(cols)) for d in ",;\t|"):
            where = _ragged_line(path, fs.encoding)  # None: a genuine one-column file (e.g. a quoted comma)
            if where:
                raise InputError(f"{path}: cannot split the rows into columns: {where}")
        if is_csv and fs.decimal == "." and not fs.thousands and path.is_file():
            self._warn_thousands_dots(path, fs, [c for c, t in cols.items() if t in {"DOUBLE", "FLOAT"}])
        retype = sorted(c for c in text_columns if cols.get(c, "VARCHAR") != "VARCHAR")
        if retype and rel.startswith("read_csv"):
            rel = _reader(path, fs.format, retype, fs.encoding)
            cols = self._types(rel)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {rel}")
        return {c: _duck_class(t) for c, t in cols.items()} | {"__types__": cols}  # type: ignore[operator]

    def _warn_thousands_dots(self, path: Path, fs: FileSpec, floats: list[str]) -> None:
        """A ';'-separated export (a European Excel's) whose decimal numbers all have three digits after the
        point ('3.370', '12.500') most likely groups thousands with it: read as 3.37 unless decimal is ','."""
        sniffed = _csv_header(path, fs.encoding)
        if not floats or sniffed is None or sniffed[0].delimiter != ";":
            return
        text = _reader(path, fs.format, floats, fs.encoding)
        grouped = r"^[+-]?[1-9][0-9]{0,2}(\.[0-9]{3})+$"  # '0.125' groups nothing
        counts = ", ".join(
            f"count_if(contains({ident(c)}, '.')), count_if(regexp_matches(trim({ident(c)}), '{grouped}'))"
            for c in floats
        )
        try:
            row = self.con.execute(f"SELECT {counts} FROM {text}").fetchone()
        except duckdb.Error:  # a warning's check: the read itself reports what is wrong with the file
            return
        suspects = [
            c for i, c in enumerate(floats) if row[2 * i] >= MIN_THOUSANDS_DOTS and row[2 * i] == row[2 * i + 1]
        ]
        if suspects:
            log.warning(
                "%s: column(s) %s of this ';'-separated file write every decimal number with three digits after "
                "the point (e.g. '3.370'), as a decimal-comma export groups thousands: they are read as decimals "
                "(3.37); if the point groups thousands, set decimal: ',' for this file",
                path,
                suspects,
            )

    def missing_column_hint(self, path: Path, fs: FileSpec) -> str:
        ragged = _ragged_line(path, fs.encoding) if _format(path, fs.format) == "csv" else None
        return f" (and {ragged})" if ragged else ""

    def _types(self, rel: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def create(self, name: str, sql: str, materialize: bool = False) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP {'TABLE' if materialize else 'VIEW'} {name} AS {sql}")

    def number_rows(self, name: str, sql: str) -> None:
        """Table ``name``: the rows of ``sql`` with ``input_row``, their 1-based position, first."""
        self.create(name, f"SELECT row_number() OVER () AS input_row, * FROM ({sql})", materialize=True)

    def columns(self, name: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE {name}").fetchall()]


def engine_of(con) -> DuckEngine:
    """A DuckDB connection as an engine; an engine as itself."""
    return DuckEngine(con) if isinstance(con, duckdb.DuckDBPyConnection) else con


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _examples(engine, sql: str) -> str:
    return ", ".join(clip(r[0], quote=True) for r in engine.rows(sql + " LIMIT 3"))


def _derived(
    engine, table: str, path: Path, view: str, canon: str, kind: str, fs: FileSpec, classes: dict, failing=None
) -> str:
    """The SQL of ``fs``'s ``derived`` column ``canon``; one that does not evaluate is an error naming the
    text columns it reads that hold values other than numbers (a price written '12,50 EUR'), with examples.
    For a scoring input (``failing`` a list) the rows it fails on, where the engine can tell them, are added
    to ``failing`` as (problem, count, condition, reason) to reject, and the column is NULL on them. An
    expression with a window function (``row_number() OVER ()``) is read from the column
    :func:`_read_numbered` made of it."""
    expr = fs.derived[canon]
    value = f"CAST(({_derived_sql(fs, canon)}) AS {rules.SQL_TYPES[kind]})"
    try:  # every row: a value the expression cannot convert fails here, not later in the feature query
        engine.rows(f"SELECT count(v) FROM (SELECT {value} AS v FROM {view})")  # a window function may be in it
    except Exception as exc:  # noqa: BLE001 - the engine's error, or sqlglot's for Spark
        if not isinstance(exc, (*engine.errors, ValueError)):
            raise
        problem = (
            f"{path}: derived column {table}.{canon} = {expr!r} does not evaluate: {_first_line(exc)}"
            f"{_hints(engine, view, expr, classes, value, fs, path, exc, kind)}"
        )
        rows = _rows_failing(engine, view, value) if failing is not None else None
        if rows is None:
            raise InputError(problem) from None
        failing.append((problem, *rows, f"derived column {canon!r} does not evaluate"))
        value = f"TRY({value})"
    return rules.number_value(value, rules.FLOAT, kind) if kind in {"float", "int"} else value


_WINDOWED = "__windowed__"  # prefix of the columns that hold derived expressions with a window function


def _windowed(expr: str) -> bool:
    """Whether a derived expression holds a window function (e.g. ``row_number() OVER ()``, an id or an
    order from the row's position): it is computed over the file's rows before anything else reads them."""
    try:
        return sqlglot.parse_one(expr, read="duckdb").find(exp.Window) is not None
    except sqlglot.errors.SqlglotError:  # ParseError, TokenError (an unclosed quote), ...
        return False  # the engine's own error names it when the expression is read


def _read_numbered(engine, fs: FileSpec, view: str, path: Path, table: str, text) -> dict[str, str]:
    """``engine.read`` of one file as ``view``, plus a column per derived expression with a window
    function, computed over the file's rows in their order (an aggregate or a join read later cannot
    contain one): the table ``view`` then holds the file."""
    windowed = {c: e for c, e in fs.derived.items() if _windowed(e)}
    if not windowed:
        return engine.read(view, path, fs, table, text)
    classes = engine.read(f"{view}__read", path, fs, table, text)
    shown = ", ".join(f"({e}) AS {ident(_WINDOWED + c)}" for c, e in windowed.items())
    problem = (
        f"{path}: derived column(s) {sorted(windowed)} = {list(windowed.values())} do not evaluate on {engine.name}"
    )
    _create_table(engine, view, f"SELECT *, {shown} FROM {view}__read", problem)
    return classes


def _create_table(engine, name: str, sql: str, problem: str) -> None:
    """Table ``name`` of ``sql``, read once; an engine's error (or sqlglot's, for Spark) is an InputError
    saying ``problem`` and the engine's first line."""
    try:
        engine.create(name, sql, materialize=True)
        engine.rows(f"SELECT * FROM {name} LIMIT 0")
    except Exception as exc:  # noqa: BLE001 - the engine's error, or sqlglot's for Spark
        if not isinstance(exc, (*engine.errors, ValueError)):
            raise
        raise InputError(f"{problem}: {_first_line(exc)}") from None


def _rows_failing(engine, view: str, value: str) -> tuple[int, str] | None:
    """(count, condition) of the rows on which ``value`` fails, with DuckDB's TRY (NULL where a
    conversion fails; a NULL value is no failure); None where the engine cannot tell them apart."""
    where = f"TRY(coalesce(CAST({value} AS VARCHAR), '')) IS NULL"
    try:
        (n_bad,) = engine.rows(f"SELECT count(*) FILTER (WHERE {where}) FROM {view}")[0]
    except Exception as exc:  # noqa: BLE001 - no TRY (Spark): the caller's error stands
        if not isinstance(exc, (*engine.errors, ValueError)):
            raise
        return None
    return (int(n_bad), where) if n_bad else None


def _hints(
    engine, view: str, expr: str, classes: dict, value: str, fs: FileSpec, path: Path, exc, kind: str = "float"
) -> str:
    """What may have made a derived expression fail, for its error; nothing for a syntax error."""
    said = str(exc)
    if "Parser Error" in said or "PARSE_SYNTAX_ERROR" in said or isinstance(exc, sqlglot.errors.SqlglotError):
        return ""
    dates = _dates_read_by(engine, view, expr, kind) if kind in ("date", "timestamp") else ""
    if dates:
        return dates
    text = _text_read_by(engine, view, expr, classes, value, fs)
    typed = "No function matches" in said or "DATATYPE_MISMATCH" in said  # a text function given a number
    return text or (_numbers_read_by(path, fs, expr, classes) if typed else "")


def _dates_read_by(engine, view: str, expr: str, kind: str) -> str:
    """The values of a derived date expression that are no ISO 8601 date ('31-12-2017'), with examples
    and the strptime that reads them; '' when there are none or looking fails."""
    target = rules.SQL_TYPES[kind]
    try:
        rows = engine.rows(
            f"SELECT DISTINCT CAST(({expr}) AS VARCHAR) FROM {view} "
            f"WHERE ({expr}) IS NOT NULL AND TRY_CAST(CAST(({expr}) AS VARCHAR) AS {target}) IS NULL LIMIT 3"
        )
    except Exception as exc:  # noqa: BLE001 - a hint only: the engine's own error is what the user gets
        if not isinstance(exc, (*engine.errors, ValueError)):
            raise
        return ""
    if not rows:
        return ""
    examples = [str(r[0]) for r in rows]
    readings = next((r for r in map(rules.day_month_readings, examples) if r), [])
    how = (
        f"; read them in the expression, e.g. strptime(<the column>, {readings[0][0]!r})"
        + (f" or {readings[1][0]!r}: day and month are ambiguous" if len(readings) > 1 else "")
        if readings
        else "; read them in the expression with strptime(<the column>, '<its format>')"
    )
    shown = ", ".join(clip(e, quote=True) for e in examples)
    return f"; it gives values that are no {target.lower()} in ISO 8601 (YYYY-MM-DD), e.g. {shown}{how}"


def _text_read_by(engine, view: str, expr: str, classes: dict, value: str, fs: FileSpec) -> str:
    """The text columns the expression ``expr`` names whose failing values (or, where the engine cannot say
    which rows fail, whose values that are no plain numbers) start as numbers do ('61,40', '12,500.00',
    '12,50 EUR'), with examples and an expression that reads them; '' when there are none ('EUR' in a
    currency column is text, not a failed number), or when looking fails: the caller's error stands alone."""
    said = [(c, rf"(?<!\w){re.escape(c)}(?!\w)") for c, cls in classes.items() if cls == rules.TEXT]
    named = [c for c, pattern in said if re.search(pattern, expr, re.IGNORECASE)][:3]
    found, seen = [], []
    for c in named:
        plain = rules.number_checks(ident(c), rules.TEXT, "float")["bad"]
        written = f"regexp_matches(trim({ident(c)}), {rules.lit(_WRITTEN_NUMBER)})"
        for where in (f"TRY(coalesce({value}, 0)) IS NULL AND {written}", f"{plain} AND {written}"):
            try:  # DuckDB's TRY: the rows that fail; else the values that are numbers only as written
                rows = engine.rows(f"SELECT DISTINCT {ident(c)} FROM {view} WHERE {where} LIMIT 3")
                break
            except Exception as exc:  # noqa: BLE001 - a hint only: the engine's own error is what the user gets
                if not isinstance(exc, (*engine.errors, ValueError)):
                    raise
                rows = []
        if rows:
            found.append(f"{c!r} (e.g. {', '.join(clip(r[0], quote=True) for r in rows)})")
            seen += [str(r[0]) for r in rows]
    if not found:
        return ""
    col = ident(named[0]) if len(found) == 1 else '"column"'
    mark = fs.thousands or (_grouping_mark(seen) if fs.decimal == "." else None)
    read = None  # in the file's own notation, never a guess that would read '12.50' as 1250
    if fs.decimal == ",":
        read = f"CAST(replace(replace({col}, '.', ''), ',', '.') AS DOUBLE)"
    elif mark:
        read = f"CAST(replace({col}, {rules.lit(mark)}, '') AS DOUBLE)"
    said = (
        f"; it reads text it cannot convert in {', '.join(found)}: a derived expression reads the file's columns "
        "as written (decimal and thousands apply to mapped columns): write plain numbers (12.50)"
    )
    return said + (f", or convert them in it, e.g. {read}" if read else "")


# text that starts as a number does ('61,40', '12,500.00', '12,50 EUR'), unlike 'EUR' or 'USD'
_WRITTEN_NUMBER = "^[+-]?[0-9]"


def _numbers_read_by(path: Path, fs: FileSpec, expr: str, classes: dict) -> str:
    """For a CSV file, the columns ``expr`` names that this file holds as numbers: a CSV column's type is
    guessed from its values, so text functions that work on one file ('12,500.00') fail on another ('950')."""
    if fs.format == "parquet" or (fs.format == "auto" and path.suffix.lower() == ".parquet"):
        return ""
    numbers = [c for c, cls in classes.items() if cls in {rules.FLOAT, rules.INT}]
    named = [c for c in numbers if re.search(rf"(?<!\w){re.escape(c)}(?!\w)", expr, re.IGNORECASE)][:3]
    if not named:
        return ""
    return (
        f"; this file's {', '.join(repr(c) for c in named)} holds only numbers, so it was read as numbers (a CSV "
        f"column's type follows its values): CAST({ident(named[0])} AS VARCHAR) reads it as text in every file"
        " (numbers like '12,500.00' need no expression: set thousands: ',')"
    )


Column = tuple[str, str, str, str, str]  # (output, source SQL, source name, kind, class)


def _log_unread_columns(cfg: Config, path: Path, classes: dict) -> None:
    """Say (INFO) which columns of a customers file no table of the config reads (the outcomes may come
    from the same file): a forgotten feature is then seen; list it under categorical or numeric to use it,
    or under leaky or personal to say why not."""
    wl = cfg.worklist
    said: set[str] = {"input_row", "owner", *(c for c in (wl.owner_column, wl.value_column) if c)}
    expressions = []
    for name in type(cfg.data.tables).model_fields:
        spec = getattr(cfg.data.tables, name)
        if spec is None:
            continue
        said |= {*spec.categorical, *spec.numeric, *spec.leaky, *spec.personal, *(j.by for j in spec.joins.values())}
        expressions += spec.exclude.values()
        for fs in spec.files:
            said |= (
                set(fs.columns.values()) | set(CANONICAL_COLUMNS.get(name, {})) | set(OPTIONAL_COLUMNS.get(name, {}))
            )
            expressions += fs.derived.values()
    text = " ".join(expressions)
    classes = {c: v for c, v in classes.items() if c != "__types__"}
    unread = [
        c
        for c in classes
        if c not in said
        and not c.startswith((_WINDOWED, _JOIN_KEY))
        and not re.search(rf"(?<!\w){re.escape(c)}(?!\w)", text)
    ]
    if unread:
        log.info(
            "%s: column(s) %s are read by nothing (list them under categorical or numeric to make features)",
            path,
            clip(", ".join(repr(c) for c in unread), 300),
        )


def _file_select(
    engine, cfg: Config, table: str, spec: TableSpec, fs: FileSpec, stats: TableStats, view: str, tag_rows: bool
) -> str:
    """One file as a SELECT of canonical columns and attributes over view ``view``; checks its values."""
    path = cfg.data_path(fs.path)
    _check_file(table, path)
    wanted = _wanted(table, fs)
    # never guessed from a CSV: ids, dates and times, text, categories (DuckDB reads yes/no as booleans)
    kinds = {"id", "date", "timestamp", "str"}
    marked = fs.decimal == "," or bool(fs.thousands)  # '2.171' is 2171 there, '1,234' 1234: never guessed a number
    kinds |= {"float", "int"} if marked else set()
    text = {fs.columns.get(c, c) for c, k, _ in wanted if k in kinds and c not in fs.derived}
    text |= set(spec.categorical) | set(spec.leaky) | (set(spec.numeric) if marked else set())
    classes = _read_joined(engine, cfg, table, spec, fs, view, text, stats, tag_rows)
    types = classes.pop("__types__", {})
    if _format(path, fs.format) == "csv" and _header_is_data(list(types) or list(classes)):
        raise InputError(
            f"{path}: every name in its first line is a number or a date (e.g. "
            f"{', '.join(clip(c, quote=True) for c in list(types)[:3])}): the file seems to have no header line, "
            "and its first row would be read as column names and lost; add a line naming the columns"
        )
    if tag_rows and spec is not cfg.data.tables.customers:  # a scoring file replaced the customers table
        _check_scored_columns(cfg, path, fs, classes)
    out: dict[str, str] = {}  # output column -> expression, in the order every file of the table shares
    failing: list | None = [] if tag_rows else None  # rows a derived column fails on, to reject
    columns = _source_columns(engine, table, path, fs, view, wanted, classes, out, failing)
    kept = _attributes(engine, cfg, table, spec, fs, view, classes, columns, out, tag_rows, failing)
    checks = _value_checks(table, path, fs, columns, types)
    float_text = [c for _, c, _, kind, cls in columns if kind == "id" and cls == rules.TEXT]
    if (
        float_text
        and engine.rows(f"SELECT {rules.float_text_refuted(float_text[0])} FROM (SELECT * FROM {view} LIMIT 1000)")[0][
            0
        ]
    ):
        checks["id:float_text"] = "false"  # the first rows settle it: no regex over every id
    (values,) = engine.rows(f"SELECT {', '.join(checks.values())} FROM {view}")
    counts = dict(zip(checks, values, strict=True))
    stats.files[str(path)] = int(counts["rows"])
    stats.raw_missing_id += int(counts.get("id:missing") or 0)
    bad_cells = BadCells(cfg.predict.max_reject_share, int(counts["rows"])) if tag_rows else None
    if bad_cells is not None and classes:  # a blank line of a file whose id is derived (its row number)
        blank = " AND ".join(f"coalesce(trim(CAST({ident(c)} AS VARCHAR)), '') = ''" for c in classes)
        bad_cells.found.append((blank, EMPTY_ROW))
    for problem, n_bad, where, reason in failing or ():
        _bad_cells(bad_cells, problem, n_bad, where, reason)
    if cfg.data.time_zone == "UTC":
        _warn_local_offsets(engine, table, path, view, columns, counts)
    for column in columns:
        out[column[0]] = _canonical_value(engine, table, path, fs, view, stats, counts, column, out, bad_cells)
    order = [c for c, _, _ in wanted] + [ident(a) for a in kept]
    if tag_rows:
        out["row_reject"] = rules.row_reject(out["row_reject"], bad_cells.found)
        order += ["input_id", "row_reject"]
    return f"SELECT {', '.join(f'{out[c]} AS {c}' for c in order)} FROM {view}"


def _warn_local_offsets(engine, table: str, path: Path, view: str, columns: list[Column], counts: dict) -> None:
    """Warn of times written with a local UTC offset while ``data.time_zone`` is UTC: each is read as its
    UTC time, so a day, the as-of date and every window end at midnight UTC, not at the offset's."""
    for canon, col, src, _, _ in columns:
        n = int(counts.get(f"offset:{canon}") or 0)
        if n:
            (example,) = engine.rows(f"SELECT {col} FROM {view} WHERE {rules.local_offset(col)} LIMIT 1")[0]
            log.warning(
                "%s: column %r (%s) has %d time(s) with a UTC offset, e.g. %s, but data.time_zone is UTC: each is "
                "read as its UTC time, so dates and the as-of date end at midnight UTC; set data.time_zone to the "
                "IANA zone the offsets are local to (e.g. Asia/Shanghai)",
                *(path, src, _named(table, canon), n, clip(example, quote=True)),
            )


def _check_file(table: str, path: Path) -> None:
    if not path.is_file():
        where = "" if path.is_absolute() else f" (from the current folder: {path.absolute()})"
        raise InputError(f"{table}: input file not found: {path}{where}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); {table} data needs at least a header row")


def _wanted(table: str, fs: FileSpec) -> list[tuple[str, str, bool]]:
    """(canonical column, kind, required) for ``table``; a mapping naming another column is an error."""
    wanted: list[tuple[str, str, bool]] = [(c, k, True) for c, k in CANONICAL_COLUMNS[table].items()]
    wanted += [(c, k, False) for c, k in OPTIONAL_COLUMNS[table].items()]
    unknown = sorted(set(fs.columns) - {c for c, _, _ in wanted})
    if unknown:
        allowed = [c for c, _, _ in wanted]
        raise InputError(f"{table}: columns mapping names unknown canonical column(s) {unknown}; allowed: {allowed}")
    return wanted


def _source_columns(
    engine, table: str, path: Path, fs: FileSpec, view: str, wanted, classes, out, failing=None
) -> list[Column]:
    """The canonical columns read from the file, to check and cast; fills ``out`` with the derived ones
    (``failing``: see :func:`_derived`) and with typed NULLs for optional columns the file lacks (or date
    columns with no value at all)."""
    columns: list[Column] = []
    for canon, kind, required in wanted:
        if canon in fs.derived:
            value = _derived(engine, table, path, view, canon, kind, fs, classes, failing)
            if kind == "id":  # a derived id follows the rules of a text id
                columns.append((canon, f"({value})", canon, kind, rules.TEXT))
            out[canon] = value
            continue
        src = fs.columns.get(canon, canon)
        if src not in classes:
            if required or canon in fs.columns:  # an optional column the config maps must be there too
                what = "required column" if required else f"column mapped by tables.{table}.columns.{canon}:"
                spaced = len(classes) == 1 and len(next(iter(classes)).split()) > 2  # 'id date items amount'
                raise InputError(
                    f"{path}: {what} {src!r} (mapped to {table}.{canon}) is missing; "
                    f"columns present: {sorted(classes)}" + (SPACED if spaced else engine.missing_column_hint(path, fs))
                )
            out[canon] = f"CAST(NULL AS {rules.SQL_TYPES[kind]})"
            continue
        if kind in {"date", "timestamp"} and classes[src] in {rules.INT, rules.FLOAT}:
            if not engine.rows(f"SELECT count({ident(src)}) FROM {view}")[0][0]:  # no value: nothing to refuse
                out[canon] = f"CAST(NULL AS {rules.SQL_TYPES[kind]})"
                continue
        columns.append((canon, ident(src), src, kind, classes[src]))
    return columns


def _named(table: str, canon: str) -> str:
    """A column as the config names it: ``transactions.quantity`` (canonical), ``customers.Lead Number``."""
    return f"{table}.{canon.strip(chr(34))}"


def _value_checks(table: str, path: Path, fs: FileSpec, columns: list[Column], types: dict) -> dict[str, str]:
    """name -> aggregate SQL counting the rows each rule flags, for one pass over the file; a column whose
    type cannot hold its kind at all is an error here."""
    checks: dict[str, str] = {"rows": "count(*)"}
    for canon, col, src, kind, cls in columns:
        if kind == "id":
            reason = rules.id_reason(col, cls)
            checks["id:missing"] = f"count(*) FILTER (WHERE {reason} IS NOT NULL)"
            for why in (rules.MARKER_ID, rules.PADDED_ID):
                checks[f"id:{why}"] = f"count(*) FILTER (WHERE {reason} = {rules.lit(why)})"
            if cls == rules.TEXT:
                checks["id:float_text"] = rules.float_text_check(col)
        elif kind in {"date", "timestamp"}:
            if cls in {rules.INT, rules.FLOAT}:
                raise InputError(
                    f"{path}: column {src!r} ({_named(table, canon)}) is a number ({types.get(src, cls)}), "
                    f"not a {kind}. Write it as ISO 8601 text or set date_format"
                )
            if cls != rules.TEMPORAL:
                checks[f"bad:{canon}"] = f"count(*) FILTER (WHERE {rules.time_bad(col, _time(col, cls, kind, fs))})"
            if cls == rules.TEXT:
                checks[f"offset:{canon}"] = f"count(*) FILTER (WHERE {rules.local_offset(col)})"
        elif kind in {"float", "int"}:
            if cls == rules.BOOL and _format(path, fs.format) == "csv":  # a typed boolean (Parquet) counts as 1 / 0
                raise InputError(
                    f"{path}: column {src!r} ({_named(table, canon)}) holds only yes/no or true/false values, not "
                    "numbers; write them as 1 and 0, or list the column as categorical"
                )
            if cls not in {rules.TEXT, rules.FLOAT, rules.INT, rules.BOOL}:
                raise InputError(
                    f"{path}: column {src!r} ({_named(table, canon)}) has type {types.get(src, cls)}, not a number"
                )
            for name, cond in rules.number_checks(col, cls, kind, fs.decimal, fs.thousands).items():
                checks[f"{name}:{canon}"] = f"count(*) FILTER (WHERE {cond})"
    return checks


def _canonical_value(engine, table, path, fs: FileSpec, view, stats, counts, column: Column, out, bad_cells) -> str:
    """The SQL value of one canonical column after the checks' ``counts``: ids normalised, times parsed,
    numbers cast; bad values counted in ``stats``. A time or number that does not parse is an error with
    examples, or, for a scoring input (``bad_cells`` a :class:`BadCells`), a reason that rejects its
    row; ids then also give the id as written and why it is no id."""
    canon, col, src, kind, cls = column
    if kind == "id":
        if bad_cells is not None:
            out["input_id"] = rules.id_as_written(col, cls)
            out["row_reject"] = rules.id_reason(col, cls)
        _count_bad_ids(engine, stats, counts, path, view, table, col, src, cls)
        return rules.id_value(col, cls, bool(counts.get("id:float_text")), all_usable=not counts.get("id:missing"))
    if kind in {"date", "timestamp"}:
        value = _time(col, cls, kind, fs)
        n_bad = int(counts.get(f"bad:{canon}") or 0)
        if n_bad:
            where = rules.time_bad(col, value)
            examples = [r[0] for r in engine.rows(f"SELECT CAST({col} AS VARCHAR) FROM {view} WHERE {where} LIMIT 3")]
            null_words = {e.strip().lower() for e in examples} <= {*rules.NULL_MARKERS, ""}
            parsed = engine.rows(  # the other shapes of the column (date, date and time) a hint must keep
                f"SELECT length(trim(CAST({col} AS VARCHAR))) AS n, min(CAST({col} AS VARCHAR)) "
                f"FROM {view} WHERE {value} IS NOT NULL GROUP BY 1 ORDER BY 1 LIMIT 5"
            )
            hint = rules.time_hint(examples, fs.date_format, null_words, [r[1] for r in parsed])
            problem = (
                f"{path}: column {src!r} ({_named(table, canon)}) has {n_bad} value(s) that do not parse as a "
                f"{rules.SQL_TYPES[kind].lower()}{hint}; "
                f"e.g. {', '.join(clip(e, quote=True) for e in examples)}"
            )
            _bad_cells(
                bad_cells, problem, n_bad, where, f"column {src!r} does not parse as a {rules.SQL_TYPES[kind].lower()}"
            )
        return value
    if kind in {"float", "int"}:
        _count_numbers(engine, stats, counts, path, view, table, canon, col, src, cls, kind, bad_cells, fs)
        return rules.number_value(col, cls, kind, fs.decimal, fs.thousands)
    return f"CAST({col} AS VARCHAR)"


EMPTY_ROW = "empty row: no value in any column"


@dataclass
class BadCells:
    """A scoring input's cells that do not parse, as (condition, reason) pairs that reject their rows.
    A column with more such cells than ``limit`` (``predict.max_reject_share``) of the file's ``rows``
    is wrong as a whole (a date format, a shifted column): an error that says what to change."""

    limit: float
    rows: int
    found: list[tuple[str, str]] = field(default_factory=list)


def _bad_cells(cells: BadCells | None, problem: str, n_bad: int, where: str, reason: str) -> None:
    """Values that do not parse: an error (``cells`` None, or too many), or their rows rejected with ``reason``."""
    if cells is None:
        raise InputError(problem)
    if n_bad > cells.limit * cells.rows:
        why = (
            "predict.max_reject_share is 0: no row may be rejected"
            if cells.limit == 0
            else f"{n_bad} of {cells.rows} rows is more than predict.max_reject_share = {cells.limit:.1%}, so the "
            "column is read wrong, not the rows (a few such rows would be rejected and listed)"
        )
        raise InputError(f"{problem}; {why}")
    log.warning("%s: their rows are rejected (%s)", problem, reason)
    cells.found.append((where, reason))


def _near(name: str, classes) -> str:
    """' (did you mean 'Product_line'?)' when a column of the file is spelt almost like ``name``."""
    close = difflib.get_close_matches(name, [c for c in classes if c != "__types__"], n=1, cutoff=0.75)
    if not close:
        close = [c for c in classes if c.strip().lower() == name.strip().lower()][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _attributes(
    engine, cfg: Config, table, spec: TableSpec, fs: FileSpec, view, classes, columns, out, tag_rows, failing=None
):
    """The attribute columns of one file into ``out`` (categories) and ``columns`` (numbers, checked later;
    ``na_values`` are missing in both); a ``derived`` attribute is its expression (``failing``: see
    :func:`_derived`). With rule labels the
    customers' ``leaky`` columns are kept as text for the rules (a scoring input without one reads it as
    missing: no rule reading it holds). Returns the attribute names, in output order."""
    path = cfg.data_path(fs.path)
    leaky = spec.leaky if table == "customers" and cfg.labels.source == "rules" else []
    absent = [c for c in spec.personal if c not in classes]
    if absent and not tag_rows:  # a misspelt name protects nothing; a scoring input may leave them out
        raise InputError(
            f"{path}: column(s) {absent} listed in tables.{table}.personal are missing. Columns of the file: "
            f"{clip(', '.join(classes), 400)}"
        )
    for attr in [*spec.categorical, *spec.numeric, *leaky]:
        if attr in fs.derived:
            kind = "float" if attr in spec.numeric else "str"
            value = _derived(engine, table, path, view, attr, kind, fs, classes, failing)
            out[ident(attr)] = value if kind == "float" else rules.category_value(f"({value})", spec.na_values)
        elif attr not in classes and tag_rows and attr in leaky and attr not in [*spec.categorical, *spec.numeric]:
            out[ident(attr)] = "CAST(NULL AS VARCHAR)"  # a scoring input without it: no rule can give a tier
        elif attr not in classes and tag_rows and table == "customers" and _kept_out(cfg, attr):
            log.info("%s: attribute column %r is absent; features.exclude keeps it out of the model", path, attr)
            out[ident(attr)] = "CAST(NULL AS DOUBLE)" if attr in spec.numeric else "CAST(NULL AS VARCHAR)"
        elif attr not in classes:
            what = "leaky column (read by labels.rules)" if attr in leaky else "attribute column"
            raise InputError(
                f"{path}: {what} {attr!r} listed in tables.{table} is missing{_near(attr, classes)}. Columns of "
                f"the file: {clip(', '.join(c for c in classes if c != '__types__'), 400)}"
            )
        elif attr in spec.numeric:
            source = rules.number_source(ident(attr), classes[attr], spec.na_values, fs.decimal, fs.thousands)
            source = source if source == ident(attr) else f"({source})"
            columns.append((ident(attr), source, attr, "float", classes[attr]))
        else:
            out[ident(attr)] = rules.category_value(ident(attr), spec.na_values)
    return [*spec.categorical, *spec.numeric, *leaky]


def _kept_out(cfg: Config, attr: str) -> bool:
    """Whether ``features.exclude`` names the customers attribute ``attr`` (by its file name or its feature
    column): a scoring input may lack it."""
    return attr in cfg.features.exclude or f"cust_{slug(attr)}" in cfg.features.exclude


def _read_joined(engine, cfg: Config, table: str, spec: TableSpec, fs: FileSpec, view: str, text, stats, in_order):
    """View ``view`` over one file of ``table`` with the columns of its lookup tables (``joins``) joined by
    key, many-to-one; returns column -> class like ``engine.read``. A key that is not unique in its lookup
    file stops the run; keys without a match are counted, and those the lookup spells differently logged."""
    path = cfg.data_path(fs.path)
    if not spec.joins:
        own = _read_numbered(engine, fs, view, path, table, text)
        if table == "customers" and not in_order:
            _log_unread_columns(cfg, path, own)
        return own
    main = f"{view}__main"
    keys = {j.by for j in spec.joins.values()}
    classes = _read_numbered(engine, fs, main, path, table, text | keys)  # a key the file lacks reads nothing
    types = classes.pop("__types__", {})
    if table == "customers" and not in_order:
        _log_unread_columns(cfg, path, classes)
    derived_keys = sorted(k for k in keys if k in fs.derived)
    if derived_keys:  # a key cleaned by `derived` ('GTXPro' -> 'GTX Pro') joins by its cleaned value
        keyed = ", ".join(f"({_derived_sql(fs, k)}) AS {ident(_JOIN_KEY + k)}" for k in derived_keys)
        problem = f"{path}: derived join key(s) {derived_keys} do not evaluate on {engine.name}"
        _create_table(engine, f"{main}__keyed", f"SELECT *, {keyed} FROM {main}", problem)
        main = f"{main}__keyed"
    lookups = []
    for i, (name, join) in enumerate(spec.joins.items()):
        lookup = f"{view}__lookup{i}"
        on = _JOIN_KEY + join.by if join.by in fs.derived else join.by
        seen = classes | ({on: rules.TEXT} if on != join.by else {})  # a derived key exists, whatever the file has
        lk_classes, lk_types, forms = _read_lookup(
            engine, cfg, table, name, join, lookup, path, seen, text, stats, main, on
        )
        cols = [(c, join.prefix + c) for c in lk_classes if c != join.lookup_key]
        clash = sorted({n for _, n in cols} & set(classes))
        if clash:
            raise InputError(
                f"{cfg.data_path(join.path)}: column(s) {clash} of lookup table tables.{table}.joins.{name} are also "
                f"columns of {path} (or of an earlier lookup); set tables.{table}.joins.{name}.prefix to tell them "
                "apart"
            )
        classes |= {n: lk_classes[c] for c, n in cols}
        types |= {n: lk_types[c] for c, n in cols}
        lookups.append((lookup, on, forms[0], join.lookup_key, forms[1], cols))
    order = ""
    if in_order:  # a scoring input's rows keep their positions through the join
        engine.number_rows(f"{main}__rows", f"SELECT * FROM {main}")
        main, order = f"{main}__rows", "input_row"
    engine.create(view, rules.lookup_join(main, lookups, order))
    return classes | {"__types__": types}


_JOIN_KEY = "__join_key__"  # prefix of the column that holds a join key computed by `derived`


def _derived_sql(fs: FileSpec, name: str) -> str:
    """The expression of ``fs``'s derived column ``name`` over the file's columns (one with a window
    function: the column :func:`_read_numbered` made of it)."""
    expr = fs.derived[name]
    return ident(_WINDOWED + name) if _windowed(expr) else expr


def _read_lookup(
    engine, cfg: Config, table, name, join: JoinSpec, view, path, classes, text, stats, main: str, on: str
) -> tuple:
    """Read lookup ``name`` into ``view``; check its key (present on both sides, unique in the lookup) and
    count and log the rows of ``path`` (read as ``main``) whose key (column ``on``) has no match. Returns
    the lookup's column classes, its types, and the forms of the two key columns (``rules.key_text``)."""
    lk_path, where = cfg.data_path(join.path), f"tables.{table}.joins.{name}"
    if not lk_path.is_file():
        raise InputError(f"{where}: lookup file not found: {lk_path}")
    if on not in classes:
        raise InputError(
            f"{path}: join key column {join.by!r} ({where}.by) is missing; columns present: "
            f"{sorted(c for c in classes if not c.startswith(_JOIN_KEY))}"
        )
    own = {c.removeprefix(join.prefix) for c in text if c.startswith(join.prefix)} | {join.lookup_key}
    lk_classes = engine.read(
        view, lk_path, FileSpec(path=join.path, format=join.format, encoding=join.encoding), table, own
    )
    lk_types = lk_classes.pop("__types__", {})
    if join.lookup_key not in lk_classes:
        raise InputError(
            f"{lk_path}: key column {join.lookup_key!r} ({where}) is missing; columns present: {sorted(lk_classes)}"
        )
    forms = [
        _key_form(engine, main, on, classes[on]),
        _key_form(engine, view, join.lookup_key, lk_classes[join.lookup_key]),
    ]
    if rules.AS_WRITTEN in forms and forms != [rules.AS_WRITTEN] * 2:  # '101.0' beside 'n/a' still is 101
        forms = [rules.FLOAT_TEXT if f == rules.AS_WRITTEN else f for f in forms]
    keys = (main, on, forms[0], view, join.lookup_key, forms[1])
    dup = rules.duplicate_keys(*keys[3:])
    (n_dup,) = engine.rows(f"SELECT count(*) FROM ({dup})")[0]
    if n_dup:
        ex = ", ".join(f"{clip(k, quote=True)} ({n} rows)" for k, n in engine.rows(f"{dup} LIMIT 3"))
        raise InputError(
            f"{lk_path}: key column {join.lookup_key!r} ({where}) must be unique in the lookup table (one row per "
            f"key, joined many-to-one). Got {n_dup} key(s) on more than one row instead; e.g. {ex}"
        )
    rows, no_key, no_match = engine.rows(rules.join_counts(*keys))[0]
    stats_row = {"rows": int(rows), "missing_key": int(no_key), "no_match": int(no_match)}
    log.info("%s: %s joined on %r: %s", path, where, join.by, stats_row)
    if no_match:
        pairs = engine.rows(f"{rules.spelling_pairs(*keys)} LIMIT 5")
        spelt = spelt_otherwise(pairs, "values that differ only in spelling")
        unmatched = rules.unmatched_keys(*keys)
        ex = ", ".join(
            f"{clip(v, quote=True)} ({n} row{'' if n == 1 else 's'})"
            for v, n in engine.rows(f"SELECT value, n FROM ({unmatched}) AS u ORDER BY n DESC, value LIMIT 3")
        )
        log.warning(
            "%s: %d row(s) have a value in column %r that %s (%s) does not have (e.g. %s): their %s columns are "
            "missing%s",
            *(path, no_match, join.by, lk_path, where, ex, name, spelt),
        )
    for k, n in stats_row.items():
        stats.joins.setdefault(name, {}).setdefault(k, 0)
        stats.joins[name][k] += n
    return lk_classes, lk_types, (keys[2], keys[5])


def _key_form(engine, view: str, key: str, cls: str) -> str:
    """The form of join key column ``key`` of ``view``, of class ``cls`` (see ``rules.key_text``)."""
    if cls == rules.FLOAT:
        return rules.FLOAT_NUMBER
    if cls == rules.TEXT and engine.rows(rules.key_form(view, key))[0][0]:
        return rules.FLOAT_TEXT
    return rules.AS_WRITTEN


def spelt_otherwise(pairs, what: str) -> str:
    """``; what: 'GTX Pro' (2 rows) is spelt 'GTXPro' there; ...`` for the (value, other spelling, rows)
    of ``features.inputs.spelling_pairs``; '' when there are none."""
    shown = "; ".join(
        f"{clip(a, quote=True)} ({n} row{'' if n == 1 else 's'}) is spelt {clip(b, quote=True)} there"
        for a, b, n in pairs
    )
    return f"; {what}: {shown}" if shown else ""


def _count_bad_ids(engine, stats, counts, path, view, table, col, src, cls) -> None:
    """Ids that are missing-value markers or have spaces around them: counted and logged (not used)."""
    for why in (rules.MARKER_ID, rules.PADDED_ID):
        n = int(counts[f"id:{why}"] or 0)
        if n:
            stats.bad_ids[why] = stats.bad_ids.get(why, 0) + n
            ex = _examples(engine, f"SELECT {col} FROM {view} WHERE {rules.id_reason(col, cls)} = {rules.lit(why)}")
            log.warning("%s: column %r of %s: %d row(s): %s (not used); e.g. %s", path, src, table, n, why, ex)


def _grammar(fs: FileSpec) -> str:
    """How the file writes its numbers, for an error about one that is not such a number."""
    if fs.decimal == ",":
        return " with decimal ',' (a '.' only groups thousands, three digits a group: '1.234,56')"
    if fs.thousands:
        example = f"1{fs.thousands}234.56"
        return f" with thousands {fs.thousands!r} (three digits a group, a '.' before the decimals: {example!r})"
    return ""


# values like '12,500.00' or "1'250": a thousands mark the file's settings do not name
_GROUPED = re.compile(r"[+-]?[0-9]{1,3}([,' \u00a0\u202f][0-9]{3})+(\.[0-9]*)?")


def _grouping_mark(values: list) -> str | None:
    """The thousands mark the first of ``values`` written with one uses (',', "'", ' ' for any space)."""
    found = next((m for m in (_GROUPED.fullmatch(str(v).strip()) for v in values) if m), None)
    if found is None:
        return None
    mark = found.group(1)[0]
    return " " if mark in "\u00a0\u202f" else mark


_DECIMAL_COMMA = re.compile(r"[+-]?([0-9]{1,3}(\.[0-9]{3})+|[0-9]*),[0-9]+")


def _thousands_hint(fs: FileSpec, values: list) -> str:
    """With a decimal point and no thousands mark, values written with a decimal comma ('1,1', '4,857')
    or grouped by a thousands mark ('12,500.00') say which setting reads them."""
    if fs.decimal == "," or fs.thousands:
        return ""
    texts = [str(v).strip() for v in values]
    mark = _grouping_mark(values)
    comma = [t for t in texts if _DECIMAL_COMMA.fullmatch(t)]
    if comma and (mark is None or any(not _GROUPED.fullmatch(t) for t in comma)):
        return "; if ',' marks the decimals there ('1,5' for 1.5), set decimal: ',' for this file"
    if mark == "," and comma:
        return (
            "; if ',' groups thousands there, set thousands: ',' for this file, or if it marks the decimals, "
            "decimal: ','"
        )
    return f"; if {mark!r} groups thousands there, set thousands: {mark!r} for this file" if mark else ""


def _na_hint(table: str, canon: str, values: list) -> str:
    """Of an attribute column whose bad values include words without a digit ('未知', 'unknown'), how to
    read them as missing."""
    if canon in CANONICAL_COLUMNS[table] or canon in OPTIONAL_COLUMNS[table]:
        return ""  # na_values reads attribute columns only
    words = [str(v).strip() for v in values if not any(ch.isdigit() for ch in str(v))]
    return f"; if {clip(words[0], quote=True)} means unknown, list it under tables.{table}.na_values" if words else ""


def _count_numbers(engine, stats, counts, path, view, table, canon, col, src, cls, kind, bad_cells, fs) -> None:
    """Text that is no number stops the run (or rejects its row, see :class:`BadCells`); NaN, inf and -inf
    are read as missing, counted and logged."""
    checked = rules.number_checks(col, cls, kind, fs.decimal, fs.thousands)
    n_bad = int(counts.get(f"bad:{canon}") or 0)
    if n_bad:
        found = [r[0] for r in engine.rows(f"SELECT {col} FROM {view} WHERE {checked['bad']} LIMIT 50")]
        values = list(dict.fromkeys(found))[:3]  # three different ones
        ex = ", ".join(clip(v, quote=True) for v in values)
        problem = (
            f"{path}: column {src!r} ({_named(table, canon)}) has {n_bad} value(s) that are not numbers"
            f"{_grammar(fs)}; e.g. {ex}{_thousands_hint(fs, values)}{_na_hint(table, canon, values)}"
        )
        _bad_cells(bad_cells, problem, n_bad, checked["bad"], f"column {src!r} is not a number{_grammar(fs)}")
    n_inf = int(counts.get(f"not_finite:{canon}") or 0)
    if n_inf:
        stats.not_finite[src] = stats.not_finite.get(src, 0) + n_inf
        ex = _examples(engine, f"SELECT CAST({col} AS VARCHAR) FROM {view} WHERE {checked['not_finite']}")
        log.warning(
            "%s: column %r of %s: %d value(s) are NaN, inf or -inf, not finite numbers: read as missing; e.g. %s",
            path,
            src,
            table,
            n_inf,
            ex,
        )


def _time(col: str, cls: str, kind: str, fs: FileSpec) -> str:
    return rules.time_value(col, cls, kind, fs.date_format)


def register_table(
    con,
    cfg: Config,
    table: str,
    spec: TableSpec | None = None,
    drop_missing_ids: bool = True,
    tag_rows: bool = False,
    view: str | None = None,
) -> TableStats:
    """Create temp table ``view`` (default ``table``) with canonical columns from the configured file(s).

    ``con``: a DuckDB connection or an engine (:class:`DuckEngine`, ``spark.SparkEngine``).
    ``tag_rows=True`` (scoring input) drops nothing: it adds ``input_row``, the 1-based position in
    the input (files in config order), ``input_id``, the id as written, and ``pre_reject``, why the row
    cannot be used (a missing or unusable id, a date or number that does not parse, an exact duplicate
    of an earlier row, an ``exclude`` rule) or NULL, so every row can be accounted for.
    """
    engine = engine_of(con)
    engine.set_time_zone(cfg.data.time_zone)
    spec = spec or getattr(cfg.data.tables, table)
    name = view or table
    stats = TableStats(table=table)
    if spec.derive_from:
        _derive_customers(engine, spec, stats, name)
        if tag_rows:
            engine.number_rows(f"{name}__numbered", f"SELECT * FROM {name}")
            engine.create(
                name,
                f"SELECT *, CAST(customer_id AS VARCHAR) AS input_id, CAST(NULL AS VARCHAR) AS pre_reject "
                f"FROM {name}__numbered",
                materialize=True,
            )
        return stats
    selects = [
        _file_select(engine, cfg, table, spec, fs, stats, f"{name}__file{i}", tag_rows)
        for i, fs in enumerate(spec.files)
    ]
    if spec.restated_by and not tag_rows:  # which file each row comes from, later files numbered higher
        selects = [f"SELECT *, {i} AS {FILE_ORDER} FROM ({s})" for i, s in enumerate(selects)]
    union = "\nUNION ALL\n".join(f"({s})" for s in selects)
    if tag_rows:
        return _tag_rows(engine, table, name, spec, union, stats)
    return _clean_rows(engine, table, name, spec, union, stats, drop_missing_ids)


def _clean_rows(engine, table: str, name: str, spec: TableSpec, union: str, stats: TableStats, drop_missing_ids):
    """Table ``name`` from the files' ``union``: exact duplicates dropped (when configured), rows without
    an id dropped (``drop_missing_ids``), then each ``exclude`` rule's rows; every drop counted in ``stats``."""
    n_raw = sum(stats.files.values())
    # Big event logs stay views over the files (the engine scans them in the feature query); a table is
    # materialised only where rows must be compared or counted against rules, and for customers.
    # The source itself is kept only when rules pass over it more than once.
    several_passes = spec.drop_exact_duplicates or bool(spec.exclude) or bool(spec.restated_by)
    source = f"{name}__src"
    if spec.restated_by:
        union = _latest_files(engine, name, spec.restated_by, union, stats)
    engine.create(source, f"SELECT DISTINCT * FROM ({union})" if spec.drop_exact_duplicates else union, several_passes)
    if spec.drop_exact_duplicates:
        stats.duplicates_dropped = n_raw - stats.restated - engine.rows(f"SELECT count(*) FROM {source}")[0][0]
    if spec.drop_exact_duplicates or spec.restated_by:
        stats.missing_id = engine.rows(f"SELECT count(*) FROM {source} WHERE customer_id IS NULL")[0][0]
    else:
        stats.missing_id = stats.raw_missing_id
    where = "customer_id IS NOT NULL" if drop_missing_ids else "true"
    for rule, predicate in spec.exclude.items():
        cond = rules.rule_condition(predicate)
        counted = _rule_rows(engine, table, rule, f"SELECT count(*) FROM {source} WHERE {where} AND {cond}")
        stats.excluded[rule] = int(counted[0][0])
        where += f" AND NOT {cond}"
    engine.create(name, f"SELECT * FROM {source} WHERE {where}", several_passes or table == "customers")
    stats.rows = (
        n_raw
        - stats.restated
        - stats.duplicates_dropped
        - (stats.missing_id if drop_missing_ids else 0)
        - sum(stats.excluded.values())
    )
    return stats


FILE_ORDER = "file_order__"  # a row's file, in config order (``restated_by``)


def _latest_files(engine, name: str, keys: list[str], union: str, stats: TableStats) -> str:
    """The rows of ``union`` (files numbered in :data:`FILE_ORDER`) less those whose ``keys`` a later
    file also has: each key's rows come from the last file holding it; a row with a missing key stays.
    Materialised as ``<name>__files``; the rows dropped are counted in ``stats.restated``."""
    numbered = f"{name}__files"
    engine.create(numbered, union, materialize=True)
    cols = [c for c in engine.columns(numbered) if c != FILE_ORDER]
    on = ", ".join(ident(k) for k in keys)
    missing = " OR ".join(f"{ident(k)} IS NULL" for k in keys)
    latest = (
        f"SELECT {', '.join(ident(c) for c in cols)} FROM (SELECT *, max({FILE_ORDER}) OVER (PARTITION BY {on}) "
        f"AS latest__ FROM {numbered}) AS t WHERE {FILE_ORDER} = latest__ OR {missing}"
    )
    total = engine.rows(f"SELECT count(*) FROM {numbered}")[0][0]
    stats.restated = int(total - engine.rows(f"SELECT count(*) FROM ({latest}) AS k")[0][0])
    return latest


def _rule_rows(engine, table: str, rule: str, sql: str) -> list:
    """The rows of ``sql``, a query over an ``exclude`` rule; a rule the engine cannot run is an InputError."""
    try:
        return engine.rows(sql)
    except Exception as exc:  # noqa: BLE001 - the engine's error, or sqlglot's for Spark
        if not isinstance(exc, (*engine.errors, ValueError)):
            raise
        raise InputError(
            f"tables.{table}.exclude[{rule!r}] is not a valid SQL predicate on the canonical columns and the "
            f"attributes: {_first_line(exc)} (a column of the file that is neither is read only when listed under "
            f"tables.{table}.categorical or numeric)"
        ) from None


def _tag_rows(engine, table: str, name: str, spec: TableSpec, union: str, stats: TableStats) -> TableStats:
    """``register_table(tag_rows=True)``: every row kept, numbered and tagged with the input rule it breaks."""
    numbered = f"{name}__numbered"
    engine.number_rows(numbered, union)
    data_cols = [c for c in engine.columns(numbered) if c != "input_row"]
    for rule, predicate in spec.exclude.items():
        bind = f"SELECT * FROM {numbered} WHERE {rules.rule_condition(predicate)} LIMIT 0"  # scans nothing
        _rule_rows(engine, table, rule, bind)
    why = rules.row_reasons(table, data_cols, spec.drop_exact_duplicates, spec.exclude)
    kept = ", ".join(ident(c) for c in data_cols if c != "row_reject")
    engine.create(name, f"SELECT input_row, {kept}, {why} AS pre_reject FROM {numbered}", materialize=True)
    stats.rows = sum(stats.files.values())  # every row stays; the caller counts the tags
    return stats


def _derive_customers(engine, spec: TableSpec, stats: TableStats, name: str = "customers") -> TableStats:
    """Customers from event tables (``derive_from``): created at the first event, attributes from the
    first row of the first table."""
    attrs, tables = [*spec.categorical, *spec.numeric], spec.derive_from
    _create_table(
        engine,
        name,
        rules.derive_customers(attrs, tables),
        f"tables.customers.derive_from: {tables[0]} must carry the customer attributes {attrs} "
        f"(list them under tables.{tables[0]}.categorical)",
    )
    stats.rows = engine.rows(f"SELECT count(*) FROM {name}")[0][0]
    stats.files[f"(derived from {' and '.join(tables)})"] = stats.rows
    return stats


def scoring_spec(cfg: Config, source: str | None) -> TableSpec:
    """The customers table to score: the configured one, or (``source``: ``predict --input`` or
    ``predict.input``) its first file replaced by that file."""
    spec = cfg.data.tables.customers
    if source and spec.derive_from:
        raise InputError(
            f"tables.customers.derive_from is set: there is no customers file to replace with {source!r}; predict "
            "scores every customer of the event tables it names. To score prospects from a file, give customers "
            "a file (path) with their ids instead of derive_from"
        )
    if not source:
        return spec
    return spec.model_copy(update={"files": [spec.files[0].model_copy(update={"path": source})]})


def ids_are_positions(spec: TableSpec) -> bool:
    """Whether ``spec``'s ids are row positions (``derived: {customer_id: "row_number() OVER ()"}``): they
    name no customer outside their own file, so no tiers of another run can be compared with them."""
    return any(_windowed(fs.derived.get("customer_id", "")) for fs in spec.files if "customer_id" in fs.derived)


def _check_scored_columns(cfg: Config, path: Path, fs: FileSpec, classes: dict) -> None:
    """A scoring input (at ``path``, read as ``fs``, with columns ``classes``) that replaces the configured
    customers file and lacks an optional column that file has is an error: without ``created_at`` every
    tenure would be scored as missing."""
    configured = cfg.data.tables.customers.files[0]
    trained = cfg.data_path(configured.path)
    if trained.resolve() == path.resolve():
        return
    optional = [fs.columns.get(c, c) for c in OPTIONAL_COLUMNS["customers"] if c not in fs.derived]
    lacking = [c for c in optional if c not in classes and c in _column_names(trained, configured)]
    if lacking:
        raise InputError(
            f"{path}: column(s) {lacking} missing; the customers file {trained} has them and the model reads "
            f"features from them (each would be scored as missing). Its columns: {clip(', '.join(classes), 400)}"
        )


def _column_names(path: Path, fs: FileSpec) -> list[str]:
    """The column names of one file (a glob: of its files); [] for one DuckDB cannot read."""
    con = duckdb.connect()
    try:
        return [
            r[0]
            for r in con.execute(f"DESCRIBE SELECT * FROM {_reader(path, fs.format, [], fs.encoding, 1000)}").fetchall()
        ]
    except duckdb.Error:
        return []
    finally:
        con.close()


def register_all(
    con,
    cfg: Config,
    customers: TableSpec | None = None,
    with_labels: bool = True,
    drop_missing_ids: bool = True,
    tag_rows: bool = False,
    customers_view: str = "customers",
) -> dict[str, TableStats]:
    """Register every configured table; ``customers`` replaces the customers table (scoring input).

    ``con``: a DuckDB connection or an engine. With ``drop_missing_ids=False`` customer rows without an
    id stay, for the caller to reject; with ``tag_rows=True`` every customer row stays, numbered and
    tagged (see ``register_table``), as ``customers_view``.
    """
    engine = engine_of(con)
    stats: dict[str, TableStats] = {}
    cust = customers or cfg.data.tables.customers
    events = ("transactions", "interactions")
    order = (*events, "customers") if cust.derive_from else ("customers", *events)
    for name in (*order, "stages", "labels", "outcomes"):
        spec = cust if name == "customers" else getattr(cfg.data.tables, name)
        if spec is None or (name == "labels" and not with_labels):
            continue
        if name == "customers":
            stats[name] = register_table(
                engine, cfg, name, spec, drop_missing_ids, tag_rows=tag_rows, view=customers_view
            )
        else:
            stats[name] = register_table(engine, cfg, name, spec)
    return stats
