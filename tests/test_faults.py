"""Fault injection: what predict and the model loader do when things go wrong.

One tiny demo world (1,500 customers whose personal columns carry planted values, one tuning
trial) is trained once per test session by :func:`build_world` and shared with
``tests/test_properties.py``. Cases, one test each:

1. SIGKILL at random moments of ``leadtier predict``: never a partial output file.
2. Model URIs that do not resolve or point at a corrupted model: exit 2, one line naming the URI.
3. Personal columns never reach MLflow, predictions, rejects, the report or the logs.
4. Every input row is scored or rejected with a reason; an unparseable date is one clear error.
5. ``predict.max_reject_share``: most rows rejected -> exit 2, no predictions file, not even briefly.
6. A header-only prospects file and a one-customer file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from leadtier.pipelines import outputs as outputs_stage
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines import report as report_stage
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import Config, load_config
from leadtier.pipelines.outputs import check_manifest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO

pytestmark = pytest.mark.slow

MODEL_NAME = "leadtier-demo"


# --------------------------------------------------------------------------- the shared world


def planted_name(i: int) -> str:
    return f"PLANTED-NAME-7f3a-{i:05d}"


def planted_email(i: int) -> str:
    return f"planted.7f3a+{i}@example.com"


def planted_phone(i: int) -> str:
    return f"+00-PLANTED-7f3a-{i:05d}"


NEEDLE = b"planted"  # every planted value contains it (case-insensitively); nothing else does


@dataclass
class World:
    work: Path
    config_path: Path
    run_id: str
    version: str

    @property
    def train_output(self) -> str:
        """Everything training logged or printed (kept out of the dataclass: too long for reprs)."""
        return _TRAIN_OUTPUT[self.run_id]

    def config(self) -> Config:
        """A fresh Config (tests may change it)."""
        return load_config(self.config_path)

    @property
    def prospects(self) -> Path:
        return self.work / "data" / "prospects.csv"

    def env(self) -> dict[str, str]:
        """Environment for a subprocess: this world's MLflow store, one thread per library."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADTIER_"))}
        env.update(
            MLFLOW_TRACKING_URI=_tracking_uri(self.work),
            MLFLOW_DISABLE_TELEMETRY="true",
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        return env


_WORLDS: dict[str, World] = {}
_TRAIN_OUTPUT: dict[str, str] = {}


def _tracking_uri(work: Path) -> str:
    return f"sqlite:///{work / 'mlflow.db'}"


@contextlib.contextmanager
def world_env(work: Path):
    """cwd, MLflow store and data root of the world; restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("MLFLOW_TRACKING_URI", _tracking_uri(work))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.delenv("LEADTIER_DATA_ROOT", raising=False)
        yield


def _write_config(work: Path) -> Path:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(work / "data")
    raw["demo"]["n_customers"] = 1500
    raw["features"]["output"] = str(work / "out" / "features.parquet")
    tuning = raw["train"]["tuning"]
    tuning.update(n_trials=1, timeout_s=60, cv_folds=2)
    tuning["search_space"]["n_estimators"].update(low=20, high=60)
    raw["train"]["n_jobs"] = 1
    raw["segments"]["k_range"] = [3, 4]
    raw["predict"]["output"] = str(work / "out" / "predictions.parquet")
    raw["report"]["output"] = str(work / "out" / "report.html")
    raw["mlflow"]["tracking_uri"] = _tracking_uri(work)
    (work / "schemes.yaml").write_text((REPO / "configs" / "schemes.yaml").read_text())
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return path


def _plant_personal_data(cfg: Config) -> None:
    """Recognisable values in every personal column of every customer and prospect row."""
    assert set(cfg.data.tables.customers.personal) == {"contact_name", "email", "phone"}
    for path in (cfg.data_path("customers.parquet"), cfg.data_path(cfg.demo.prospects_file)):
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        n = range(len(frame))
        frame["contact_name"] = [planted_name(i) for i in n]
        frame["email"] = [planted_email(i) for i in n]
        frame["phone"] = [planted_phone(i) for i in n]
        if path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)


def _train(cfg: Config, config_path: Path):
    """Train once, capturing every log record and everything printed."""
    from leadtier.pipelines import train as train_stage
    from threadpoolctl import threadpool_limits

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root, ml = logging.getLogger(), logging.getLogger("mlflow")
    ours = [logging.getLogger(name) for name in ("leadtier",)]
    old_level, old_ours = root.level, [lg.level for lg in ours]
    root.addHandler(handler)
    ml.addHandler(handler)
    root.setLevel(logging.INFO)  # every library's INFO, and DEBUG from leadtier itself
    for lg in ours:
        lg.setLevel(logging.DEBUG)
    try:
        # K-means and BLAS: one thread each (2 shared cores); K-means is 50x slower oversubscribed
        with threadpool_limits(1), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            res = train_stage.run(cfg, config_path)
            print(train_stage.summary_text(cfg, res))
    finally:
        root.removeHandler(handler)
        ml.removeHandler(handler)
        root.setLevel(old_level)
        for lg, level in zip(ours, old_ours, strict=True):
            lg.setLevel(level)
    return res, buf.getvalue()


def build_world(tmp_path_factory) -> World:
    """Demo data with planted personal data, one tiny registered champion. Built once per session."""
    if "world" not in _WORLDS:
        from leadtier.pipelines.demo_data import write_demo

        work = tmp_path_factory.mktemp("leadtier_world")
        config_path = _write_config(work)
        with world_env(work):
            cfg = load_config(config_path)
            write_demo(cfg)
            _plant_personal_data(cfg)
            res, output = _train(cfg, config_path)
        assert res.alias == "champion", res.reasons
        _TRAIN_OUTPUT[res.run_id] = output
        _WORLDS["world"] = World(work=work, config_path=config_path, run_id=res.run_id, version=res.model_version)
    return _WORLDS["world"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = build_world(tmp_path_factory)
    with world_env(w.work):
        yield w


runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args))


def _one_line_error(res, *needles: str) -> str:
    """Exit 2, no traceback, and the last thing on stderr is one ``error:`` line holding ``needles``."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _prospects(world: World, n: int | None = None) -> pd.DataFrame:
    frame = pd.read_csv(world.prospects, dtype={"customer_id": str})
    return frame if n is None else frame.head(n).copy()


# --------------------------------------------------------------------------- 1. SIGKILL during predict

# A fork server: imports the CLI and its heavy dependencies once, then forks one child per job that
# runs exactly what `leadtier ...` runs (leadtier.pipelines.cli.app). Children are reaped only when the test
# says so, so a pid the test signals can never belong to another process.
FORK_SERVER = r"""
import json, os, sys
import lightgbm, mlflow.pyfunc, sklearn.calibration, sklearn.cluster  # noqa: F401
import mlflow.store.model_registry.sqlalchemy_store, mlflow.store.tracking.sqlalchemy_store  # noqa: F401
import leadtier.pipelines.cli, leadtier.pipelines.mlflow_model  # noqa: F401
import leadtier.pipelines.predict, leadtier.pipelines.tracking  # noqa: F401
try:
    from mlflow.utils.requirements_utils import _init_packages_to_modules_map
    _init_packages_to_modules_map()  # what every model load pays for otherwise
except (ImportError, AttributeError):  # a private MLflow helper: only a warm-up, loads work without it
    pass
print("READY", flush=True)
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            nul = os.open(os.devnull, os.O_RDONLY)
            os.dup2(nul, 0)
            leadtier.pipelines.cli.app(args=job["argv"], prog_name="leadtier")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print("PID", pid, flush=True)
    sys.stdin.readline()  # "reap"
    _, status = os.waitpid(pid, 0)
    print("EXIT", os.waitstatus_to_exitcode(status), flush=True)
"""


class ForkServer:
    def __init__(self, env: dict[str, str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=cwd,
            text=True,
        )
        self.child: int | None = None

    def _read(self, word: str) -> str:
        line = self.proc.stdout.readline()
        assert line.startswith(word), f"fork server said {line!r}, expected {word}"
        return line.split(maxsplit=1)[1].strip() if " " in line else ""

    def ready(self) -> None:
        self._read("READY")

    def start(self, argv: list[str], log: Path) -> int:
        self.proc.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        self.child = int(self._read("PID"))
        return self.child

    def reap(self) -> int:
        """Wait for the child (already dead or still running) and return its exit code."""
        self.proc.stdin.write("reap\n")
        self.proc.stdin.flush()
        code = int(self._read("EXIT"))
        self.child = None
        return code

    def close(self) -> None:
        if self.child is not None:  # a failed test left it running: not reaped, so the pid is ours
            os.kill(self.child, signal.SIGKILL)
            self.reap()
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _temps(out: Path) -> set[Path]:
    return set(out.parent.glob(f".{out.name}.*.tmp"))


def _big_prospects(world: World, path: Path, n: int) -> Path:
    base = _prospects(world)
    reps = -(-n // len(base))
    parts = []
    for k in range(reps):
        part = base.copy()
        part["customer_id"] = part["customer_id"] + f"-r{k:02d}"
        parts.append(part)
    big = pd.concat(parts, ignore_index=True).head(n)
    big = pd.concat([big, big.head(2)], ignore_index=True)  # two duplicate ids: a rejects file too
    big.to_csv(path, index=False)
    return path


def test_sigkill_during_predict_never_leaves_a_partial_output(world, tmp_path):
    data = _big_prospects(world, tmp_path / "big.csv", 20_000)
    out = tmp_path / "pred.parquet"

    def argv(target: Path) -> list[str]:
        return [
            "predict",
            "--config",
            str(world.config_path),
            "--input",
            str(data),
            "--output",
            str(target),
            "--batch-size",
            "2000",
        ]

    server = ForkServer(world.env(), world.work)  # imports while the reference run below works
    try:
        # reference: the real entry point in a fresh interpreter
        with open(tmp_path / "ref.out", "w") as so, open(tmp_path / "ref.err", "w") as se:
            ref_run = subprocess.Popen(
                [sys.executable, "-m", "leadtier.pipelines.cli", *argv(out)],
                env=world.env(),
                cwd=world.work,
                stdout=so,
                stderr=se,
            )
            first_temp = None
            while ref_run.poll() is None:
                if first_temp is None and _temps(out):
                    first_temp = time.monotonic()
                time.sleep(0.01)
        done = time.monotonic()
        stdout, stderr = (tmp_path / "ref.out").read_text(), (tmp_path / "ref.err").read_text()
        assert ref_run.returncode == 0, stderr[-3000:]
        assert "scored 20000 of 20002 input rows" in stdout and "reconciled: 20002 = 20000 scored + 2" in stdout
        assert first_temp is not None, "never saw the temporary output file"
        writing_s = done - first_temp
        reference = out.read_bytes()
        rejects = out.with_name("pred.rejects.csv")
        reference_rejects = rejects.read_bytes()
        assert pq.read_metadata(out).num_rows == 20_000
        assert not _temps(out)

        server.ready()
        rng = random.Random(20260630)
        killed_mid_write = 0
        for i in range(5):
            # even kills hit the reference path (must stay byte-identical), odd ones a new path
            target = out if i % 2 == 0 else tmp_path / f"fresh{i}.parquet"
            target_rejects = target.with_name(target.stem + ".rejects.csv")
            before = _temps(target)
            pid = server.start(argv(target), tmp_path / f"kill{i}.log")
            deadline = time.monotonic() + 300
            if i == 0:  # anywhere, setup included
                time.sleep(rng.uniform(0.0, 3.0))
            else:  # while the output is being written; the last one around the rename and the rejects
                while not (_temps(target) - before) and time.monotonic() < deadline:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.8) * writing_s if i < 4 else rng.uniform(0.9, 1.2) * writing_s)
            mid_write = bool(_temps(target) - before)
            os.kill(pid, signal.SIGKILL)  # unreaped child of the server: the pid cannot be reused
            code = server.reap()
            log = (tmp_path / f"kill{i}.log").read_text(errors="replace")
            assert code in (-signal.SIGKILL, 0), (code, log[-3000:])
            killed_mid_write += code == -signal.SIGKILL and mid_write
            for path, complete in ((target, reference), (target_rejects, reference_rejects)):
                assert not path.exists() or path.read_bytes() == complete, (
                    f"kill {i} (exit {code}) left {path.name} that is not the previous complete file"
                )
            if target == out:
                assert out.read_bytes() == reference
            # leftovers are hidden temporary files, never the output name
            for tmp in _temps(target):
                assert tmp.name.startswith(".") and tmp.name.endswith(".tmp") and tmp != target
            # and every visible file (side files such as drift or migration too) is complete
            for f in tmp_path.glob("[!.]*.parquet"):
                pq.read_metadata(f)
            for f in tmp_path.glob("[!.]*.csv"):
                pd.read_csv(f)
        assert killed_mid_write >= 2, "the kills never landed while the output was being written"

        # a full run after all that: byte-identical predictions (determinism, leftovers ignored)
        server.start(argv(out), tmp_path / "final.log")
        code = server.reap()
        assert code == 0, (tmp_path / "final.log").read_text(errors="replace")[-3000:]
        assert out.read_bytes() == reference
        assert rejects.read_bytes() == reference_rejects
    finally:
        server.close()


# --------------------------------------------------------------------------- 2. model loading


@pytest.fixture(scope="module")
def model_copy(world, tmp_path_factory) -> Path:
    """A local copy of the registered model's directory."""
    dst = tmp_path_factory.mktemp("model_copy")
    mlflow.set_tracking_uri(_tracking_uri(world.work))
    mlflow.set_registry_uri(_tracking_uri(world.work))  # an earlier test may have set another registry
    path = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{MODEL_NAME}/{world.version}", dst_path=str(dst))
    )
    assert (path / "MLmodel").is_file() and (path / "artifacts" / "scorer.joblib").is_file()
    return path


