"""Read the configured input files into DuckDB under canonical table and column names.

Each logical table (customers, transactions, interactions, labels) becomes a DuckDB temp table
whose columns have the canonical names of ``config.CANONICAL_COLUMNS`` plus any declared
attribute columns. Problems a user can fix (a missing file, a missing mapped column, dates that
do not parse) raise :class:`InputError` naming the file, the column and how many rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from leadtier.features.queries import quote_ident
from leadtier.models.text import clip
from leadtier.pipelines.config import CANONICAL_COLUMNS, OPTIONAL_COLUMNS, Config, FileSpec, TableSpec


class InputError(ValueError):
    """An input file cannot be used as configured."""


@dataclass
class TableStats:
    """What happened to the rows of one table on the way in."""

    table: str
    files: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    missing_id: int = 0
    rows: int = 0
    # files' rows without an id, counted on the raw column (None: only countable after the casts)
    raw_missing_id: int | None = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "rows_read": sum(self.files.values()),
            "files": self.files,
            "duplicates_dropped": self.duplicates_dropped,
            "excluded": self.excluded,
            "missing_id": self.missing_id,
            "rows": self.rows,
        }


def _reader(path: Path, fmt: str, text_columns: list[str] = (), encoding: str = "utf-8") -> str:
    """DuckDB table function for one file; ``text_columns`` of a CSV are read as text, never
    guessed as numbers (an id '007' or '1.5' must stay as written)."""
    fmt = _format(path, fmt)
    lit = "'" + str(path).replace("'", "''") + "'"
    if fmt == "parquet":
        return f"read_parquet({lit})"
    options = "" if encoding == "utf-8" else f", encoding = '{encoding}'"
    if text_columns:
        pairs = ", ".join("'" + c.replace("'", "''") + "': 'VARCHAR'" for c in text_columns)
        options += f", types = {{{pairs}}}"
    return f"read_csv({lit}, header = true, sample_size = -1{options})"


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
        hint = " Set encoding: latin-1 (or utf-16) for this file in the config."
    return InputError(f"{path}: cannot be read as {table} data: {reason[:400]}.{hint}")


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def _ragged_line(path: Path, encoding: str) -> str | None:
    """Where a CSV's rows stop matching its header's field count (DuckDB then reads one column)."""
    import csv

    codec = {"latin-1": "latin-1", "utf-16": "utf-16"}.get(encoding, "utf-8-sig")
    with path.open(newline="", encoding=codec, errors="replace") as fh:
        try:  # the delimiter, from the header line
            dialect = csv.Sniffer().sniff(fh.readline(), delimiters=",;\t|")
        except csv.Error:
            return None
        fh.seek(0)
        rows = csv.reader(fh, dialect)
        header = next(rows, [])
        for line, row in enumerate(rows, start=2):
            if row and len(row) != len(header):
                return f"line {line} has {len(row)} fields, the header has {len(header)}"
    return None


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {r[0]: r[1] for r in rows}


def _examples(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    vals = [clip(r[0], quote=True) for r in con.execute(sql + " LIMIT 3").fetchall()]
    return ", ".join(vals)


def _cast(
    con: duckdb.DuckDBPyConnection, table: str, fs: FileSpec, path: Path, src: str, kind: str, dtype: str, rel: str
) -> str:
    """SQL expression turning source column ``src`` into the canonical kind; checks it parses."""
    col = quote_ident(src)
    if kind == "id":
        if dtype in {"FLOAT", "DOUBLE"} or dtype.startswith("DECIMAL"):
            # 12346.0 -> '12346' (ids stored as floats); anything not a whole number stays as written
            whole = f"{col} = floor({col}) AND abs({col}) < 9e18"
            return f"CASE WHEN {whole} THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        # text ids stay as written ('007', '1.5'), except a float rendering of a whole number
        # ('12346.0', as spreadsheets and float columns export them) which names customer '12346'
        # (the test for '.' or ' ' first skips the regular expression for the usual clean id)
        text = f"CAST({col} AS VARCHAR)"
        fix = f"regexp_replace(trim({text}), '^(-?[0-9]+)[.]0+$', '\\1')"
        return f"CASE WHEN contains({text}, '.') OR contains({text}, ' ') THEN {fix} ELSE {text} END"
    if kind in {"date", "timestamp"}:
        target = "DATE" if kind == "date" else "TIMESTAMP"
        if dtype.startswith(("TIMESTAMP", "DATE")):
            return f"CAST({col} AS {target})"
        text = f"CAST({col} AS VARCHAR)"
        parsed = (
            f"CAST(try_strptime({text}, '{fs.date_format}') AS {target})"
            if fs.date_format
            else f"TRY_CAST({text} AS {target})"
        )
        bad_where = f"{col} IS NOT NULL AND trim({text}) <> '' AND {parsed} IS NULL"
        n_bad = con.execute(f"SELECT count(*) FROM {rel} WHERE {bad_where}").fetchall()[0][0]
        if n_bad:
            ex = _examples(con, f"SELECT {text} FROM {rel} WHERE {bad_where}")
            hint = f" with format {fs.date_format!r}" if fs.date_format else " (set date_format in the config)"
            null_words = {"'null'", "'nan'", "'none'", "'na'", "'n/a'", "'nat'"}
            if set(ex.lower().split(", ")) <= null_words:
                hint = " (leave a missing date empty instead)"
            raise InputError(
                f"{path}: column {src!r} ({table}.{src}) has {n_bad} value(s) that do not parse as a "
                f"{target.lower()}{hint}; e.g. {ex}"
            )
        return parsed
    if kind in {"float", "int"}:
        target = "DOUBLE" if kind == "float" else "BIGINT"
        if dtype in {"VARCHAR"}:  # blank text (spaces only, as Spark's trim) is missing, as an empty CSV cell is
            value = f"CASE WHEN trim({col}, ' ') = '' THEN NULL ELSE {col} END"
            bad_where = f"{value} IS NOT NULL AND TRY_CAST({value} AS {target}) IS NULL"
            n_bad = con.execute(f"SELECT count(*) FROM {rel} WHERE {bad_where}").fetchall()[0][0]
            if n_bad:
                ex = _examples(con, f"SELECT {col} FROM {rel} WHERE {bad_where}")
                raise InputError(
                    f"{path}: column {src!r} ({table}.{src}) has {n_bad} value(s) that are not numbers; e.g. {ex}"
                )
            return f"TRY_CAST({value} AS {target})"
        return f"CAST({col} AS {target})"
    return f"CAST({col} AS VARCHAR)"


_NULL_TYPES = {
    "id": "VARCHAR",
    "str": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
}


def _derived(con: duckdb.DuckDBPyConnection, table: str, path: Path, rel: str, canon: str, kind: str, expr: str) -> str:
    target = _NULL_TYPES[kind]
    try:
        con.execute(f"SELECT CAST(({expr}) AS {target}) FROM {rel} LIMIT 1").fetchall()
    except duckdb.Error as exc:
        raise InputError(
            f"{path}: derived column {table}.{canon} = {expr!r} does not evaluate: {str(exc).splitlines()[0]}"
        ) from None
    return f"CAST(({expr}) AS {target}) AS {canon}"


def _file_select(
    con: duckdb.DuckDBPyConnection, cfg: Config, table: str, spec: TableSpec, fs: FileSpec, stats: TableStats
) -> str:
    path = cfg.data_path(fs.path)
    if not path.is_file():
        raise InputError(f"{table}: input file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); {table} data needs at least a header row")
    rel = _reader(path, fs.format, encoding=fs.encoding)
    try:
        cols = _columns(con, rel)
    except duckdb.Error as exc:
        raise _unreadable(path, table, exc) from None
    if len(cols) == 1 and rel.startswith("read_csv") and any(d in next(iter(cols)) for d in ",;\t|"):
        where = _ragged_line(path, fs.encoding)  # None: a genuine one-column file (e.g. a quoted comma)
        if where:
            raise InputError(f"{path}: cannot split the rows into columns: {where}")
    id_col = fs.columns.get("customer_id", "customer_id")
    if id_col in cols and cols[id_col] != "VARCHAR" and rel.startswith("read_csv"):
        rel = _reader(path, fs.format, [id_col], fs.encoding)
        cols = _columns(con, rel)
    # rows, and rows without an id (a cast id is NULL exactly when the raw value is; Parquet answers
    # both from its metadata)
    raw_id = id_col in cols and "customer_id" not in fs.derived
    n, n_missing = con.execute(
        f"SELECT count(*), {f'count(*) - count({quote_ident(id_col)})' if raw_id else 'NULL'} FROM {rel}"
    ).fetchall()[0]
    stats.files[str(path)] = n
    known = n_missing is not None and stats.raw_missing_id is not None
    stats.raw_missing_id = stats.raw_missing_id + n_missing if known else None
    wanted: list[tuple[str, str, bool]] = [(c, k, True) for c, k in CANONICAL_COLUMNS[table].items()]
    wanted += [(c, k, False) for c, k in OPTIONAL_COLUMNS[table].items()]
    unknown = sorted(set(fs.columns) - {c for c, _, _ in wanted})
    if unknown:
        allowed = [c for c, _, _ in wanted]
        raise InputError(f"{table}: columns mapping names unknown canonical column(s) {unknown}; allowed: {allowed}")
    exprs = []
    for canon, kind, required in wanted:
        if canon in fs.derived:
            exprs.append(_derived(con, table, path, rel, canon, kind, fs.derived[canon]))
            continue
        src = fs.columns.get(canon, canon)
        if src not in cols:
            if required:
                ragged = _ragged_line(path, fs.encoding) if rel.startswith("read_csv") else None
                raise InputError(
                    f"{path}: required column {src!r} (mapped to {table}.{canon}) is missing; "
                    f"columns present: {sorted(cols)}" + (f" (and {ragged})" if ragged else "")
                )
            exprs.append(f"CAST(NULL AS {_NULL_TYPES[kind]}) AS {canon}")
            continue
        exprs.append(f"{_cast(con, table, fs, path, src, kind, cols[src], rel)} AS {canon}")
    na = ", ".join("'" + v.replace("'", "''") + "'" for v in spec.na_values)
    for attr in [*spec.categorical, *spec.numeric]:
        if attr not in cols:
            raise InputError(f"{path}: attribute column {attr!r} listed in tables.{table} is missing")
        col = quote_ident(attr)
        if attr in spec.categorical:
            text = f"trim(CAST({col} AS VARCHAR))"
            exprs.append(
                f"CASE WHEN {text} IN ({na}) OR {text} = '' THEN NULL ELSE {text} END AS {col}"
                if na
                else f"NULLIF({text}, '') AS {col}"
            )
        else:
            exprs.append(_cast(con, table, fs, path, attr, "float", cols[attr], rel) + f" AS {col}")
    return f"SELECT {', '.join(exprs)} FROM {rel}"


def register_table(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    table: str,
    spec: TableSpec | None = None,
    drop_missing_ids: bool = True,
    tag_rows: bool = False,
) -> TableStats:
    """Create temp table ``table`` with canonical columns from the configured file(s).

    ``tag_rows=True`` (scoring input) drops nothing: it adds ``input_row``, the 1-based position in
    the input (files in config order), and ``pre_reject``, why the row would have been dropped (an
    exact duplicate of an earlier row, an ``exclude`` rule) or NULL, so every row can be accounted for.
    """
    spec = spec or getattr(cfg.data.tables, table)
    stats = TableStats(table=table)
    if spec.derive_from:
        _derive_customers(con, spec, stats)
        if tag_rows:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT row_number() OVER () AS input_row, *, "
                f"CAST(NULL AS VARCHAR) AS pre_reject FROM {table}"
            )
        return stats
    selects = [_file_select(con, cfg, table, spec, fs, stats) for fs in spec.files]
    union = "\nUNION ALL BY NAME\n".join(f"({s})" for s in selects)
    n_raw = sum(stats.files.values())
    if tag_rows:
        return _tag_rows(con, table, spec, union, stats)
    # Big event logs stay views over the files (DuckDB scans them in the feature query); a table is
    # materialised only where rows must be compared or counted against rules, and for customers.
    # The source itself is kept only when rules pass over it more than once.
    several_passes = spec.drop_exact_duplicates or bool(spec.exclude)
    kind = "TABLE" if several_passes or table == "customers" else "VIEW"
    source = f"{table}__src"
    con.execute(
        f"CREATE OR REPLACE TEMP {'TABLE' if several_passes else 'VIEW'} {source} AS "
        + (f"SELECT DISTINCT * FROM ({union})" if spec.drop_exact_duplicates else union)
    )
    if spec.drop_exact_duplicates:
        stats.duplicates_dropped = n_raw - con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
    if spec.drop_exact_duplicates or stats.raw_missing_id is None:
        stats.missing_id = con.execute(f"SELECT count(*) FROM {source} WHERE customer_id IS NULL").fetchall()[0][0]
    else:
        stats.missing_id = stats.raw_missing_id
    where = "customer_id IS NOT NULL" if drop_missing_ids else "true"
    for rule, predicate in spec.exclude.items():
        cond = f"coalesce(({predicate}), false)"
        try:
            n = con.execute(f"SELECT count(*) FROM {source} WHERE {where} AND {cond}").fetchall()[0][0]
        except duckdb.Error as exc:
            raise InputError(
                f"tables.{table}.exclude[{rule!r}] is not a valid SQL predicate on the canonical columns: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        stats.excluded[rule] = int(n)
        where += f" AND NOT {cond}"
    con.execute(f"CREATE OR REPLACE TEMP {kind} {table} AS SELECT * FROM {source} WHERE {where}")
    stats.rows = (
        n_raw - stats.duplicates_dropped - (stats.missing_id if drop_missing_ids else 0) - sum(stats.excluded.values())
    )
    return stats


def _tag_rows(con: duckdb.DuckDBPyConnection, table: str, spec: TableSpec, union: str, stats: TableStats) -> TableStats:
    """``register_table(tag_rows=True)``: every row kept, numbered and tagged with the input rule it breaks."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table}__numbered AS SELECT row_number() OVER () AS input_row, * FROM ({union})"
    )
    data_cols = [r[0] for r in con.execute(f"DESCRIBE {table}__numbered").fetchall() if r[0] != "input_row"]
    reasons: list[tuple[str, str]] = []
    if spec.drop_exact_duplicates:
        same = ", ".join(quote_ident(c) for c in data_cols)
        copy = f"row_number() OVER (PARTITION BY {same} ORDER BY input_row)"
        reasons.append((f"{copy} > 1", f"exact duplicate row (tables.{table}.drop_exact_duplicates)"))
    for rule, predicate in spec.exclude.items():
        cond = f"coalesce(({predicate}), false)"
        try:
            con.execute(f"SELECT * FROM {table}__numbered WHERE {cond} LIMIT 0").fetchall()  # binds it, scans nothing
        except duckdb.Error as exc:
            raise InputError(
                f"tables.{table}.exclude[{rule!r}] is not a valid SQL predicate on the canonical columns: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        reasons.append((cond, f"excluded by tables.{table}.exclude[{rule!r}]"))
    whens = " ".join(f"WHEN {cond} THEN '{text.replace(chr(39), chr(39) * 2)}'" for cond, text in reasons)
    why = f"CASE {whens} END" if reasons else "NULL"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, CAST({why} AS VARCHAR) AS pre_reject FROM {table}__numbered"
    )
    con.execute(f"DROP TABLE {table}__numbered")
    stats.rows = sum(stats.files.values())  # every row stays; the caller counts the tags
    return stats


