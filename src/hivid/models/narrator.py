"""HiVid-Narrator: SigLIP vision encoder + MLP projector + Qwen3 LLM (+ SPA-Compressor, GRU time).

Without the compressor (stage 1) the LLM reads the interleaved sequence of eq. 1 with every visual
placeholder replaced by a projected vision token. With it (stage 2) the LLM reads
``[prompt, H_final, target]`` where H_final = SPACompressor(projected vision, ASR token embeddings,
GRUTimeEncoder(frame times)).

Every backbone goes through ``from_pretrained``: a pretrained one by hub id or local path, a
random-initialised one (``tiny``) after being saved to a local directory first, so the same code
path runs in tests and in production. A saved narrator directory holds::

    narrator_config.json   the resolved NarratorConfig
    vision/  llm/          SiglipVisionModel / Qwen3ForCausalLM (config.json + model.safetensors)
    heads.safetensors      projector (+ compressor and time encoder in stage 2)
    tokenizer/             PreTrainedTokenizerFast files
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    PreTrainedTokenizerBase,
    Qwen3Config,
    Qwen3ForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.generation import LogitsProcessorList
from transformers.modeling_outputs import CausalLMOutputWithPast

from hivid.configbase import ConfigError, from_mapping, require, to_dict
from hivid.models.compressor import SPACompressor, SPACompressorConfig
from hivid.models.options import (
    ClipPositionEmbedding,
    CopyHead,
    FrameChangeEmbedding,
    NarratorOptions,
    add_lora,
    consolidate,
    follow_mask,
    merged_state_dict,
    previous_ids,
)
from hivid.models.time_encoder import GRUTimeEncoder, TimeEncoderConfig

HEAD_MODULES = (
    "projector",
    "projector_aux",
    "clip_position",
    "frame_change",
    "copy_head",
    "compressor",
    "time_encoder",
)
"""Top-level submodules saved in heads.safetensors (backbones go through save_pretrained)."""
CONFIG_FILE = "narrator_config.json"
HEADS_FILE = "heads.safetensors"
IGNORE_INDEX = -100
"""Label of positions without loss (same value as hivid.models.sequence.IGNORE_INDEX)."""
IMAGE_MEAN = 0.5
"""SigLIP pixel normalisation: (x / 255 - 0.5) / 0.5 for every channel."""
IMAGE_STD = 0.5


class NarratorLoadError(ValueError):
    """A narrator directory is missing a file or does not match its config (message names it)."""


@dataclass
class VisionConfig:
    """SigLIP vision tower; sizes are used only when ``pretrained`` is None (random init)."""

    pretrained: str | None = None
    """Hub id or local dir of a SigLIP checkpoint; None = random-init from the sizes below."""
    hidden_size: int = 32
    """Width of the random-init tower (replaced by the checkpoint's when pretrained)."""
    num_layers: int = 2
    """Encoder layers of the random-init tower."""
    num_heads: int = 2
    """Attention heads of the random-init tower."""
    intermediate_size: int = 64
    """MLP width of the random-init tower."""
    image_size: int = 32
    """Input resolution in pixels (frames are resized to it)."""
    patch_size: int = 8
    """Patch size in pixels; the patch grid is image_size // patch_size per side."""
    tokens_per_side: int = 2
    """Patch grid is average-pooled to tokens_per_side^2 = L_v visual tokens per frame."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "patch_size"):
            require(getattr(self, name) > 0, f"vision.{name} must be > 0")
        require(
            self.hidden_size % self.num_heads == 0,
            "vision.num_heads must divide vision.hidden_size",
        )
        require(self.image_size >= self.patch_size, "vision.image_size must be >= patch_size")
        grid = self.image_size // self.patch_size
        require(
            0 < self.tokens_per_side <= grid,
            f"vision.tokens_per_side must be in [1, {grid}] (the patch grid), "
            f"got {self.tokens_per_side}",
        )

    @property
    def tokens_per_frame(self) -> int:
        """L_v."""
        return self.tokens_per_side**2


@dataclass
class LLMConfig:
    """Qwen3 causal LM; sizes are used only when ``pretrained`` is None (random init)."""

    pretrained: str | None = None
    """Hub id or local dir of a Qwen3 checkpoint (its tokenizer is used too); None = random init."""
    hidden_size: int = 64
    """Model width of the random-init LM (replaced by the checkpoint's when pretrained)."""
    num_layers: int = 2
    """Decoder layers of the random-init LM."""
    num_heads: int = 4
    """Attention heads of the random-init LM."""
    num_kv_heads: int = 2
    """Key/value heads (GQA) of the random-init LM."""
    intermediate_size: int = 128
    """MLP width of the random-init LM."""
    max_position_embeddings: int = 4096
    """Longest sequence the random-init LM supports."""
    vocab_size: int = 1000
    """Size of the byte-level BPE trained for the random-init LM."""
    tie_embeddings: bool = False
    """Random-init LM: share the input embedding and the LM head, so a head that moves a token's
    embedding to the output position makes that very token likely (copying a timestamp or a
    narrated name is then the easy thing to learn)."""

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
            require(getattr(self, name) > 0, f"llm.{name} must be > 0")
        require(self.hidden_size % self.num_heads == 0, "llm.num_heads must divide llm.hidden_size")
        require(self.num_heads % self.num_kv_heads == 0, "llm.num_kv_heads must divide num_heads")
        require(self.max_position_embeddings > 0, "llm.max_position_embeddings must be > 0")
        require(self.vocab_size >= 300, "llm.vocab_size must be >= 300 (byte-level BPE)")


@dataclass
class NarratorConfig:
    """The whole narrator: backbones, compressor, time encoder and the frame budget."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    """Vision tower."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    """Language model."""
    compressor: SPACompressorConfig = field(default_factory=SPACompressorConfig)
    """SPA-Compressor (used when use_compressor is true)."""
    time_encoder: TimeEncoderConfig = field(default_factory=TimeEncoderConfig)
    """GRU time encoder (used when use_compressor is true)."""
    use_compressor: bool = False
    """False: stage-1 interleaved input; True: stage-2 compressed input."""
    max_frames: int = 16
    """N: frames per video (uniformly subsampled when a video has more)."""
    options: NarratorOptions = field(default_factory=NarratorOptions)
    """Optional components from the related papers (hivid.models.options), all off by default."""
    stage2_asr_text: bool = False
    """Stage 2 keeps the ASR sentences as text in the LLM input, each after its frame's compressed
    tokens as in eq. 1: ``[prompt, H_scene, T_e(0), H_event(0), S_1, T_e(1), ...]``. The compressor
    then replaces the visual and timestamp tokens only (what the appendix's ratio, eq. 13, counts:
    compressed *visual* tokens per ASR segment), and the frozen stage-1 LLM still reads the words it
    learnt to copy (names, the quotes of the TCoT, the summaries). False: eq. 12 exactly (ASR
    reaches the LLM only through the compressor's fusion)."""
    stage2_positions: bool = False
    """With ``stage2_asr_text``: the stage-2 LLM reads every kept token at the position stage 1's
    layout gave it (T_e(i) at frame i's timestamp token, the event tokens at the end of its
    visual tokens, the narration and the target where they were, all after the S scene tokens;
    ``encode_compressed_interleaved``), not at its index in the 5x shorter sequence. The LLM is
    frozen in stage 2, so its rotary attention keeps the token distances it was trained on. The
    number of LLM input tokens is unchanged. False: positions 0, 1, 2, ..."""

    def __post_init__(self) -> None:
        require(self.max_frames > 0, f"max_frames must be > 0, got {self.max_frames}")


def _tiny() -> NarratorConfig:
    return NarratorConfig(
        vision=VisionConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                            image_size=32, patch_size=8, tokens_per_side=2),
        llm=LLMConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                      intermediate_size=128, max_position_embeddings=4096, vocab_size=1000),
        compressor=SPACompressorConfig(num_scene_queries=4, num_event_queries=2, scene_layers=1,
                                       event_layers=1, num_heads=4, ffn_mult=2),
        time_encoder=TimeEncoderConfig(hidden=32, num_frequencies=4),
        max_frames=8,
    )  # fmt: skip


def _small() -> NarratorConfig:
    # A real pretrained LM with a small random-init vision tower; point llm.pretrained at a local
    # Qwen3 checkpoint directory where no hub is reachable.
    return NarratorConfig(
        vision=VisionConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                            image_size=64, patch_size=16, tokens_per_side=2),
        llm=LLMConfig(pretrained="Qwen/Qwen3-0.6B"),
        compressor=SPACompressorConfig(num_scene_queries=16, num_event_queries=4, scene_layers=2,
                                       event_layers=2, num_heads=8, ffn_mult=2),
        time_encoder=TimeEncoderConfig(hidden=128),
        max_frames=32,
    )  # fmt: skip


