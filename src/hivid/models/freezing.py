"""Which parameters each training stage trains (paper §3.5, §4.1.3).

Stage 1 (task adaptation): the narrator without compressor, every parameter trainable.
Stage 2 (compression-aware fine-tuning): SPA-Compressor + time encoder trainable; vision tower,
projector and LLM frozen. Kept free of Lightning so GPU benchmarks can import it alone.
"""

from __future__ import annotations

from torch import nn

from hivid.models.narrator import HiVidNarrator
from hivid.models.options import is_lora_parameter

STAGE2_TRAINABLE = ("compressor", "time_encoder")
"""Top-level submodules stage 2 trains."""
STAGE2_FROZEN = (
    "vision",
    "projector",
    "projector_aux",
    "clip_position",
    "frame_change",
    "copy_head",
    "llm",
)
"""Top-level submodules stage 2 keeps frozen (and in eval mode)."""


class StageError(ValueError):
    """The model does not fit the requested training stage."""


def trainable_parameter_names(module: nn.Module) -> set[str]:
    """Names of the parameters with ``requires_grad``."""
    return {n for n, p in module.named_parameters() if p.requires_grad}


def apply_stage_freezing(model: HiVidNarrator, stage: int) -> None:
    """Set requires_grad for ``stage`` (1: all, or all but the LLM's base weights with LoRA;
    2: compressor and time encoder only)."""
    if stage == 1:
        if model.use_compressor:
            raise StageError("stage 1 trains the narrator without the compressor (use_compressor)")
        model.requires_grad_(True)
        if model.cfg.options.lora_rank:
            for name, p in model.llm.named_parameters():
                p.requires_grad_(is_lora_parameter(name))
    elif stage == 2:
        if not model.use_compressor:
            raise StageError("stage 2 needs a narrator with the compressor (add_compressor first)")
        model.requires_grad_(False)
        for name in STAGE2_TRAINABLE:
            getattr(model, name).requires_grad_(True)
    else:
        raise StageError(f"stage must be 1 or 2, got {stage}")
