"""REST scoring with MLflow's own scoring server (``leadtier serve``).

``leadtier serve`` runs MLflow's own scoring app (what ``mlflow models serve --env-manager local``
runs) under uvicorn in the foreground, behind :mod:`leadtier.pipelines.rest`: request bodies are capped
at ``serve.max_request_mb`` (413 beyond it) and error answers never echo the request.
``MLFLOW_TRACKING_URI`` is taken from the config (``$MLFLOW_TRACKING_URI`` wins, as for every stage),
so that ``models:/<name>@champion`` resolves against the same registry that ``leadtier train``
wrote; the version it names when the server starts is the one every worker loads. The default binding
is the loopback interface only; the server has no authentication.

Protocol (MLflow 3): ``GET /ping`` answers 200 once the model is loaded. ``POST /invocations``
with ``Content-Type: application/json`` and a feature table in the split orientation,
``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (missing values as ``null``;
:func:`payload` builds it from a pandas frame), answers ``{"predictions": [{"tier": "A",
"score": ..., "proba_A": ..., ..., "segment_id": ..., "segment": ...}, ...]}``: one record per
input row, in input order, with the model's output columns (``leadtier predict`` adds customer_id,
past_revenue, model_version and as_of around them).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import IO

import pandas as pd
from leadtier.pipelines import rest, tracking
from leadtier.pipelines.config import Config
from leadtier.pipelines.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5088
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ServeError(RuntimeError):
    """The scoring server did not start, or stopped."""


class PortBusyError(UserError, ServeError):
    """The address to serve on cannot be bound (in use, or not allowed)."""


def check_port(host: str, port: int) -> None:
    """Fail before starting the server, naming the address, when ``host:port`` cannot be bound."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortBusyError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc}; choose another with --port"
            ) from None


def resolve_model(cfg: Config, model_uri: str | None = None) -> tuple[str, str]:
    """(model URI, registry version or ''); fails early, naming the URI, if it does not resolve."""
    from mlflow.tracking import MlflowClient

    uri = model_uri or tracking.champion_uri(cfg)
    store = tracking.tracking_uri(cfg)
    version = tracking.resolve_version(MlflowClient(tracking_uri=store, registry_uri=store), uri)
    return uri, version


def pinned(uri: str, version: str) -> str:
    """``models:/name@alias`` as ``models:/name/<version>``: every worker loads the same version, even
    when the alias moves while they start."""
    if version and uri.startswith("models:/"):
        return f"models:/{uri[len('models:/') :].split('@', 1)[0].split('/', 1)[0]}/{version}"
    return uri


def command(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 1) -> list[str]:
    """uvicorn, run by this interpreter, serving MLflow's scoring app behind leadtier's request limits
    (:mod:`leadtier.pipelines.rest`)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--host",
        host,
        "--port",
        str(int(port)),
        "--workers",
        str(int(workers)),
        "--no-server-header",
        "leadtier.pipelines.rest:app",
    ]


def environment(cfg: Config, model_uri: str, timeout_s: int = 60) -> dict[str, str]:
    """What the server processes read: the store, the model to load, the body-size cap, the request timeout."""
    from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
    from mlflow.pyfunc.scoring_server import _SERVER_MODEL_PATH

    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking.tracking_uri(cfg)
    env.setdefault("MLFLOW_REGISTRY_URI", env["MLFLOW_TRACKING_URI"])
    env[_SERVER_MODEL_PATH] = model_uri  # what MLflow's scoring app loads (mlflow models serve sets it too)
    env[rest.MAX_BYTES_ENV] = str(int(cfg.serve.max_request_mb * 2**20))
    env[MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.name] = str(int(timeout_s))
    return env


def start(
    cfg: Config,
    model_uri: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    log_file: IO | None = None,
) -> subprocess.Popen:
    """Start the scoring server in its own process group (so :func:`stop` ends all its workers)."""
    uri, version = resolve_model(cfg, model_uri)
    check_port(host, port)
    if host not in LOOPBACK:
        log.warning("binding the scoring server to %s: it has no authentication; keep it behind a gateway", host)
    cmd = command(host, port, workers)
    log.info("starting: %s (model %s)", " ".join(cmd), pinned(uri, version))
    return subprocess.Popen(
        cmd,
        env=environment(cfg, pinned(uri, version)),
        start_new_session=True,
        stdout=log_file,
        stderr=subprocess.STDOUT if log_file is not None else None,
    )


def base_url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in {"0.0.0.0", "", "localhost"} else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout_s: float = 90.0) -> float:
    """Poll ``GET {url}/ping`` until it answers 200; returns the seconds waited."""
    t0 = time.monotonic()
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServeError(f"the scoring server exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() - t0 > timeout_s:
            raise ServeError(f"the scoring server at {url} did not answer /ping within {timeout_s:.0f} s")
        time.sleep(0.5)


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> int | None:
    """SIGTERM the server's process group, then SIGKILL what is left after ``grace_s``."""
    if proc.poll() is not None:
        return proc.returncode
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def payload(features: pd.DataFrame) -> str:
    """A feature table as an ``/invocations`` body (split orientation; NaN and None as null)."""
    split = json.loads(features.to_json(orient="split", index=False, date_format="iso"))
    return json.dumps({"dataframe_split": {"columns": split["columns"], "data": split["data"]}})


def invoke(url: str, features: pd.DataFrame, timeout_s: float = 60.0) -> pd.DataFrame:
    """POST ``features`` to ``{url}/invocations``; the predictions as a frame, one row per input row."""
    req = urllib.request.Request(
        f"{url}/invocations",
        data=payload(features).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise ServeError(f"POST {url}/invocations -> {exc.code}: {detail}") from None
    for note in body.get("warnings", []):  # text values the model never saw in training
        log.warning("POST %s/invocations: %s", url, note)
    return pd.DataFrame(body["predictions"])


def run(
    cfg: Config,
    model_uri: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    echo=print,
) -> int:
    """Serve in the foreground until the server exits or Ctrl-C; returns its exit status."""
    uri, version = resolve_model(cfg, model_uri)

    def terminate(signum, frame):  # the server runs in its own process group: take it down with us
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        proc = start(cfg, uri, host, port, workers)
        url = base_url(host, port)
        echo(f"serving {uri} (version {version or 'n/a'}) at {url}/invocations (GET {url}/ping; Ctrl-C stops)")
        try:
            return proc.wait()
        except KeyboardInterrupt:
            return 130
        finally:
            stop(proc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