def _paper() -> NarratorConfig:
    # §4.1.3: SigLIP-400M-384-14 + Qwen3-8B, N=144, S=64, E=32, L_s=L_e=2 (config only).
    return NarratorConfig(
        vision=VisionConfig(pretrained="google/siglip-so400m-patch14-384", hidden_size=1152,
                            num_layers=27, num_heads=16, intermediate_size=4304, image_size=384,
                            patch_size=14, tokens_per_side=27),
        llm=LLMConfig(pretrained="Qwen/Qwen3-8B", hidden_size=4096, num_layers=36, num_heads=32,
                      num_kv_heads=8, intermediate_size=12288, max_position_embeddings=40960),
        compressor=SPACompressorConfig(num_scene_queries=64, num_event_queries=32, scene_layers=2,
                                       event_layers=2, num_heads=32, ffn_mult=4),
        time_encoder=TimeEncoderConfig(hidden=256),
        max_frames=144,
    )  # fmt: skip


PRESETS = {"tiny": _tiny, "small": _small, "paper": _paper}


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def narrator_config(preset: str, overrides: Mapping[str, Any] | None = None) -> NarratorConfig:
    """A named preset (``tiny``, ``small``, ``paper``) with nested ``overrides`` applied."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown narrator preset {preset!r} (known: {', '.join(PRESETS)})")
    base = to_dict(PRESETS[preset]())
    return from_mapping(NarratorConfig, _deep_merge(base, overrides or {}), "model")


def resolve_dims(cfg: NarratorConfig) -> NarratorConfig:
    """Fill compressor/time-encoder ``dim == 0`` with the LLM hidden size."""
    d = cfg.llm.hidden_size
    comp = dataclasses.replace(cfg.compressor, dim=cfg.compressor.dim or d)
    time = dataclasses.replace(cfg.time_encoder, dim=cfg.time_encoder.dim or d)
    if comp.dim != d or time.dim != d:
        raise ConfigError(f"compressor/time_encoder dim must equal the LLM hidden size {d}")
    return dataclasses.replace(cfg, compressor=comp, time_encoder=time)


def token_counts(
    cfg: NarratorConfig, n_frames: int, asr_tokens: int, timestamp_tokens: int = 1
) -> dict[str, float]:
    """LLM input tokens spent on the video (prompt and target excluded), with/without compressor.

    Without: N timestamp tokens (``timestamp_tokens`` each) + N*L_v visual tokens + the ASR tokens
    (eq. 1). With: S + N(1+E) (eq. 12); ASR then enters through the compressor, not the LLM,
    unless ``stage2_asr_text`` keeps its tokens in the LLM input too.
    """
    without = n_frames * (timestamp_tokens + cfg.vision.tokens_per_frame) + asr_tokens
    with_c = cfg.compressor.num_output_tokens(n_frames) + asr_tokens * cfg.stage2_asr_text
    return {
        "without_compressor": float(without),
        "with_compressor": float(with_c),
        "visual_tokens": float(n_frames * cfg.vision.tokens_per_frame),
        "reduction": 1.0 - with_c / without if without else 0.0,
    }


@dataclass(frozen=True)
class InputSpec:
    """What the data pipeline must produce for a given narrator."""

    image_size: int
    """Frames are resized to image_size x image_size."""
    visual_tokens_per_frame: int
    """L_v placeholders per frame in the stage-1 sequence."""
    max_frames: int
    """Frames kept per video (uniform subsampling above it)."""
    compressed_tokens_per_frame: int | None
    """1 + E in stage 2 (None in stage 1)."""
    scene_tokens: int | None
    """S in stage 2 (None in stage 1)."""
    memory_tokens: int = 0
    """Stage-1 memory consolidation: earlier frames' tokens merged into this many (0 = off)."""
    memory_recent_frames: int = 0
    """Frames at the end kept at full resolution when memory consolidation is on."""
    keyword_task: bool = False
    """Training samples also carry the keyword-generation auxiliary sequence (``kw_*``)."""
    time_text: bool = False
    """Stage 2 samples carry each frame's timestamp-text token ids (``time_ids``, the time
    encoder's text anchor)."""
    asr_text: bool = False
    """Stage 2 sequences also hold the ASR sentences as text after their frame's compressed
    tokens (``NarratorConfig.stage2_asr_text``)."""
    stage1_positions: bool = False
    """Stage 2 sequences carry ``position_ids``: each token at its stage-1 position
    (``NarratorConfig.stage2_positions``)."""

    def memory_split(self, n_frames: int) -> tuple[int, int]:
        """(frames merged into memory, memory tokens) for a video of ``n_frames`` (stage 1)."""
        if self.scene_tokens is not None or self.memory_tokens == 0:
            return 0, 0
        old = max(0, n_frames - self.memory_recent_frames)
        return old, min(self.memory_tokens, old * self.visual_tokens_per_frame)

    def num_compressed_tokens(self, n_frames: int) -> int:
        """S + N(1+E)."""
        if self.scene_tokens is None or self.compressed_tokens_per_frame is None:
            raise ValueError("this narrator has no compressor")
        return self.scene_tokens + n_frames * self.compressed_tokens_per_frame


