"""Does training help? Untrained vs stage 1 vs stage 2 on held-out demo videos, side by side.

    .venv/bin/python benchmarks/narrator_quality.py [--videos 20] [--steps1 1500] [--steps2 300]
                                                    [--json] [--keep DIR]

Creates a fresh workspace with N demo videos, runs the real pipeline through `dvc repro
train_stage2` (ingest, annotate, validate, build_dataset, both training stages, all through the
`hivid` CLI), then scores three models on the same test split with `hivid evaluate model`: the
random-initialised narrator stage 1 starts from (``outputs/ckpt/stage1/init``), the stage-1 model
and the stage-2 model. Prints SODA_c, CIDEr, METEOR, F1, parsable outputs and the LLM input
tokens per video, and the ratios the issue names: trained over untrained, stage 2 over stage 1.

The default model is the tiny preset widened (128 hidden, 4 layers): the 2-layer 64-wide default
of the nightly demo is too small to generalise from a handful of videos (docs/TRAINING.md).
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

KEYS = ("SODA_c", "CIDEr", "METEOR", "F1", "parsed_chapters_per_video", "llm_input_tokens_mean")


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def _evaluate(ws: Path, name: str, model_dir: Path) -> dict[str, float]:
    out = ws / "outputs" / "bench" / name
    _run(
        [
            "hivid",
            "evaluate",
            "model",
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--metrics",
            str(out / "metrics_summary.json"),
        ],
        ws,
    )
    metrics: dict[str, float] = json.loads((out / "metrics.json").read_text())
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--steps1", type=int, default=1500)
    ap.add_argument("--steps2", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=1280)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="workspace dir to keep (default: tmp)")
    args = ap.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    from hivid.workspace import create_workspace

    overrides: dict[str, Any] = {
        "demo": {"videos": args.videos},
        "model": {
            "llm": {
                "hidden_size": args.hidden,
                "num_layers": args.layers,
                "num_heads": 4,
                "intermediate_size": 2 * args.hidden,
            }
        },
        "train_stage1": {"max_steps": args.steps1},
        "train_stage2": {"max_steps": args.steps2},
        "evaluate": {"max_new_tokens": args.max_new_tokens},
    }
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
    stage1_metrics = json.loads((ckpt / "stage1" / "metrics.json").read_text())

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = scores[a].get(key), scores[b].get(key)
        return None if x is None or not y else x / y

    out = {
        "videos": args.videos,
        "test_videos": scores["stage1"].get("videos"),
        "steps": {"stage1": args.steps1, "stage2": args.steps2},
        "pipeline_s": round(pipeline_s, 1),
        "stage1_train_metrics": stage1_metrics,
        "scores": {n: {k: s.get(k) for k in KEYS} for n, s in scores.items()},
        "stage1_over_untrained": {k: ratio("stage1", "untrained", k) for k in ("SODA_c", "CIDEr")},
        "stage2_over_stage1": {
            k: ratio("stage2", "stage1", k) for k in ("SODA_c", "CIDEr", "llm_input_tokens_mean")
        },
    }
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{args.videos} demo videos, {out['test_videos']} held out; pipeline {pipeline_s:.0f} s")
    print(f"stage-1 training: {json.dumps(stage1_metrics)}")
    print(f"{'':<22}" + "".join(f"{n:>12}" for n in models))
    for k in KEYS:
        cells = "".join(
            f"{scores[n][k]:>12.4f}" if scores[n].get(k) is not None else f"{'-':>12}"
            for n in models
        )
        print(f"{k:<22}{cells}")
    print(f"stage 1 / untrained: {out['stage1_over_untrained']}")
    print(f"stage 2 / stage 1:   {out['stage2_over_stage1']}")


if __name__ == "__main__":
    main()
