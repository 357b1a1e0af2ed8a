"""The input rules as SQL: one definition that DuckDB runs as written and Spark runs transpiled.

How a source column becomes a canonical column (ids, numbers, dates and times, categories), which
values are bad and why, and the table rules (exact duplicates, ``exclude``): pure string work in
DuckDB's dialect. ``pipelines/sources.py`` runs it on either engine; ``pipelines/spark.py`` only
reads the files and transpiles the SQL (sqlglot), as for the feature SQL.

A source column is described by its *class*, whatever the engine calls its type: ``text``,
``float`` (also decimals), ``int``, ``temporal`` (date or timestamp, with or without a zone),
``bool`` or ``other``. CSV ids, dates and categorical attributes are always read as text, so
no engine guesses them ('007' stays '007', '05/02/2026' is not silently a date).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence

TEXT, FLOAT, INT, TEMPORAL, BOOL, OTHER = "text", "float", "int", "temporal", "bool", "other"
SQL_TYPES = {
    "id": "VARCHAR",
    "str": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
}

# ids written as these words (any case, spaces around them) mean "no id", as an empty cell does
NULL_MARKERS = ("nan", "null", "none", "n/a", "na", "nat", "#n/a", "<na>")
MISSING_ID = "missing customer_id"
MARKER_ID = "missing customer_id (written as a missing-value marker such as NaN, null or N/A)"
PADDED_ID = "customer_id has spaces before or after it"
# a text id column every value of which is a number written with a decimal point ('105.0', '1.5'):
# a float column (as pandas writes an integer column with gaps), whose whole numbers name integer ids
_FLOAT_TEXT = "^-?[0-9]+[.][0-9]+$"
_WHOLE_FLOAT_TEXT = "^-?[0-9]+[.]0+$"


def lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def not_finite(expr: str) -> str:
    """NaN, inf or -inf (NULL for NULL) for a number expression, on both engines."""
    return f"(isnan(CAST({expr} AS DOUBLE)) OR abs(CAST({expr} AS DOUBLE)) = CAST('Infinity' AS DOUBLE))"


# --------------------------------------------------------------------------- ids


_LONGEST_MARKER = max(len(m) for m in NULL_MARKERS)


def id_reason(col: str, cls: str) -> str:
    """Why the id in ``col`` is no id (NULL: it is one). Most ids are settled without ``trim`` (which
    removes spaces, ASCII and Unicode): longer than any missing-value marker, with a first and last
    character that are ASCII but not a space."""
    if cls == TEXT:
        plain = (
            f"length({col}) > {_LONGEST_MARKER} AND {col} NOT LIKE ' %' AND {col} NOT LIKE '% ' "
            f"AND ascii({col}) < 128 AND ascii(right({col}, 1)) < 128"
        )
        return (
            f"CASE WHEN {plain} THEN NULL WHEN {col} IS NULL OR trim({col}) = '' THEN {lit(MISSING_ID)} "
            f"WHEN lower(trim({col})) IN ({', '.join(lit(m) for m in NULL_MARKERS)}) THEN {lit(MARKER_ID)} "
            f"WHEN {col} <> trim({col}) THEN {lit(PADDED_ID)} END"
        )
    if cls == FLOAT:
        return f"CASE WHEN {col} IS NULL THEN {lit(MISSING_ID)} WHEN {not_finite(col)} THEN {lit(MARKER_ID)} END"
    return f"CASE WHEN {col} IS NULL THEN {lit(MISSING_ID)} END"


def float_text_check(col: str) -> str:
    """Aggregate: whether every id of a text column is a number with a decimal point (see ``_FLOAT_TEXT``)."""
    usable = f"{id_reason(col, TEXT)} IS NULL"
    return f"coalesce(bool_and(regexp_matches({col}, '{_FLOAT_TEXT}')) FILTER (WHERE {usable}), false)"


def float_text_refuted(col: str) -> str:
    """Aggregate: whether some usable id of a text column is not a number with a decimal point; over a
    few rows it settles :func:`float_text_check` (false) without reading the others."""
    usable = f"{id_reason(col, TEXT)} IS NULL"
    return f"coalesce(bool_or(NOT regexp_matches({col}, '{_FLOAT_TEXT}')) FILTER (WHERE {usable}), false)"


def id_value(col: str, cls: str, float_text: bool = False, all_usable: bool = False) -> str:
    """The canonical id: text exactly as written (never trimmed, never merged with another spelling);
    a whole number of a float column as an integer ('12346.0' -> '12346'), any other number as written;
    NULL when :func:`id_reason` gives a reason (``all_usable``: the rows were counted and none has one, so
    the reason is not looked for again on every read)."""
    if cls == TEXT:
        value = (
            f"CASE WHEN regexp_matches({col}, '{_WHOLE_FLOAT_TEXT}') THEN split_part({col}, '.', 1) ELSE {col} END"
            if float_text
            else col
        )
        return value if all_usable else f"CASE WHEN {id_reason(col, cls)} IS NULL THEN {value} END"
    if cls == FLOAT:
        whole = f"{col} = floor({col}) AND abs({col}) < 9e18"
        return (
            f"CASE WHEN {col} IS NULL OR {not_finite(col)} THEN NULL "
            f"WHEN {whole} THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END"
        )
    return f"CAST({col} AS VARCHAR)"


def id_as_written(col: str, cls: str) -> str:
    """The id as the file has it, for the rejects file (numbers as the engines agree to write them)."""
    if cls == TEXT:
        return col
    if cls == FLOAT:
        return (
            f"CASE WHEN isnan(CAST({col} AS DOUBLE)) THEN 'NaN' WHEN {not_finite(col)} AND {col} > 0 THEN 'Infinity' "
            f"WHEN {not_finite(col)} THEN '-Infinity' ELSE {id_value(col, cls)} END"
        )
    return f"CAST({col} AS VARCHAR)"


# --------------------------------------------------------------------------- numbers


# a number written with a decimal comma: digits, optionally grouped by thousands ('.', a space, a no-break
# or a narrow no-break space, three digits a group), then ',' and the decimals, then an exponent. A '.'
# that groups no three digits ('12.5', '1,234.56') is no such number: an error, never a guess.
_GROUP_MARKS = ". \u00a0\u202f"
_SPACES = " \u00a0\u202f"  # thousands ' ': a space, a no-break or a narrow no-break space
# \z, not $: Java's $ (Spark) also matches before a final line break
_NUMBER = "^[+-]?([0-9]{{1,3}}([{marks}][0-9]{{3}})+|[0-9]*)({point}[0-9]*)?([eE][+-]?[0-9]+)?\\z"
_COMMA_NUMBER = _NUMBER.format(marks=_GROUP_MARKS, point=",")
_NOT_FINITE_WORD = "^[+-]?(nan|inf|infinity)\\z"


def number_grammar(decimal: str = ".", thousands: str = "") -> tuple[str, str] | None:
    """(pattern, thousands marks) of a number written as text with the ``decimal`` mark and, with a decimal
    point, the ``thousands`` mark ('1,234.56', "1'234.56", '1 234.56'); None: a plain number, the engine's
    own cast reads it."""
    if decimal == ",":
        return _COMMA_NUMBER, _GROUP_MARKS
    if not thousands:
        return None
    marks = _SPACES if thousands == " " else thousands
    return _NUMBER.format(marks=marks, point="\\."), marks


def number_text(col: str, decimal: str = ".", thousands: str = "") -> str:
    """Text as a number's source: blank (spaces only) is missing, as an empty CSV cell is. With a decimal
    comma ('1.234,56') or a thousands mark ('1,234.56') the thousands separators go and the decimal mark
    becomes a point; text that is not such a number (see :func:`number_grammar`) is NULL, and
    :func:`number_checks` counts it as bad."""
    grammar = number_grammar(decimal, thousands)
    if grammar is None:
        return f"CASE WHEN trim({col}) = '' THEN NULL ELSE {col} END"
    pattern, marks = grammar
    text = f"trim({col})"
    plain = text
    for mark in marks:
        plain = f"replace({plain}, {lit(mark)}, '')"
    if decimal == ",":
        plain = f"replace({plain}, ',', '.')"
    return (
        f"CASE WHEN {text} = '' THEN NULL "
        f"WHEN regexp_matches({text}, {lit(pattern)}) THEN {plain} "
        f"WHEN regexp_matches(lower({text}), {lit(_NOT_FINITE_WORD)}) THEN {text} END"
    )


def number_checks(col: str, cls: str, kind: str, decimal: str = ".", thousands: str = "") -> dict[str, str]:
    """Conditions on the source rows: ``bad`` (text that is no number: an error) and ``not_finite``
    (NaN, inf, -inf: read as missing and counted); ``decimal``, ``thousands``: the marks of the text."""
    target = SQL_TYPES[kind]
    if cls == TEXT:
        value = number_text(col, decimal, thousands)
        as_double = f"TRY_CAST({value} AS DOUBLE)"
        return {
            "bad": f"coalesce(trim({col}) <> '', false) AND ({value} IS NULL OR "
            f"(TRY_CAST({value} AS {target}) IS NULL AND {as_double} IS NULL))",
            "not_finite": f"coalesce({not_finite(as_double)}, false)",
        }
    if cls == FLOAT:
        return {"not_finite": f"coalesce({not_finite(col)}, false)"}
    return {}


def number_value(col: str, cls: str, kind: str, decimal: str = ".", thousands: str = "") -> str:
    """The canonical number: NaN, inf and -inf are missing (never an infinite feature)."""
    target = SQL_TYPES[kind]
    if cls == TEXT:
        value = number_text(col, decimal, thousands)
        return (
            f"CASE WHEN {not_finite(f'TRY_CAST({value} AS DOUBLE)')} THEN NULL ELSE TRY_CAST({value} AS {target}) END"
        )
    if cls == FLOAT:
        return f"CASE WHEN {not_finite(col)} THEN NULL ELSE CAST({col} AS {target}) END"
    return f"CAST({col} AS {target})"


# --------------------------------------------------------------------------- dates and times


def time_value(col: str, cls: str, kind: str, date_format: str | Sequence[str] | None) -> str:
    """The canonical date or timestamp. A value with a zone or an offset is an instant, written as the
    wall-clock time of the session time zone (``data.time_zone``, UTC unless configured); text without
    ``date_format`` must be ISO 8601; with a list of formats, each cell is read by the first that fits."""
    target = SQL_TYPES[kind]
    if cls == TEMPORAL:
        return f"CAST({col} AS {target})"
    text = col if cls == TEXT else f"CAST({col} AS VARCHAR)"
    if date_format:
        formats = [date_format] if isinstance(date_format, str) else list(date_format)
        tries = [f"try_strptime({text}, {lit(f)})" for f in formats]
        value = tries[0] if len(tries) == 1 else f"coalesce({', '.join(tries)})"
        return f"CAST({value} AS {target})"
    return f"CAST(TRY_CAST({text} AS TIMESTAMPTZ) AS {target})"


_LOCAL_OFFSET = "[0-9]:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)? ?[+-][0-9]{2}(:?[0-9]{2})?$"


def local_offset(col: str) -> str:
    """A text time of day with a UTC offset other than +00:00 ('2026-03-01T09:15:00+08:00', '... +0800',
    '... +08')."""
    return f"regexp_matches({col}, '{_LOCAL_OFFSET}') AND NOT regexp_matches({col}, '[+-]00(:?00)?$')"


def time_bad(col: str, value: str) -> str:
    """A date or time ``col`` (not of the temporal class) that is not blank but does not parse."""
    return f"{col} IS NOT NULL AND trim(CAST({col} AS VARCHAR)) <> '' AND {value} IS NULL"


_DAY_MONTH = re.compile(r"^\s*(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})\b")
_TIME_OF_DAY = re.compile(r"^([ T])\d{1,2}:\d{2}(:\d{2})?\s*$")


def day_month_readings(example: str) -> list[tuple[str, dt.date]]:
    """The (date_format, date) readings of a text like '05/02/2026' (or '05.02.2026 07:13') as day/month
    and as month/day; the format covers a time of day after the date."""
    m = _DAY_MONTH.match(example)
    if not m:
        return []
    a, sep, b, year = m.groups()
    y = "%Y" if len(year) == 4 else "%y"
    clock = _TIME_OF_DAY.match(example[m.end() :])
    time = f"{clock.group(1)}%H:%M{':%S' if clock.group(2) else ''}" if clock else ""
    out = []
    for fmt, (day, month) in ((f"%d{sep}%m{sep}{y}{time}", (a, b)), (f"%m{sep}%d{sep}{y}{time}", (b, a))):
        try:
            out.append((fmt, dt.date(dt.datetime.strptime(year, y).year, int(month), int(day))))
        except ValueError:
            continue
    return out


_ISO_SHAPES = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"), "%Y-%m-%dT%H:%M:%S"),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$"), "%Y-%m-%d %H:%M"),
)


def iso_format(value: str | None) -> str | None:
    """The date_format of an ISO 8601 text such as '2024-03-01' or '2024-03-01 10:00:00'; None for any
    other text (fractions of a second and offsets have no single format to suggest)."""
    text = (value or "").strip()
    return next((fmt for shape, fmt in _ISO_SHAPES if shape.match(text)), None)


def time_hint(
    examples: Sequence[str], date_format: str | Sequence[str] | None, null_words: bool, parsed: Sequence[str] = ()
) -> str:
    """What to do about dates that do not parse, shown after the examples. ``parsed``: values of the same
    column that do parse (ISO 8601): one format alone would lose them, so the hint names a list of the
    formats of both."""
    if isinstance(date_format, str):
        return f" with format {date_format!r}"
    if date_format:
        return f" with any of the formats {list(date_format)!r}"
    if null_words:
        return " (leave a missing date empty instead)"
    for ex in examples:
        readings = day_month_readings(ex)
        ex = ex.strip()[:40]
        if len(readings) == 2:
            (f1, d1), (f2, d2) = readings
            return (
                f": day and month are ambiguous, {ex!r} reads as {d1} (date_format: {f1!r}) or as {d2} "
                f"(date_format: {f2!r}); {_set_format(f1, parsed)}"
            )
        if readings:
            (f1, d1), *_ = readings
            return f": {ex!r} reads as {d1} with date_format: {f1!r}; {_set_format(f1, parsed)}"
    return " (set date_format in the config)"


def _set_format(fmt: str, parsed: Sequence[str]) -> str:
    """'set date_format ...' for the format ``fmt`` of the values that do not parse; with ``parsed`` (values
    that do), a list of their formats and ``fmt``, as ``fmt`` alone would make those fail."""
    if not parsed:
        return "set date_format for this file in the config"
    shown = parsed[0].strip()[:40]
    kept = list(dict.fromkeys(iso_format(p) for p in parsed))
    if None in kept:
        return (
            f"other values such as {shown!r} parse as they are: give date_format a list of their formats and "
            f"{fmt!r} (each cell is read by the first that fits)"
        )
    listed = ", ".join(repr(f) for f in [*kept, fmt])
    return (
        f"other values such as {shown!r} parse as they are, so keep their format too: date_format: [{listed}] "
        "(each cell is read by the first that fits)"
    )


# --------------------------------------------------------------------------- attributes and rules


def category_value(col: str, na_values: Sequence[str]) -> str:
    """A categorical attribute: trimmed text; '' and the configured ``na_values`` are missing."""
    text = f"trim(CAST({col} AS VARCHAR))"
    na = ", ".join(lit(v) for v in ["", *na_values])
    return f"CASE WHEN {text} IN ({na}) THEN NULL ELSE {text} END"


def number_source(col: str, cls: str, na_values: Sequence[str], decimal: str = ".", thousands: str = "") -> str:
    """A number attribute before it is read as a number: the configured ``na_values`` are missing whether
    the file's column holds text ('n/a'; '999' or '999.0' for a value 999, read with the file's ``decimal``
    and ``thousands`` marks) or numbers (999), so that a row scores the same whatever the other rows of its
    file make of the column's type."""
    if not na_values or cls not in (TEXT, FLOAT, INT):
        return col
    numbers = []
    for value in na_values:
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            numbers.append(repr(number))
    if cls == TEXT:
        words = category_value(col, na_values)
        if not numbers:
            return words
        value = f"TRY_CAST({number_text(col, decimal, thousands)} AS DOUBLE)"  # as the file writes numbers
        return f"CASE WHEN {value} IN ({', '.join(numbers)}) THEN NULL ELSE {words} END"
    return f"CASE WHEN {col} IN ({', '.join(numbers)}) THEN NULL ELSE {col} END" if numbers else col