def _delete_scorer(model: Path) -> None:
    (model / "artifacts" / "scorer.joblib").unlink()


def _truncate_scorer(model: Path) -> None:
    path = model / "artifacts" / "scorer.joblib"
    path.write_bytes(path.read_bytes()[:200])


def _truncate_python_model(model: Path) -> None:
    path = model / "python_model.pkl"
    path.write_bytes(path.read_bytes()[:40])


def _garble_mlmodel(model: Path) -> None:
    (model / "MLmodel").write_text("flavors: {python_function: [unclosed\n")


@pytest.mark.parametrize(
    "uri, corrupt",
    [
        (f"models:/{MODEL_NAME}@nonexistent_alias", None),
        (f"models:/{MODEL_NAME}/999", None),
        ("runs:/0123456789abcdef0123456789abcdef/model", None),
        ("local", _delete_scorer),
        ("local", _truncate_scorer),
        ("local", _truncate_python_model),
        ("local", _garble_mlmodel),
    ],
    ids=[
        "unknown-alias",
        "unknown-version",
        "unknown-run",
        "scorer-deleted",
        "scorer-truncated",
        "python-model-truncated",
        "mlmodel-garbled",
    ],
)
def test_unloadable_model_is_one_clear_error(world, model_copy, tmp_path, uri, corrupt):
    if corrupt is not None:
        broken = tmp_path / "broken_model"
        shutil.copytree(model_copy, broken)
        corrupt(broken)
        uri = str(broken)
    out = tmp_path / "pred.parquet"
    res = _cli("predict", "--config", str(world.config_path), "--model", uri, "--output", str(out))
    line = _one_line_error(res, uri)
    assert "cannot load model" in line or "cannot resolve model" in line
    assert not out.exists() and not out.with_name("pred.rejects.csv").exists()


