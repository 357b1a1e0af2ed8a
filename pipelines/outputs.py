"""Atomic writes: a file appears complete under its final name or not at all.

Every CSV written here is safe to open in a spreadsheet: a text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (the OWASP rule for CSV injection), so it
is shown as text, never run as a formula. Parquet keeps every value exactly as it was.
"""

from __future__ import annotations

import csv
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from leadtier.pipelines.errors import UserError

OUTPUT_SUFFIXES = (".parquet", ".csv")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as the start of a formula
FORMULA_PREFIX = r"^[=+\-@\t\r]"  # the same, for Arrow


class OutputError(UserError):
    """An output cannot be written where it was asked for (suffix, permissions, disk space)."""


def check_suffix(path: str | Path, what: str = "output") -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"{what} {path} must end in .parquet or .csv. Got {path.suffix or 'no extension'!r} instead")
    return path


def _risky(value) -> bool:
    return isinstance(value, str) and value[:1] in FORMULA_STARTS


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell that a spreadsheet could run as a formula prefixed by ``'``.
    Returns a new frame; numbers, missing values and other cells are unchanged."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col].dtype) or pd.api.types.is_datetime64_any_dtype(out[col].dtype):
            continue
        values = out[col].astype("object")
        risky = values.map(_risky).astype(bool)
        if risky.any():
            out[col] = values.mask(risky, "'" + values[risky].astype(str))
    return out


def neutralise_arrow(table: pa.Table) -> pa.Table:
    """:func:`neutralise_formulas` for an Arrow table (text and dictionary-encoded text columns)."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            if pa.types.is_dictionary(field.type):
                column = column.cast(kind)
            risky = pc.match_substring_regex(column, FORMULA_PREFIX)
            column = pc.if_else(
                risky, pc.binary_join_element_wise(pa.scalar("'", kind), column, pa.scalar("", kind)), column
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """A failed write as a user-fixable error naming the output and the cause."""
    return OutputError(f"cannot write {path}: {_why(exc)}; free space or choose another output folder")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, fsync it, then rename over ``path``."""
    path = Path(path)
    tmp = stage(path, write)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    return path


def stage(path: str | Path, write: Callable[[Path], None], tag: str = "") -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path`` (``.<name>.<tag>...tmp``), fsync it
    and return it, complete, for the caller to rename. A failed write leaves no temporary behind; an
    ``OSError`` (disk full, read-only folder) becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{tag}", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise output_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def table_writer(frame: pd.DataFrame, path: str | Path) -> Callable[[Path], None]:
    """What writes ``frame`` as Parquet or CSV (by the extension of ``path``) to a given file."""
    parquet = check_suffix(path).suffix.lower() == ".parquet"

    def write(tmp: Path) -> None:
        if parquet:
            frame.to_parquet(tmp, index=False)
        else:  # text quoted always: a lone carriage return in an id must not end the line for a reader
            neutralise_formulas(frame).to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC)

    return write


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Parquet or CSV by extension, written atomically."""
    return atomic_write(path, table_writer(frame, path))


def write_text(text: str, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
