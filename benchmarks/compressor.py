"""SPA-Compressor: LLM input tokens with/without it, the paper's ratio, and the step-time ratio.

Token counts are exact for the ``paper`` token geometry (N=144 frames, S=64, E=32, a 27x27 SigLIP
patch grid = 729 visual tokens per frame, one timestamp token per frame, ASR spread as eq. 1).

``paper_compression_ratio`` follows the appendix: eq. 13 gives the kept fraction
(S + n*E) / (n*D_v) with n = frames per ASR sentence (1.836 on E-HVC) and D_v = 384, and Table 4
labels the figure in parentheses, 1 - eq. 13 = 82.59 %, the "compression ratio"; both are printed
(``paper_eq13_kept_fraction`` and ``paper_compression_ratio``).

``step_time_ratio`` is stage-2 over stage-1 forward+backward time on the same videos (the same
pixels, ASR and target; each stage's own input sequence), measured side by side in this run with
small hidden sizes so it runs on a CPU. Attention cost grows with the square of the sequence, so the
timed geometry is printed under ``timing`` (by default 32 frames at 9x9 = 81 visual tokens per
frame; ``--time-frames 144`` takes minutes on a CPU, ``--time-tokens-per-side 27`` needs a GPU).

    python benchmarks/compressor.py --json
    python benchmarks/compressor.py --frames 8 --scene 4 --event 2 --time-frames 4 --json  # quick
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

from hivid.models.compressor import SPACompressorConfig
from hivid.models.freezing import apply_stage_freezing, trainable_parameter_names
from hivid.models.narrator import (
    HiVidNarrator,
    LLMConfig,
    NarratorConfig,
    VisionConfig,
    fresh_llm,
    fresh_vision,
    resolve_dims,
)
from hivid.models.synthetic import SyntheticVideo, synthetic_batch
from hivid.models.time_encoder import TimeEncoderConfig

PAPER_FRAMES_PER_SENTENCE = 1.836
"""Appendix §8: average frames per ASR sentence on E-HVC."""
PAPER_DV = 384
"""Appendix eq. 13's D_v for siglip-so400m-patch14-384."""


def paper_ratio(scene: int, event: int, n: float, dv: float) -> tuple[float, float]:
    """Eq. 13 kept fraction (S + n E) / (n D_v) and the Table-4 ratio 1 - that (eq. 14 / 100)."""
    kept = (scene + n * event) / (n * dv)
    return kept, 1.0 - kept


def token_counts(
    frames: int, visual_per_frame: int, scene: int, event: int, asr_tokens: int, ts_tokens: int
) -> dict[str, int]:
    """LLM input tokens spent on the video (prompt and target excluded)."""
    without = frames * (ts_tokens + visual_per_frame) + asr_tokens  # eq. 1
    with_c = scene + frames * (1 + event)  # eq. 12; ASR enters through the compressor
    return {"without": without, "with": with_c}


def build(args: argparse.Namespace, tokens_per_side: int) -> HiVidNarrator:
    """A random-init narrator of the benchmark geometry (stage 1: no compressor yet)."""
    patch = args.patch
    cfg = NarratorConfig(
        vision=VisionConfig(hidden_size=args.vision_hidden, num_layers=1, num_heads=2,
                            intermediate_size=2 * args.vision_hidden,
                            image_size=tokens_per_side * patch, patch_size=patch,
                            tokens_per_side=tokens_per_side),
        llm=LLMConfig(hidden_size=args.hidden, num_layers=args.layers, num_heads=4, num_kv_heads=2,
                      intermediate_size=2 * args.hidden, max_position_embeddings=1 << 20,
                      vocab_size=args.vocab),
        compressor=SPACompressorConfig(num_scene_queries=args.scene, num_event_queries=args.event,
                                       scene_layers=2, event_layers=2, num_heads=4, ffn_mult=2),
        time_encoder=TimeEncoderConfig(hidden=32),
        max_frames=max(args.frames, args.time_frames),
    )  # fmt: skip
    cfg = resolve_dims(cfg)
    vis_id = args.vocab - 1
    return HiVidNarrator(
        cfg, fresh_vision(cfg.vision), fresh_llm(cfg.llm, args.vocab, (0, 1, 2)), vis_id
    )


