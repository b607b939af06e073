"""Benchmark batches with the exact token layout of eq. 1 / eq. 12, without a tokenizer.

Benchmarks (``benchmarks/compressor.py``, ``benchmarks/train_gpu.py``) time the narrator on a GPU
machine that may have a different transformers major version and no tokenizer files, so the
batch is assembled from token ids directly: random text ids, the model's visual placeholder id
where eq. 1 puts visual tokens (stage 1) or where H_final goes (stage 2), random pixels. The
layout and the per-stage lengths are those of ``hivid.models.sequence``; only the ids are random.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hivid.models.narrator import IGNORE_INDEX, HiVidNarrator


@dataclass(frozen=True)
class SyntheticVideo:
    """Lengths of one synthetic video sample (in tokens)."""

    frames: int
    """N."""
    asr_sentences: int
    """M; sentences are spread evenly over the frames (eq. 1: after their frame)."""
    asr_tokens_per_sentence: int = 16
    """Tokens of one ASR sentence."""
    timestamp_tokens: int = 1
    """Tokens of one frame timestamp T_i in the stage-1 sequence (the paper: one)."""
    prompt_tokens: int = 32
    """Instruction tokens before the video."""
    target_tokens: int = 256
    """TCoT + chapters tokens (the loss is on these)."""

    @property
    def asr_tokens(self) -> int:
        """L_a."""
        return self.asr_sentences * self.asr_tokens_per_sentence


def synthetic_batch(
    model: HiVidNarrator,
    video: SyntheticVideo,
    batch_size: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """A padded-free batch of ``batch_size`` identical-length videos for ``model``'s stage."""
    spec = model.input_spec()
    n = video.frames
    # Pixels first, from their own generator: both stages see the same frames for one seed.
    size = spec.image_size
    pixels = torch.randn(
        batch_size, n, 3, size, size, generator=torch.Generator().manual_seed(seed)
    )  # (B, N, 3, H, W)
    g = torch.Generator().manual_seed(seed + 1)
    vocab = int(model.llm.config.vocab_size)
    vis = model.visual_token_id

    def text(k: int) -> list[int]:
        ids = torch.randint(0, vocab, (k,), generator=g)
        ids[ids == vis] = (vis + 1) % vocab  # text never holds the placeholder
        return ids.tolist()

    rows: list[tuple[list[int], list[bool], list[int], list[int]]] = []
    for _ in range(batch_size):
        ids, vmask = text(1 + video.prompt_tokens), [False] * (1 + video.prompt_tokens)
        asr_ids: list[int] = []
        if spec.scene_tokens is None:  # eq. 1: [T0, V0, (S..), T1, V1, (S..), ...]
            owner = [min(n - 1, j * n // max(1, video.asr_sentences)) for j in range(
                video.asr_sentences)]  # fmt: skip
            for i in range(n):
                ids += text(video.timestamp_tokens)
                vmask += [False] * video.timestamp_tokens
                ids += [vis] * spec.visual_tokens_per_frame
                vmask += [True] * spec.visual_tokens_per_frame
                for _ in range(owner.count(i)):
                    ids += text(video.asr_tokens_per_sentence)
                    vmask += [False] * video.asr_tokens_per_sentence
        else:  # eq. 12: H_final placeholders; ASR goes to the compressor
            k = spec.num_compressed_tokens(n)
            ids += [vis] * k
            vmask += [True] * k
            asr_ids = text(video.asr_tokens)
        labels = [IGNORE_INDEX] * len(ids)
        tgt = text(video.target_tokens)
        ids += tgt
        vmask += [False] * len(tgt)
        labels += tgt
        rows.append((ids, vmask, labels, asr_ids))

    out = {
        "input_ids": torch.tensor([r[0] for r in rows]),  # (B, T)
        "visual_mask": torch.tensor([r[1] for r in rows]),  # (B, T)
        "labels": torch.tensor([r[2] for r in rows]),  # (B, T)
        # no attention_mask: no padding, and the LLM then uses causal SDPA without a mask tensor
        "pixel_values": pixels,
        "frame_times": torch.arange(n, dtype=torch.float32).repeat(batch_size, 1),  # (B, N)
        "frame_mask": torch.ones(batch_size, n, dtype=torch.bool),  # (B, N)
        "asr_ids": torch.tensor([r[3] for r in rows], dtype=torch.long).view(batch_size, -1),
        "asr_mask": torch.ones(batch_size, len(rows[0][3]), dtype=torch.bool),  # (B, L_a)
    }
    return {k: v.to(device) for k, v in out.items()}
