"""The nightly retrain as a Prefect flow. Orchestration only: every task calls `hivid` library code.

Stages run through `dvc repro --single-item <stage>` so dvc.lock records exactly what each stage
consumed and produced, and an unchanged stage is skipped. Each stage's MLflow run nests under the
flow's pipeline run. The quality gate (`validate`) exits non-zero on a batch failure, which
stops the flow before training.

Failure notifications: ``HIVID_NOTIFY_BLOCK`` (a saved Prefect notification block, e.g.
``slack-webhook/hivid-alerts``) or ``HIVID_NOTIFY_WEBHOOK`` (a URL receiving a JSON POST
``{"text": ...}``); the URL is a secret read from the environment and never logged.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import mlflow
from prefect import flow, get_run_logger, task
from prefect.runtime import flow_run

from flows.train import TRAIN_STAGES
from hivid import layout
from hivid.config import config_failure
from hivid.configbase import ConfigError
from hivid.pipeline import (
    STAGES,
    PipelineError,
    ensure_data,
    pipeline_run,
    pipeline_up_to_date,
    repro_stage,
    run_intake,
    summary_text,
)
from hivid.stages import run_promote, run_register
from hivid.tracking.gitrev import GitState, commit_pipeline_state, git_state, revision_tags
from hivid.tracking.stale import StaleRun


def _message(flow: Any, flow_run: Any, state: Any) -> str:
    return (
        f"HiVid nightly flow run {flow_run.name} ({flow_run.id}) ended {state.name}: "
        f"{(state.message or '')[:500]}"
    )


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect on_failure / on_crashed hook; notification errors never mask the failure."""
    text = _message(flow, flow_run, state)
    block_name = os.environ.get("HIVID_NOTIFY_BLOCK")
    url = os.environ.get("HIVID_NOTIFY_WEBHOOK")
    try:
        if block_name:
            from prefect.blocks.core import Block

            block: Any = Block.load(block_name)
            block.notify(text, subject="HiVid nightly failed")
        elif url:
            req = urllib.request.Request(
                url,
                data=json.dumps({"text": text}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=10):
                pass
    except Exception as exc:  # a broken notifier must not hide the pipeline's own failure
        print(f"notification failed: {type(exc).__name__}")


def _log() -> Any:
    return get_run_logger().info


def intake_source(root: str) -> str:
    """``intake.source`` of the project's params ('' when the nightly takes no new data)."""
    from hivid.config import load_section

    return str(load_section(Path(root) / "params.yaml", "intake").source)


@task(retries=2, retry_delay_seconds=[5, 30])
def intake_landing_zone(root: str, demo: bool) -> dict[str, Any]:
    """Landing zone -> data/ (S3 network access: retried); a new data version is pinned with
    `dvc add` + `dvc push`, and its data.dvc is committed by the flow's final commit step."""
    return run_intake(Path(root), Path(root) / "params.yaml", demo=demo, log=_log())


@task(retries=2, retry_delay_seconds=[5, 30])
def prepare_data(root: str, demo: bool) -> str:
    """Disk / DVC-remote access: retried."""
    return ensure_data(Path(root), demo, _log())


# Annotation may call remote inference endpoints and warm_start downloads the champion from the
# registry: retried. Other stages are deterministic, and a retry would only repeat the same
# failure (the quality gate in particular must not be retried).
STAGE_RETRIES = {"annotate": 1, "warm_start": 2}


def train_on_pool(deployment: str, root: str, parent_run_id: str) -> dict[str, str]:
    """Run the training stages as the GPU deployment's flow run (in its own checkout: inputs and
    results travel through the DVC remote, `hivid.handoff`) and wait for it."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment

    from hivid.handoff import receive_results, send_inputs

    dvc_lock = send_inputs(Path(root), TRAIN_STAGES)
    # Called from this sync flow, run_deployment returns the FlowRun itself (a coroutine only
    # when awaited from async code), hence the cast.
    fr = cast(
        FlowRun,
        run_deployment(
            deployment,
            parameters={"parent_run_id": parent_run_id, "dvc_lock": dvc_lock},
            as_subflow=True,
        ),
    )
    if fr.state is None or not fr.state.is_completed():
        name = fr.state.name if fr.state else "unknown"
        raise PipelineError(f"training deployment {deployment} ended {name}")
    receive_results(Path(root), TRAIN_STAGES, parent_run_id)
    return {s: f"ran on {deployment}" for s in TRAIN_STAGES}


@task
def pipeline_unchanged(root: str) -> bool:
    return pipeline_up_to_date(Path(root))


@task(task_run_name="{stage}")
def run_stage(root: str, stage: str, parent_run_id: str, git: GitState | None = None) -> str:
    return repro_stage(Path(root), stage, parent_run_id, _log(), git)


@task
def commit_state(root: str, name: str, branch_prefix: str, push: str | None) -> dict[str, Any]:
    """Commit what the pipeline changed in git (dvc.lock, data.dvc) on a nightly branch."""
    out = commit_pipeline_state(Path(root), name, branch_prefix, push_remote=push)
    if out.get("committed"):
        _log()(f"committed {', '.join(out['files'])} as {out['revision'][:12]} on {out['branch']}")
    return out


@task(retries=2, retry_delay_seconds=[5, 30])
def register_model(
    root: str, parent_run_id: str, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    return dict(
        run_register(
            Path(root),
            Path(root) / "params.yaml",
            Path(root) / layout.ckpt(2),
            tags,
            pipeline_run_id=parent_run_id,
        )
    )


@task(retries=2, retry_delay_seconds=[5, 30])
def promote_model(root: str, parent_run_id: str, version: str) -> dict[str, Any]:
    decision = run_promote(
        Path(root), Path(root) / "params.yaml", version, pipeline_run_id=parent_run_id
    )
    get_run_logger().info("promotion: %s", decision["text"])
    return dict(decision)


@task
def compare_with_champion(
    root: str, parent_run_id: str, model_name: str, before: str, new: str
) -> str:
    """Compare version ``new`` of ``model_name`` (params ``registry.model_name``) with the
    champion it challenged (``before``)."""
    from hivid.tracking.compare import write_report

    out = Path(root) / layout.COMPARE_REPORT
    refs = [f"models:/{model_name}/{before}", f"models:/{model_name}/{new}"]
    write_report(Path(root), refs, out, log_to=parent_run_id)
    return str(out)


@task(retries=2, retry_delay_seconds=[5, 30])
def push_to_remote(root: str) -> str:
    """Push data + stage outputs to the DVC remote so any version can be restored later."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "push"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise PipelineError(f"dvc push failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "pushed"


def close_flow_runs(stale: list[StaleRun]) -> None:
    """End as Crashed the Prefect flow runs of pipeline runs a killed process left RUNNING."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        for s in stale:
            if not s.flow_run or s.flow_run == str(flow_run.id or ""):
                continue
            try:
                current = client.read_flow_run(UUID(s.flow_run))
                if current.state is not None and not current.state.is_final():
                    note = f"its process was killed; MLflow run {s.run_id} closed as KILLED"
                    client.set_flow_run_state(s.flow_run, Crashed(message=note), force=True)
                    get_run_logger().info("flow run %s marked Crashed: %s", s.flow_run, note)
            except Exception as exc:  # another API, or gone: the MLflow side is closed anyway
                get_run_logger().warning("flow run %s not closed: %s", s.flow_run, exc)


@flow(
    name="hivid-nightly",
    log_prints=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
)
def nightly(
    repo: str = ".",
    demo: bool = True,
    register_version: bool = True,
    push_data: bool = True,
    max_lateness_s: float = 6 * 3600,
    train_deployment: str | None = None,
    git_commit: bool = True,
    git_branch: str = "nightly",
    git_push: str | None = None,
) -> dict[str, Any]:
    """[intake, when intake.source is set] -> ingest -> annotate -> validate (gate) ->
    build_dataset -> warm_start -> train 1 -> train 2 -> evaluate -> commit dvc.lock/data.dvc
    (branch ``<git_branch>/<run name>``, pushed to the ``git_push`` remote when given) -> register
    `hivid-narrator@challenger` naming that commit -> promote -> compare -> dvc push."""
    root = str(Path(repo).resolve())
    logger = get_run_logger()
    bad_config = config_failure(Path(root) / "params.yaml", Path(root))
    if bad_config:  # before any stage, outside any task: a config error is never retried
        logger.error("HiVid nightly pipeline: FAILED - %s", bad_config)
        raise ConfigError(bad_config)
    # Provenance is the checkout as it was before this run touched it (gitrev: the stages must
    # not see this run's own dvc.lock / data.dvc rewrites as uncommitted changes).
    git = git_state(Path(root))
    if git.dirty:
        logger.warning("checkout has uncommitted changes: %s", ", ".join(git.dirty_paths))
    scheduled = flow_run.scheduled_start_time
    if scheduled is not None:
        late = (datetime.now(UTC) - scheduled).total_seconds()
        if late > max_lateness_s:  # a late nightly is skipped, not piled onto the next one
            logger.warning("skipping: scheduled %s, %.0f s late", scheduled, late)
            return {"status": "skipped (late)", "stages": {}, "text": "skipped: run was late"}
    intake: dict[str, Any] | None = None
    if intake_source(root):
        intake = intake_landing_zone(root, demo)
        logger.info(
            "intake: %d file(s) taken, %d unchanged, %d quarantined; data %s",
            len(intake["taken"]),
            intake["unchanged"],
            len(intake["quarantined"]),
            "changed" if intake["changed"] else "unchanged",
        )
    how = prepare_data(root, demo)
    logger.info("data: %s", how)
    result: dict[str, Any] = {"stages": {}, "seconds": {}, "status": "running", "data": how}
    if intake is not None:
        result["intake"] = {k: v for k, v in intake.items() if k != "taken"} | {
            "taken": [t["key"] for t in intake["taken"]]
        }
    # a new data version (data.dvc) for the final commit step to commit
    result["data_changed"] = bool(intake and intake["changed"])
    name = f"nightly-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    tags = {"prefect.flow_run": str(flow_run.id or "")}
    if intake is not None:  # the source URL and counts, never a credential
        tags.update(
            {
                "intake.source": str(intake["source"]),
                "intake.changed": str(intake["changed"]).lower(),
                "intake.taken": str(len(intake["taken"])),
                "intake.quarantined": str(len(intake["quarantined"])),
            }
        )
    with pipeline_run(Path(root), name, tags, close_flow_runs, logger.info, git=git) as run:
        result["run_id"] = run.info.run_id
        try:
            unchanged = pipeline_unchanged(root)
            for stage in STAGES:
                if unchanged:
                    result["stages"][stage] = "skipped (unchanged)"
                    continue
                if train_deployment and stage in TRAIN_STAGES:
                    if stage == TRAIN_STAGES[0]:
                        result["stages"].update(
                            train_on_pool(train_deployment, root, run.info.run_id)
                        )
                    continue
                t0 = time.perf_counter()
                result["stages"][stage] = run_stage.with_options(
                    retries=STAGE_RETRIES.get(stage, 0), retry_delay_seconds=10
                )(root, stage, run.info.run_id, git)
                result["seconds"][stage] = round(time.perf_counter() - t0, 2)
            revision: dict[str, str] = {}
            if git_commit:
                result["git"] = commit_state(root, name, git_branch, git_push)
                revision = revision_tags(result["git"])
                mlflow.set_tags(revision)
            t0 = time.perf_counter()
            if register_version:
                result["model"] = register_model(root, run.info.run_id, revision)
                result["promotion"] = promote_model(
                    root, run.info.run_id, result["model"]["version"]
                )
                before = result["promotion"].get("champion_before")
                if before and before != result["model"]["version"]:
                    result["report"] = compare_with_champion(
                        root,
                        run.info.run_id,
                        result["model"]["name"],
                        before,
                        result["model"]["version"],
                    )
            result["seconds"]["register+promote+compare"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            if push_data:
                result["push"] = push_to_remote(root)
            result["seconds"]["push"] = round(time.perf_counter() - t0, 2)
            result["status"] = "succeeded"
        except Exception as exc:
            result["status"] = f"FAILED: {exc}"
            result["text"] = summary_text(Path(root), result)
            logger.error(result["text"])
            raise
    result["text"] = summary_text(Path(root), result)
    logger.info(result["text"])
    return result


if __name__ == "__main__":
    nightly()
