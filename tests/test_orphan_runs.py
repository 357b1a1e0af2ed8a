"""Interrupted training leaves no debris (issue 20, item 6).

A ``leadtier train`` process is SIGKILLed from outside, once while it tunes and once while it logs its
model; after each kill the next ``train`` marks the run the dead process left ``RUNNING`` as ``FAILED``
and says so on stderr, and the registry holds no version without the metrics, training rows and
evaluation predictions a version needs. The unit tests below check which ``RUNNING`` runs count as
orphans (a run whose process still runs, or runs on another host, is left alone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from leadtier.pipelines import orphans
from mlflow.tracking import MlflowClient

from tests.conftest import DEMO_CONFIG, REPO

EXPERIMENT, MODEL = "leadtier-demo", "leadtier-demo"

# Runs `leadtier train` with one hook: at the chosen moment the process writes a marker file and waits,
# so that the test can SIGKILL it from outside exactly there.
#   tuning:  in the second Optuna trial (the first one is finished and logged)
#   logging: right after the model is logged under the run (MLflow's log_model returned)
HANG_AT = r"""
import sys, time
where, marker, argv = sys.argv[1], sys.argv[2], sys.argv[3:]

def hang():
    open(marker, "w").close()
    time.sleep(900)

if where == "tuning":
    from leadtier.models import tuning
    real, calls = tuning.suggest, [0]
    def suggest(*a, **k):
        calls[0] += 1
        if calls[0] == 2:
            hang()
        return real(*a, **k)
    tuning.suggest = suggest
else:
    import mlflow.pyfunc
    real = mlflow.pyfunc.log_model
    def log_model(*a, **k):
        info = real(*a, **k)
        hang()
        return info
    mlflow.pyfunc.log_model = log_model