# --------------------------------------------------------------------------- 3. personal data


def _artifact_roots(world: World) -> list[Path]:
    """Every local folder where this store put artifacts: runs (nested trials too) and logged models."""
    client = MlflowClient(tracking_uri=_tracking_uri(world.work), registry_uri=_tracking_uri(world.work))
    exp = client.get_experiment_by_name(world.config().mlflow.experiment)
    uris = [r.info.artifact_uri for r in client.search_runs([exp.experiment_id], max_results=1000)]
    with contextlib.suppress(AttributeError):  # MLflow 3: models live beside the runs
        uris += [m.artifact_location for m in client.search_logged_models([exp.experiment_id])]
    roots = []
    for uri in uris:
        parsed = urlparse(uri)
        assert parsed.scheme in ("", "file"), f"unexpected artifact store {uri}"
        roots.append(Path(unquote(parsed.path)))
    return roots


def _text_of(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".parquet":  # compressed pages: search the decoded values too
        table = pq.read_table(path)
        data += table.to_pandas().astype(str).to_csv().encode() + str(table.schema).encode()
    return data


def _files_with_needle(paths: list[Path]) -> tuple[list[str], int]:
    hits, n = [], 0
    for top in paths:
        for f in [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file()):
            n += 1
            if NEEDLE in _text_of(f).lower():
                hits.append(str(f))
    return hits, n


def test_personal_columns_never_leave_the_input(world, tmp_path, caplog, capsys):
    cfg = world.config()
    # the planted values really are in the inputs the model was trained on and scores
    customers = pd.read_parquet(cfg.data_path("customers.parquet"))
    assert customers["contact_name"].str.startswith("PLANTED-NAME-7f3a").all()
    assert NEEDLE in world.prospects.read_bytes().lower()

    caplog.set_level(logging.DEBUG)
    cfg.predict.output = str(tmp_path / "pred.parquet")
    cfg.report.output = str(tmp_path / "report.html")
    prospects = _prospects(world)
    dup = pd.concat([prospects, prospects.head(3)], ignore_index=True)  # a rejects file as well
    dup.to_csv(tmp_path / "prospects.csv", index=False)
    res = predict_stage.run(cfg, input_path=str(tmp_path / "prospects.csv"), progress=True)
    assert res.scored == len(prospects) and res.rejected == 3 and res.rejects.is_file()
    report = report_stage.run(cfg)
    assert report.is_file()

    roots = [r for r in _artifact_roots(world) if r.is_dir()]  # runs without artifacts have none
    run_root = (
        MlflowClient(tracking_uri=_tracking_uri(world.work), registry_uri=_tracking_uri(world.work))
        .get_run(world.run_id)
        .info.artifact_uri
    )
    assert Path(unquote(urlparse(run_root).path)) in roots, (run_root, roots)
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{MODEL_NAME}/{world.version}", dst_path=str(tmp_path / "registered")
        )
    )
    places = [*roots, world.work / "mlflow.db", model_dir, res.output, res.rejects, report]
    places += [world.work / d for d in ("mlruns", "mlartifacts") if (world.work / d).is_dir()]
    hits, n_files = _files_with_needle(places)
    assert n_files > 20, n_files  # config, metrics files, plots, the model, ...: really searched
    assert hits == [], f"personal data found in {hits}"

    captured = capsys.readouterr()
    for name, text in (
        ("training output", world.train_output),
        ("logs", caplog.text),
        ("stdout", captured.out),
        ("stderr", captured.err),
    ):
        assert "planted" not in text.lower(), f"personal data in the {name}"
    assert world.train_output and caplog.text  # there was something to search


