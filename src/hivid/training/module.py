"""One stage-agnostic LightningModule for both training stages (paper §3.5, §4.1.3).

Stage 1 (task adaptation): the narrator without compressor, every parameter trainable.
Stage 2 (compression-aware fine-tuning): SPA-Compressor + time encoder trainable; vision tower,
projector and LLM frozen (requires_grad False and kept in eval mode so their dropout is off).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from hivid.models.freezing import (
    STAGE2_FROZEN,
    STAGE2_TRAINABLE,
    StageError,
    apply_stage_freezing,
    trainable_parameter_names,
)
from hivid.models.narrator import HiVidNarrator

DEFAULT_LR = {1: 1e-4, 2: 5e-5}
"""Paper §4.1.3 learning rates per stage."""

__all__ = [
    "DEFAULT_LR",
    "STAGE2_TRAINABLE",
    "NarratorLightningModule",
    "StageError",
    "apply_stage_freezing",
    "trainable_parameter_names",
]


class NarratorLightningModule(L.LightningModule):
    """Causal-LM loss on the target tokens; AdamW with linear warmup then cosine decay."""

    def __init__(
        self,
        model: HiVidNarrator,
        lr: float | None = None,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        stage: int = 1,
    ) -> None:
        super().__init__()
        apply_stage_freezing(model, stage)
        self.model = model
        self.stage = stage
        self.lr = DEFAULT_LR[stage] if lr is None else lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.save_hyperparameters(
            {"lr": self.lr, "weight_decay": weight_decay, "warmup_steps": warmup_steps,
             "stage": stage}
        )  # fmt: skip
        # from_pretrained returns backbones in eval mode and Lightning keeps module modes as they
        # are, so set the stage's modes here (dropout on where trained, off where frozen).
        self.train()

    def train(self, mode: bool = True) -> NarratorLightningModule:
        """Lightning toggles train/eval around validation; frozen parts must stay in eval."""
        super().train(mode)
        if self.stage == 2:
            for name in STAGE2_FROZEN:
                part = getattr(self.model, name)
                if part is not None:
                    part.eval()
        return self

    def _loss(self, batch: dict[str, Any]) -> torch.Tensor:
        loss = self.model(batch).loss
        assert loss is not None
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        bs = batch["input_ids"].shape[0]
        weight = self.model.cfg.options.keyword_task_weight
        if weight > 0 and "kw_input_ids" in batch:  # SVAD-VLM keyword generation (aux loss)
            kw = {k[3:]: v for k, v in batch.items() if k.startswith("kw_")}
            kw_loss = self._loss({**batch, **kw})
            self.log("train_keyword_loss", kw_loss, on_step=True, on_epoch=False, batch_size=bs)
            loss = loss + weight * kw_loss
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        bs = batch["input_ids"].shape[0]
        self.log("val_loss", loss, prog_bar=True, on_epoch=True, batch_size=bs, sync_dist=True)
        return loss

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        # No weight decay on 1-D parameters (biases, norm scales).
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = self.warmup_steps

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))  # floor at 10 %

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
