"""Fit entry point of both training stages: ``train_stage(1 | 2, dataset_dir, out_dir, ...)``.

Stage 1 builds the narrator (and, for a random-init LLM, trains its tokenizer) from scratch, or
continues from ``init_model_dir``; stage 2 loads the stage-1 model, adds the SPA-Compressor and the
time encoder and trains only those. ``out_dir`` layout::

    init/                 stage 1: the initial narrator (reused on resume: same weights, tokenizer)
    checkpoints/last.ckpt Lightning checkpoint (every n steps and at the end); resumed when present
    logs/                 CSV logs when no logger is given
    model/                the final narrator (save_narrator)
    metrics.json          TrainResult.metrics
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities import rank_zero_only
from transformers import PreTrainedTokenizerBase

from hivid.models.narrator import (
    CONFIG_FILE,
    HiVidNarrator,
    NarratorConfig,
    create_narrator,
    create_tokenizer,
    load_narrator,
    save_narrator,
)
from hivid.models.tokenizer import set_caption_vocab
from hivid.training.config import TrainConfig, TrainResult
from hivid.training.datamodule import (
    NarratorDataModule,
    caption_vocabulary,
    corpus_texts,
    read_split,
)
from hivid.training.module import NarratorLightningModule, StageError, trainable_parameter_names
from hivid.training.progress import ProgressLog
from hivid.training.warmstart import keep_weights, warm_model


def _initial_model(
    stage: int,
    dataset_dir: Path,
    out_dir: Path,
    model_cfg: NarratorConfig,
    init_model_dir: Path | None,
    warm_from: Path | None = None,
) -> tuple[HiVidNarrator, PreTrainedTokenizerBase]:
    if stage == 2:
        if init_model_dir is None:
            raise StageError("stage 2 needs init_model_dir (the stage-1 model directory)")
        if warm_from is not None:
            return warm_model(2, warm_from, init_model_dir, model_cfg)
        model, tok = load_narrator(init_model_dir)
        if not model.use_compressor:
            model.add_compressor(
                model_cfg.compressor,
                model_cfg.time_encoder,
                model_cfg.stage2_asr_text,
                model_cfg.stage2_positions,
            )
        return model, tok
    if warm_from is not None:
        return warm_model(1, warm_from, init_model_dir, model_cfg)
    if init_model_dir is not None:
        model, tok = load_narrator(init_model_dir)
        if model.use_compressor:
            raise StageError(f"{init_model_dir}: stage 1 cannot continue a model with compressor")
        return model, tok
    # Under DDP every rank runs this. Rank 0 owns out_dir/init; the other ranks build the same
    # seeded model and deterministic tokenizer in their own directory (never reading a half-written
    # init/), and DDP broadcasts rank 0's weights when it wraps the model anyway.
    rank = int(getattr(rank_zero_only, "rank", 0))
    init_dir = out_dir / ("init" if rank == 0 else f"init.rank{rank}")
    if rank == 0 and (init_dir / CONFIG_FILE).is_file():  # resuming: same weights and tokenizer
        return load_narrator(init_dir)
    cfg = dataclasses.replace(model_cfg, use_compressor=False)
    train = read_split(dataset_dir, "train")
    tok = create_tokenizer(cfg, corpus_texts(train))
    set_caption_vocab(tok, caption_vocabulary(tok, train))
    model = create_narrator(cfg, tok, init_dir)
    save_narrator(model, tok, init_dir)
    return model, tok


Precision = Literal["32-true", "bf16-mixed", "16-mixed"]


def resolve_precision(cfg: TrainConfig) -> Precision:
    """``cfg.precision`` with ``auto`` resolved for the accelerator this process will use."""
    if cfg.precision != "auto":
        return cfg.precision
    import torch

    gpu = cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def _metric(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key)
    return float(value) if value is not None else float("nan")


def train_stage(
    stage: Literal[1, 2],
    dataset_dir: Path,
    out_dir: Path,
    model_cfg: NarratorConfig,
    train_cfg: TrainConfig,
    init_model_dir: Path | None = None,
    logger: Logger | None = None,
    callbacks: Sequence[Callback] = (),
    warm_from: Path | None = None,
    max_steps: int | None = None,
    focus: Sequence[str] = (),
    focus_share: float = 0.5,
) -> TrainResult:
    """Train one stage; resumes from ``out_dir/checkpoints/last.ckpt`` when it exists.

    A run killed at any step (even mid-epoch) continues from the last checkpoint's global step
    with its optimizer, LR-scheduler and loop state; ``callbacks`` are added to the
    trainer's. ``warm_from`` (a saved stage-2 narrator, the champion) continues that model:
    stage 1 takes its backbone and projector, stage 2 its compressor and time encoder.
    ``max_steps`` overrides ``train_cfg.max_steps``; 0 saves the initial model untrained.
    ``focus`` video ids make up ``focus_share`` of the training samples (NarratorDataModule).
    """
    if stage not in (1, 2):
        raise StageError(f"stage must be 1 or 2, got {stage}")
    steps = train_cfg.max_steps if max_steps is None else max_steps
    if steps < 0:
        raise StageError(f"max_steps must be >= 0, got {steps}")
    dataset_dir, out_dir = Path(dataset_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(train_cfg.seed, workers=True, verbose=False)
    model, tok = _initial_model(stage, dataset_dir, out_dir, model_cfg, init_model_dir, warm_from)
    if train_cfg.max_frames is not None:
        model.cfg = dataclasses.replace(model.cfg, max_frames=train_cfg.max_frames)
    if steps == 0:
        return keep_weights(stage, model, tok, out_dir)
    model.set_gradient_checkpointing(train_cfg.gradient_checkpointing)
    module = NarratorLightningModule(
        model, train_cfg.lr, train_cfg.weight_decay, train_cfg.warmup_steps, stage
    )
    data = NarratorDataModule(
        dataset_dir,
        tok,
        model.input_spec(),
        train_cfg.batch_size,
        train_cfg.num_workers,
        focus=focus,
        focus_share=focus_share,
        augment=train_cfg.augment,
        seed=train_cfg.seed,
    )
    ckpt_dir = out_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, save_last=True, every_n_train_steps=train_cfg.checkpoint_every_n_steps
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator=train_cfg.accelerator,
        devices=train_cfg.devices,
        strategy=train_cfg.strategy,
        num_nodes=train_cfg.num_nodes,
        precision=resolve_precision(train_cfg),
        callbacks=[
            *callbacks,
            checkpoint,
            ProgressLog(f"train stage {stage}", train_cfg.progress_every_s),
        ],
        logger=logger if logger is not None else CSVLogger(out_dir / "logs", name=f"stage{stage}"),
        limit_val_batches=train_cfg.limit_val_batches,
        log_every_n_steps=train_cfg.log_every_n_steps,
        # the redrawn bar only on a terminal; logs (dvc repro -> Prefect) get ProgressLog's lines
        enable_progress_bar=sys.stderr.isatty(),
        # Some CUDA kernels (adaptive pooling backward) have no deterministic variant: warn only.
        deterministic="warn",
        default_root_dir=out_dir,
    )
    trainer.fit(module, datamodule=data, ckpt_path=last if last.is_file() else None)
    train_loss = _metric(dict(trainer.callback_metrics), "train_loss")
    trainer.save_checkpoint(last)  # the end state, whatever the checkpoint interval
    val = (
        trainer.validate(module, datamodule=data, verbose=False)
        if train_cfg.limit_val_batches
        else []
    )
    names = sorted(trainable_parameter_names(model))
    metrics = {
        "train_loss": train_loss,
        "val_loss": _metric(val[0] if val else {}, "val_loss"),
        "steps": float(trainer.global_step),
        "trainable_params": float(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "total_params": float(sum(p.numel() for p in model.parameters())),
    }
    model_dir = out_dir / "model"
    if trainer.is_global_zero:
        save_narrator(model, tok, model_dir)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return TrainResult(
        model_dir=model_dir,
        metrics=metrics,
        trainable_parameter_names=names,
        lightning_checkpoint=last,
    )