# --------------------------------------------------------------------------- 4. rows reconcile


def test_every_row_is_scored_or_rejected_with_a_reason(world, tmp_path):
    cfg = world.config()
    cfg.predict.max_reject_share = 0.5  # 4 of 40 rejected is the point here
    frame = _prospects(world, 40)
    ids = frame["customer_id"].tolist()
    frame["customer_id"] = frame["customer_id"].astype(object)
    frame.loc[0, "customer_id"] = None  # missing id
    frame.loc[[1, 2], "customer_id"] = ids[3]  # two more rows of the customer in row 3
    frame.loc[4, "created_at"] = "2027-03-01"  # created after the as-of date
    frame.loc[5, "customer_id"] = "客户-0005-Ünïcødé"
    frame.loc[5, ["lead_source", "industry", "region"]] = ["Empfehlung 👍", "Fabricación · 製造業", "Île-de-France"]
    frame.loc[6, ["industry", "lead_source"]] = ["", "   "]  # empty attributes
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)

    res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / "pred.parquet"), progress=False)
    assert res.input_rows == 40
    assert res.scored + res.rejected + res.skipped == res.input_rows
    assert (res.scored, res.rejected, res.skipped) == (36, 3, 1)
    assert res.reasons == {
        "missing customer_id": 1,
        "duplicate customer_id: only the first occurrence is read": 2,
        "skipped: created on or after the as-of date": 1,
    }
    rejects = pd.read_csv(res.rejects, dtype={"customer_id": str})
    assert len(rejects) == res.rejected + res.skipped and rejects["reason"].notna().all()
    # 1-based input rows: the missing id, the 2nd and 3rd rows of one customer, the future customer
    assert sorted(rejects["input_row"]) == [1, 3, 4, 5]
    out = pd.read_parquet(res.output)
    expected = set(frame["customer_id"].dropna()) - {ids[4]}
    assert len(out) == res.scored and set(out["customer_id"]) == expected
    assert "客户-0005-Ünïcødé" in set(out["customer_id"])
    assert out["tier"].isin(cfg.scheme.codes).all()
    assert res.summary().splitlines()[-1].endswith("(ok)")