import leadtier.pipelines.cli
leadtier.pipelines.cli.app(args=argv, prog_name="leadtier")
"""


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADTIER_"))}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}",
        MLFLOW_DISABLE_TELEMETRY="true",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    """1,500 demo customers and a config that trains in seconds (3 trials of small models)."""
    work = tmp_path_factory.mktemp("orphans")
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(work / "data")
    raw["demo"]["n_customers"] = 1500
    raw["train"].update(min_per_tier=10, n_jobs=1, bootstrap_resamples=0)
    raw["train"]["semi_supervised"]["enabled"] = False
    raw["train"]["tuning"].update(n_trials=3, timeout_s=120, cv_folds=2)
    raw["train"]["tuning"]["search_space"]["n_estimators"].update(low=20, high=40)
    raw["segments"].update(k=3)
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{work / 'mlflow.db'}"
    (work / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    (work / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    demo = subprocess.run(
        [sys.executable, "-m", "leadtier.pipelines.cli", "demo-data", "--config", str(work / "config.yaml")],
        env=_env(work),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    return work


def _train_killed_at(work: Path, where: str) -> str:
    """Start `leadtier train`, SIGKILL it at ``where``; returns what it printed until then."""
    marker, log = work / f"hang-{where}", work / f"train-{where}.log"
    argv = ["train", "--config", str(work / "config.yaml")]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", HANG_AT, where, str(marker), *argv], env=_env(work), cwd=work, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 400
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"train never reached {where}: {log.read_text()[-3000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


def _runs(client: MlflowClient, status: str | None = None) -> list:
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if status is None or r.info.status == status]


def _top_run(client: MlflowClient, status: str):
    (run,) = [r for r in _runs(client, status) if "mlflow.parentRunId" not in r.data.tags]
    return run


def _assert_every_version_complete(client: MlflowClient) -> int:
    """Each registered version: tagged complete, its run ended, with its metrics, training rows and
    evaluation predictions logged. Returns the number of versions."""
    versions = client.search_model_versions(f"name = '{MODEL}'")
    for v in versions:
        run = client.get_run(v.run_id)
        assert v.tags.get(orphans.COMPLETE) == "true", (v.version, v.tags)
        assert run.info.status == "FINISHED", (v.version, run.info.status)
        assert "test_macro_f1" in run.data.metrics, (v.version, sorted(run.data.metrics))
        logged = {a.path for folder in ("inputs", "eval") for a in client.list_artifacts(v.run_id, folder)}
        assert {"inputs/train_keys.parquet", "eval/predictions.parquet"} <= logged, (v.version, logged)
    return len(versions)


def _failed_line(output: str, run_id: str) -> str:
    lines = [ln for ln in output.splitlines() if run_id in ln and "marked FAILED" in ln]
    assert len(lines) == 1, output[-4000:]
    return lines[0]


@pytest.mark.slow
def test_a_train_killed_while_tuning_or_logging_leaves_no_running_run_and_no_incomplete_version(small_world):
    work = small_world
    client = MlflowClient(
        tracking_uri=f"sqlite:///{work / 'mlflow.db'}", registry_uri=f"sqlite:///{work / 'mlflow.db'}"
    )

    _train_killed_at(work, "tuning")
    tuning_run = _top_run(client, "RUNNING")  # the debris this issue is about
    assert tuning_run.data.tags[orphans.PID].isdigit()
    assert not client.search_model_versions(f"name = '{MODEL}'")

    # the next train cleans up after the first one before it is killed itself, while logging its model
    output = _train_killed_at(work, "logging")
    line = _failed_line(output, tuning_run.info.run_id)
    assert "WARNING" in line and "no longer exists" in line
    after = client.get_run(tuning_run.info.run_id)
    assert after.info.status == "FAILED" and "no longer exists" in after.data.tags[orphans.ORPHANED]
    logging_run = _top_run(client, "RUNNING")
    assert logging_run.info.run_id != tuning_run.info.run_id
    assert any(a.path == "model" or a.path.startswith("model") for a in client.list_artifacts(logging_run.info.run_id))
    _assert_every_version_complete(client)  # killed before it registered: no version at all

    done = subprocess.run(
        [sys.executable, "-m", "leadtier.pipelines.cli", "train", "--config", str(work / "config.yaml")],
        env=_env(work),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    _failed_line(done.stderr, logging_run.info.run_id)
    assert tuning_run.info.run_id not in done.stderr  # marked once, not again
    assert client.get_run(logging_run.info.run_id).info.status == "FAILED"
    assert _runs(client, "RUNNING") == []
    assert _assert_every_version_complete(client) == 1
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"


# --------------------------------------------------------------------------- which runs are orphans


@pytest.fixture
def store(tmp_path) -> MlflowClient:
    client = MlflowClient(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"
    )
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "artifacts").as_uri())
    return client


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _run(client: MlflowClient, name: str, tags: dict[str, str], parent: str | None = None) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id
    tags = {**tags, "mlflow.runName": name, **({"mlflow.parentRunId": parent} if parent else {})}
    return client.create_run(exp, run_name=name, tags=tags).info.run_id


def test_only_runs_whose_process_is_gone_are_marked_failed(store, caplog):
    me = orphans.process_tags()
    dead = {**me, orphans.PID: str(_dead_pid())}
    ids = {
        "alive": _run(store, "alive", me),
        "dead": _run(store, "dead", dead),
        "reused-pid": _run(store, "reused-pid", {**me, orphans.PID_START: "another-boot:1"}),
        "other-host": _run(store, "other-host", {**dead, orphans.HOST: "elsewhere.example"}),
        "untagged": _run(store, "untagged", {}),
    }
    ids["trial-of-dead"] = _run(store, "trial-of-dead", {}, parent=ids["dead"])
    ids["trial-of-alive"] = _run(store, "trial-of-alive", {}, parent=ids["alive"])
    ended = _run(store, "ended", me)
    store.set_terminated(ended, "FINISHED")
    ids["trial-of-ended"] = _run(store, "trial-of-ended", {}, parent=ended)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.orphans"):
        failed = orphans.fail_orphans(store, EXPERIMENT)
    gone = {"dead", "reused-pid", "trial-of-dead", "trial-of-ended"}
    assert sorted(failed) == sorted(ids[k] for k in gone)
    for name, run_id in ids.items():
        run = store.get_run(run_id)
        assert run.info.status == ("FAILED" if name in gone else "RUNNING"), name
        assert (orphans.ORPHANED in run.data.tags) == (name in gone), name
        assert (f"MLflow run {run_id} ({name}) was left RUNNING" in caplog.text) == (name in gone), name
    assert "another process" in store.get_run(ids["reused-pid"]).data.tags[orphans.ORPHANED]
    assert "parent run" in store.get_run(ids["trial-of-ended"]).data.tags[orphans.ORPHANED]
    assert orphans.fail_orphans(store, EXPERIMENT) == []  # nothing left to do


def test_a_version_an_orphan_registered_before_it_was_complete_is_tagged_incomplete(store, tmp_path, caplog):
    me = orphans.process_tags()
    dead = _run(store, "dead", {**me, orphans.PID: str(_dead_pid())})
    alive = _run(store, "alive", me)
    store.create_registered_model(MODEL)
    source = (tmp_path / "model").as_uri()
    old = store.create_model_version(MODEL, source, run_id=dead)  # registered first, then killed
    done = store.create_model_version(MODEL, source, run_id=dead, tags={orphans.COMPLETE: "true"})
    other = store.create_model_version(MODEL, source, run_id=alive)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.orphans"):
        assert orphans.fail_orphans(store, EXPERIMENT) == [dead]
    tags = {v.version: store.get_model_version(MODEL, v.version).tags for v in (old, done, other)}
    assert tags[old.version][orphans.COMPLETE] == "false"
    assert tags[done.version][orphans.COMPLETE] == "true"
    assert orphans.COMPLETE not in tags[other.version]
    assert f"model {MODEL} version {old.version} was registered by run {dead}" in caplog.text


def test_process_gone_reads_the_tags():
    me = orphans.process_tags()
    assert me[orphans.PID] == str(os.getpid()) and me[orphans.PID_START]
    assert orphans.process_gone(me) == ""
    assert orphans.process_gone({}) == "" and orphans.process_gone({**me, orphans.PID: "x"}) == ""
    assert orphans.process_gone({**me, orphans.HOST: "elsewhere.example", orphans.PID: str(_dead_pid())}) == ""
    assert "no longer exists" in orphans.process_gone({**me, orphans.PID: str(_dead_pid())})
    assert "another process" in orphans.process_gone({**me, orphans.PID_START: "x:1"})
