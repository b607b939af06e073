"""Training as its own flow, so a platform can run it on a GPU work pool.

The nightly flow (CPU pool: ingest, annotation, validation) hands the two training stages to the
`hivid-train/train-gpu` deployment when its ``train_deployment`` parameter names it; the GPU worker
must see the same project checkout (a shared volume or the same NFS path, `HIVID_REPO_DIR`) and the
same MLflow / DVC configuration. Without a deployment the stages run in-process.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from hivid.pipeline import repro_stage

TRAIN_STAGES = ("train_stage1", "train_stage2")


@task(task_run_name="{stage}")
def train_task(root: str, stage: str, parent_run_id: str) -> str:
    return repro_stage(Path(root), stage, parent_run_id, get_run_logger().info)


@flow(name="hivid-train", log_prints=True)
def train(repo: str = ".", parent_run_id: str = "") -> dict[str, str]:
    """train_stage1 -> train_stage2 (DVC-reproduced, MLflow runs nested under ``parent_run_id``)."""
    root = str(Path(repo).resolve())
    return {s: train_task(root, s, parent_run_id) for s in TRAIN_STAGES}