def step_seconds(model: HiVidNarrator, batch: dict[str, torch.Tensor], repeats: int) -> float:
    """Median forward+backward wall time (one warm-up step first)."""
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = model(batch).loss
        assert loss is not None
        loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    lv = args.tokens_per_side**2
    sentences = args.asr_sentences
    if sentences is None:
        sentences = max(1, round(args.frames / PAPER_FRAMES_PER_SENTENCE))
    asr_tokens = sentences * args.asr_tokens_per_sentence
    counts = token_counts(args.frames, lv, args.scene, args.event, asr_tokens, 1)
    kept, paper = paper_ratio(args.scene, args.event, args.paper_n, args.paper_dv)
    seg_n = args.frames / sentences
    seg_kept, _ = paper_ratio(args.scene, args.event, seg_n, lv)

    # Timing: the same videos through stage 1 (full FT, interleaved) and stage 2 (compressor only).
    model = build(args, args.time_tokens_per_side)
    t_sent = max(1, round(args.time_frames / PAPER_FRAMES_PER_SENTENCE))
    video = SyntheticVideo(
        frames=args.time_frames,
        asr_sentences=t_sent if args.asr_sentences is None else args.asr_sentences,
        asr_tokens_per_sentence=args.asr_tokens_per_sentence,
        target_tokens=args.target_tokens,
    )
    model.train()
    apply_stage_freezing(model, 1)
    b1 = synthetic_batch(model, video, args.batch, seed=args.seed)
    t1 = step_seconds(model, b1, args.repeats)
    p1 = len(trainable_parameter_names(model))
    model.add_compressor(model.cfg.compressor, model.cfg.time_encoder)
    apply_stage_freezing(model, 2)
    for name in ("vision", "projector", "llm"):
        getattr(model, name).eval()
    b2 = synthetic_batch(model, video, args.batch, seed=args.seed)
    assert torch.equal(b1["pixel_values"], b2["pixel_values"])  # same videos
    t2 = step_seconds(model, b2, args.repeats)
    return {
        "frames": args.frames,
        "scene_tokens": args.scene,
        "event_tokens": args.event,
        "visual_tokens_per_frame": lv,
        "asr_sentences": sentences,
        "asr_tokens": asr_tokens,
        "llm_input_tokens_without_compressor": counts["without"],
        "llm_input_tokens_with_compressor": counts["with"],
        "token_reduction": 1.0 - counts["with"] / counts["without"],
        "paper_compression_ratio": paper,
        "paper_eq13_kept_fraction": kept,
        "paper_eq13_inputs": {
            "S": args.scene,
            "E": args.event,
            "N": args.paper_n,
            "D_v": args.paper_dv,
        },
        "eq13_reduction_this_geometry": 1.0 - seg_kept,
        "step_time_ratio": t2 / t1,
        "timing": {
            "frames": args.time_frames,
            "visual_tokens_per_frame": args.time_tokens_per_side**2,
            "batch": args.batch,
            "stage1_seq_len": int(b1["input_ids"].shape[1]),
            "stage2_seq_len": int(b2["input_ids"].shape[1]),
            "stage1_step_s": t1,
            "stage2_step_s": t2,
            "stage1_trainable_tensors": p1,
            "stage2_trainable_tensors": len(trainable_parameter_names(model)),
            "llm_hidden": args.hidden,
            "llm_layers": args.layers,
            "repeats": args.repeats,
            "threads": args.threads,
            "device": "cpu",
        },
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=144, help="N (paper: 144)")
    p.add_argument("--scene", type=int, default=64, help="S (paper: 64)")
    p.add_argument("--event", type=int, default=32, help="E (paper: 32)")
    p.add_argument(
        "--tokens-per-side",
        type=int,
        default=27,
        help="visual grid side; L_v = side^2 (siglip-so400m-patch14-384: 27 -> 729)",
    )
    p.add_argument(
        "--asr-sentences",
        type=int,
        default=None,
        help="M (default: frames / 1.836, the paper's frames per sentence)",
    )
    p.add_argument("--asr-tokens-per-sentence", type=int, default=16)
    p.add_argument("--target-tokens", type=int, default=256)
    p.add_argument("--paper-n", type=float, default=PAPER_FRAMES_PER_SENTENCE)
    p.add_argument("--paper-dv", type=float, default=PAPER_DV)
    p.add_argument("--time-frames", type=int, default=32, help="frames of the timed batch")
    p.add_argument(
        "--time-tokens-per-side",
        type=int,
        default=9,
        help="visual grid side of the timed batch (9 -> 81 tokens per frame)",
    )
    p.add_argument("--patch", type=int, default=14)
    p.add_argument("--hidden", type=int, default=64, help="LLM width of the timed model")
    p.add_argument("--layers", type=int, default=2, help="LLM layers of the timed model")
    p.add_argument("--vision-hidden", type=int, default=32)
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    out = run(args)
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:40s} {v}")
    return out


if __name__ == "__main__":
    main()
