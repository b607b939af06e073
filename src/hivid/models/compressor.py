"""SPA-Compressor: Scene-Primed ASR-anchored Compressor (paper §3.4, eqs. 2-12).

Input: projected vision tokens V (B, N, L_v, D), ASR token embeddings A (B, L_a, D) and timestamp
tokens T_e (B, N, D). Output: H_final = [H_scene, T_e(1), H_event(1), ..., T_e(N), H_event(N)]
of shape (B, S + N(1+E), D) with its validity mask. Masks are True for real frames / tokens;
padded frames and ASR tokens are excluded from every attention as keys, and their own outputs are
marked invalid, so padding never changes a real token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hivid.configbase import require


@dataclass
class SPACompressorConfig:
    """Sizes of the SPA-Compressor (paper §4.1.3: S=64, E=32, L_s=L_e=2)."""

    dim: int = 0
    """Token size D (the LLM hidden size); 0 = take it from the LLM when the narrator is built."""
    num_scene_queries: int = 64
    """S: learnable scene queries (global context tokens)."""
    num_event_queries: int = 32
    """E: event tokens per frame."""
    scene_layers: int = 2
    """L_s: SceneFusionAggregator layers."""
    event_layers: int = 2
    """L_e: EventDetailExtractor decoder layers."""
    num_heads: int = 8
    """Attention heads of every attention block (must divide dim)."""
    ffn_mult: int = 4
    """FFN hidden size = ffn_mult * dim."""
    dropout: float = 0.0
    """Dropout on attention weights and FFN outputs."""

    def __post_init__(self) -> None:
        require(self.dim >= 0, f"compressor.dim must be >= 0 (0 = LLM hidden), got {self.dim}")
        require(self.num_scene_queries > 0, "compressor.num_scene_queries must be > 0")
        require(self.num_event_queries > 0, "compressor.num_event_queries must be > 0")
        require(self.scene_layers > 0, "compressor.scene_layers must be > 0")
        require(self.event_layers > 0, "compressor.event_layers must be > 0")
        require(self.num_heads > 0, "compressor.num_heads must be > 0")
        require(
            self.dim == 0 or self.dim % self.num_heads == 0,
            f"compressor.num_heads={self.num_heads} must divide dim={self.dim}",
        )
        require(self.ffn_mult > 0, "compressor.ffn_mult must be > 0")
        require(
            0.0 <= self.dropout < 1.0, f"compressor.dropout must be in [0, 1), got {self.dropout}"
        )

    def num_output_tokens(self, n_frames: int) -> int:
        """S + N(1+E): length of H_final for ``n_frames`` frames (eq. 12)."""
        return self.num_scene_queries + n_frames * (1 + self.num_event_queries)


class FeedForward(nn.Module):
    """FFN(x) = dropout(W2 GELU(W1 x)); the pre-LN is applied by the caller, as in the equations."""

    def __init__(self, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head attention; ``key_mask`` (B, L_k) is True for keys that may be attended."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)

    def forward(
        self, q: torch.Tensor, kv: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        # No mask when every key is real: SDPA can then use its fused (flash) kernels.
        pad = None if key_mask is None or bool(key_mask.all()) else ~key_mask
        out, _ = self.attn(q, kv, kv, key_padding_mask=pad, need_weights=False)
        return out


class CrossModalFusion(nn.Module):
    """Vision -> ASR fusion (eqs. 2-3): A' = Ā + CrossAttn(Ā, V_f), A_fused = A' + FFN(LN(A'))."""

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        self.norm_a = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.num_heads, cfg.dropout)
        self.norm_ffn = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.ffn_mult, cfg.dropout)

    def forward(self, asr: torch.Tensor, vf: torch.Tensor, vf_mask: torch.Tensor) -> torch.Tensor:
        """``asr`` (B, L_a, D), ``vf`` (B, N*L_v, D) already LN'd, ``vf_mask`` (B, N*L_v)."""
        a_bar = self.norm_a(asr)  # (B, L_a, D)
        a = a_bar + self.attn(a_bar, vf, vf_mask)  # eq. 2
        return a + self.ffn(self.norm_ffn(a))  # eq. 3, (B, L_a, D)


