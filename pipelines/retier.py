"""Stage: re-tier on a cadence (``leadtier retier``): features -> predict -> worklist -> report, as of one date.

Meant for cron or Airflow: one process scores with the champion as of today (or ``--as-of``), writes the
feature table, the predictions set (with its drift and migration files), the worklist (when
``worklist.service_days`` is set) and the report, and says who moved up or down a tier since the last run.
A run that fails at any stage leaves all of them as the previous run wrote them (:func:`all_or_nothing`).
The command exits 0, 2 on an error the user can fix, and :data:`DRIFT_EXIT` when a feature's population
stability index passes ``predict.psi_warning`` (everything is still written: the scheduler decides).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from leadtier.pipelines.config import Config, today

log = logging.getLogger(__name__)

DRIFT_EXIT = 3  # exit status of `leadtier retier` when drift passes predict.psi_warning
SHOWN_MOVES = 10  # upgrades and downgrades listed by name; the rest are counted


@dataclass
class RetierResult:
    as_of: dt.date
    lines: list[str]  # one per stage, what it wrote
    moves: pd.DataFrame  # the migration rows that changed tier (upgraded, downgraded)
    drifted: list[tuple[str, float]] = field(default_factory=list)  # (feature, PSI) above the threshold
    threshold: float = 0.2
    first_run: bool = False
    stale_days: int | None = None  # days from the newest event read to the as-of date

    def summary(self) -> str:
        from leadtier.pipelines.predict import STALE_DAYS, stale_line

        lines = [f"retier as of {self.as_of}", *self.lines]
        if self.first_run:
            lines.append("no previous predictions: no upgrades or downgrades to show")
        for change in ("upgraded", "downgraded"):
            part = self.moves[self.moves["change"] == change]
            lines.append(f"{len(part)} {change} since the last run")
            for row in part.head(SHOWN_MOVES).itertuples():
                lines.append(f"  {row.customer_id}: {row.previous_tier} -> {row.tier} (score {row.score_change:+.1f})")
            if len(part) > SHOWN_MOVES:
                lines.append(f"  ... and {len(part) - SHOWN_MOVES} more")
        if self.stale_days is not None and self.stale_days > STALE_DAYS:
            lines.append(stale_line(self.stale_days))
        if self.drifted:
            worst = ", ".join(f"{f} {psi:.2f}" for f, psi in self.drifted[:5])
            lines.append(
                f"drift: {len(self.drifted)} feature(s) above predict.psi_warning = {self.threshold} ({worst}); "
                f"exit status {DRIFT_EXIT}"
            )
        return "\n".join(lines)


def _previous_as_of(path: Path) -> dt.date | None:
    """The as-of date of the predictions at ``path`` (the last run's); None when they do not say."""
    from leadtier.pipelines.report import read_predictions

    try:
        days = pd.to_datetime(read_predictions(path).get("as_of"), errors="coerce")
    except (OSError, ValueError):  # unreadable: predict replaces them, and says so
        return None
    return None if days is None or days.isna().all() else days.max().date()


def _moves(path: Path) -> pd.DataFrame:
    """Upgrades and downgrades of a migration file, the largest score change first."""
    cols = ["customer_id", "previous_tier", "tier", "score_change", "change"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    moved = pd.read_csv(path, dtype={"customer_id": str, "previous_tier": str, "tier": str})
    moved = moved[moved["change"].isin(["upgraded", "downgraded"])]
    order = moved["score_change"].abs().sort_values(ascending=False, kind="stable").index
    return moved.loc[order, cols].reset_index(drop=True)


def _drifted(path: Path) -> list[tuple[str, float]]:
    if not path.is_file():
        return []
    drift = pd.read_csv(path)
    flagged = drift[drift["warning"].astype(str).str.lower() == "true"].sort_values("psi", ascending=False)
    return [(str(f), float(p)) for f, p in zip(flagged["feature"], flagged["psi"], strict=True)]


def report_paths(cfg: Config, lang: str | None) -> list[tuple[str, Path]]:
    """(language, path) of each report a re-tier run writes: the one in ``lang`` (default ``report.lang``),
    and each other language's report a user made beside it (``report --lang zh``), so that none is left
    on an older date."""
    from leadtier.pipelines.report import LANGS

    report = Path(cfg.report.output)
    lang = lang or cfg.report.lang

    def path(code: str) -> Path:
        return report if code == cfg.report.lang else report.with_name(f"{report.stem}.{code}{report.suffix}")

    return [(lang, path(lang))] + [(o, path(o)) for o in LANGS if o != lang and path(o).is_file()]


def written_paths(cfg: Config, lang: str | None) -> dict[str, list[Path]]:
    """Every file each stage of a re-tier run may write or remove: the feature table, the predictions set
    and the worklist set (each with its manifest and commit journal), the report."""
    from leadtier.pipelines.outputs import OutputSet
    from leadtier.pipelines.predict import SIDE_KINDS

    pred = OutputSet(cfg.predict.output, SIDE_KINDS)
    work = OutputSet(cfg.worklist.output, [])
    reports = [path for _, path in report_paths(cfg, lang)]
    return {
        "features": [Path(cfg.features.output)],
        "predict": [*pred.members, pred.journal],
        "worklist": [*work.members, work.main.with_suffix(".csv"), work.journal],
        "report": reports,
    }


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def all_or_nothing(paths: list[Path]) -> Iterator[Callable[[list[Path]], None]]:
    """Yields ``wrote(paths)``, which a stage calls once it has committed ``paths``. On an exception inside
    the block, each path a stage wrote is put back as it was before the block (removed if it did not
    exist), unless another process has replaced it since: a run of `leadtier predict` that committed in
    between keeps its files. Every stage replaces a file by renaming a new one over it, so a hard link
    taken before (a copy where the file system has none) keeps the old content at no cost."""
    before: dict[Path, Path] = {}
    ours: dict[Path, tuple[int, int, int] | None] = {}

    def wrote(written: list[Path]) -> None:
        ours.update({p: _identity(p) for p in written})

    try:
        for path in paths:
            if path.is_file():
                aside = path.with_name(f".{path.name}.retier-{os.getpid()}.old")
                aside.unlink(missing_ok=True)
                try:
                    os.link(path, aside)
                except OSError:
                    shutil.copy2(path, aside)
                before[path] = aside
        yield wrote
    except BaseException:
        for path, identity in ours.items():
            if _identity(path) != identity:
                continue  # replaced by another run since this one wrote it: its file now
            if path in before:
                os.replace(before.pop(path), path)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        for aside in before.values():
            aside.unlink(missing_ok=True)


def run(cfg: Config, as_of: dt.date | None = None, lang: str | None = None, progress: bool = False) -> RetierResult:
    """Run the four stages as of ``as_of`` (default :func:`today`) with the champion. A failure leaves
    every output as it was (:func:`all_or_nothing`); a predict stopped by ``predict.max_reject_share``
    leaves the rejects file its message names, as `leadtier predict` does."""
    as_of = as_of or today(cfg)
    if cfg.engine == "spark":
        log.warning(
            "retier runs every stage on DuckDB: engine 'spark' is read by features and predict, not by retier; "
            "to score on Spark, schedule `leadtier predict` (or spark-predict), then worklist and report"
        )
    paths = written_paths(cfg, lang)
    with all_or_nothing([p for group in paths.values() for p in group]) as wrote:
        return _stages(cfg, as_of, lang, progress, lambda stage: wrote(paths[stage]))


def _stages(cfg: Config, as_of: dt.date, lang: str | None, progress: bool, done: Callable[[str], None]) -> RetierResult:
    """The four stages; ``done(stage)`` after each has committed its files."""
    from leadtier.pipelines import predict, report, worklist
    from leadtier.pipelines.features import build
    from leadtier.pipelines.outputs import write_table

    fb = build(cfg, as_of=as_of, with_labels=False)
    feats_path = write_table(fb.features, cfg.features.output)
    done("features")
    lines = [f"features: {len(fb.features)} rows as of {as_of} -> {feats_path}"]
    out_path = Path(cfg.predict.output)
    first_run = not out_path.is_file()
    before = None if first_run else _previous_as_of(out_path)
    scored = predict.run(cfg, as_of=as_of, progress=progress)
    done("predict")
    skipped = f", {scored.skipped} skipped" if scored.skipped else ""
    lines.append(f"predict: {scored.scored} scored, {scored.rejected} rejected{skipped} -> {scored.output}")
    if before is not None and before > as_of:
        lines.append(
            f"the last run was as of {before}, after this one: the moves below go back in time, from {before} "
            f"to {as_of}"
        )
    if cfg.worklist.service_days:
        wl = worklist.run(cfg, lang=lang)
        done("worklist")
        lines.append(
            f"worklist: {wl.counts[worklist.PLANNED]} planned, {wl.counts[worklist.DEFERRED]} deferred, "
            f"{wl.counts[worklist.NO_CAPACITY]} do not fit the weeks -> {wl.output}"
        )
    else:
        lines.append("worklist: skipped (worklist.service_days is empty)")
    for code, _ in report_paths(cfg, lang):
        lines.append(f"report: {report.run(cfg, lang=code)}")
    done("report")
    return RetierResult(
        as_of=as_of,
        lines=lines,
        moves=_moves(predict.side_file(out_path, "migration")),
        drifted=_drifted(predict.side_file(out_path, "drift")),
        threshold=cfg.predict.psi_warning,
        first_run=first_run,
        stale_days=scored.stale_days,
    )