class Projector(nn.Module):
    """Vision width -> LLM width: LN, Linear, GELU, Linear."""

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(vision_dim),
            nn.Linear(vision_dim, llm_dim),
            nn.GELU(),
            nn.Linear(llm_dim, llm_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class HiVidNarrator(nn.Module):
    """Vision encoder + projector + LLM (+ compressor and time encoder when ``use_compressor``)."""

    def __init__(
        self, cfg: NarratorConfig, vision: SiglipVisionModel, llm: Qwen3ForCausalLM, vis_id: int
    ) -> None:
        super().__init__()
        self.cfg = resolve_dims(cfg)
        self.vision = vision
        self.llm = llm
        self.visual_token_id = vis_id
        opts = self.cfg.options
        dv, d = vision.config.hidden_size, llm.config.hidden_size
        self.projector = Projector(dv, d)
        self.projector_aux = Projector(dv, d) if opts.dual_alignment else None
        self.clip_position = (
            ClipPositionEmbedding(opts.clip_position_bins, d) if opts.clip_position_bins else None
        )
        bins = opts.frame_change_bins
        self.frame_change = FrameChangeEmbedding(bins, d) if bins else None
        self.copy_head = CopyHead(d, follow=opts.copy_follow) if opts.copy_head else None
        if opts.lora_rank:
            add_lora(self.llm, opts)
        self.compressor: SPACompressor | None = None
        self.time_encoder: GRUTimeEncoder | None = None
        if self.cfg.use_compressor:
            self.add_compressor(
                self.cfg.compressor,
                self.cfg.time_encoder,
                self.cfg.stage2_asr_text,
                self.cfg.stage2_positions,
            )

    @property
    def use_compressor(self) -> bool:
        return self.compressor is not None

    def add_compressor(
        self,
        comp: SPACompressorConfig,
        time: TimeEncoderConfig,
        asr_text: bool = False,
        positions: bool = False,
    ) -> None:
        """Stage 2: attach a fresh SPA-Compressor and time encoder (dims resolved to the LLM's);
        ``asr_text``: the stage-2 sequence keeps the ASR sentences (``stage2_asr_text``);
        ``positions``: at stage 1's positions (``stage2_positions``)."""
        cfg = resolve_dims(dataclasses.replace(self.cfg, compressor=comp, time_encoder=time))
        self.cfg = dataclasses.replace(
            cfg, use_compressor=True, stage2_asr_text=asr_text, stage2_positions=positions
        )
        self.compressor = SPACompressor(self.cfg.compressor)
        self.time_encoder = GRUTimeEncoder(self.cfg.time_encoder)

    def remove_compressor(self) -> None:
        """Drop the compressor and time encoder: a stage-2 model continued by a warm stage 1
        (stage 2 freezes everything else, so what remains is that model's stage-1 narrator)."""
        self.compressor = None
        self.time_encoder = None
        self.cfg = dataclasses.replace(self.cfg, use_compressor=False)

    def input_spec(self) -> InputSpec:
        c = self.cfg.compressor
        return InputSpec(
            image_size=self.cfg.vision.image_size,
            visual_tokens_per_frame=self.cfg.vision.tokens_per_frame,
            max_frames=self.cfg.max_frames,
            compressed_tokens_per_frame=1 + c.num_event_queries if self.use_compressor else None,
            scene_tokens=c.num_scene_queries if self.use_compressor else None,
            memory_tokens=self.cfg.options.memory_tokens,
            memory_recent_frames=self.cfg.options.memory_recent_frames,
            keyword_task=self.cfg.options.keyword_task_weight > 0,
            time_text=self.time_encoder is not None and self.time_encoder.cfg.text_anchor,
            asr_text=self.use_compressor and self.cfg.stage2_asr_text,
            stage1_positions=self.use_compressor
            and self.cfg.stage2_asr_text
            and self.cfg.stage2_positions,
        )

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute backbone activations in backward (non-reentrant, so frozen inputs work)."""
        for m in (self.vision, self.llm):
            if enabled:
                m.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
            else:
                m.gradient_checkpointing_disable()

    def encode_frames(
        self,
        pixel_values: torch.Tensor,
        frame_mask: torch.Tensor,
        frame_times: torch.Tensor | None = None,
        is_aux: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, 3, H, W) pixels, (B, N) mask -> (B, N, L_v, D) projected tokens, 0 when padded.

        ``frame_times`` (B, N) feed the clip-position embedding, ``is_aux`` (B,) picks the
        auxiliary projector (dual visual alignment) when those options are on.
        """
        b, n = frame_mask.shape
        pix = pixel_values[frame_mask]  # (F, 3, H, W): real frames only
        hid = self.vision(pixel_values=pix).last_hidden_state  # (F, P, D_v)
        f, p, dv = hid.shape
        g = math.isqrt(p)
        grid = hid.transpose(1, 2).reshape(f, dv, g, g)  # (F, D_v, g, g)
        k = self.cfg.vision.tokens_per_side
        pooled = F.adaptive_avg_pool2d(grid, k).flatten(2).transpose(1, 2)  # (F, L_v, D_v)
        proj = self.projector(pooled)  # (F, L_v, D)
        if self.projector_aux is not None and is_aux is not None and bool(is_aux.any()):
            aux = is_aux.bool()[:, None].expand(b, n)[frame_mask]  # (F,)
            proj = torch.where(aux[:, None, None], self.projector_aux(pooled), proj)  # eq. 11
        out = proj.new_zeros(b, n, *proj.shape[1:])
        out[frame_mask] = proj
        if self.clip_position is not None and frame_times is not None:
            out = out + self.clip_position(frame_times, frame_mask)[:, :, None].to(out.dtype)
        if self.frame_change is not None:  # padded frames get 0 (mask), real ones their change
            out = out + self.frame_change(pixel_values, frame_mask)[:, :, None].to(out.dtype)
        return out

    def embed_inputs(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Token embeddings with the visual placeholders filled -> (B, T, D)."""
        embed = self.llm.get_input_embeddings()
        embeds = embed(batch["input_ids"])  # (B, T, D)
        frame_mask = batch["frame_mask"].bool()
        vis = self.encode_frames(
            batch["pixel_values"], frame_mask, batch.get("frame_times"), batch.get("is_aux")
        )  # (B, N, L_v, D)
        if self.compressor is None and self.cfg.options.memory_tokens:
            spec = self.input_spec()
            rows = []
            for i, n in enumerate(frame_mask.sum(1).tolist()):
                old, m = spec.memory_split(int(n))
                if old:  # [memory of frames < old, frames old..n-1]
                    rows.append(consolidate(vis[i, :old].flatten(0, 1), m))
                rows.append(vis[i, old:n].flatten(0, 1))
            feats = torch.cat(rows)  # (sum_b M_b + R_b * L_v, D)
        elif self.compressor is None:
            feats = vis[frame_mask].flatten(0, 1)  # (F * L_v, D), frames in batch/time order
        else:
            assert self.time_encoder is not None
            asr_mask = batch["asr_mask"].bool()
            asr = embed(batch["asr_ids"])  # (B, L_a, D)
            text = text_mask = None
            if self.time_encoder.cfg.text_anchor:  # LLM embeddings of "<t=8.0s>" per frame
                text, text_mask = embed(batch["time_ids"]), batch["time_mask"]  # (B, N, K, D)
            times = self.time_encoder(batch["frame_times"], frame_mask, text, text_mask)
            tokens, tmask = self.compressor(vis, frame_mask, asr, asr_mask, times.to(vis.dtype))
            feats = tokens[tmask]  # (sum_b S + N_b(1+E), D)
        slots = batch["visual_mask"].bool()
        if int(slots.sum()) != feats.shape[0]:
            raise ValueError(
                f"input has {int(slots.sum())} visual placeholders but the model produced "
                f"{feats.shape[0]} visual tokens (sequence built for the wrong stage?)"
            )
        return embeds.masked_scatter(slots[..., None], feats.to(embeds.dtype))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> CausalLMOutputWithPast:
        """Causal-LM output; with ``labels`` in ``batch``, ``loss`` is set and ``logits`` holds only
        the (K, V) logits of the K target positions.

        The LM head runs on the target positions alone: the stage-1 paper geometry puts ~10^5
        tokens before a few hundred target tokens, and full (B, T, V) logits would need tens of
        GB. The loss equals the HF causal-LM loss (shifted labels, mean over non-ignored tokens).
        """
        embeds = self.embed_inputs(batch)  # (B, T, D)
        mask = batch.get("attention_mask")
        if mask is None:
            # An explicit all-ones (B, T) mask rather than None: with None, transformers 4.57
            # infers "packed sequences" from the implicit position ids and builds a dense
            # (T, T) mask, which rules out flash attention (a 21 GiB mask per layer at the
            # paper's ~1e5 tokens; measured on an H200). All-ones lets SDPA run causal flash.
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        labels = batch.get("labels")
        positions = batch.get("position_ids")  # (B, T) or None: 0, 1, 2, ...
        if labels is None:
            return self.llm(
                inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False
            )
        hidden = self.llm.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state  # (B, T, D)
        target = labels[:, 1:]  # position t predicts token t + 1
        sel = target != IGNORE_INDEX  # (B, T - 1)
        query = hidden[:, :-1][sel]  # (K, D)
        logits = self.llm.lm_head(query)  # (K, V)
        if self.copy_head is None:
            loss = F.cross_entropy(logits.float(), target[sel])
            return CausalLMOutputWithPast(loss=loss, logits=logits)  # type: ignore[arg-type]
        # The copy sources are the input's text tokens; target tokens (labelled) never are.
        src, src_ids = self._copy_sources(batch, mask)
        src = src & (labels == IGNORE_INDEX)  # (B, T)
        # Only the source positions are keys (text, not the ~10x more visual slots) and only the
        # K target positions are queries: (K, S) scores instead of (B, T, T).
        n_src = int(src.sum(1).max())
        pos = torch.argsort((~src).to(torch.int8), dim=1, stable=True)[:, :n_src]  # (B, S)
        d = hidden.shape[-1]
        keys = self.copy_head.key(torch.gather(hidden, 1, pos[..., None].expand(-1, -1, d)))
        rows = sel.nonzero()[:, 0]  # (K,): the batch row of each target position, ascending
        src_pos = torch.gather(src, 1, pos)  # (B, S)
        follows: list[torch.Tensor | None] = [None] * hidden.shape[0]
        if self.copy_head.follow is not None:
            prev = torch.gather(previous_ids(src_ids), 1, pos)  # (B, S): the id before a source
            current = batch["input_ids"][:, :-1][sel]  # (K,): the token each query holds
            follows = [
                follow_mask(prev[b : b + 1], current[rows == b][None])  # (1, Q_b, S)
                for b in range(hidden.shape[0])
            ]
        attn = torch.cat(
            [
                self.copy_head.attention(
                    query[rows == b][None], keys[b : b + 1], src_pos[b : b + 1], follows[b]
                )[0]
                for b in range(hidden.shape[0])
            ]
        )  # (K, S), one row's queries against that row's keys (no (K, S, D) copy of the keys)
        ids = torch.gather(src_ids, 1, pos)[rows]  # (K, S)
        logp = self.copy_head.log_probs(query, logits, attn, ids)
        loss = F.nll_loss(logp, target[sel])
        return CausalLMOutputWithPast(loss=loss, logits=logp)  # type: ignore[arg-type]

    def _copy_sources(
        self, batch: Mapping[str, torch.Tensor], mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) where the copy head may copy from, (B, T) the ids it copies there: the input's
        text tokens (attended, not a visual or compressed slot) and, in stage 2, each T_e(i) slot
        as frame i's timestamp token (``copy_ids``, ``encode_compressed_interleaved``)."""
        ids = batch["input_ids"]
        src = mask.bool() & ~batch["visual_mask"].bool()
        if "copy_ids" in batch:
            src = src | (mask.bool() & (batch["copy_ids"] != ids))
            ids = batch["copy_ids"]
        return src, ids

    @torch.no_grad()
    def generate(
        self,
        batch: Mapping[str, torch.Tensor],
        max_new_tokens: int,
        eos_id: int,
        pad_id: int,
        suffix_ids: torch.Tensor | None = None,
        processors: LogitsProcessorList | None = None,
    ) -> torch.Tensor:
        """Greedy continuation of an unpadded (batch of 1) prompt -> (B, new tokens) ids.

        ``suffix_ids`` (B, K) are appended to the prompt first (e.g. text generated so far plus a
        forced section marker); the returned ids are those generated after them.
        ``processors``: constrained decoding (``hivid.models.decoding``), e.g. allowed tokens.
        """
        embeds = self.embed_inputs(batch)  # (B, T, D)
        mask = batch.get("attention_mask")
        positions = batch.get("position_ids")  # (B, T) or None
        if self.copy_head is not None or positions is not None:
            if mask is None:
                mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
            src, src_ids = self._copy_sources(batch, mask)  # (B, T): not the suffix
        if suffix_ids is not None and suffix_ids.shape[1]:
            extra = self.llm.get_input_embeddings()(suffix_ids)  # (B, K, D)
            embeds = torch.cat([embeds, extra.to(embeds.dtype)], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(suffix_ids, dtype=mask.dtype)], dim=1)
            if positions is not None:  # the suffix goes on from the context's last position
                step = torch.arange(1, suffix_ids.shape[1] + 1, device=positions.device)
                positions = torch.cat([positions, positions[:, -1:] + step], dim=1)
        if self.copy_head is not None or positions is not None:
            assert mask is not None
            last = batch["input_ids"][:, -1:]  # (B, 1): the token the first query position holds
            if suffix_ids is not None and suffix_ids.shape[1]:
                last = suffix_ids[:, -1:]
            return self._generate_copy(
                embeds, mask, src_ids, src, max_new_tokens, eos_id, processors, last, positions
            )
        return self.llm.generate(  # type: ignore[return-value]
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
            logits_processor=processors,
        )

    def _generate_copy(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        src_ids: torch.Tensor,
        src: torch.Tensor,
        max_new_tokens: int,
        eos_id: int,
        processors: LogitsProcessorList | None,
        last: torch.Tensor,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Greedy decoding with the copy head's mixture (the LLM's KV cache, the source keys
        computed once): (B, T, D) embeddings, (B, T) mask, (B, S) source ids and mask (S <= T,
        the prompt), (B, 1) the context's last token -> (B, new) ids, up to and including
        ``eos_id``, as ``llm.generate``. ``positions`` (B, T): the context's position ids
        (``stage2_positions``), each new token one after the last; without a copy head the
        LM head alone scores (``llm.generate`` cannot take non-contiguous positions)."""
        out = self.llm.model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True
        )
        past, hidden = out.past_key_values, out.last_hidden_state  # (B, T, D)
        head = self.copy_head
        keys = head.key(hidden[:, : src_ids.shape[1]]) if head is not None else None  # (B, S, D)
        embed = self.llm.get_input_embeddings()
        new = src_ids.new_zeros((src_ids.shape[0], 0))  # (B, 0): processors see generated ids
        h = hidden[:, -1]  # (B, D)
        prev = previous_ids(src_ids) if head is not None and head.follow is not None else None
        at = positions[:, -1:] if positions is not None else None  # (B, 1)
        for _ in range(max_new_tokens):
            if head is None:
                logp = torch.log_softmax(self.llm.lm_head(h).float(), dim=-1)  # (B, V)
            else:
                assert keys is not None
                follows = None if prev is None else follow_mask(prev, last)  # (B, 1, S)
                attn = head.attention(h[:, None], keys, src, follows)[:, 0]  # (B, S)
                logp = head.log_probs(h, self.llm.lm_head(h), attn, src_ids)  # (B, V)
            if processors is not None:
                logp = processors(new, logp)  # type: ignore[arg-type]
            nxt = logp.argmax(dim=-1, keepdim=True)  # (B, 1)
            new, last = torch.cat([new, nxt], dim=1), nxt
            if bool((nxt == eos_id).all()):
                break
            mask = torch.cat([mask, torch.ones_like(nxt, dtype=mask.dtype)], dim=1)
            at = at + 1 if at is not None else None
            out = self.llm.model(
                inputs_embeds=embed(nxt),
                attention_mask=mask,
                position_ids=at,
                past_key_values=past,
                use_cache=True,
            )
            past, h = out.past_key_values, out.last_hidden_state[:, -1]
        return new


# --- building, saving, loading --------------------------------------------------------------------


def create_tokenizer(cfg: NarratorConfig, texts: Iterable[str]) -> PreTrainedTokenizerBase:
    """The pretrained LLM's tokenizer, or a byte-level BPE trained on ``texts`` for random init."""
    from hivid.models.tokenizer import load_tokenizer, train_bpe_tokenizer

    if cfg.llm.pretrained:
        return load_tokenizer(cfg.llm.pretrained)
    return train_bpe_tokenizer(texts, cfg.llm.vocab_size)


def _vis_id(tokenizer: PreTrainedTokenizerBase) -> int:
    from hivid.models.tokenizer import visual_token_id

    return visual_token_id(tokenizer)


def fresh_vision(v: VisionConfig) -> SiglipVisionModel:
    """A random-initialised SigLIP vision tower of ``v``'s sizes (no pooling head)."""
    return SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=v.hidden_size,
            intermediate_size=v.intermediate_size,
            num_hidden_layers=v.num_layers,
            num_attention_heads=v.num_heads,
            image_size=v.image_size,
            patch_size=v.patch_size,
            vision_use_head=False,
        )
    )