def rule_condition(predicate: str) -> str:
    """An ``exclude`` rule as a condition that is never NULL."""
    return f"coalesce(({predicate}), false)"


def row_reject(id_reason_sql: str, bad_cells: Sequence[tuple[str, str]]) -> str:
    """Why a scoring input row's own cells make it unusable: its id (``id_reason_sql``), then the first
    of ``bad_cells`` (condition, reason), e.g. a number column holding text; NULL when none applies."""
    if not bad_cells:
        return id_reason_sql
    whens = " ".join(f"WHEN {cond} THEN {lit(reason)}" for cond, reason in bad_cells)
    return f"coalesce({id_reason_sql}, CASE {whens} END)"


def row_reasons(table: str, data_columns: Sequence[str], drop_exact_duplicates: bool, exclude: dict[str, str]) -> str:
    """Over a numbered table (``input_row``, ``row_reject``, the data columns): why each row is not used
    (a missing or unusable id or a value that does not parse, an exact duplicate of an earlier row, an
    ``exclude`` rule), or NULL."""
    whens = []
    if drop_exact_duplicates:
        same = ", ".join(ident(c) for c in data_columns)
        copy = f"row_number() OVER (PARTITION BY {same} ORDER BY input_row)"
        whens.append((f"{copy} > 1", f"exact duplicate row (tables.{table}.drop_exact_duplicates)"))
    whens += [(rule_condition(p), f"excluded by tables.{table}.exclude[{rule!r}]") for rule, p in exclude.items()]
    parts = " ".join(f"WHEN {cond} THEN {lit(text)}" for cond, text in whens)
    return f"CAST(coalesce(row_reject, CASE {parts} END) AS VARCHAR)" if whens else "row_reject"


