"""`leadtier spark-predict` keeps the promise of `leadtier predict` on its own output set: the predictions
folder, drift, migration and rejects files and the manifest are one set, under one lock. A run killed
while it stages its files, or between the renames of its commit, leaves the old set or (once the next
run or `report` opens the set) the new one, and none of its temporaries.

Shares the tiny trained world of ``tests/test_faults.py``. Skipped with a reason when pyspark or Java
is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'leadtier[spark]'")
if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java (no java on PATH and no JAVA_HOME)", allow_module_level=True)

from leadtier.pipelines import spark as sp  # noqa: E402
from leadtier.pipelines.outputs import OutputError, OutputSet, check_manifest  # noqa: E402
from leadtier.pipelines.predict import SIDE_KINDS  # noqa: E402

from tests.test_faults import _prospects, build_world, world_env  # noqa: E402

# `leadtier spark-predict` (the CLI app itself) with os.replace wrapped: the driver SIGKILLs itself at the
# first rename onto a file named argv[1] ("p": the predictions folder, "p.migration.csv", ...), or, for
# "staging", at the first rename of a Spark part file into a staged side file.
KILL_AT = r"""
import os, signal, sys
from pathlib import Path
where, argv = sys.argv[1], sys.argv[2:]
real = os.replace
def replace(src, dst, *args, **kwargs):
    if Path(dst).name == where or (where == "staging" and ".parts-" in str(src)):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
import leadtier.pipelines.cli
leadtier.pipelines.cli.app(args=argv, prog_name="leadtier")
"""

SET = ["p", "p.drift.csv", "p.manifest.json", "p.migration.csv", "p.rejects.csv"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    with world_env(w.work):
        yield w


@pytest.fixture(scope="module")
def spark():
    session = sp.spark_session("local[1]", "leadtier-set-tests", {"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


def _tree(folder: Path) -> dict[str, bytes]:
    """Every visible file of the set under ``folder`` (the predictions folder's part files too) and its bytes."""
    out = {}
    for name in SET:
        top = folder / name
        for p in sorted(top.rglob("*")) if top.is_dir() else [top] if top.exists() else []:
            if p.is_file():
                out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def _predictions(folder: Path) -> pd.DataFrame:
    frame = pd.read_parquet(folder / "p")
    frame["tier"] = frame["tier"].astype(str)
    return frame.sort_values("customer_id").reset_index(drop=True)[sorted(frame.columns)]


@pytest.fixture(scope="module")
def two_sets(world, spark, tmp_path_factory):
    """The set of a first Spark run (with rejects) in ``base``, and the set a second run makes over a copy
    of it in ``new`` (no rejects, a migration file); the second run's input."""
    cfg = world.config()
    root = tmp_path_factory.mktemp("spark_sets")
    frame = _prospects(world)
    first, second = frame.iloc[:150], frame.iloc[50:250]
    pd.concat([first, first.head(2)]).to_csv(root / "first.csv", index=False)  # 2 duplicates: rejects
    second.to_csv(root / "second.csv", index=False)
    sp.predict_spark(spark, cfg, input_path=str(root / "first.csv"), output=str(root / "base" / "p"))
    shutil.copytree(root / "base", root / "new")
    res = sp.predict_spark(spark, cfg, input_path=str(root / "second.csv"), output=str(root / "new" / "p"))
    assert (res.scored, res.rejected) == (200, 0)
    old, new = _tree(root / "base"), _tree(root / "new")
    assert {"p.rejects.csv", "p.drift.csv", "p.manifest.json"} <= set(old) and "p.migration.csv" not in old
    assert "p.migration.csv" in new and "p.rejects.csv" not in new and new["p.drift.csv"] != old["p.drift.csv"]
    return root, old, new


@pytest.mark.parametrize("where", ["staging", "p", "p.migration.csv"])
def test_a_killed_spark_run_leaves_the_old_set_or_the_new_one_and_no_temporaries(world, two_sets, tmp_path, where):
    """Killed while a side file is staged: the old set, byte for byte. Killed in the commit, once the
    predictions folder was moved aside ("p") or between two files ("p.migration.csv"): the files on disk
    mix the runs until the set is opened again, which finishes the commit: then the new set, whole."""
    root, old, new = two_sets
    folder = tmp_path / "out"
    shutil.copytree(root / "base", folder)
    argv = ["spark-predict", "--config", str(world.config_path), "--master", "local[1]"]
    argv += ["--input", str(root / "second.csv"), "--output", str(folder / "p")]
    with open(tmp_path / "run.log", "wb") as log:  # a file, not a pipe: the JVM may outlive the driver a moment
        proc = subprocess.run(
            [sys.executable, "-c", KILL_AT, where, *argv], env=world.env(), cwd=world.work, stdout=log, stderr=log
        )
    assert proc.returncode == -9, (tmp_path / "run.log").read_text(errors="replace")[-3000:]
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".p.lock"]
    assert hidden, "the kill left no temporary: it did not land while the run was writing"
    if where == "staging":
        assert _tree(folder) == old
    else:
        assert _tree(folder) not in (old, new)  # a mix until the journal is replayed
        assert (folder / "p").exists() == (where != "p")

    manifest = check_manifest(folder / "p", SIDE_KINDS)  # what report and the next run do first
    assert sorted(p.name for p in folder.iterdir()) == sorted([".p.lock", "p.manifest.json", *manifest["files"]])
    assert {f["run_id"] for f in manifest["files"].values()} == {manifest["run_id"]}
    if where == "staging":
        assert _tree(folder) == old
        return
    got = _tree(folder)
    assert sorted(manifest["files"]) == ["p", "p.drift.csv", "p.migration.csv"] and manifest["status"] == "complete"
    for name in ("p.drift.csv", "p.migration.csv"):
        assert got[name] == new[name], name
    pd.testing.assert_frame_equal(_predictions(folder), _predictions(root / "new"))


def test_a_spark_run_on_a_set_in_use_is_refused_and_leaves_it_alone(world, spark, two_sets, tmp_path):
    root, old, _ = two_sets
    folder = tmp_path / "out"
    shutil.copytree(root / "base", folder)
    with OutputSet(folder / "p", SIDE_KINDS) as running:
        running.open("another run")  # holds the set's lock as a run in progress does
        with pytest.raises(OutputError, match=f"another leadtier run is writing {folder / 'p'}"):
            sp.predict_spark(spark, world.config(), input_path=str(root / "second.csv"), output=str(folder / "p"))
        assert _tree(folder) == old
    assert sorted(p.name for p in folder.iterdir()) == sorted({".p.lock", *(k.split("/")[0] for k in old)})