def fresh_llm(
    m: LLMConfig, vocab_size: int, special_ids: tuple[int | None, int | None, int | None]
) -> Qwen3ForCausalLM:
    """A random-initialised Qwen3 causal LM of ``m``'s sizes; ``special_ids`` = (bos, eos, pad)."""
    bos, eos, pad = special_ids
    return Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=vocab_size,
            hidden_size=m.hidden_size,
            intermediate_size=m.intermediate_size,
            num_hidden_layers=m.num_layers,
            num_attention_heads=m.num_heads,
            num_key_value_heads=m.num_kv_heads,
            head_dim=m.hidden_size // m.num_heads,
            max_position_embeddings=m.max_position_embeddings,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=pad,
            tie_word_embeddings=m.tie_embeddings,
        )
    )


def _load_vision(path: str | Path) -> SiglipVisionModel:
    try:
        # The pooling head is unused (we read patch tokens); dropping it avoids unused parameters.
        return SiglipVisionModel.from_pretrained(str(path), vision_use_head=False)  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise NarratorLoadError(f"{path}: cannot load the SigLIP vision model ({exc})") from None


def _load_llm(path: str | Path) -> Qwen3ForCausalLM:
    try:
        return Qwen3ForCausalLM.from_pretrained(str(path))  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise NarratorLoadError(f"{path}: cannot load the Qwen3 model ({exc})") from None


