"""Hostile input and faults, second round: formulas in CSV outputs, failed writes, long values in logs,
config SQL that reaches for other files, and predict runs that are killed or run side by side.

Shares the tiny trained world of ``tests/test_faults.py`` (one registered champion).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import zipfile

import pandas as pd
import pytest
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines.cli import app
from typer.testing import CliRunner

from tests.test_faults import _one_line_error, _prospects, build_world, world_env

pytestmark = pytest.mark.slow

runner = CliRunner()
FORMULAS = ['=HYPERLINK("http://x")', "+1+2", "-3+4", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    with world_env(w.work):
        yield w


def _cli(*args: str):
    return runner.invoke(app, list(args))


def _cells(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [cell for row in csv.reader(fh) for cell in row]


def _hostile_prospects(world, n: int = 20) -> pd.DataFrame:
    frame = _prospects(world, n)
    frame["customer_id"] = frame["customer_id"].astype(object)
    for i, f in enumerate(FORMULAS):
        frame.loc[i, "customer_id"] = f + f"-{i}"
        frame.loc[i, "region"] = f  # never seen in training: named in the drift file
    return pd.concat([frame, frame.head(len(FORMULAS))], ignore_index=True)  # duplicates: a rejects file


# --------------------------------------------------------------------------- item 3: no formulas in CSVs


def test_csv_outputs_never_start_a_cell_with_a_formula_and_parquet_keeps_values(world, tmp_path):
    cfg = world.config()
    cfg.predict.max_reject_share = 0.5
    src = tmp_path / "hostile.parquet"
    _hostile_prospects(world).to_parquet(src, index=False)  # Parquet: a lone CR in a CSV cell is another matter
    ids = [f + f"-{i}" for i, f in enumerate(FORMULAS)]

    res_csv = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.csv"), progress=False)
    assert res_csv.rejected == len(FORMULAS)
    res_csv = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.csv"), progress=False)  # migration
    written = [tmp_path / f"p.{k}" for k in ("csv", "rejects.csv", "drift.csv", "migration.csv")]
    assert all(p.is_file() for p in written)
    for path in written:
        cells = _cells(path)
        bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert not bad, f"{path.name}: live formulas {bad[:5]}"
    pred = pd.read_csv(tmp_path / "p.csv", dtype={"customer_id": str})
    for i in ids:  # neutralised, not dropped: a leading ' then the value as it was
        assert "'" + i in set(pred["customer_id"]), i
    rejects = pd.read_csv(tmp_path / "p.rejects.csv", dtype={"customer_id": str})
    assert sorted(rejects["customer_id"]) == sorted("'" + i for i in ids)
    drift = pd.read_csv(tmp_path / "p.drift.csv").set_index("feature")
    assert "+1+2" in drift.loc["cust_region", "unseen_examples"]  # named, inside a cell that starts safely
    migration = pd.read_csv(tmp_path / "p.migration.csv", dtype={"customer_id": str})
    assert (migration.loc[migration["customer_id"].isin(["'" + i for i in ids]), "change"] == "unchanged").all()

    res_pq = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.parquet"), progress=False)
    exact = pd.read_parquet(res_pq.output)
    assert set(ids) <= set(exact["customer_id"])  # Parquet: the values exactly as given
    numbers = pd.read_csv(tmp_path / "p.csv")["score"]
    assert numbers.dtype.kind == "f"  # numbers are never prefixed


def test_a_features_csv_is_neutralised_too(world, tmp_path):
    from leadtier.pipelines.outputs import neutralise_formulas, write_table

    frame = pd.DataFrame({"customer_id": ["=1+1", "ok", None], "x": [-1.5, 2.0, None], "cat": ["@a", "-b", "c"]})
    write_table(frame, tmp_path / "f.csv")
    with open(tmp_path / "f.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1] == ["'=1+1", "-1.5", "'@a"] and rows[2] == ["ok", "2.0", "'-b"]
    write_table(frame, tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), frame)
    assert neutralise_formulas(frame)["customer_id"].tolist()[:2] == ["'=1+1", "ok"]


# --------------------------------------------------------------------------- item 2: user-fixable failures


class _FullDisk:
    """Stands in for pyarrow's ParquetWriter: the first batch is written, the second finds the disk full."""

    def __init__(self, real, errno_: int):
        self.real, self.errno, self.calls = real, errno_, 0

    def __call__(self, *args, **kwargs):
        writer = self.real(*args, **kwargs)
        outer = self

        class Writer:
            def write_table(self, table):
                outer.calls += 1
                if outer.calls > 1:
                    raise OSError(outer.errno, os.strerror(outer.errno))
                writer.write_table(table)

            def close(self):
                writer.close()

        return Writer()


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only")])
def test_a_write_failing_midway_is_one_error_line_and_leaves_the_old_output(world, tmp_path, monkeypatch, code, words):
    src = tmp_path / "in.csv"
    _prospects(world, 300).to_csv(src, index=False)
    out = tmp_path / "pred.parquet"
    out.write_bytes(b"the previous run")
    monkeypatch.setattr(predict_stage.pq, "ParquetWriter", _FullDisk(predict_stage.pq.ParquetWriter, code))
    res = _cli(
        "predict", "--config", str(world.config_path), "--input", str(src), "--output", str(out), "--batch-size", "100"
    )
    error = _one_line_error(res, str(out), words)
    assert "ResourceInUse" not in res.output and "open result" not in error
    assert out.read_bytes() == b"the previous run"
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".pred.parquet.lock")  # the set's lock file stays
    assert left == ["in.csv", "pred.parquet"]  # no temporaries, no side files