def derive_customers(attributes: Sequence[str], tables: Sequence[str] = ("transactions",)) -> str:
    """Customers from event tables (``tables``): one per id seen in any, created at its first event,
    ``attributes`` from its first row of the first table."""
    events = " UNION ALL ".join(f"SELECT customer_id, ts FROM {t}" for t in tables)
    if not attributes:
        return (
            f"SELECT customer_id, CAST(min(ts) AS DATE) AS created_at FROM ({events}) AS e "
            "GROUP BY customer_id ORDER BY customer_id"
        )
    firsts = ", ".join(f"arg_min({ident(a)}, ts) AS {ident(a)}" for a in attributes)
    return (
        f"SELECT e.customer_id, e.created_at, {', '.join(f'a.{ident(a)}' for a in attributes)} FROM "
        f"(SELECT customer_id, CAST(min(ts) AS DATE) AS created_at FROM ({events}) AS u GROUP BY customer_id) AS e "
        f"LEFT JOIN (SELECT customer_id, {firsts} FROM {tables[0]} GROUP BY customer_id) AS a "
        "ON a.customer_id = e.customer_id ORDER BY e.customer_id"
    )


# --------------------------------------------------------------------------- lookup tables (joins)


def spelling_key(expr: str) -> str:
    """A value with case, spaces, '-', '_', '.' and leading zeros removed: 'GTX Pro' and 'GTXPro' share
    one, and so do '000123' and '123' (an id a spreadsheet read as a number)."""
    text = f"lower(CAST({expr} AS VARCHAR))"
    for ch in (" ", "-", "_", "."):
        text = f"replace({text}, {lit(ch)}, '')"
    return f"ltrim({text}, '0')"