def create_narrator(
    cfg: NarratorConfig, tokenizer: PreTrainedTokenizerBase, work_dir: Path
) -> HiVidNarrator:
    """Build a narrator: pretrained backbones by id/path, random ones saved to ``work_dir`` first.

    Both kinds are then loaded through ``from_pretrained``; the returned model's config holds the
    sizes actually loaded.
    """
    work_dir = Path(work_dir)
    if cfg.vision.pretrained:
        vision = _load_vision(cfg.vision.pretrained)
    else:
        fresh_vision(cfg.vision).save_pretrained(work_dir / "vision")
        vision = _load_vision(work_dir / "vision")
    if cfg.llm.pretrained:
        llm = _load_llm(cfg.llm.pretrained)
        if int(llm.config.vocab_size) < len(tokenizer):
            llm.resize_token_embeddings(len(tokenizer))
    else:
        special = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        fresh_llm(cfg.llm, len(tokenizer), special).save_pretrained(work_dir / "llm")
        llm = _load_llm(work_dir / "llm")
    vc, lc = vision.config, llm.config
    resolved = dataclasses.replace(
        cfg,
        vision=dataclasses.replace(
            cfg.vision,
            hidden_size=vc.hidden_size,
            num_layers=vc.num_hidden_layers,
            num_heads=vc.num_attention_heads,
            intermediate_size=vc.intermediate_size,
            image_size=vc.image_size,
            patch_size=vc.patch_size,
        ),
        llm=dataclasses.replace(
            cfg.llm,
            hidden_size=lc.hidden_size,
            num_layers=lc.num_hidden_layers,
            num_heads=lc.num_attention_heads,
            num_kv_heads=lc.num_key_value_heads,
            intermediate_size=lc.intermediate_size,
            max_position_embeddings=lc.max_position_embeddings,
        ),
    )
    return HiVidNarrator(resolved, vision, llm, _vis_id(tokenizer))


