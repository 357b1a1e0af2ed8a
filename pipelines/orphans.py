"""Runs a killed ``train`` left behind.

A ``train`` process that is killed (SIGKILL, out of memory, a power cut) cannot end its MLflow run: the
run, and the nested tuning run of the trial in progress, stay ``RUNNING`` for ever. Each ``train`` run
is tagged with the process that runs it (host, pid, and the pid's start time, so that a reused pid is
told apart), and the next ``train`` marks the runs whose process is gone ``FAILED``, says so, and tags
any model version such a run registered without everything a version needs as incomplete.

A run of another host, or of a process that still runs, is left alone: it may be a training in progress.
A run without these tags (logged by an older leadtier) is left alone too, since nothing says whether
its process still runs.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

HOST, PID, PID_START = "leadtier.host", "leadtier.pid", "leadtier.pid_start"
ORPHANED = "leadtier.orphaned"  # on a run marked FAILED here: why
COMPLETE = "leadtier.complete"  # on a model version: "true" once its run logged everything it needs
PARENT = "mlflow.parentRunId"
log = logging.getLogger(__name__)


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, boot id and start time in clock ticks) of process ``pid`` from /proc; None where there is
    no /proc entry for it (no such process, or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], f"{boot}:{fields[19]}"  # fields 3 (state) and 22 (starttime) of proc(5)


def process_tags() -> dict[str, str]:
    """The tags that name this process: host, pid and when the pid started ('' where /proc cannot say)."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {HOST: socket.gethostname(), PID: str(pid), PID_START: stat[1] if stat else ""}


def process_gone(tags: dict[str, str], host: str | None = None) -> str:
    """Why the process named by a run's ``tags`` (see :func:`process_tags`) is certainly gone; '' when it
    may still run (it does, it runs on another host, or the tags do not name one)."""
    host = host or socket.gethostname()
    if tags.get(HOST) != host or not tags.get(PID, "").isdigit():
        return ""
    pid = int(tags[PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"its process {pid} on {host} no longer exists"
    except PermissionError:  # a process of another user holds the pid: not ours any more unless it started then
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return ""  # alive as far as signals tell, and nothing more to go by
    if stat[0] in ("Z", "X"):
        return f"its process {pid} on {host} has died"
    if tags.get(PID_START) and stat[1] != tags[PID_START]:
        return f"its process {pid} on {host} has died (the pid now belongs to another process)"
    return ""


def _running(client: MlflowClient, experiment_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _why_orphaned(client: MlflowClient, run, running: dict, cache: dict[str, str]) -> str:
    """Why ``run`` (RUNNING) is an orphan: its own process is gone, or it is nested in a run that has
    ended or is an orphan itself; '' otherwise."""
    run_id = run.info.run_id
    if run_id not in cache:
        cache[run_id] = ""  # a cycle of parents (never made by MLflow) ends here
        tags, parent = run.data.tags, run.data.tags.get(PARENT)
        if PID in tags:
            cache[run_id] = process_gone(tags)
        elif parent in running:
            why = _why_orphaned(client, running[parent], running, cache)
            cache[run_id] = why and f"its parent run {parent} was left RUNNING ({why})"
        elif parent:
            status = client.get_run(parent).info.status
            cache[run_id] = f"its parent run {parent} has ended ({status})"
    return cache[run_id]


def _flag_versions(client: MlflowClient, run_id: str) -> None:
    """Tag the model versions an orphaned run registered without everything they need as incomplete."""
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if version.tags.get(COMPLETE) != "true":
            client.set_model_version_tag(version.name, version.version, COMPLETE, "false")
            log.warning(
                "model %s version %s was registered by run %s before it had logged everything: tagged "
                "%s=false (the champion gate never promotes it)",
                version.name,
                version.version,
                run_id,
                COMPLETE,
            )


def fail_orphans(client: MlflowClient, experiment: str) -> list[str]:
    """Mark every RUNNING run of the experiment named ``experiment`` whose process is gone FAILED, with a
    log line each and the reason in the tag ``leadtier.orphaned``; returns their run ids."""
    found = client.get_experiment_by_name(experiment)
    running = {r.info.run_id: r for r in _running(client, found.experiment_id)} if found else {}
    cache: dict[str, str] = {}
    failed = []
    for run_id, run in running.items():
        why = _why_orphaned(client, run, running, cache)
        if not why:
            continue
        client.set_tag(run_id, ORPHANED, why)
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        log.warning("MLflow run %s (%s) was left RUNNING: %s; marked FAILED", run_id, run.info.run_name, why)
        if PARENT not in run.data.tags:
            _flag_versions(client, run_id)
        failed.append(run_id)
    return failed
