"""Close the MLflow runs a killed process left RUNNING, on the next pipeline start.

Every pipeline and stage run carries the process that owns it (tags ``hivid.host``, ``hivid.pid``,
``hivid.pid_start``: the process start time, so a recycled pid is not mistaken for the owner).
``close_stale_runs`` finds RUNNING runs of the experiment whose owner no longer runs on this host
and ends them as KILLED with a note (``mlflow.note.content`` and ``hivid.closed``) saying by whom,
when and why. Runs owned by another host are left alone (their process cannot be checked here),
unless they carry no owner at all and started more than ``untagged_after_s`` ago.

The nightly flow then ends the Prefect flow run a closed pipeline run names (its
``prefect.flow_run`` tag) as Crashed; that part lives in ``flows/`` (no Prefect here).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
from mlflow.entities import Run, RunStatus
from mlflow.tracking import MlflowClient

HOST_TAG, PID_TAG, START_TAG = "hivid.host", "hivid.pid", "hivid.pid_start"


def owner_tags() -> dict[str, str]:
    """Tags naming this process as the owner of a run."""
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(os.getpid()),
        START_TAG: f"{psutil.Process().create_time():.2f}",
    }


@dataclass
class StaleRun:
    """A run closed because its owner is gone."""

    run_id: str
    name: str
    kind: str
    """``pipeline`` or the stage name."""
    why: str
    flow_run: str | None
    """The Prefect flow run id a pipeline run recorded (None for stage runs)."""


def _owner_alive(tags: dict[str, str]) -> bool | None:
    """True / False for a run owned by a process of this host; None when it cannot be told."""
    if tags.get(HOST_TAG) != socket.gethostname() or PID_TAG not in tags:
        return None
    try:
        proc = psutil.Process(int(tags[PID_TAG]))
        started = float(tags.get(START_TAG, "nan"))
        return abs(proc.create_time() - started) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True


def _why_stale(run: Run, now: float, untagged_after_s: float) -> str | None:
    tags = run.data.tags
    alive = _owner_alive(tags)
    if alive is False:
        return f"its process (pid {tags[PID_TAG]} on {tags[HOST_TAG]}) is gone (killed or crashed)"
    if alive is None and PID_TAG not in tags:
        age = now - run.info.start_time / 1000
        if age > untagged_after_s:
            return f"RUNNING for {age / 3600:.1f} h with no owning process recorded"
    return None


def close_stale_runs(
    client: MlflowClient,
    experiment_id: str,
    closer: str,
    untagged_after_s: float = 24 * 3600,
    keep: tuple[str, ...] = (),
) -> list[StaleRun]:
    """End every stale RUNNING run of ``experiment_id`` as KILLED with a note; returns them.

    ``closer``: who closes them (the new pipeline run's id, written into the note); ``keep``:
    run ids never closed (the caller's own run)."""
    now = time.time()
    closed: list[StaleRun] = []
    runs = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000)
    for run in runs:
        if run.info.run_id in keep:
            continue
        why = _why_stale(run, now, untagged_after_s)
        if why is None:
            continue
        at = datetime.now(UTC).isoformat(timespec="seconds")
        note = f"Closed as KILLED at {at} by pipeline run {closer}: {why}."
        client.set_tag(run.info.run_id, "hivid.closed", note)
        client.set_tag(run.info.run_id, "mlflow.note.content", note)
        client.set_terminated(
            run.info.run_id, status=RunStatus.to_string(RunStatus.KILLED), end_time=int(now * 1000)
        )
        tags = run.data.tags
        closed.append(
            StaleRun(
                run_id=run.info.run_id,
                name=run.info.run_name or "",
                kind=tags.get("hivid.kind") or tags.get("hivid.stage") or "run",
                why=why,
                flow_run=tags.get("prefect.flow_run") or None,
            )
        )
    return closed
