"""Handing the training stages to another host (the GPU work pool) through the DVC remote.

The nightly flow runs ingest ... warm_start in its own checkout; the GPU deployment runs in *its
own* checkout of the same commit (a pull step clones it), so nothing is shared but the DVC remote
and the MLflow server:

1. ``send_inputs``: the CPU side pushes the outputs of the stages before training (what the
   training stages and their lineage tags read) and hands over its ``dvc.lock`` text (a flow-run
   parameter: hashes only, no secrets);
2. ``receive_inputs``: the GPU side writes that ``dvc.lock`` and pulls those outputs;
3. ``send_results``: after training it pushes the training outputs and logs its ``dvc.lock`` (now
   with the training stages' entries) as the artifact ``handoff/dvc.lock`` of the pipeline run;
4. ``receive_results``: the CPU side downloads that ``dvc.lock`` and pulls the checkpoints, so
   ``evaluate`` and registration continue exactly as after an in-process training.

``require_gpus``: a deployment that asks for GPUs fails at once on a host without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

HANDOFF_ARTIFACT = "handoff/dvc.lock"
GPU_ENV = "HIVID_REQUIRE_GPU"


class HandoffError(RuntimeError):
    """A hand-off step failed; the message names the step, the checkout and the reason."""


def _dvc(root: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise HandoffError(f"{root}: dvc {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")


def upstream_stages(root: Path, stages: Sequence[str]) -> list[str]:
    """The dvc.yaml stages before the first of ``stages``, in file order: not only those whose
    outputs are declared deps, since the training runs also read what earlier stages recorded
    (e.g. ``outputs/quality/gate.json`` for their ``gx.result`` lineage tag)."""
    names = list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"])
    first = min(names.index(s) for s in stages)
    return names[:first]


def send_inputs(root: Path, stages: Sequence[str]) -> str:
    """Push what ``stages`` read to the DVC remote; returns this checkout's dvc.lock text."""
    _dvc(root, "push", *upstream_stages(root, stages))
    return (root / "dvc.lock").read_text()


def receive_inputs(root: Path, dvc_lock: str, stages: Sequence[str]) -> None:
    """Adopt the sender's dvc.lock and pull the outputs ``stages`` read."""
    (root / "dvc.lock").write_text(dvc_lock)
    _dvc(root, "pull", *upstream_stages(root, stages))


def _client(root: Path):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    from hivid.tracking.runs import tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(root))


def send_results(root: Path, stages: Sequence[str], parent_run_id: str) -> None:
    """Push the outputs of ``stages`` and log dvc.lock to the pipeline run."""
    _dvc(root, "push", *stages)
    _client(root).log_text(parent_run_id, (root / "dvc.lock").read_text(), HANDOFF_ARTIFACT)


def receive_results(root: Path, stages: Sequence[str], parent_run_id: str) -> None:
    """Take the trainer's dvc.lock from the pipeline run and pull the outputs of ``stages``."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = _client(root).download_artifacts(parent_run_id, HANDOFF_ARTIFACT, tmp)
        except Exception as exc:
            raise HandoffError(
                f"run {parent_run_id}: no {HANDOFF_ARTIFACT} from the training deployment "
                f"({type(exc).__name__})"
            ) from exc
        (root / "dvc.lock").write_text(Path(path).read_text())
    _dvc(root, "pull", *stages)


def required_gpus(default: int) -> int:
    """GPUs demanded of this host: ``HIVID_REQUIRE_GPU`` (a count; 0 = none), else ``default``."""
    raw = os.environ.get(GPU_ENV, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise HandoffError(f"{GPU_ENV}={raw!r}: expected a number of GPUs (0 for none)") from None
    if n < 0:
        raise HandoffError(f"{GPU_ENV}={raw!r}: expected a number of GPUs (0 for none)")
    return n


def require_gpus(n: int) -> None:
    """Fail at once, with what is missing, when this host has fewer than ``n`` CUDA GPUs."""
    if n <= 0:
        return
    import torch

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < n:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)")
        raise HandoffError(
            f"this host has {have} usable CUDA GPU(s) (CUDA_VISIBLE_DEVICES={visible}); the "
            f"training deployment asks for {n} ({GPU_ENV}). Run it on a GPU worker, or set "
            f"{GPU_ENV}=0 (the stack's `hivid_require_gpu` variable) for a CPU-only stack"
        )