def test_an_unparseable_created_at_rejects_its_row_and_a_wrong_date_format_stops_the_run(world, tmp_path, caplog):
    cfg = world.config()
    frame = _prospects(world, 30)
    frame.loc[7, "created_at"] = "31/02/2026"
    path = tmp_path / "bad_dates.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "pred.parquet"
    with caplog.at_level("WARNING"):
        res = predict_stage.run(cfg, input_path=str(path), output=str(out), progress=False)
    assert (res.scored, res.rejected) == (29, 1)
    rejects = pd.read_csv(res.rejects, dtype={"customer_id": str})
    assert rejects.values.tolist() == [[8, frame["customer_id"][7], "column 'created_at' does not parse as a date"]]
    warned = [r.getMessage() for r in caplog.records if "'31/02/2026'" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0] and "'created_at'" in warned[0], warned
    # every date written day first: the column is read wrong, not the rows; the run stops and says what to set
    frame = _prospects(world, 30)
    frame["created_at"] = pd.to_datetime(frame["created_at"]).dt.strftime("%d/%m/%Y")
    frame.to_csv(path, index=False)
    again = tmp_path / "x.parquet"
    res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(again))
    _one_line_error(res, str(path), "'created_at'", "30 value(s)", "date_format", "max_reject_share")
    assert not again.exists() and not again.with_name("x.rejects.csv").exists()