AS_WRITTEN, FLOAT_TEXT, FLOAT_NUMBER = "as written", "float text", "float number"  # join key forms: key_text


def key_text(expr: str, form: str = AS_WRITTEN) -> str:
    """A join key as text, so a key read as a number in one file matches the same key in another. A key
    column of form ``FLOAT_NUMBER`` (a float column) or ``FLOAT_TEXT`` (a text column every key of which
    is a number with a decimal point), as pandas writes an integer id column with gaps, names by each
    whole number the integer key another file writes without a decimal point ('100824.0' is '100824')."""
    if form == FLOAT_NUMBER:
        return id_value(expr, FLOAT)
    if form == FLOAT_TEXT:
        return id_value(f"CAST({expr} AS VARCHAR)", TEXT, float_text=True, all_usable=True)
    return f"CAST({expr} AS VARCHAR)"


def key_form(view: str, key: str) -> str:
    """One row, one column: whether every key of text column ``key`` of ``view`` is a number with a
    decimal point (form ``FLOAT_TEXT`` of :func:`key_text`); false when it has none."""
    text = f"CAST({ident(key)} AS VARCHAR)"  # a derived key may be a number
    floats = f"coalesce(bool_and(regexp_matches({text}, '{_FLOAT_TEXT}')), false)"
    return f"SELECT {floats} FROM {view} WHERE {text} IS NOT NULL"