def save_narrator(model: HiVidNarrator, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> Path:
    """Write config JSON, backbones (save_pretrained), heads (safetensors) and tokenizer."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG_FILE).write_text(json.dumps(to_dict(model.cfg), indent=2), encoding="utf-8")
    model.vision.save_pretrained(out_dir / "vision")
    if model.cfg.options.lora_rank:  # adapters merged: an ordinary Qwen3 checkpoint on disk
        model.llm.save_pretrained(out_dir / "llm", state_dict=merged_state_dict(model.llm))
    else:
        model.llm.save_pretrained(out_dir / "llm")
    heads: dict[str, torch.Tensor] = {}
    for name in HEAD_MODULES:
        part = getattr(model, name)
        if part is not None:
            heads.update({f"{name}.{k}": v for k, v in part.state_dict().items()})
    save_file({k: v.detach().contiguous().cpu() for k, v in heads.items()}, out_dir / HEADS_FILE)
    from hivid.models.tokenizer import save_tokenizer

    save_tokenizer(tokenizer, out_dir / "tokenizer")
    return out_dir


def load_narrator_config(model_dir: Path) -> NarratorConfig:
    """The NarratorConfig saved in a narrator directory."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise NarratorLoadError(f"{path}: missing (not a saved narrator directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise NarratorLoadError(f"{path}: invalid JSON ({exc})") from None
    return from_mapping(NarratorConfig, data, str(path))


def load_compressor_weights(model: HiVidNarrator, model_dir: Path) -> None:
    """Copy the compressor and time-encoder weights of the narrator saved in ``model_dir`` into
    ``model`` (a warm stage 2: the champion's compressor on tonight's stage-1 backbone)."""
    if model.compressor is None or model.time_encoder is None:
        raise NarratorLoadError("load_compressor_weights: the model has no compressor")
    heads = load_file(str(Path(model_dir) / HEADS_FILE))
    for name in ("compressor", "time_encoder"):
        part: nn.Module = getattr(model, name)
        sub = {k.split(".", 1)[1]: v for k, v in heads.items() if k.split(".", 1)[0] == name}
        try:
            part.load_state_dict(sub, strict=True)
        except RuntimeError as exc:
            raise NarratorLoadError(
                f"{model_dir}: its {name} does not fit this model ({str(exc)[:200]})"
            ) from None


def load_narrator(model_dir: Path) -> tuple[HiVidNarrator, PreTrainedTokenizerBase]:
    """Load what ``save_narrator`` wrote (backbones through ``from_pretrained``)."""
    model_dir = Path(model_dir)
    from hivid.models.tokenizer import load_tokenizer

    cfg = load_narrator_config(model_dir)
    tokenizer = load_tokenizer(model_dir / "tokenizer")
    model = HiVidNarrator(
        cfg, _load_vision(model_dir / "vision"), _load_llm(model_dir / "llm"), _vis_id(tokenizer)
    )
    heads_path = model_dir / HEADS_FILE
    if not heads_path.is_file():
        raise NarratorLoadError(f"{heads_path}: missing")
    heads = load_file(str(heads_path))
    expected = {n for n in model.state_dict() if n.split(".", 1)[0] in HEAD_MODULES}
    if set(heads) != expected:
        diff = sorted(set(heads) ^ expected)[:5]
        raise NarratorLoadError(f"{heads_path}: weights do not match the config (e.g. {diff})")
    model.load_state_dict(heads, strict=False)
    return model, tokenizer