# --------------------------------------------------------------------------- 5. max_reject_share


def test_too_many_rejects_fail_loudly_and_write_no_predictions(world, tmp_path, monkeypatch):
    frame = _prospects(world, 100)
    frame.loc[:79, "customer_id"] = None  # 80 % without an id
    frame.loc[99, "created_at"] = "2099-01-01"  # not created yet: skipped, no reject
    path = tmp_path / "mostly_without_id.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "pred.parquet"
    written: list[Path] = []
    real = outputs_stage.stage  # every file of an output set is staged through it

    def spy(target, write, *args, **kwargs):
        written.append(Path(target))
        return real(target, write, *args, **kwargs)

    monkeypatch.setattr(outputs_stage, "stage", spy)
    res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(out))
    rejects = out.with_name("pred.rejects.csv")
    _one_line_error(res, "80 of 100", "80.0%", "max_reject_share", "5.0%", str(rejects))
    said = " ".join(res.output.split())
    assert "Reasons: 80 missing customer_id (not counted, skipped: 1 created on or after the as-of date)." in said
    assert not out.exists()
    assert out not in written, "the predictions were written (then deleted) although the run failed"
    assert rejects in written  # the spy sees what is staged
    assert len(pd.read_csv(rejects)) == 81  # the rejects file the message points at, the skipped row too

    out.write_bytes(b"an earlier run's predictions")  # a failed run leaves the last good output alone
    res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(out))
    _one_line_error(res, "80 of 100", "max_reject_share")
    assert out.read_bytes() == b"an earlier run's predictions"


def test_a_stopped_run_after_one_with_rejects_leaves_a_set_the_next_stages_accept(world, tmp_path):
    out, rejects = tmp_path / "pred.parquet", tmp_path / "pred.rejects.csv"
    good, bad = _prospects(world, 100), _prospects(world, 100)
    good.loc[:1, "customer_id"] = None  # 2 % rejected: scored, with a rejects file
    bad.loc[:79, "customer_id"] = None  # 80 %: stopped
    for name, frame in (("good.csv", good), ("bad.csv", bad)):
        frame.to_csv(tmp_path / name, index=False)
    res = _cli(
        "predict", "--config", str(world.config_path), "--input", str(tmp_path / "good.csv"), "--output", str(out)
    )
    assert res.exit_code == 0 and len(pd.read_csv(rejects)) == 2, res.output
    scored = out.read_bytes()
    res = _cli(
        "predict", "--config", str(world.config_path), "--input", str(tmp_path / "bad.csv"), "--output", str(out)
    )
    _one_line_error(res, "80 of 100", "max_reject_share")
    assert out.read_bytes() == scored and len(pd.read_csv(rejects)) == 80  # the rejects its message names
    manifest = check_manifest(out, predict_stage.SIDE_KINDS)  # what worklist and report check first
    assert manifest["status"] == "stopped by predict.max_reject_share"
    assert manifest["files"]["pred.rejects.csv"]["run_id"] == manifest["run_id"]
    assert manifest["files"]["pred.parquet"]["run_id"] != manifest["run_id"]
    assert manifest["input"] == str((tmp_path / "good.csv").resolve())  # the input of the predictions it kept


# --------------------------------------------------------------------------- 6. tiny inputs