def duplicate_keys(view: str, key: str, form: str = AS_WRITTEN) -> str:
    """(key, rows) for every key that more than one row of lookup ``view`` carries, most rows first
    (``form``: the key column's, see :func:`key_text`)."""
    k = key_text(ident(key), form)
    return (
        f"SELECT {k} AS key, count(*) AS n FROM {view} WHERE {k} IS NOT NULL "
        f"GROUP BY {k} HAVING count(*) > 1 ORDER BY n DESC, key"
    )


def _distinct_keys(view: str, key: str, form: str) -> str:
    k = key_text(ident(key), form)
    return f"(SELECT DISTINCT {k} AS key FROM {view} WHERE {k} IS NOT NULL)"


def join_counts(main: str, on: str, on_form: str, lookup: str, key: str, form: str) -> str:
    """One row: the rows of ``main``, those without a key, and those whose key ``lookup`` does not have
    (each key column of its form, see :func:`key_text`)."""
    value = key_text(f"m.{ident(on)}", on_form)  # NULL for a missing key, NaN too
    return (
        f"SELECT count(*), count(*) FILTER (WHERE {value} IS NULL), "
        f"count(*) FILTER (WHERE {value} IS NOT NULL AND k.key IS NULL) FROM {main} AS m "
        f"LEFT JOIN {_distinct_keys(lookup, key, form)} AS k ON {value} = k.key"
    )


