"""Training as its own flow, so a platform can run it on a GPU work pool.

The nightly flow (CPU pool: ingest, annotation, validation) hands the two training stages to the
`hivid-train/train-gpu` deployment when its ``train_deployment`` parameter names it. That
deployment runs in its own checkout of the pinned commit (prefect.yaml's pull steps); the inputs
and the results travel through the DVC remote and the pipeline's MLflow run (`hivid.handoff`):
the nightly passes its ``dvc.lock`` as the ``dvc_lock`` parameter. Without ``dvc_lock`` (a run
in the nightly's own checkout, or in-process) the stages just run in ``repo``.

A run from a deployment demands ``HIVID_REQUIRE_GPU`` CUDA GPUs of its host (default 1; the work
pool sets it from the Prefect variable ``hivid_require_gpu``, 0 on a CPU-only stack) and fails at
once without them; in-process the default is 0.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.runtime import deployment

from hivid.handoff import (
    receive_inputs,
    require_gpus,
    required_gpus,
    send_results,
)
from hivid.pipeline import repro_stage

TRAIN_STAGES = ("train_stage1", "train_stage2")


@task(task_run_name="{stage}")
def train_task(root: str, stage: str, parent_run_id: str) -> str:
    return repro_stage(Path(root), stage, parent_run_id, get_run_logger().info)


@task(retries=2, retry_delay_seconds=[5, 30])
def pull_inputs(root: str, dvc_lock: str) -> None:
    receive_inputs(Path(root), dvc_lock, TRAIN_STAGES)


@task(retries=2, retry_delay_seconds=[5, 30])
def push_results(root: str, parent_run_id: str) -> None:
    send_results(Path(root), TRAIN_STAGES, parent_run_id)


@flow(name="hivid-train", log_prints=True)
def train(repo: str = ".", parent_run_id: str = "", dvc_lock: str | None = None) -> dict[str, str]:
    """train_stage1 -> train_stage2 (DVC-reproduced, MLflow runs nested under ``parent_run_id``)."""
    require_gpus(required_gpus(default=1 if deployment.id else 0))
    root = str(Path(repo).resolve())
    if dvc_lock is not None:
        pull_inputs(root, dvc_lock)
    result = {s: train_task(root, s, parent_run_id) for s in TRAIN_STAGES}
    if dvc_lock is not None:
        push_results(root, parent_run_id)
    return result
