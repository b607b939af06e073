"""The nightly retrain on the real stack (infra/stack.py): servers, schedule, workers, hand-off.

One session stack; `prefect deploy --all` from the origin checkout; one nightly run executed by
the stack's workers (CPU pool: a clone of the origin with data pulled from S3; training handed
to the GPU pool's deployment, another worker in another clone); then what an operator and an
auditor check: registry and artifacts on the servers, lineage from a third clean checkout, no
generated secret in anything the platform recorded, unauthenticated requests refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from .conftest import StackInfo, run, use_stack_remote

pytestmark = [pytest.mark.slow, pytest.mark.stack]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _wait_state(client: Any, run_id: Any, timeout_s: float, states: set[str] = TERMINAL) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fr = client.read_flow_run(run_id)
        if fr.state and fr.state.type.value in states:
            return fr
        time.sleep(2)
    raise AssertionError(f"flow run {run_id} not in {states} after {timeout_s} s: {fr.state}")


def _logs(client: Any, run_id: Any) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
    return [entry.message for entry in logs]


@pytest.fixture(scope="module")
def deployed(stack: StackInfo) -> Iterator[dict[str, Any]]:
    out = run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"],
        stack.origin,
        stack.env(),
        timeout=300,
    )
    assert out.count("successfully created") == 2, out
    with stack.prefect() as client:
        yield {
            "nightly": client.read_deployment_by_name("hivid-nightly/nightly"),
            "train": client.read_deployment_by_name("hivid-train/train-gpu"),
        }


@pytest.fixture(scope="module")
def nightly(stack: StackInfo, deployed: dict[str, Any]) -> dict[str, Any]:
    """One nightly run picked up by the CPU worker; a second one while it runs (CANCEL_NEW)."""
    with stack.prefect() as client:
        main = client.create_flow_run_from_deployment(deployed["nightly"].id)
        _wait_state(client, main.id, 300, {"RUNNING", *TERMINAL})
        second = client.create_flow_run_from_deployment(deployed["nightly"].id)
        second = _wait_state(client, second.id, 120)
        main = _wait_state(client, main.id, 1800)
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

        trains = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[deployed["train"].id])
            )
        )
        return {
            "main": main,
            "second": second,
            "trains": trains,
            "logs": _logs(client, main.id),
            "train_logs": [m for t in trains for m in _logs(client, t.id)],
        }


def test_unauthenticated_requests_are_refused(stack: StackInfo) -> None:
    env = stack.client_env
    for url, data in (
        (f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/search?max_results=1", None),
        (f"{env['PREFECT_API_URL']}/flow_runs/filter", b"{}"),
    ):
        req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 401, url
    # and S3 refuses an unsigned listing
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/hivid-dvc", timeout=10)
    assert err.value.code in (401, 403)


def test_deploy_creates_the_crons_scheduled_runs(stack: StackInfo, deployed: dict) -> None:
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    nightly = deployed["nightly"]
    assert nightly.global_concurrency_limit.limit == 1
    assert nightly.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert nightly.pull_steps[0]["prefect.deployments.steps.git_clone"]["commit_sha"] == (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=stack.origin, capture_output=True, text=True
        ).stdout.strip()
    )
    flt = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[nightly.id]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
    )
    deadline = time.monotonic() + 90
    with stack.prefect() as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=flt, limit=200)
            if len(runs) >= 3:
                break
            time.sleep(2)
    assert len(runs) >= 3, f"the scheduler created {len(runs)} runs of the cron"
    berlin = ZoneInfo("Europe/Berlin")
    for r in runs:
        local = r.expected_start_time.astimezone(berlin)
        assert (local.hour, local.minute) == (2, 0), local
        assert r.expected_start_time > datetime.now(UTC)


def test_nightly_runs_on_the_workers(nightly: dict[str, Any]) -> None:
    main = nightly["main"]
    assert main.state.type.value == "COMPLETED", "\n".join(
        [str(main.state), *nightly["logs"][-25:], "--- training:", *nightly["train_logs"][-40:]]
    )
    assert main.work_pool_name == "hivid-cpu"
    logs = "\n".join(nightly["logs"])
    assert "data: pulled" in logs  # a fresh clone: the corpus came from the stack's S3
    assert "git_clone" in logs
    # the second run found the first one running and was cancelled, not queued
    assert nightly["second"].state.type.value == "CANCELLED", nightly["second"].state
    # training ran as the GPU pool's deployment, in its own checkout, for this nightly
    (train,) = nightly["trains"]
    assert train.state.type.value == "COMPLETED", "\n".join(nightly["train_logs"][-40:])
    assert train.work_pool_name == "hivid-gpu"
    assert train.parent_task_run_id is not None
    assert "git_clone" in "\n".join(nightly["train_logs"])


def test_registry_and_artifacts_are_on_the_servers(
    stack_env: StackInfo, nightly: dict[str, Any]
) -> None:
    client = stack_env.mlflow()
    version = client.get_model_version_by_alias("hivid-narrator", "challenger")
    source = client.get_run(version.run_id)
    assert source.data.tags["hivid.stage"] == "train_stage2"
    assert source.info.artifact_uri.startswith("mlflow-artifacts:")
    s3 = stack_env.s3()

    def keys(bucket: str) -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for p in pages for o in p.get("Contents", [])]

    artifacts = keys("hivid-mlflow")
    assert any(source.info.run_id in k for k in artifacts), artifacts[:20]
    assert any(k.endswith("handoff/dvc.lock") for k in artifacts)
    dvc = keys("hivid-dvc")
    assert len([k for k in dvc if k.startswith("store/files/md5/")]) > 10, dvc[:20]


def test_lineage_from_a_third_clean_checkout(
    stack: StackInfo, nightly: dict[str, Any], tmp_path: Path
) -> None:
    env = stack.env()
    third = tmp_path / "auditor"
    run(["git", "clone", "-q", str(stack.origin), str(third)], tmp_path, env)
    use_stack_remote(third, env)
    run([sys.executable, "-m", "dvc", "fetch", "data.dvc"], third, env)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "hivid"),
            "lineage",
            "models:/hivid-narrator@challenger",
            "--json",
        ],
        cwd=third,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    links = json.loads(proc.stdout)["links"]
    statuses = {link["name"]: link["status"] for link in links}
    assert "MISMATCH" not in statuses.values(), statuses
    for name in ("git commit", "data.dvc md5"):
        assert statuses.get(name) == "VERIFIED", statuses


def test_no_generated_secret_is_recorded(
    stack_env: StackInfo, nightly: dict[str, Any], deployed: dict[str, Any]
) -> None:
    values = [v for v in stack_env.secrets.values() if len(v) >= 12]
    assert values
    recorded: list[str] = []
    client = stack_env.mlflow()
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id], max_results=500):
            recorded += [json.dumps(r.data.params), json.dumps(r.data.tags)]
    s3 = stack_env.s3()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="hivid-mlflow")
    for obj in (o for p in pages for o in p.get("Contents", [])):
        if obj["Size"] < 5_000_000:
            body = s3.get_object(Bucket="hivid-mlflow", Key=obj["Key"])["Body"].read()
            recorded.append(body.decode("utf-8", errors="replace"))
    recorded += nightly["logs"] + nightly["train_logs"]
    # what Prefect stores about the runs: deployments (job variables), parameters
    recorded += [d.model_dump_json() for d in deployed.values()]
    recorded += [nightly["main"].model_dump_json()] + [
        t.model_dump_json() for t in nightly["trains"]
    ]
    text = "\n".join(recorded)
    assert len(recorded) > 20
    leaked = [k for k, v in stack_env.secrets.items() if v in text]
    assert not leaked, f"secrets recorded: {leaked}"


def test_a_late_run_is_skipped(stack: StackInfo, deployed: dict[str, Any]) -> None:
    from prefect.states import Scheduled

    late = datetime.now(UTC) - timedelta(hours=7)
    with stack.prefect() as client:
        fr = client.create_flow_run_from_deployment(
            deployed["nightly"].id, state=Scheduled(scheduled_time=late)
        )
        fr = _wait_state(client, fr.id, 240)
        assert fr.state.type.value == "COMPLETED", fr.state
        # the worker ships log lines in batches: the last may land after the final state
        deadline = time.monotonic() + 60
        logs = _logs(client, fr.id)
        while not any("skipping: scheduled" in m for m in logs):
            assert time.monotonic() < deadline, logs[-20:]
            time.sleep(2)
            logs = _logs(client, fr.id)
