"""Trainer settings of one training stage and what a stage returns (no Lightning import here, so
planning and bookkeeping code can read them cheaply)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hivid.configbase import require
from hivid.training.augment import AugmentConfig


@dataclass
class TrainConfig:
    """Trainer knobs of one stage (params.yaml ``train.stage1`` / ``train.stage2``)."""

    max_steps: int = 100
    """Optimizer steps."""
    batch_size: int = 1
    """Videos per batch per device."""
    lr: float | None = None
    """AdamW learning rate; None = the paper's (stage 1: 1e-4, stage 2: 5e-5)."""
    weight_decay: float = 0.0
    """AdamW weight decay (matrices only)."""
    warmup_steps: int = 0
    """Linear warmup steps before the cosine decay."""
    max_frames: int | None = None
    """Frames per video; None = the model config's max_frames."""
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    """Lightning precision; auto = bf16-mixed on a CUDA GPU with bf16 support, else 32-true."""
    accelerator: str = "auto"
    """Lightning accelerator (auto, cpu, gpu, ...)."""
    devices: int | str = "auto"
    """Devices per node."""
    strategy: str = "auto"
    """Lightning strategy (auto, ddp, fsdp, ...)."""
    num_nodes: int = 1
    """Nodes (multi-node DDP through torchrun / SLURM)."""
    gradient_checkpointing: bool = False
    """Recompute backbone activations in backward to save memory."""
    checkpoint_every_n_steps: int = 50
    """Lightning checkpoint interval in optimizer steps (a last one is always written)."""
    limit_val_batches: int | float = 1.0
    """Validation batches (int) or fraction of the val split (float)."""
    seed: int = 0
    """Seed of every RNG (model init, shuffling, dropout)."""
    num_workers: int = 0
    """DataLoader worker processes."""
    log_every_n_steps: int = 1
    """Logging interval in steps."""
    progress_every_s: float = 20.0
    """Seconds between plain progress lines (step, loss, ETA) in the log (hivid.training.progress);
    Lightning's redrawn progress bar is shown only on a terminal."""

    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Random per-sample views of the training videos (renamed product, shifted timeline, frame
    subset: ``hivid.training.augment``); never applied to validation or evaluation."""

    def __post_init__(self) -> None:
        require(self.max_steps > 0, f"max_steps must be > 0, got {self.max_steps}")
        require(self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}")
        require(self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "weight_decay must be >= 0")
        require(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        require(self.max_frames is None or self.max_frames > 0, "max_frames must be > 0")
        require(self.num_nodes > 0, "num_nodes must be > 0")
        require(self.checkpoint_every_n_steps > 0, "checkpoint_every_n_steps must be > 0")
        require(self.limit_val_batches >= 0, "limit_val_batches must be >= 0")
        require(self.num_workers >= 0, "num_workers must be >= 0")
        require(self.log_every_n_steps > 0, "log_every_n_steps must be > 0")
        require(self.progress_every_s > 0, "progress_every_s must be > 0")


@dataclass
class TrainResult:
    """What a stage produced."""

    model_dir: Path
    """The final narrator (load_narrator)."""
    metrics: dict[str, float]
    """train_loss (last step), val_loss, steps, trainable_params, total_params."""
    trainable_parameter_names: list[str]
    """Sorted names of the parameters this stage trained."""
    lightning_checkpoint: Path
    """out_dir/checkpoints/last.ckpt."""


RANK_ENV = ("RANK", "SLURM_PROCID", "LOCAL_RANK")
"""Where a launcher puts this process's rank: torchrun / PyTorchJob, SLURM srun, Lightning's own
DDP launcher (which sets LOCAL_RANK and NODE_RANK for the processes it starts)."""


def env_global_rank() -> int:
    """This process's rank as the launcher set it: 0 for rank 0 (or a lone process), else > 0.

    Read before Lightning initialises the process group, so that only rank 0 opens tracking runs.
    """
    for name in RANK_ENV:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            if name == "SLURM_PROCID" and int(os.environ.get("SLURM_NTASKS", "1") or 1) <= 1:
                continue  # a single-task allocation (sbatch script itself, salloc shell)
            rank = int(value)
            if name == "LOCAL_RANK":
                rank += int(os.environ.get("NODE_RANK", "0") or 0)  # nonzero iff not rank 0
            return rank
    return 0
