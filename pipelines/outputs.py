"""Atomic writes: a file appears complete under its final name or not at all.

Every CSV written here is safe to open in a spreadsheet: a text cell that begins with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` (the OWASP rule for CSV injection), so it
is shown as text, never run as a formula. Parquet keeps every value exactly as it was.
"""

from __future__ import annotations

import csv
import errno
import glob
import json
import os
import re
import shutil
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


def stage(path: str | Path, write: Callable[[Path], None], tag: str = "", folder: bool = False) -> Path:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path`` (``.<name>.<tag>...tmp``), fsync it
    and return it, complete, for the caller to rename. A failed write leaves no temporary behind; an
    ``OSError`` (disk full, read-only folder) becomes an :class:`OutputError` naming ``path``.
    ``folder=True``: the temporary is a folder (Spark's output), which ``write`` may replace."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            tmp_name = tempfile.mkdtemp(prefix=f".{path.name}.{tag}", suffix=".tmp", dir=path.parent)
        else:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{tag}", suffix=".tmp", dir=path.parent)
            os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        write(tmp)
        for file in _files(tmp):
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, (0o777 if folder else 0o666) & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
    except OSError as exc:
        discard(tmp)
        raise output_error(path, exc) from None
    except BaseException:
        discard(tmp)
        raise
    return tmp


def _files(path: Path) -> list[Path]:
    """``path`` if it is a file, else the files below it, in a fixed order."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def discard(path: Path) -> None:
    """Remove a file or a folder (with what is in it) if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------- output sets

JOURNAL_SUFFIX = ".commit.json"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(path: Path, run_id: str) -> dict:
    """A file's manifest entry: its run, size and SHA-256. A folder (Spark's predictions): the size of all
    its files and the SHA-256 of the list of their relative paths and SHA-256s."""
    if not path.is_dir():
        return {"run_id": run_id, "bytes": path.stat().st_size, "sha256": _sha256(path)}
    import hashlib

    files = _files(path)
    listing = "".join(f"{f.relative_to(path).as_posix()}\0{_sha256(f)}\n" for f in files)
    size = sum(f.stat().st_size for f in files)
    return {"run_id": run_id, "bytes": size, "sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest()}


def set_stem(name: str) -> str:
    """The name of an output without its .parquet or .csv suffix (any other dot is part of the name):
    ``predictions.parquet`` -> ``predictions``, ``run.2024-06`` (a Spark folder) -> ``run.2024-06``."""
    return re.sub(r"\.(parquet|csv)$", "", name, flags=re.IGNORECASE)


class OutputSet:
    """The files one run writes beside each other (predictions, drift, migration, rejects), committed
    together, under an exclusive lock on the set.

    Each file is staged as a hidden temporary; :meth:`commit` writes a journal naming every rename and
    removal, applies it, and drops it. A run killed before the journal exists leaves the previous set
    as it was; one killed after it is rolled forward by the next :meth:`open` (the next run or report),
    so a reader sees entirely the old set or entirely the new one. ``<stem>.manifest.json`` names the run
    each file belongs to, with its size and SHA-256 (:func:`check_manifest`). Opening a set removes the
    temporaries of earlier runs; a second run on the same set while one holds the lock is refused.
    """

    def __init__(self, main: str | Path, kinds: list[str]):
        self.main = Path(main)
        self.folder = self.main.parent
        stem = set_stem(self.main.name)
        self.sides = {k: self.main.with_name(f"{stem}.{k}.csv") for k in kinds}
        self.manifest = self.main.with_name(f"{stem}.manifest.json")
        self.journal = self.folder / f".{self.main.name}{JOURNAL_SUFFIX}"
        self.lock_path = self.folder / f".{self.main.name}.lock"
        self.run_id = ""
        self._fd: int | None = None
        self._staged: dict[Path, Path] = {}  # final -> temporary
        self._remove: set[Path] = set()

    @property
    def members(self) -> list[Path]:
        return [self.main, *self.sides.values(), self.manifest]

    # ---------------------------------------------------------------- lock, recovery, cleaning
    def open(self, run_id: str) -> OutputSet:
        import fcntl

        self.run_id = run_id
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as exc:
            raise output_error(self.main, exc) from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise OutputError(
                f"another leadtier run is writing {self.main} and its side files now; wait for it to finish or "
                "choose another output"
            ) from None
        self.recover()
        for member in [*self.members, self.journal]:  # temporaries of killed runs: nobody else holds the lock
            for tmp in self.folder.glob(f".{glob.escape(member.name)}.*.tmp"):
                discard(tmp)
        return self

    def recover(self) -> bool:
        """Finish a commit that a killed run left half done (roll forward); True if there was one."""
        if not self.journal.is_file():
            return False
        try:
            plan = json.loads(self.journal.read_text(encoding="utf-8"))
        except ValueError:  # torn journal: it is renamed into place complete, so this is not one of ours
            raise OutputError(f"{self.journal} is not a leadtier commit journal; remove it and rerun") from None
        self._apply(plan)
        return True

    def _apply(self, plan: dict) -> None:
        for tmp, final in plan["replace"]:
            new, old = self.folder / tmp, self.folder / final
            aside = self.folder / f".{final}.old.tmp"  # a folder cannot be renamed over: moved aside first
            if new.exists():
                if old.is_dir() or new.is_dir():
                    discard(aside)
                    if old.exists():
                        os.replace(old, aside)
                os.replace(new, old)
            discard(aside)
        for name in plan["remove"]:
            discard(self.folder / name)
        _fsync_dir(self.folder)
        self.journal.unlink(missing_ok=True)
        _fsync_dir(self.folder)

    def close(self) -> None:
        for tmp in self._staged.values():
            discard(tmp)
        self._staged.clear()
        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- staging and commit
    def stage(self, final: Path, write: Callable[[Path], None], folder: bool = False) -> Path:
        """Write ``final``'s new content to a temporary (see :func:`stage`); returns the temporary."""
        tmp = stage(final, write, folder=folder)
        self._staged[Path(final)] = tmp
        self._remove.discard(Path(final))
        return tmp

    def staged(self, final: Path) -> Path:
        """The temporary holding ``final``'s new content."""
        return self._staged[Path(final)]

    def remove(self, final: Path) -> None:
        """``final`` is not part of the new set: it goes at commit (an earlier run's file must not stay)."""
        self._remove.add(Path(final))

    def commit(self, status: str = "complete", keep: list[Path] = (), facts: dict | None = None) -> Path:
        """Make the staged files the set; files of the set that were neither staged nor kept are removed.
        ``keep``: files left as the previous run wrote them (a stopped run keeps the last predictions);
        ``facts``: what else the manifest says of the run (e.g. the input it scored)."""
        previous = read_manifest(self.manifest) or {}
        files = {}
        for final, tmp in self._staged.items():
            files[final.name] = _describe(tmp, self.run_id)
        for final in keep:  # as they are; described as the manifest before described them, if it did
            if final.exists() and final not in self._staged:
                files[final.name] = previous.get("files", {}).get(final.name) or _describe(final, "earlier")
        for member in self.members[:-1]:
            if member not in self._staged and member.name not in files:
                self._remove.add(member)
        manifest = {"run_id": self.run_id, "status": status, **(facts or {}), "files": dict(sorted(files.items()))}
        self.stage(self.manifest, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8"))
        plan = {
            "run_id": self.run_id,
            "replace": [[tmp.name, final.name] for final, tmp in self._staged.items()],
            "remove": sorted(p.name for p in self._remove),
        }
        journal_tmp = stage(self.journal, lambda tmp: tmp.write_text(json.dumps(plan), encoding="utf-8"))
        try:
            os.replace(journal_tmp, self.journal)  # the commit point
            _fsync_dir(self.folder)
        except OSError as exc:
            journal_tmp.unlink(missing_ok=True)
            raise output_error(self.journal, exc) from None
        self._staged.clear()
        self._apply(plan)
        return self.manifest


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise OutputError(f"{path} is not a leadtier manifest (not JSON); rerun leadtier predict") from None


def check_manifest(main: str | Path, kinds: list[str]) -> dict | None:
    """Under the set's lock (finishing a half-done commit first): check that the files beside ``main``
    are those its manifest names, byte for byte, and that no file of the set is there that it does not
    name. Returns the manifest (None for output written without one); raises :class:`OutputError`."""
    with OutputSet(main, kinds) as out:
        out.open("check")
        manifest = read_manifest(out.manifest)
        if manifest is None:
            return None
        files = manifest.get("files", {})
        for member in out.members[:-1]:
            entry = files.get(member.name)
            if entry is None:
                if member.exists():
                    raise OutputError(
                        f"{member} is not part of run {manifest.get('run_id')} that {out.manifest.name} describes; "
                        "rerun leadtier predict"
                    )
                continue
            if not member.exists() or _describe(member, entry["run_id"]) != entry:
                raise OutputError(
                    f"{member} is not the file run {entry['run_id']} wrote ({out.manifest.name}); "
                    "rerun leadtier predict"
                )
        return manifest
