"""Constrained decoding for ``HiVidNarrator.generate``: only tokens of the target grammar and of the
video's own input may be emitted (see ``hivid.models.sequence``), and no word token right after
itself (a small model's commonest failure: "the Orvana Orvana Orvana", "$ $ $").
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


class NoImmediateRepeat(LogitsProcessor):
    """Logits processor: a token in ``blocked`` cannot follow itself (-inf right after it).

    ``blocked``: the word tokens (``word_token_ids``); whitespace and digit tokens may repeat.
    """

    def __init__(self, blocked: torch.Tensor) -> None:
        self.blocked = blocked.long()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:
            return scores
        last = input_ids[:, -1]  # (B,)
        hit = torch.isin(last, self.blocked.to(last.device)) & (last < scores.shape[-1])
        rows = hit.nonzero().flatten()
        scores = scores.clone()
        scores[rows, last[rows]] = float("-inf")
        return scores


def word_token_ids(decoded: list[str]) -> torch.Tensor:
    """Ids of the tokens whose text (``decoded[i]``) is more than whitespace and not a number."""
    return torch.tensor(
        [i for i, t in enumerate(decoded) if t.strip() and not t.strip().isdigit()],
        dtype=torch.long,
    )