def test_an_unwritable_folder_is_one_error_line(world, tmp_path, monkeypatch):
    from leadtier.pipelines import outputs

    src = tmp_path / "in.csv"
    _prospects(world, 30).to_csv(src, index=False)
    out = tmp_path / "locked" / "pred.parquet"

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)
    res = _cli("predict", "--config", str(world.config_path), "--input", str(src), "--output", str(out))
    _one_line_error(res, str(out), "permission denied")
    assert not out.exists()


@pytest.mark.parametrize("name", ["pred.xlsx", "pred", "pred.parquet.bak"])
def test_an_output_with_another_suffix_is_one_error_line(world, tmp_path, name):
    src = tmp_path / "in.csv"
    _prospects(world, 5).to_csv(src, index=False)
    res = _cli("predict", "--config", str(world.config_path), "--input", str(src), "--output", str(tmp_path / name))
    _one_line_error(res, str(tmp_path / name), "must end in .parquet or .csv")
    res = _cli("features", "--config", str(world.config_path), "--output", str(tmp_path / name))
    _one_line_error(res, str(tmp_path / name), "must end in .parquet or .csv")
    assert not (tmp_path / name).exists()


def test_a_zip_named_csv_is_called_a_zip_not_an_encoding_problem(world, tmp_path):
    path = tmp_path / "prospects.csv"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:  # DuckDB calls this one "not utf-8 encoded"
        z.writestr("prospects.csv", _prospects(world, 50).to_csv(index=False))
    out = tmp_path / "pred.parquet"
    res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(out))
    error = _one_line_error(res, str(path), "zip archive", "save it as CSV or Parquet")
    assert "latin-1" not in error and "encod" not in error


# --------------------------------------------------------------------------- item 9: bounded log lines

HUGE = "Z" * 1_048_576  # a 1 MB value


def test_a_huge_unseen_category_is_cut_in_the_log_and_the_drift_file(world, tmp_path, caplog):
    cfg = world.config()
    frame = _prospects(world, 30)
    frame.loc[3, "region"] = HUGE
    frame.loc[4, "region"] = "line one\nWARNING forged line"
    src = tmp_path / "huge.parquet"
    frame.to_parquet(src, index=False)
    with caplog.at_level("DEBUG"):
        res = predict_stage.run(cfg, input_path=str(src), output=str(tmp_path / "p.parquet"), progress=False)
    assert res.scored == 30
    unseen = [r.getMessage() for r in caplog.records if "never seen in training" in r.getMessage()]
    assert len(unseen) == 1 and "(1,048,576 characters)" in unseen[0], unseen
    assert max(len(r.getMessage()) for r in caplog.records) < 2_000
    assert "\n" not in unseen[0] and "line one\\nWARNING forged line" in unseen[0]
    drift = pd.read_csv(tmp_path / "p.drift.csv").set_index("feature")
    assert len(drift.loc["cust_region", "unseen_examples"]) < 400


