"""GRU-based time encoder (paper §3.4.4 / §3.5): frame timestamps -> timestamp tokens T_e."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from hivid.configbase import require


@dataclass
class TimeEncoderConfig:
    """Sizes of the time encoder."""

    dim: int = 0
    """Output size D (the LLM hidden size); 0 = take it from the LLM when the narrator is built."""
    hidden: int = 64
    """GRU hidden size."""
    num_layers: int = 1
    """GRU layers."""
    num_frequencies: int = 8
    """Sin/cos pairs of the scalar features; periods are geometric from 1 s to ``max_period``."""
    max_period: float = 600.0
    """Longest sin/cos period and the scale of the normalised time t / max_period (seconds)."""
    text_anchor: bool = False
    """Also add, to each frame's token, an attention-pooled sum of the LLM's own embeddings of
    that frame's timestamp text (the ``<t=8.0s>`` tokens stage 1 reads before the frame): the
    token then starts out as what the stage-1 LLM knows as that time, so it can copy the time
    into a chapter span (the LLM input length is unchanged: still one token per frame)."""

    def __post_init__(self) -> None:
        require(self.dim >= 0, f"time_encoder.dim must be >= 0 (0 = LLM hidden), got {self.dim}")
        require(self.hidden > 0, f"time_encoder.hidden must be > 0, got {self.hidden}")
        require(self.num_layers > 0, f"time_encoder.num_layers must be > 0, got {self.num_layers}")
        require(self.num_frequencies >= 0, "time_encoder.num_frequencies must be >= 0")
        require(
            self.max_period > 1.0, f"time_encoder.max_period must be > 1 s, got {self.max_period}"
        )


class GRUTimeEncoder(nn.Module):
    """(B, N) timestamps in seconds -> (B, N, D) timestamp tokens.

    Per-frame scalar features [t / T, dt / T, sin(2 pi t / p_k), cos(2 pi t / p_k)] (T = max_period)
    go through a unidirectional GRU (so each token also knows the frames before it) and a linear
    projection. Padding sits at the end of each row and the GRU is causal, so a padded frame never
    changes a real frame's token; padded outputs are zeroed.
    """

    def __init__(self, cfg: TimeEncoderConfig) -> None:
        super().__init__()
        require(cfg.dim > 0, "GRUTimeEncoder needs a resolved dim > 0")
        self.cfg = cfg
        periods = torch.logspace(0.0, math.log10(cfg.max_period), max(cfg.num_frequencies, 1))
        self.register_buffer("periods", periods[: cfg.num_frequencies], persistent=False)
        n_feat = 2 + 2 * cfg.num_frequencies
        self.gru = nn.GRU(n_feat, cfg.hidden, num_layers=cfg.num_layers, batch_first=True)
        self.proj = nn.Linear(cfg.hidden, cfg.dim)
        # Pooling query over a frame's timestamp-text embeddings; zero = their mean at first.
        self.text_query = nn.Parameter(torch.zeros(cfg.dim)) if cfg.text_anchor else None

    def features(self, times: torch.Tensor) -> torch.Tensor:
        """(B, N) seconds -> (B, N, 2 + 2K) scalar features."""
        t = times.float()
        dt = torch.diff(t, dim=1, prepend=t[:, :1])  # (B, N), 0 for the first frame
        periods: torch.Tensor = self.periods  # type: ignore[assignment]
        phase = 2 * math.pi * t[..., None] / periods  # (B, N, K)
        scale = self.cfg.max_period
        return torch.cat(
            [t[..., None] / scale, dt[..., None] / scale, phase.sin(), phase.cos()], -1
        )

    def forward(
        self,
        times: torch.Tensor,
        mask: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``times`` (B, N) seconds, ``mask`` (B, N) True for real frames -> (B, N, D).

        With ``text_anchor``: ``text`` (B, N, K, D) embeddings of each frame's timestamp-text
        tokens and ``text_mask`` (B, N, K) True for real ones are pooled and added.
        """
        if mask is not None:
            # Padded times are arbitrary; zero them so dt of a real frame never sees them.
            times = torch.where(mask, times, torch.zeros_like(times))
        out, _ = self.gru(self.features(times).to(self.proj.weight.dtype))  # (B, N, H)
        tokens = self.proj(out)  # (B, N, D)
        if self.text_query is not None:
            if text is None or text_mask is None:
                raise ValueError("time_encoder.text_anchor needs the timestamp-text embeddings")
            score = text.to(tokens.dtype) @ self.text_query.to(tokens.dtype)  # (B, N, K)
            score = score.masked_fill(~text_mask.bool(), float("-inf"))
            w = torch.nan_to_num(score.softmax(dim=-1))  # a frame without text -> 0 weights
            tokens = tokens + (w[..., None] * text.to(tokens.dtype)).sum(dim=2)  # (B, N, D)
        if mask is not None:
            tokens = tokens * mask[..., None].to(tokens.dtype)
        return tokens
