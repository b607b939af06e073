"""Optional narrator components from the related papers, each a config switch (all off by default).

- Relative clip-position embedding (VideoNarrator, "Synchronized Video Storytelling" §4.1): each
  frame's relative position p = t / t_last in the video is bucketed and embedded, and the embedding
  is added to that frame's projected visual tokens.
- Memory consolidation of earlier clips (VideoNarrator, after MovieChat): the visual tokens of all
  frames but the last ``memory_recent_frames`` are merged, repeatedly averaging the most similar
  adjacent pair, into ``memory_tokens`` fixed-length memory tokens placed before the recent frames.
- LoRA on the LLM (peft): stage 1 trains low-rank adapters instead of the full LLM; the adapters
  are merged into the LLM weights when the model is saved.
- Keyword generation auxiliary task (SVAD-VLM §4.2): a second, prompt-guided sequence per video
  asks for a word blanked out of a chapter summary; its loss is added with ``keyword_task_weight``.
- Dual visual alignment (SVAD-VLM §4.3, eq. 11): samples whose ``source`` is ``auxiliary`` are
  projected by a second projector into their own embedding space.
- Copy head (pointer-generator, See et al., ACL 2017): the next-token distribution mixes the LM
  head's with an attention over the input's text tokens, so a name or a time said in the video is
  copied whole rather than rebuilt from subwords the LM head finds likely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hivid.configbase import require


@dataclass
class NarratorOptions:
    """Switches of the optional components (module docstring)."""

    clip_position_bins: int = 0
    """Relative clip-position embedding with this many position buckets; 0 = off."""
    frame_change_bins: int = 0
    """Frame-change embedding (``FrameChangeEmbedding``): how much each frame differs from the
    one before, in this many buckets, added to its visual tokens (where shots cut); 0 = off."""
    memory_tokens: int = 0
    """Memory consolidation: earlier frames' visual tokens merged into this many; 0 = off."""
    memory_recent_frames: int = 4
    """Frames at the end of the video kept at full resolution when memory consolidation is on."""
    lora_rank: int = 0
    """LoRA rank on the LLM (stage 1 trains the adapters, not the LLM); 0 = full fine-tune."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / rank)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    """LLM linear layers that get adapters (Qwen3 module names)."""
    keyword_task_weight: float = 0.0
    """Weight of the keyword-generation auxiliary loss; 0 = off."""
    dual_alignment: bool = False
    """A second projector for samples whose ``source`` is ``auxiliary``."""
    copy_head: bool = False
    """Pointer-generator copy head (``CopyHead``) over the input's text tokens; trained in stage 1,
    frozen in stage 2 with the rest of the stage-1 narrator."""
    copy_follow: bool = False
    """Copy head only: a learnt bonus on the copy score of the source position that follows an
    occurrence of the token just written (CopyNet's "selective read", Gu et al., ACL 2016), so a
    copied name goes on with its own next subword ("Glow" after "G"), not a jump elsewhere."""

    def __post_init__(self) -> None:
        require(self.clip_position_bins >= 0, "options.clip_position_bins must be >= 0")
        require(self.frame_change_bins >= 0, "options.frame_change_bins must be >= 0")
        require(self.memory_tokens >= 0, "options.memory_tokens must be >= 0")
        require(self.memory_recent_frames >= 1, "options.memory_recent_frames must be >= 1")
        require(self.lora_rank >= 0, "options.lora_rank must be >= 0")
        require(self.lora_alpha > 0, "options.lora_alpha must be > 0")
        require(0.0 <= self.lora_dropout < 1.0, "options.lora_dropout must be in [0, 1)")
        require(bool(self.lora_targets), "options.lora_targets must not be empty")
        require(self.keyword_task_weight >= 0, "options.keyword_task_weight must be >= 0")
        require(not self.copy_follow or self.copy_head, "options.copy_follow needs copy_head")


class ClipPositionEmbedding(nn.Module):
    """(B, N) frame times -> (B, N, D) embeddings of the relative position t / t_last.

    Zero-initialised, so switching it on leaves a pretrained model's input unchanged at first.
    """

    def __init__(self, bins: int, dim: int) -> None:
        super().__init__()
        self.bins = bins
        self.embed = nn.Embedding(bins + 1, dim)
        nn.init.zeros_(self.embed.weight)

    def forward(self, times: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = torch.where(mask, times.float(), torch.zeros_like(times, dtype=torch.float32))
        last = t.max(dim=1, keepdim=True).values.clamp_min(1e-6)  # (B, 1)
        pos = (t / last * self.bins).round().long().clamp(0, self.bins)  # (B, N)
        return self.embed(pos) * mask[..., None].to(self.embed.weight.dtype)  # (B, N, D)


class FrameChangeEmbedding(nn.Module):
    """(B, N, 3, H, W) pixels, (B, N) mask -> (B, N, D): an embedding of how much each frame
    changed since the frame before it.

    A random-initialised vision tower at 32 px learns slowly to compare frames, yet a shot cut,
    where chapters of a product video begin, is the largest change between neighbours. The change
    is the mean absolute pixel difference c (normalised pixels), mapped to c / (c + 0.1) in [0, 1)
    (so small motion and cuts land far apart) and cut into ``bins`` buckets; the first frame has
    its own bucket. Zero-initialised, like the clip-position embedding.
    """

    def __init__(self, bins: int, dim: int) -> None:
        super().__init__()
        self.bins = bins
        self.embed = nn.Embedding(bins + 1, dim)
        nn.init.zeros_(self.embed.weight)

    def forward(self, pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = pixels.float()
        c = (x[:, 1:] - x[:, :-1]).abs().mean(dim=(2, 3, 4))  # (B, N - 1)
        level = (c / (c + 0.1) * self.bins).floor().long().clamp(0, self.bins - 1)
        first = level.new_full((x.shape[0], 1), self.bins)  # (B, 1): the video's first frame
        idx = torch.cat([first, level], dim=1)  # (B, N)
        return self.embed(idx) * mask[..., None].to(self.embed.weight.dtype)  # (B, N, D)


class CopyHead(nn.Module):
    """Pointer-generator output (See et al., ACL 2017, eq. 8-9) over the LLM's last hidden states.

    p(w) = g * p_lm(w) + (1 - g) * sum_{s: id_s = w} a_s, with a = softmax(q_t . k_s / sqrt(D))
    over the source positions s (the input's text tokens: prompt, timestamps, narration; never a
    visual slot or the target) and g = sigmoid(w_g . h_t + b). A random-initialised LM head learns
    to spell a rare product name only from many examples; attending to where the name was said
    copies it token by token (the key of the name's next subword carries the one before it).

    ``follow`` (``options.copy_follow``): a learnt scalar added to the score of every source
    position s whose previous token (at s - 1) is the token the query position holds (what was
    just written), so a copy goes on where it left off.
    """

    def __init__(self, dim: int, follow: bool = False) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.gate = nn.Linear(dim, 1)
        self.follow = nn.Parameter(torch.tensor(FOLLOW_INIT)) if follow else None

    def attention(
        self,
        hidden: torch.Tensor,
        keys: torch.Tensor,
        src_mask: torch.Tensor,
        follows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, Q, D) query states, (B, S, D) keys (``self.key`` of the source states), (B, S)
        source mask -> (B, Q, S) copy attention a; a row without any source is all 0.
        ``follows`` (B, Q, S): source s follows an occurrence of query q's token (``follow_mask``),
        used when the head has ``follow``."""
        q = self.query(hidden)  # (B, Q, D)
        scores = torch.einsum("bqd,bsd->bqs", q, keys).float() / math.sqrt(q.shape[-1])
        if self.follow is not None and follows is not None:
            scores = scores + self.follow.float() * follows.float()
        scores = scores.masked_fill(~src_mask.bool()[:, None, :], float("-inf"))  # (B, Q, S)
        return torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)

    def log_probs(
        self,
        hidden: torch.Tensor,
        lm_logits: torch.Tensor,
        attn: torch.Tensor,
        src_ids: torch.Tensor,
    ) -> torch.Tensor:
        """(K, D) query states, (K, V) LM-head logits, (K, S) copy attention, (K, S) source token
        ids -> (K, V) log p(w) of the mixture."""
        copy = torch.zeros_like(lm_logits, dtype=torch.float32)  # (K, V)
        copy.scatter_add_(1, src_ids, attn.float())
        # g = sigmoid(gate), kept as a logit; a row with nothing to copy from generates (g = 1).
        g = self.gate(hidden).float().masked_fill(attn.sum(-1, keepdim=True) <= 0, 1e4)  # (K, 1)
        gen = F.logsigmoid(g) + F.log_softmax(lm_logits.float(), dim=-1)  # (K, V)
        cop = F.logsigmoid(-g) + torch.log(copy.clamp_min(1e-30))
        return torch.logaddexp(gen, cop.masked_fill(copy <= 0, float("-inf")))


FOLLOW_INIT = 1.0
"""Initial copy-continuation bonus, a logit (e: ~2.7x the attention of an equal source)."""


def follow_mask(prev_src_ids: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """(B, S) id of the token before each source position, (B, Q) the token at each query
    position -> (B, Q, S) bool: source s comes right after an occurrence of query q's token."""
    return prev_src_ids[:, None, :] == current[:, :, None]


def previous_ids(ids: torch.Tensor) -> torch.Tensor:
    """(B, T) ids -> (B, T) the id before each position (-1 at position 0)."""
    return torch.cat([ids.new_full((ids.shape[0], 1), -1), ids[:, :-1]], dim=1)


def consolidate(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """(M, D) tokens in time order -> (min(M, length), D): merge the most similar adjacent pair
    (cosine similarity) into its mean until ``length`` remain (MovieChat-style memory)."""
    out = tokens
    while out.shape[0] > length:
        x = torch.nn.functional.normalize(out.float(), dim=-1)
        sim = (x[:-1] * x[1:]).sum(-1)  # (M - 1,)
        i = int(sim.argmax())
        merged = (out[i] + out[i + 1]) / 2
        out = torch.cat([out[:i], merged[None], out[i + 2 :]], dim=0)
    return out


LORA_ADAPTER = "default"
"""peft adapter name used for the LLM's LoRA."""


def add_lora(llm: nn.Module, opts: NarratorOptions) -> None:
    """Inject LoRA adapters (peft) into ``llm``'s ``opts.lora_targets`` linear layers in place.

    Parameter names gain ``.base_layer`` / ``.lora_A.default`` / ``.lora_B.default``; lora_B starts
    at zero, so the injected model computes exactly what the plain one did.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(
        r=opts.lora_rank,
        lora_alpha=opts.lora_alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=list(opts.lora_targets),
        bias="none",
    )
    inject_adapter_in_model(config, llm, adapter_name=LORA_ADAPTER)


def is_lora_parameter(name: str) -> bool:
    """True for LoRA adapter parameters (``lora_A`` / ``lora_B``)."""
    return ".lora_A." in name or ".lora_B." in name


def merged_state_dict(llm: nn.Module) -> dict[str, torch.Tensor]:
    """``llm``'s state dict with every LoRA delta merged into its base weight, under the plain
    (adapter-free) parameter names, so ``save_pretrained`` writes an ordinary checkpoint."""
    from peft.tuners.lora import LoraLayer

    merged: dict[str, torch.Tensor] = {}
    for name, module in llm.named_modules():
        if isinstance(module, LoraLayer) and LORA_ADAPTER in module.lora_A:
            base = module.get_base_layer()
            delta = module.get_delta_weight(LORA_ADAPTER)  # type: ignore[attr-defined]
            merged[f"{name}.weight"] = (base.weight + delta.to(base.weight.dtype)).detach()
    out: dict[str, torch.Tensor] = {}
    for key, value in llm.state_dict().items():
        if ".lora_" in key:
            continue
        plain = key.replace(".base_layer.", ".")
        out[plain] = merged.get(plain, value)
    return out
