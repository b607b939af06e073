"""Runs a SIGKILLed process left RUNNING are closed as KILLED, with a note, on the next start."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from hivid.pipeline import pipeline_run
from hivid.tracking.stale import StaleRun

KILLED_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from hivid.pipeline import pipeline_run
    from hivid.tracking.runs import PARENT_ENV, stage_run

    root = Path(sys.argv[1])
    with pipeline_run(root, "nightly-killed", {"prefect.flow_run": "flow-run-1"}) as run:
        os.environ[PARENT_ENV] = run.info.run_id
        with stage_run(root, "annotate") as st:
            print(run.info.run_id, st.info.run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    for k in saved:
        os.environ.pop(k, None)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    yield tmp_path
    for k, v in saved.items():  # mlflow.set_tracking_uri() exports the variable itself
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_killed_pipeline_and_stage_runs_are_closed_on_next_start(store: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_SCRIPT, str(store)],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path), "HIVID_EXPERIMENT": "hivid"},
    )
    assert proc.returncode == -9, proc.stderr
    pipeline_id, stage_id = proc.stdout.split()
    os.environ["HIVID_EXPERIMENT"] = "hivid"
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlruns' / 'mlflow.db'}")
    client = MlflowClient()
    assert client.get_run(pipeline_id).info.status == "RUNNING"  # what a SIGKILL leaves
    assert client.get_run(stage_id).info.status == "RUNNING"
    exp = client.get_experiment_by_name("hivid")
    assert exp is not None
    live = client.create_run(exp.experiment_id, tags={"hivid.kind": "pipeline"})  # no owner tags
    seen: list[StaleRun] = []
    logged: list[str] = []
    try:
        with pipeline_run(store, "nightly-next", on_stale=seen.extend, log=logged.append) as run:
            closer = run.info.run_id
    finally:
        os.environ.pop("HIVID_EXPERIMENT", None)
    assert {s.run_id for s in seen} == {pipeline_id, stage_id}
    assert next(s for s in seen if s.run_id == pipeline_id).flow_run == "flow-run-1"
    for run_id in (pipeline_id, stage_id):
        r = client.get_run(run_id)
        assert r.info.status == "KILLED" and r.info.end_time
        note = r.data.tags["mlflow.note.content"]
        assert closer in note and "is gone" in note and "pid" in note, note
    assert any(pipeline_id in x and "KILLED" in x for x in logged), logged
    assert client.get_run(live.info.run_id).info.status == "RUNNING"  # recent, unowned: kept
    assert client.get_run(closer).info.status == "FINISHED"
    assert client.get_run(closer).data.tags["hivid.closed_stale"]


@pytest.mark.slow
def test_stale_prefect_flow_run_is_marked_crashed() -> None:
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Running
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import close_flow_runs

    @flow
    def killed() -> None:  # pragma: no cover - never run, only registered
        pass

    @flow
    def next_start(flow_run_id: str) -> None:
        close_flow_runs([StaleRun("r1", "nightly-x", "pipeline", "gone", flow_run_id)])

    with (
        prefect_test_harness(server_startup_timeout=240),
        get_client(sync_client=True) as client,
    ):
        fr = client.create_flow_run(killed, state=Running())
        next_start(str(fr.id))
        state = client.read_flow_run(fr.id).state
    assert state is not None and state.name == "Crashed", state
    assert "closed as KILLED" in (state.message or "")
