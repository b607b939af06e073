"""Stage-1 and stage-2 training steps on the paper geometry: step time, tokens/s and MFU.

The ``paper`` narrator (SigLIP-so400m-patch14-384 geometry, N=144 frames of 27x27 = 729 visual
tokens, S=64, E=32, L_s=L_e=2) with the Qwen3-8B layer geometry but fewer decoder layers
(``--llm-layers``), everything random-initialised on the device (no downloads). Each stage runs
forward + backward + AdamW step on one synthetic batch with the exact token layout of eq. 1
(stage 1, full fine-tune) and eq. 12 (stage 2, compressor + time encoder trained, rest frozen),
in bf16 autocast with fp32 weights and gradient checkpointing (as ``precision: bf16-mixed`` +
``gradient_checkpointing: true`` do in training).

MFU = 6 * P * T / step_time / peak, P = parameters excluding the input embedding table (the LM
head is counted though only target positions go through it), T = LLM input tokens per step,
peak = 989e12 bf16 dense FLOP/s (H100 / H200 SXM). It leaves out attention FLOPs (large at
10^5 tokens) and counts frozen weights as if they were trained, so it is the usual rough 6ND
figure, not a precise one.

    PYTHONPATH=src python3 benchmarks/train_gpu.py                 # GPU, paper geometry
    PYTHONPATH=src python3 benchmarks/train_gpu.py --tiny          # CPU smoke run (tests)

Imports only torch, transformers model classes and hivid.models (no Lightning, MLflow, DVC).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import torch

from hivid.models.freezing import apply_stage_freezing
from hivid.models.narrator import (
    HiVidNarrator,
    fresh_llm,
    fresh_vision,
    narrator_config,
    resolve_dims,
)
from hivid.models.synthetic import SyntheticVideo, synthetic_batch

PEAK_BF16 = 989e12
"""H100 / H200 SXM dense bf16 tensor-core peak FLOP/s."""
QWEN3_VOCAB = 151_936


def build(args: argparse.Namespace, device: torch.device) -> HiVidNarrator:
    """Random-init narrator of the chosen geometry, built directly on ``device``."""
    if args.tiny:
        cfg = narrator_config("tiny", {"max_frames": args.frames or 4})
        vocab = 512
    else:
        cfg = narrator_config(
            "paper",
            {
                "vision": {"pretrained": None, "num_layers": args.vision_layers},
                "llm": {"pretrained": None, "num_layers": args.llm_layers},
                "max_frames": args.frames or 144,
            },
        )
        vocab = QWEN3_VOCAB
    cfg = resolve_dims(dataclasses.replace(cfg, use_compressor=False))
    with torch.device(device):
        vision = fresh_vision(cfg.vision)
        llm = fresh_llm(cfg.llm, vocab, (None, vocab - 3, vocab - 2))
        model = HiVidNarrator(cfg, vision, llm, vocab - 1)
    return model.to(device)


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    if enabled:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stage(
    model: HiVidNarrator, stage: int, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    apply_stage_freezing(model, stage)
    model.train()
    if stage == 2:
        for part in (model.vision, model.projector, model.llm):
            part.eval()
    model.set_gradient_checkpointing(args.grad_ckpt)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")
    n = model.cfg.max_frames
    video = SyntheticVideo(
        frames=n,
        asr_sentences=max(1, round(n / 1.836)),
        asr_tokens_per_sentence=args.asr_tokens_per_sentence,
        target_tokens=args.target_tokens,
    )
    batch = synthetic_batch(model, video, args.batch, seed=0, device=device)
    tokens = int(batch["input_ids"].numel())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    loss_value = float("nan")
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        with autocast(device, args.bf16):
            loss = model(batch).loss
        assert loss is not None
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
        loss_value = float(loss.detach())
    step = sorted(times)[len(times) // 2]
    embed = model.llm.get_input_embeddings().weight.numel()
    counted = sum(p.numel() for p in model.parameters()) - embed
    flops = 6.0 * counted * tokens
    out: dict[str, Any] = {
        "stage": stage,
        "llm_input_tokens": tokens,
        "step_s": step,
        "tokens_per_s": tokens / step,
        "loss": loss_value,
        "trainable_params": sum(p.numel() for p in params),
        "params_counted_6nd": counted,
        "model_tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / step / 1e12,
        "mfu": flops / step / PEAK_BF16 if device.type == "cuda" else None,
    }
    if device.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del opt
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(
        args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build(args, device)
    build_s = time.perf_counter() - t0
    stage1 = time_stage(model, 1, args, device)
    model.add_compressor(model.cfg.compressor, model.cfg.time_encoder)
    assert model.compressor is not None and model.time_encoder is not None
    model.compressor.to(device)
    model.time_encoder.to(device)
    stage2 = time_stage(model, 2, args, device)
    c = model.cfg
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "geometry": {
            "preset": "tiny" if args.tiny else "paper (shrunk LLM)",
            "frames": c.max_frames,
            "visual_tokens_per_frame": c.vision.tokens_per_frame,
            "scene_tokens": c.compressor.num_scene_queries,
            "event_tokens": c.compressor.num_event_queries,
            "vision_layers": c.vision.num_layers,
            "llm_hidden": c.llm.hidden_size,
            "llm_layers": c.llm.num_layers,
            "batch": args.batch,
            "bf16": args.bf16,
            "gradient_checkpointing": args.grad_ckpt,
        },
        "build_s": build_s,
        "stage1": stage1,
        "stage2": stage2,
        "stage2_over_stage1_step_time": stage2["step_s"] / stage1["step_s"],
        "stage1_over_stage2_tokens": stage1["llm_input_tokens"] / stage2["llm_input_tokens"],
        "mfu_peak_flops": PEAK_BF16,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny preset (CPU smoke run)")
    p.add_argument("--device", default="auto", help="auto | cuda | cpu")
    p.add_argument("--frames", type=int, default=0, help="N (0: 144 paper, 4 tiny)")
    p.add_argument("--llm-layers", type=int, default=4, help="Qwen3-8B decoder layers kept (36)")
    p.add_argument("--vision-layers", type=int, default=27, help="SigLIP so400m layers (27)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--asr-tokens-per-sentence", type=int, default=16)
    p.add_argument("--target-tokens", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="timed steps per stage (median)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument("--no-grad-ckpt", dest="grad_ckpt", action="store_false")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    out = run(parse(argv))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