class SceneLayer(nn.Module):
    """One SceneFusionAggregator layer (eqs. 5-6)."""

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg.dim, cfg.num_heads, cfg.dropout)
        self.norm_ffn = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.ffn_mult, cfg.dropout)

    def forward(self, h: torch.Tensor, mem: torch.Tensor, mem_mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm_q(h), mem, mem_mask)  # eq. 5
        return h + self.ffn(self.norm_ffn(h))  # eq. 6


class SceneFusionAggregator(nn.Module):
    """S learnable scene queries attending to M_s = [A_fused, V_f] through L_s layers (eqs. 4-6)."""

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(cfg.num_scene_queries, cfg.dim) * 0.02)  # Q_s
        self.norm_q = nn.LayerNorm(cfg.dim)
        self.layers = nn.ModuleList(SceneLayer(cfg) for _ in range(cfg.scene_layers))

    def forward(self, mem: torch.Tensor, mem_mask: torch.Tensor) -> torch.Tensor:
        """``mem`` (B, L_a + N*L_v, D) -> H_scene (B, S, D)."""
        h = self.norm_q(self.queries).expand(mem.shape[0], -1, -1)  # H_s^(0) = LN(Q_s), (B, S, D)
        for layer in self.layers:
            h = layer(h, mem, mem_mask)
        return h


class EventLayer(nn.Module):
    """One EventDetailExtractor decoder layer (eqs. 8-10)."""

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(cfg.dim)
        self.self_attn = Attention(cfg.dim, cfg.num_heads, cfg.dropout)
        self.norm_cross = nn.LayerNorm(cfg.dim)
        self.cross_attn = Attention(cfg.dim, cfg.num_heads, cfg.dropout)
        self.norm_ffn = nn.LayerNorm(cfg.dim)
        self.ffn = FeedForward(cfg.dim, cfg.ffn_mult, cfg.dropout)

    def forward(self, h: torch.Tensor, mem: torch.Tensor, mem_mask: torch.Tensor) -> torch.Tensor:
        """``h`` (B, N, E, D) event states; ``mem`` (B, L_a + S, D) is M_e, shared by all frames."""
        b, n, e, d = h.shape
        x = self.norm_self(h).reshape(b * n, e, d)  # self-attention stays within a frame
        h = h + self.self_attn(x, x).view(b, n, e, d)  # eq. 8
        # Cross-attention queries are independent of each other, so attending to the shared M_e
        # with all frames' queries as one (B, N*E, D) batch equals the per-frame (B*N, E, D) form
        # of eq. 9 without replicating M_e N times.
        q = self.norm_cross(h).reshape(b, n * e, d)
        h = h + self.cross_attn(q, mem, mem_mask).view(b, n, e, d)  # eq. 9
        return h + self.ffn(self.norm_ffn(h))  # eq. 10, (B, N, E, D)


class EventDetailExtractor(nn.Module):
    """E learnable event queries per frame, decoded against M_e = [A_fused, H_scene] (eqs. 7-10).

    Frame conditioning (the paper leaves it open; eq. 7's M_e holds no per-frame vision, and with
    identical queries every frame would yield identical events): each frame's queries start from
    H_e^(0) = LN(Q_e) + T_e(i) + W_v LN(mean_j V_i,j). Adding the timestamp token follows the
    paper's "event queries ... anchored by timestamp encodings"; adding the frame's pooled visual
    feature gives each frame's events their own visual content. M_e stays exactly eq. 7 and shared,
    which keeps cross-attention at O(N*E*(L_a+S)) instead of replicating ASR keys for every frame.
    """

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(cfg.num_event_queries, cfg.dim) * 0.02)  # Q_e
        self.norm_q = nn.LayerNorm(cfg.dim)
        self.norm_frame = nn.LayerNorm(cfg.dim)
        self.frame_proj = nn.Linear(cfg.dim, cfg.dim)
        self.layers = nn.ModuleList(EventLayer(cfg) for _ in range(cfg.event_layers))

    def forward(
        self,
        frame_feat: torch.Tensor,
        time_tokens: torch.Tensor,
        mem: torch.Tensor,
        mem_mask: torch.Tensor,
    ) -> torch.Tensor:
        """``frame_feat`` (B, N, D) pooled vision, ``time_tokens`` (B, N, D) -> (B, N, E, D)."""
        cond = time_tokens + self.frame_proj(self.norm_frame(frame_feat))  # (B, N, D)
        h = self.norm_q(self.queries)[None, None] + cond[:, :, None]  # (B, N, E, D)
        for layer in self.layers:
            h = layer(h, mem, mem_mask)
        return h