def unmatched_keys(main: str, on: str, on_form: str, lookup: str, key: str, form: str) -> str:
    """(value, rows) of the keys of ``main`` that ``lookup`` does not have, most rows first."""
    value = key_text(f"m.{ident(on)}", on_form)
    return (
        f"SELECT {value} AS value, count(*) AS n FROM {main} AS m "
        f"LEFT JOIN {_distinct_keys(lookup, key, form)} AS k ON {value} = k.key "
        f"WHERE {value} IS NOT NULL AND k.key IS NULL GROUP BY {value}"
    )


def spelling_pairs(main: str, on: str, on_form: str, lookup: str, key: str, form: str) -> str:
    """(value in ``main``, the lookup's spelling, rows) for keys without a match that the lookup table
    spells differently (``spelling_key``), most rows first."""
    return (
        f"SELECT u.value, k.key, u.n FROM ({unmatched_keys(main, on, on_form, lookup, key, form)}) AS u "
        f"JOIN {_distinct_keys(lookup, key, form)} AS k "
        f"ON {spelling_key('u.value')} = {spelling_key('k.key')} ORDER BY u.n DESC, u.value, k.key"
    )


def lookup_join(
    main: str, lookups: Sequence[tuple[str, str, str, str, str, Sequence[tuple[str, str]]]], order_by: str = ""
) -> str:
    """``main`` with the columns of each lookup table ``(view, on, on's form, key, key's form, [(column, as
    name)])`` joined many-to-one by key (a row whose key has no match keeps NULLs; forms: see
    :func:`key_text`); ``order_by``: a column of ``main`` that keeps the rows in input order."""
    columns, joins = ["m.*"], []
    for i, (view, on, on_form, key, form, cols) in enumerate(lookups):
        columns += [f"l{i}.{ident(c)} AS {ident(name)}" for c, name in cols]
        left, right = key_text(f"m.{ident(on)}", on_form), key_text(f"l{i}.{ident(key)}", form)
        joins.append(f"LEFT JOIN {view} AS l{i} ON {left} = {right}")
    order = f" ORDER BY m.{ident(order_by)}" if order_by else ""
    return f"SELECT {', '.join(columns)} FROM {main} AS m {' '.join(joins)}{order}"