def test_header_only_prospects_are_an_error_that_leaves_the_earlier_outputs(world, tmp_path):
    from leadtier.pipelines.sources import InputError

    cfg = world.config()
    out = tmp_path / "pred.parquet"
    full = tmp_path / "some.csv"
    _prospects(world, 20).to_csv(full, index=False)
    predict_stage.run(cfg, input_path=str(full), output=str(out), progress=False)
    predict_stage.run(cfg, input_path=str(full), output=str(out), progress=False)  # a second run writes a migration
    before = {p.name: p.read_bytes() for p in tmp_path.glob("pred*")}
    assert "pred.migration.csv" in before
    for name, write in (("empty.csv", pd.DataFrame.to_csv), ("empty.parquet", pd.DataFrame.to_parquet)):
        write(_prospects(world, 0), tmp_path / name, index=False)  # a half-written export: a header only
        with pytest.raises(InputError, match=rf"{name}: the scoring input has no rows"):
            predict_stage.run(cfg, input_path=str(tmp_path / name), output=str(out), progress=False)
        assert {p.name: p.read_bytes() for p in tmp_path.glob("pred*")} == before


def test_a_run_that_skips_every_row_writes_an_empty_file_with_every_column(world, tmp_path):
    cfg = world.config()
    later = tmp_path / "later.csv"
    _prospects(world, 5).assign(created_at="2099-01-01").to_csv(later, index=False)
    full = predict_stage.run(
        cfg, input_path=str(world.prospects), output=str(tmp_path / "full.parquet"), progress=False
    )
    for name in ("pred.parquet", "pred.csv"):
        out = tmp_path / name
        res = predict_stage.run(cfg, input_path=str(later), output=str(out), progress=False)
        assert (res.input_rows, res.scored, res.rejected, res.skipped) == (5, 0, 0, 5)
        frame = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
        assert len(frame) == 0 and list(frame.columns) == list(pd.read_parquet(full.output).columns)
        assert res.summary().splitlines()[-1] == "reconciled: 5 = 0 scored + 0 rejected + 5 skipped (ok)"


def test_unreadable_csv_files_are_named_with_the_cause(world, tmp_path):
    frame = _prospects(world, 10)
    out = tmp_path / "pred.parquet"
    cases = {}
    empty = cases["empty"] = tmp_path / "zero.csv"
    empty.write_bytes(b"")
    ragged = cases["ragged"] = tmp_path / "ragged.csv"
    lines = frame.to_csv(index=False).splitlines()
    lines[4] = lines[4] + ",surplus"  # the 5th line of the file has one field too many
    ragged.write_text("\n".join(lines) + "\n")
    workbook = cases["workbook"] = tmp_path / "prospects.csv"
    workbook.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)  # a zip (xlsx) saved under a .csv name
    expected = {
        "empty": "the file is empty (0 bytes)",
        "ragged": f"cannot split the rows into columns: line 5 has {len(frame.columns) + 1} fields, "
        f"the header has {len(frame.columns)}",
        "workbook": "save it as CSV or Parquet",
    }
    for name, path in cases.items():
        res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(out))
        _one_line_error(res, str(path), expected[name])
        assert not out.exists()


def test_latin1_csv_is_read_with_the_configured_encoding(world, tmp_path):
    frame = _prospects(world, 10)
    frame.loc[2, "region"] = "Île-de-France"
    frame.loc[2, "industry"] = "Planted Private Name"  # on the line DuckDB quotes: must not reach the message
    path = tmp_path / "latin1.csv"
    path.write_bytes(frame.to_csv(index=False).encode("latin-1"))
    out = tmp_path / "pred.parquet"
    res = _cli("predict", "--config", str(world.config_path), "--input", str(path), "--output", str(out))
    error = _one_line_error(res, str(path), "not utf-8 encoded", "Set encoding: latin-1")
    assert "Planted" not in res.output and "encoded.." not in error
    cfg = world.config()
    for fs in cfg.data.tables.customers.files:
        fs.encoding = "latin-1"
    res = predict_stage.run(cfg, input_path=str(path), output=str(out), progress=False)
    assert (res.scored, res.rejected) == (10, 0)


def test_blank_text_in_a_numeric_parquet_column_is_missing_as_in_csv(world, tmp_path):
    cfg = world.config()
    frame = _prospects(world, 10)
    frame["annual_revenue_musd"] = frame["annual_revenue_musd"].map(lambda v: f"{v}")
    frame.loc[[1, 3], "annual_revenue_musd"] = ["", "  "]
    outs = {}
    for fmt in ("csv", "parquet"):
        path = tmp_path / f"p.{fmt}"
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, index=False)
        res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / f"{fmt}.parquet"), progress=False)
        assert (res.scored, res.rejected) == (10, 0)
        outs[fmt] = pd.read_parquet(res.output)
    pd.testing.assert_frame_equal(outs["csv"], outs["parquet"])
    frame.loc[5, "annual_revenue_musd"] = "n/a"  # text that is not blank is no number: its row is rejected
    frame.to_parquet(tmp_path / "p.parquet", index=False)
    cfg.predict.max_reject_share = 0.2  # 1 of 10
    res = predict_stage.run(
        cfg, input_path=str(tmp_path / "p.parquet"), output=str(tmp_path / "x.parquet"), progress=False
    )
    assert (res.scored, res.rejected) == (9, 1)
    assert res.reasons == {"column 'annual_revenue_musd' is not a number": 1}
    rejects = pd.read_csv(res.rejects, dtype={"customer_id": str})
    assert rejects[["input_row", "customer_id"]].values.tolist() == [[6, frame["customer_id"][5]]]
    assert frame["customer_id"][5] not in set(pd.read_parquet(res.output)["customer_id"])