class SPACompressor(nn.Module):
    """Vision-ASR fusion, scene aggregation, event extraction and hierarchical assembly."""

    def __init__(self, cfg: SPACompressorConfig) -> None:
        super().__init__()
        require(cfg.dim > 0, "SPACompressor needs a resolved dim > 0")
        self.cfg = cfg
        self.norm_v = nn.LayerNorm(cfg.dim)
        self.fusion = CrossModalFusion(cfg)
        self.scene = SceneFusionAggregator(cfg)
        self.event = EventDetailExtractor(cfg)

    def forward(
        self,
        vision: torch.Tensor,
        vision_mask: torch.Tensor,
        asr: torch.Tensor,
        asr_mask: torch.Tensor,
        time_tokens: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compress one batch.

        vision (B, N, L_v, D), vision_mask (B, N) True for real frames (each video needs one),
        asr (B, L_a, D), asr_mask (B, L_a) True for real tokens (L_a may be 0), time_tokens
        (B, N, D) -> H_final (B, S + N(1+E), D) and its mask (B, S + N(1+E)).
        """
        b, n, lv, d = vision.shape
        vision_mask = vision_mask.bool()
        asr_mask = asr_mask.bool()
        if not bool(vision_mask.any(dim=1).all()):
            raise ValueError("SPACompressor: every video needs at least one real frame")
        # Zero padded frames so that even non-finite padding cannot leak through 0-weight attention.
        vision = torch.where(vision_mask[:, :, None, None], vision, torch.zeros_like(vision))
        v_norm = self.norm_v(vision)  # LN(V), (B, N, L_v, D)
        vf = v_norm.reshape(b, n * lv, d)  # V_f = Flatten(LN(V)), (B, N*L_v, D)
        vf_mask = vision_mask[:, :, None].expand(b, n, lv).reshape(b, n * lv)  # (B, N*L_v)

        if asr.shape[1] > 0:
            asr = torch.where(asr_mask[..., None], asr, torch.zeros_like(asr))
            a_fused = self.fusion(asr, vf, vf_mask)  # (B, L_a, D)
        else:
            a_fused = asr  # (B, 0, D): nothing to fuse

        mem_s = torch.cat([a_fused, vf], dim=1)  # M_s, (B, L_a + N*L_v, D), eq. 4
        mem_s_mask = torch.cat([asr_mask, vf_mask], dim=1)
        h_scene = self.scene(mem_s, mem_s_mask)  # (B, S, D)

        mem_e = torch.cat([a_fused, h_scene], dim=1)  # M_e, (B, L_a + S, D), eq. 7
        scene_mask = torch.ones(b, h_scene.shape[1], dtype=torch.bool, device=vision.device)
        mem_e_mask = torch.cat([asr_mask, scene_mask], dim=1)
        real = vision_mask[..., None].to(v_norm.dtype)  # (B, N, 1)
        frame_feat = v_norm.mean(dim=2) * real  # (B, N, D)
        h_event = self.event(frame_feat, time_tokens, mem_e, mem_e_mask)  # (B, N, E, D)

        frames = torch.cat([time_tokens[:, :, None], h_event], dim=2)  # (B, N, 1+E, D), eq. 11
        e1 = frames.shape[2]
        tokens = torch.cat([h_scene, frames.reshape(b, n * e1, d)], dim=1)  # eq. 12
        mask = torch.cat([scene_mask, vision_mask.repeat_interleave(e1, dim=1)], dim=1)
        return tokens, mask  # (B, S + N(1+E), D), (B, S + N(1+E))
