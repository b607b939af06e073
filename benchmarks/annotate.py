"""Annotation throughput per sub-step and the cost of warm re-runs, measured side by side.

    .venv/bin/python benchmarks/annotate.py [--videos 8] [--data DIR] [--json]

Writes the demo corpus (or uses ``--data``, a corpus with ``videos/`` and ``metadata/``), ingests
it, then runs ``annotate_batch`` with the params.yaml ``annotate`` config three times in one process
on one output directory:

1. cold: empty output directory, models loaded on first use;
2. warm: the same again (every video's cache key matches: nothing is opened or loaded);
3. one knob: ``min_chapter_s`` changed, so only the chapters sub-step re-runs (ASR, frames and
   correction are reused from the records).

Prints video-seconds per wall-second for each sub-step of the cold run, the run times and the
ratios warm/cold and one-knob/cold (goal warm <= 5 %), and the ground-truth quality of the result
(WER raw vs corrected, chapter-boundary F1 at ±2 s, script-label accuracy, product-text recall).
Throughput is for this machine's cores (``os.cpu_count()`` is printed), shared with whatever else
runs on it.

``--speech DIR`` (or the installed ``pytest_audioeval`` package's samples) adds WER (en) and CER
(zh) of the configured ASR model on real speech clips laid out as ``<lang>/<name>.wav`` +
``<lang>/<name>.txt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hivid.annotate.config import ASRConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--data", type=Path, default=None, help="existing corpus (skips demo-data)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--speech", type=Path, default=None, help="<lang>/<name>.wav + .txt clips")
    ap.add_argument("--skip-demo", action="store_true", help="only the --speech measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from hivid.annotate.accuracy import evaluate_batch
    from hivid.annotate.batch import annotate_batch
    from hivid.annotate.config import STEPS, AnnotateConfig
    from hivid.annotate.resources import Models
    from hivid.config import load_section
    from hivid.data.demo import DemoConfig, generate_demo_corpus
    from hivid.data.ingest import IngestConfig, ingest

    cfg: AnnotateConfig = load_section(args.params, "annotate")
    cfg = dataclasses.replace(cfg, progress_bars=False)
    speech = speech_scores(cfg.asr_cfg, args.speech)
    if args.skip_demo:
        print(json.dumps({"speech": speech}, indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "data"
            generate_demo_corpus(data, DemoConfig(videos=args.videos))
        manifest = ingest(data, IngestConfig()).manifest
        video_s = sum(float(e["duration"]) for e in manifest)
        out = Path(tmp) / "annotations"
        runs = {}
        models = Models(cfg)
        for label, run_cfg in (
            ("cold", cfg),
            ("warm", cfg),
            ("one_knob", dataclasses.replace(cfg, min_chapter_s=cfg.min_chapter_s + 0.5)),
        ):
            if label == "one_knob":
                models = Models(run_cfg)  # a fresh process's view: nothing loaded yet
            t0 = time.perf_counter()
            summary = annotate_batch(manifest, data, out, run_cfg, models=models)
            wall = time.perf_counter() - t0
            runs[label] = {"wall_s": wall, "summary": summary}
        cold = runs["cold"]["summary"]
        quality = evaluate_batch(out, cold.annotated + cold.cached, data)

    step_s = {s: float(cold.timings[f"{s}_s"]) for s in STEPS}
    result = {
        "cpu_count": os.cpu_count(),
        "videos": len(manifest),
        "video_seconds": round(video_s, 2),
        "throughput_video_s_per_s": {
            **{s: round(video_s / v, 2) if v > 0 else None for s, v in step_s.items()},
            "model_load_s": cold.timings["model_load_s"],
            "end_to_end": round(video_s / runs["cold"]["wall_s"], 3),
        },
        "wall_s": {k: round(v["wall_s"], 3) for k, v in runs.items()},
        "warm_over_cold": round(runs["warm"]["wall_s"] / runs["cold"]["wall_s"], 4),
        "one_knob_over_cold": round(runs["one_knob"]["wall_s"] / runs["cold"]["wall_s"], 4),
        "step_cache_hits": {k: v["summary"].step_cache_hits for k, v in runs.items()},
        "quality": {k: round(v, 4) for k, v in quality.items()},
        "speech": speech,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{result['videos']} videos, {video_s:.1f} video-seconds, {os.cpu_count()} cores")
    print("\ncold run, per sub-step     seconds   video-s / wall-s")
    for s in STEPS:
        tp = result["throughput_video_s_per_s"][s]
        print(f"  {s:<22} {step_s[s]:>9.2f}   {tp if tp is not None else '-':>8}")
    print(f"  {'model loading':<22} {cold.timings['model_load_s']:>9.2f}")
    tp = result["throughput_video_s_per_s"]["end_to_end"]
    print(f"  {'end to end':<22} {runs['cold']['wall_s']:>9.2f}   {tp:>8}")
    print("\nrun           wall s    ratio to cold   sub-step cache hits")
    for k in ("cold", "warm", "one_knob"):
        ratio = runs[k]["wall_s"] / runs["cold"]["wall_s"]
        hits = runs[k]["summary"].step_cache_hits
        print(f"  {k:<10} {runs[k]['wall_s']:>8.2f}   {ratio:>12.2%}   {hits}")
    print("\nquality against the ground truth")
    for k, v in result["quality"].items():
        print(f"  {k:<24} {v}")
    if speech:
        print(f"\nspeech clips ({cfg.asr_model})")
        for lang, v in speech.items():
            print(f"  {lang:<4} {v['metric']} {v['score']:.4f} over {v['clips']} clips")


def speech_scores(cfg: ASRConfig, root: Path | None) -> dict[str, dict[str, object]]:
    """{lang: {"metric": "wer"|"cer", "score", "clips"}} for en and zh clips under ``root``."""
    from hivid.annotate.asr import make_asr_backend
    from hivid.annotate.textmetrics import cer, wer
    from hivid.data.decode import decode_audio

    if root is None:
        try:
            import pytest_audioeval
        except ImportError:
            return {}
        root = Path(pytest_audioeval.__file__).parent / "samples" / "audio"
    asr = make_asr_backend(cfg)
    out: dict[str, dict[str, object]] = {}
    for lang, metric in (("en", wer), ("zh", cer)):
        edits = total = clips = 0
        for wav in sorted((root / lang).glob("*.wav")):
            audio = decode_audio(wav)
            if audio is None:
                continue
            res = asr.transcribe(audio, 16000, language=lang)
            hyp = " ".join(str(s["text"]) for s in res.segments)
            e, n = metric(wav.with_suffix(".txt").read_text("utf-8"), hyp)
            edits, total, clips = edits + e, total + n, clips + 1
        if clips:
            name = "wer" if lang == "en" else "cer"
            out[lang] = {"metric": name, "score": edits / max(1, total), "clips": clips}
    return out


if __name__ == "__main__":
    main()