def test_categories_never_seen_in_training_are_counted_and_named(world, tmp_path, caplog):
    cfg = world.config()
    frame = _prospects(world, 30)
    frame.loc[[2, 5, 9], "region"] = ["Atlantis", "Atlantis", "Lemuria"]
    frame.loc[11, "region"] = None  # missing is not "unseen"
    path = tmp_path / "new_regions.csv"
    frame.to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / "pred.parquet"), progress=False)
    assert res.scored == 30
    drift = pd.read_csv(tmp_path / "pred.drift.csv").set_index("feature")
    assert drift.loc["cust_region", "unseen_values"] == 3
    assert drift.loc["cust_region", "unseen_examples"] == "Atlantis, Lemuria"
    assert drift.loc["cust_industry", "unseen_values"] == 0
    assert (
        "feature cust_region: 3 row(s) with values never seen in training (the model learned nothing about them)"
        in caplog.text
    )


def test_a_column_left_blank_in_every_scored_row_is_named(world, tmp_path, caplog):
    cfg = world.config()
    path = tmp_path / "blank_dates.csv"
    frame = _prospects(world, 30).assign(created_at=None)  # an export that lost its dates
    frame.loc[3, "annual_revenue_musd"] = None
    frame.to_csv(path, index=False)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / "pred.parquet"), progress=False)
    assert res.scored == 30
    drift = pd.read_csv(tmp_path / "pred.drift.csv").set_index("feature")
    assert (
        drift.loc["cust_tenure_days", "missing_share"] == 1
        and drift.loc["cust_tenure_days", "training_missing_share"] < 0.5
    )
    assert 0 < drift.loc["cust_annual_revenue_musd", "missing_share"] < 1
    warned = [r.getMessage() for r in caplog.records if "no value in any scored row" in r.getMessage()]
    assert len(warned) == 1 and "cust_tenure_days (" in warned[0] and "cust_annual_revenue_musd" not in warned[0]


def test_predict_from_another_folder_says_where_it_looked_for_the_store_and_writes_nothing(
    world, tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # the default: relative to the current folder
    res = _cli("predict", "--config", str(world.config_path), "--input", str(world.prospects), "--output", "p.parquet")
    _one_line_error(res, f"no MLflow tracking store at {elsewhere / 'mlflow.db'}", "relative to the current folder")
    assert list(elsewhere.iterdir()) == []  # no empty store, no lock, no output folder


def test_a_relative_input_path_on_the_command_line_is_read_from_the_current_folder(world, tmp_path, monkeypatch):
    (tmp_path / "today").mkdir()
    _prospects(world, 5).to_csv(tmp_path / "today" / "prospects.csv", index=False)
    monkeypatch.chdir(tmp_path)
    res = _cli(
        "predict", "--config", str(world.config_path), "--input", "today/prospects.csv", "--output", "pred.parquet"
    )
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp_path / "pred.parquet")) == 5


def test_single_customer_file(world, tmp_path):
    cfg = world.config()
    path = tmp_path / "one.csv"
    one = _prospects(world, 1)
    one.to_csv(path, index=False)
    res = predict_stage.run(cfg, input_path=str(path), output=str(tmp_path / "one.parquet"), progress=False)
    assert (res.input_rows, res.scored, res.rejected) == (1, 1, 0)
    out = pd.read_parquet(res.output)
    assert out["customer_id"].tolist() == one["customer_id"].tolist()
    assert out["tier"].iloc[0] in cfg.scheme.codes and 0 <= out["score"].iloc[0] <= 100
    probas = out[[f"proba_{c}" for c in cfg.scheme.codes]].to_numpy().sum()
    assert abs(probas - 1) < 1e-4
