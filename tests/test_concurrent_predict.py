"""Two real ``leadtier predict`` processes on one output: never an interleaved set.

Shares the tiny trained world of ``tests/test_faults.py``. Each run scores a different input, so the set
left behind tells which run wrote it: input A has 200 customers and 2 duplicate rows (a rejects file),
input B 300 customers and no rejects.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from leadtier.pipelines.outputs import check_manifest
from leadtier.pipelines.predict import SIDE_KINDS

from tests.test_faults import _prospects, build_world, world_env

pytestmark = pytest.mark.slow

LOCK_ERROR = "another leadtier run is writing"
ROWS = {"a": 200, "b": 300}
REJECTED = {"a": 2, "b": 0}

# `leadtier predict` (the CLI app itself) with OutputSet.commit wrapped: once every file of the set is
# staged, with the set's lock held, the run writes its run id to argv[1] and waits for argv[2] to exist.
PAUSE_BEFORE_COMMIT = r"""
import sys, time
from pathlib import Path
from leadtier.pipelines import outputs
holding, go, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
real = outputs.OutputSet.commit
def commit(self, *args, **kwargs):
    holding.write_text(self.run_id)
    deadline = time.monotonic() + 300
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return real(self, *args, **kwargs)
outputs.OutputSet.commit = commit
import leadtier.pipelines.cli
leadtier.pipelines.cli.app(args=argv, prog_name="leadtier")
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    with world_env(w.work):
        yield w


@pytest.fixture(scope="module")
def inputs(world, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("race_inputs")
    frame = _prospects(world)
    assert len(frame) >= 500
    a, b = frame.iloc[:200], frame.iloc[200:500]
    paths = {"a": root / "a.csv", "b": root / "b.csv"}
    pd.concat([a, a.head(2)]).to_csv(paths["a"], index=False)
    b.to_csv(paths["b"], index=False)
    return paths


def _leadtier() -> list[str]:
    """The installed `leadtier` command (the console script beside this interpreter)."""
    script = Path(sys.executable).with_name("leadtier")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from leadtier.pipelines.cli import app; app(prog_name='leadtier')"]


def _argv(world, source: Path, out: Path) -> list[str]:
    return ["predict", "--config", str(world.config_path), "--input", str(source), "--output", str(out)]


def _start(cmd: list[str], world, log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(cmd, env=world.env(), cwd=world.work, stdout=fh, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, log: Path) -> tuple[int, str]:
    code = proc.wait(timeout=600)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    return code, text


def _refused(text: str, out: Path) -> None:
    """The output of a run refused because another holds the set: one `error:` line, last, naming it."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], text[-3000:]
    assert LOCK_ERROR in errors[0] and str(out) in errors[0], errors[0]


def _which_run(out: Path) -> tuple[str, dict]:
    """The run whose complete set is at ``out`` ("a" or "b") and its manifest; fails on any mix."""
    manifest = check_manifest(out, SIDE_KINDS)  # every file is the one its manifest names, no stray one
    assert manifest is not None and manifest["status"] == "complete", manifest
    files = manifest["files"]
    assert {entry["run_id"] for entry in files.values()} == {manifest["run_id"]}, files
    rows = len(pd.read_parquet(out))
    run = {n: k for k, n in ROWS.items()}.get(rows)
    assert run is not None, f"{rows} predictions: neither run's input"
    rejects = out.with_name(f"{out.stem}.rejects.csv")
    if REJECTED[run]:
        assert len(pd.read_csv(rejects)) == REJECTED[run] and rejects.name in files
    else:
        assert not rejects.exists() and rejects.name not in files
    drift = out.with_name(f"{out.stem}.drift.csv")
    assert drift.name in files and out.name in files
    assert not list(out.parent.glob(".*.tmp")) and not list(out.parent.glob(".*.commit.json"))
    return run, manifest


def test_two_predicts_started_together_leave_one_complete_set(world, inputs, tmp_path):
    """Both processes start at once: each ends with 0 or with the lock's `error:` line (exit 2), never a
    traceback, at least one succeeds, and the folder holds exactly the set of a run that succeeded."""
    out = tmp_path / "p.parquet"
    procs = {k: _start([*_leadtier(), *_argv(world, inputs[k], out)], world, tmp_path / f"{k}.log") for k in inputs}
    ended = {k: _finish(p, tmp_path / f"{k}.log") for k, p in procs.items()}
    codes = {k: code for k, (code, _) in ended.items()}
    assert set(codes.values()) <= {0, 2} and 0 in codes.values(), ended
    for code, text in ended.values():
        if code == 2:
            _refused(text, out)
    run, _ = _which_run(out)
    assert codes[run] == 0, (run, codes)


def test_a_predict_started_while_another_holds_the_set_is_refused_and_the_first_set_stands(world, inputs, tmp_path):
    """Run A stops with every file staged and the set's lock held; run B, a plain `leadtier predict` on the
    same output, is refused with one `error:` line and exit 2, removes none of A's staged files, and A then
    commits its whole set."""
    out = tmp_path / "p.parquet"
    holding, go = tmp_path / "holding", tmp_path / "go"
    first = [sys.executable, "-c", PAUSE_BEFORE_COMMIT, str(holding), str(go), *_argv(world, inputs["a"], out)]
    proc_a = _start(first, world, tmp_path / "a.log")
    try:
        deadline = time.monotonic() + 300
        while not holding.exists() and proc_a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holding.exists(), (tmp_path / "a.log").read_text(errors="replace")[-3000:]
        staged = sorted(p.name for p in tmp_path.glob(".p.*.tmp"))
        assert staged and not out.exists()

        second = [*_leadtier(), *_argv(world, inputs["b"], out)]
        code_b, text_b = _finish(_start(second, world, tmp_path / "b.log"), tmp_path / "b.log")
        assert code_b == 2, text_b[-3000:]
        _refused(text_b, out)
        assert sorted(p.name for p in tmp_path.glob(".p.*.tmp")) == staged  # A's files are A's
        assert not out.exists()
    finally:
        go.touch()
    code_a, text_a = _finish(proc_a, tmp_path / "a.log")
    assert code_a == 0, text_a[-3000:]
    run, manifest = _which_run(out)
    assert run == "a" and manifest["run_id"] == holding.read_text()