def _derive_customers(con: duckdb.DuckDBPyConnection, spec: TableSpec, stats: TableStats) -> TableStats:
    """Customers from the transaction log: created at the first transaction, attributes from it."""
    attrs = "".join(f", arg_min({quote_ident(a)}, ts) AS {quote_ident(a)}" for a in [*spec.categorical, *spec.numeric])
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE customers AS SELECT customer_id, CAST(min(ts) AS DATE) AS created_at"
            f"{attrs} FROM transactions GROUP BY customer_id ORDER BY customer_id"
        )
    except duckdb.Error as exc:
        raise InputError(
            "tables.customers.derive_from: transactions must carry the customer attributes "
            f"{[*spec.categorical, *spec.numeric]} (list them under tables.transactions.categorical): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    stats.rows = con.execute("SELECT count(*) FROM customers").fetchall()[0][0]
    stats.files["(derived from transactions)"] = stats.rows
    return stats


def register_all(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    customers: TableSpec | None = None,
    with_labels: bool = True,
    drop_missing_ids: bool = True,
    tag_rows: bool = False,
) -> dict[str, TableStats]:
    """Register every configured table; ``customers`` replaces the customers table (scoring input).

    With ``drop_missing_ids=False`` customer rows without an id stay, for the caller to reject; with
    ``tag_rows=True`` every customer row stays, numbered and tagged (see ``register_table``).
    """
    stats: dict[str, TableStats] = {}
    cust = customers or cfg.data.tables.customers
    order = ("transactions", "customers") if cust.derive_from else ("customers", "transactions")
    for name in (*order, "interactions", "labels"):
        spec = cust if name == "customers" else getattr(cfg.data.tables, name)
        if spec is None or (name == "labels" and not with_labels):
            continue
        if name == "customers":
            stats[name] = register_table(con, cfg, name, spec, drop_missing_ids, tag_rows=tag_rows)
        else:
            stats[name] = register_table(con, cfg, name, spec)
    return stats
