"""Nightly cost on an unchanged corpus and with 10 % new videos, as ratios of the first full run.

    .venv/bin/python benchmarks/nightly.py [--videos 10] [--json]

Runs the real nightly flow (Prefect ephemeral API, DVC, MLflow) three times in one fresh workspace:
1. full run on N demo videos; 2. the same again (nothing changed); 3. after adding ceil(N/10) new
videos (re-pinned with `dvc add data`). Prints wall times and ratios side by side.
Goals (issue 7): unchanged <= 5 %, +10 % videos <= 20 %. The training plan of each run (warm from
the champion or full, steps) is printed too: which split the new videos fall into (stable per-video
hash) decides whether a warm run trains at all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--steps", type=int, default=None, help="override train max_steps (both)")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import nightly
    from hivid.workspace import add_demo_videos, create_workspace

    # This measures incremental speed, which needs a champion to warm-start from; the promotion
    # floor (beat the trivial baseline) would keep a weak demo model from becoming one.
    overrides: dict = {
        "demo": {"videos": args.videos},
        "registry": {"promotion": {"baseline": None}},
    }
    if args.steps:
        overrides["train_stage1"] = {"max_steps": args.steps}
        overrides["train_stage2"] = {"max_steps": args.steps}
    added = max(1, math.ceil(args.videos / 10))
    times: dict[str, float] = {}
    stages: dict[str, dict] = {}
    plans: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        ws = create_workspace(REPO, Path(tmp) / "ws", overrides, args.videos)
        for label in ("full", "unchanged", "plus_10pct"):
            if label == "plus_10pct":
                add_demo_videos(ws, args.videos + added)
            t0 = time.perf_counter()
            result = nightly(repo=str(ws), demo=False)
            times[label] = time.perf_counter() - t0
            stages[label] = {
                k: f"{v} ({result['seconds'].get(k, '-')} s)" for k, v in result["stages"].items()
            }
            stages[label]["after"] = {
                k: v for k, v in result["seconds"].items() if k not in result["stages"]
            }
            plan = ws / "outputs" / "warm_start" / "plan.json"
            if plan.exists():  # how training went: warm (steps scaled) or full, and why
                p = json.loads(plan.read_text())
                plans[label] = {k: p[k] for k in ("mode", "steps", "new_videos", "reason")}
    out = {
        "videos": args.videos,
        "added_videos": added,
        "seconds": {k: round(v, 2) for k, v in times.items()},
        "unchanged_ratio": round(times["unchanged"] / times["full"], 4),
        "plus_10pct_ratio": round(times["plus_10pct"] / times["full"], 4),
        "goals": {"unchanged_ratio": 0.05, "plus_10pct_ratio": 0.20},
        "stages": stages,
        "training_plans": plans,
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        for k, v in out["seconds"].items():
            print(f"{k:>12}: {v:8.1f} s   ratio {v / out['seconds']['full']:.3f}")
        for k, p in plans.items():
            print(f"{k:>12}: training {p['mode']} {p['steps']}: {p['reason']}")


if __name__ == "__main__":
    main()