def test_a_huge_unparseable_value_is_cut_in_the_error_line(world, tmp_path):
    frame = _prospects(world, 10)
    frame["created_at"] = frame["created_at"].astype(object)
    frame.loc[2, "created_at"] = HUGE
    src = tmp_path / "huge_date.parquet"
    frame.to_parquet(src, index=False)
    res = _cli("predict", "--config", str(world.config_path), "--input", str(src), "--output", str(tmp_path / "p.csv"))
    error = _one_line_error(res, str(src), "'created_at'", "(1,048,576 characters)")
    assert len(error) < 1_000


def test_clip_bounds_and_escapes():
    from leadtier.models.text import clip

    assert clip("short") == "short" and clip("it's", quote=True) == '"it\'s"'
    assert clip("a" * 100, limit=10) == "aaaaaaaaaa... (100 characters)"
    assert clip("x\ny\r\x00") == "x\\ny\\r\\x00" and clip(12.5) == "12.5"
    with pytest.raises(ValueError, match="positive number of characters. Got 0 instead"):
        clip("x", limit=0)


# --------------------------------------------------------------------------- item 1: one run, one set

# Runs `leadtier predict` with os.replace wrapped: the process SIGKILLs itself just before the n-th
# rename (1: the journal, the commit point; 2 and later: the files of the set, one by one).
KILL_AT_RENAME = r"""
import os, signal, sys
n, argv = int(sys.argv[1]), sys.argv[2:]
real, seen = os.replace, [0]
def replace(src, dst, *a, **k):
    seen[0] += 1
    if seen[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *a, **k)
os.replace = replace
import leadtier.pipelines.cli
leadtier.pipelines.cli.app(args=argv, prog_name="leadtier")
"""

SET_FILES = ["p.parquet", "p.drift.csv", "p.migration.csv", "p.rejects.csv", "p.manifest.json"]


def _snapshot(folder) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in SET_FILES if (folder / n).exists()}


def _without_manifest(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k != "p.manifest.json"}


@pytest.fixture(scope="module")
def two_runs(world, tmp_path_factory):
    """A folder holding the set of a first run (input A), and the set a second run (input B) makes over it."""
    import shutil

    root = tmp_path_factory.mktemp("sets")
    frame = _prospects(world)
    a, b = root / "a.csv", root / "b.csv"
    frame.head(300).to_csv(a, index=False)
    pd.concat([frame.iloc[100:400], frame.iloc[100:102]]).to_csv(b, index=False)  # 2 duplicates: rejects
    base = root / "base"
    res = _cli("predict", "--config", str(world.config_path), "--input", str(a), "--output", str(base / "p.parquet"))
    assert res.exit_code == 0, res.output
    shutil.copytree(base, root / "new")
    out = root / "new" / "p.parquet"
    res = _cli("predict", "--config", str(world.config_path), "--input", str(b), "--output", str(out))
    assert res.exit_code == 0, res.output
    old, new = _snapshot(base), _snapshot(root / "new")
    assert set(old) == set(SET_FILES) - {"p.migration.csv", "p.rejects.csv"} and set(new) == set(SET_FILES)
    assert all(old[k] != new[k] for k in old)  # every file of the set changes
    return root, b, old, new


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_a_kill_between_the_files_of_a_set_leaves_the_old_set_or_the_new_one(world, two_runs, tmp_path, n):
    import shutil
    import subprocess
    import sys

    from leadtier.pipelines.outputs import check_manifest

    root, b, old, new = two_runs
    folder = tmp_path / "out"
    shutil.copytree(root / "base", folder)
    argv = ["predict", "--config", str(world.config_path), "--input", str(b), "--output", str(folder / "p.parquet")]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_RENAME, str(n), *argv],
        env=world.env(),
        cwd=world.work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    if n >= 3:  # killed between two files: what is on disk mixes the runs until the journal is replayed
        assert _without_manifest(_snapshot(folder)) not in (_without_manifest(old), _without_manifest(new))
    check_manifest(folder / "p.parquet", ["drift", "migration", "rejects"])  # what report and the next run do first
    got = _snapshot(folder)
    want = old if n == 1 else new  # before the journal: the old set; after it: rolled forward to the new one
    assert _without_manifest(got) == _without_manifest(want)
    assert json.loads(got["p.manifest.json"])["files"].keys() == _without_manifest(want).keys()
    assert not list(folder.glob(".*.tmp")) and not list(folder.glob(".*.commit.json"))


