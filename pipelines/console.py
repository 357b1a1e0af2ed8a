"""The terminal: logging and warnings set up once at the command line's edge, the Optuna tuning
progress display, and plain-text tables that fit a width.

Progress is drawn only on a terminal or when asked (``train.tuning.progress``), so a log file never
gets carriage-return redraws; libraries' chatter (MLflow's store migrations and its pickle notice,
a warning repeated once per fold) is silenced or shown once, as one log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from typing import TextIO

from tqdm import tqdm

WIDTH = 100  # the summary's tables and prose fit this many columns
QUIET_LOGGERS = ("mlflow", "alembic", "urllib3", "matplotlib", "numexpr", "huey")
PICKLE_NOTICE = "Passing a Python object as `python_model`"  # leadtier's scorer is a pickled object on purpose

log = logging.getLogger("leadtier")


def _drop_pickle_notice(record: logging.LogRecord) -> bool:
    return PICKLE_NOTICE not in record.getMessage()


_WARNED: set[tuple[str, str]] = set()


def _warning_as_log_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning as one log line (no source line), e.g. ``UserWarning: ... (_split.py:812)``; each
    text once (libraries reset Python's own once-registry with ``catch_warnings``)."""
    key = (category.__name__, str(message))
    if key in _WARNED:
        return
    _WARNED.add(key)
    logging.getLogger("py.warnings").warning(
        "%s: %s (%s:%s)", category.__name__, message, os.path.basename(filename), lineno
    )


class _OnceEach(logging.Filter):
    """leadtier's warnings once per text: a command that reads the same input for several stages (report,
    retier) would otherwise repeat what the first reading already said."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or not record.name.startswith("leadtier"):
            return True
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def configure_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    """Logging and warnings for a command: leadtier's INFO lines; MLflow, alembic and friends only
    from WARNING (MLflow reads ``MLFLOW_LOGGING_LEVEL`` when it is imported, later); MLflow's pickle
    notice dropped; a Python warning, and a warning of leadtier's, shown once per text (as one log line);
    MLflow's artifact download bar only on a terminal."""
    stream = stream or sys.stderr
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=stream)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not _is_terminal(stream):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO if verbose and name == "mlflow" else logging.WARNING)
    pyfunc = logging.getLogger("mlflow.pyfunc")
    if _drop_pickle_notice not in pyfunc.filters:
        pyfunc.addFilter(_drop_pickle_notice)
    warnings.showwarning = _warning_as_log_line  # sklearn repeats its warnings once per fold
    for handler in logging.getLogger().handlers:  # basicConfig's own (not a test harness's subclasses)
        if type(handler) is logging.StreamHandler:
            for old in [f for f in handler.filters if isinstance(f, _OnceEach)]:
                handler.removeFilter(old)  # a new command (a scheduler calling the CLI again) says its own warnings
            handler.addFilter(_OnceEach())


@contextlib.contextmanager
def quiet(logger: logging.Logger):
    """Only errors from ``logger`` inside the block: warnings an earlier stage has already logged about the
    same input are not repeated."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def show_progress(setting: bool | None, stream: TextIO | None = None) -> bool:
    """Draw a progress display? ``setting`` when given, else only when ``stream`` is a terminal."""
    return setting if setting is not None else _is_terminal(stream or sys.stderr)


def time_left(done: int, total: int, elapsed_s: float, timeout_s: float | None) -> float | None:
    """Seconds until tuning stops: the remaining trials at the pace so far, or the timeout if sooner.
    None when there is nothing to go by yet (no trial done and no timeout)."""
    by_timeout = None if timeout_s is None else max(timeout_s - elapsed_s, 0.0)
    if done <= 0:
        return by_timeout
    by_pace = elapsed_s / done * max(total - done, 0)
    return by_pace if by_timeout is None else min(by_pace, by_timeout)


def _best(study) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no finished trial yet (all pruned or failed)
        return None


class TuningProgress:
    """An Optuna callback that draws ``tuning trial n/N | best <metric> 0.6123 | 0:42 left`` (tqdm).

    Use as a context manager around ``study.optimize``; disabled (a log file, ``--no-progress``), it draws
    nothing and logs the same status after the first trial and every quarter of the trials.
    """

    def __init__(
        self,
        n_trials: int,
        timeout_s: float | None,
        metric: str,
        enabled: bool,
        stream: TextIO | None = None,
        clock=time.monotonic,
    ) -> None:
        self.n_trials, self.timeout_s, self.metric, self.clock = n_trials, timeout_s, metric, clock
        self.started, self.done = clock(), 0
        self.bar = tqdm(
            total=n_trials,
            bar_format="tuning trial {n_fmt}/{total_fmt} |{bar:20}| {desc}",
            disable=not enabled,
            file=stream or sys.stderr,
            mininterval=0,
            leave=True,
        )
        self.bar.set_description_str(self.status(None, 0), refresh=True)

    def status(self, best: float | None, done: int) -> str:
        """``best macro_f1 0.6123 | 0:42 left`` after ``done`` trials."""
        left = time_left(done, self.n_trials, self.clock() - self.started, self.timeout_s)
        best_text = "–" if best is None else f"{best:.4f}"
        left_text = "?" if left is None else _clock_text(left)
        return f"best {self.metric} {best_text} | {left_text} left"

    def __call__(self, study, trial) -> None:
        self.done += 1  # a disabled bar counts nothing
        done = self.done
        self.bar.set_description_str(self.status(_best(study), done), refresh=False)
        self.bar.update(1)
        pulse = done in (1, self.n_trials) or done % max(self.n_trials // 4, 1) == 0
        if self.bar.disable and pulse:  # a log keeps a pulse
            log.info("tuning trial %d/%d: %s", done, self.n_trials, self.status(_best(study), done))

    def __enter__(self) -> TuningProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


# --------------------------------------------------------------------------- plain-text tables


def table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int = WIDTH) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned, two spaces apart.
    Columns that do not fit ``width`` continue in a further block below (the first column repeated)."""
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(header)):
        if blocks[-1] and used + 2 + widths[i] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += 2 + widths[i]
    lines: list[str] = []
    for n, block in enumerate(blocks):
        if n:
            lines.append("")
        for r in cells:
            lines.append("  ".join([r[0].ljust(widths[0]), *(r[i].rjust(widths[i]) for i in block)]).rstrip())
    return lines


def wrap(text: str, width: int = WIDTH, indent: str = "    ") -> list[str]:
    """Prose in lines of at most ``width`` characters; continuation lines indented."""
    return textwrap.wrap(text, width=width, subsequent_indent=indent, break_on_hyphens=False) or [""]
