"""Constrained decoding for ``HiVidNarrator.generate``: only tokens of the target grammar and of the
video's own input may be emitted (see ``hivid.models.sequence``).
"""

from __future__ import annotations

import torch
from transformers.generation import LogitsProcessor


class AllowedTokens(LogitsProcessor):
    """Logits processor of constrained decoding: tokens outside ``allowed`` get -inf."""

    def __init__(self, allowed: torch.Tensor) -> None:
        self.allowed = allowed.long()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, float("-inf"))
        keep = self.allowed[self.allowed < scores.shape[-1]].to(scores.device)
        mask[:, keep] = 0.0
        return scores + mask