def test_a_disk_full_while_the_migration_is_written_keeps_the_whole_old_set(world, two_runs, tmp_path, monkeypatch):
    import shutil

    from leadtier.pipelines import outputs

    root, b, old, _ = two_runs
    folder = tmp_path / "out"
    shutil.copytree(root / "base", folder)
    real = outputs.table_writer

    def full_for_migration(frame, path):
        if str(path).endswith(".migration.csv"):

            def write(tmp):
                tmp.write_bytes(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")

            return write
        return real(frame, path)

    monkeypatch.setattr(predict_stage, "table_writer", full_for_migration)
    res = _cli("predict", "--config", str(world.config_path), "--input", str(b), "--output", str(folder / "p.parquet"))
    _one_line_error(res, "p.migration.csv", "no space left")
    assert _snapshot(folder) == old  # predictions, drift and manifest as the last run left them
    assert not list(folder.glob(".*.tmp"))


def test_a_second_run_on_a_set_in_use_is_refused_and_stale_temporaries_go(world, two_runs, tmp_path):
    import shutil

    from leadtier.pipelines.outputs import OutputSet

    root, b, old, new = two_runs
    folder = tmp_path / "out"
    shutil.copytree(root / "base", folder)
    (folder / ".p.parquet.killed.tmp").write_bytes(b"left by a killed run")
    (folder / ".p.drift.csv.killed.tmp").write_bytes(b"left by a killed run")
    argv = ["predict", "--config", str(world.config_path), "--input", str(b), "--output", str(folder / "p.parquet")]
    with OutputSet(folder / "p.parquet", ["drift", "migration", "rejects"]) as running:
        running.open("another run")  # holds the set's lock as a run in progress does
        res = _cli(*argv)
        _one_line_error(res, str(folder / "p.parquet"), "another leadtier run is writing")
        assert _snapshot(folder) == old
    res = _cli(*argv)
    assert res.exit_code == 0, res.output
    assert _without_manifest(_snapshot(folder)) == _without_manifest(new)
    assert not list(folder.glob(".*.tmp"))


def test_report_refuses_a_set_whose_files_come_from_different_runs(world, two_runs, tmp_path):
    import shutil

    root, _, _, _ = two_runs
    folder = tmp_path / "out"
    shutil.copytree(root / "new", folder)
    shutil.copy(root / "base" / "p.drift.csv", folder / "p.drift.csv")  # an earlier run's drift beside new predictions
    res = _cli("report", "--config", str(world.config_path), "--predictions", str(folder / "p.parquet"))
    _one_line_error(res, "p.drift.csv", "is not the file run")
    (folder / "p.drift.csv").unlink()
    res = _cli("report", "--config", str(world.config_path), "--predictions", str(folder / "p.parquet"))
    _one_line_error(res, "p.drift.csv", "is not the file run")


# --------------------------------------------------------------------------- item 8: config SQL reads no other file


@pytest.mark.parametrize("where", ["derived", "exclude"])
def test_config_sql_cannot_read_files_the_config_does_not_name(workdir, where):
    import yaml

    from tests.conftest import DEMO_CONFIG, REPO

    secret = workdir / "elsewhere" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("token\nSECRET-TOKEN-42\n")
    grab = f"(SELECT max(token) FROM read_csv('{secret}'))"
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(workdir / "data")
    raw["demo"]["n_customers"] = 300
    raw["features"]["output"] = str(workdir / "out" / "features.parquet")
    (workdir / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = workdir / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert _cli("demo-data", "--config", str(path)).exit_code == 0
    tx = raw["data"]["tables"]["transactions"]
    if where == "derived":
        tx["derived"] = {"amount": f"CASE WHEN {grab} IS NULL THEN 0 ELSE 1 END"}
    else:
        tx["exclude"] = {"stolen": f"{grab} = 'SECRET-TOKEN-42'"}
    path.write_text(yaml.safe_dump(raw))
    for target in (str(secret), "/etc/passwd"):
        path.write_text(yaml.safe_dump(raw).replace(str(secret), target))
        res = _cli("features", "--config", str(path))
        error = _one_line_error(res, "file system operations are disabled")
        assert target in error and "SECRET-TOKEN" not in res.output
    assert not (workdir / "out" / "features.parquet").exists()
