"""build_dataset with and without the frame cache, measured side by side in one process.

    .venv/bin/python benchmarks/frame_cache.py [--root DIR] [--repeats 3] [--json]

``--root`` is a project directory after `validate` (default: this checkout): ``data/``,
``outputs/ingest/manifest.jsonl``, ``outputs/annotations`` and ``outputs/quality/gate.json``
(e.g. after ``make demo``). Runs ``build_dataset`` (the pure function, not the CLI: no MLflow, no
GX split gate) on the videos that passed the gate, each mode ``--repeats`` times (best time kept),
into temporary directories:

1. ``no_cache``: every video decoded (the behaviour before the cache);
2. ``cold``: an empty cache (decode + store);
3. ``warm``: the same corpus again (nothing decoded);
4. ``ten_pct_new``: the cache holds all but ceil(10 %) of the videos (issue 7's nightly with 10 %
   new videos), so only those are decoded.

Prints wall seconds, the ratio of each mode to ``no_cache`` and the cache counters, and checks that
every mode wrote byte-identical dataset files.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _files(d: Path) -> dict[str, bytes]:
    files = sorted(p for p in d.rglob("*") if p.is_file())
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in files}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO)
    ap.add_argument("--params", type=Path, default=None, help="default: ROOT/params.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from hivid.config import load_section
    from hivid.data.ingest import read_manifest
    from hivid.dataset.build import DatasetConfig, build_dataset
    from hivid.io import read_json
    from hivid.stages import load_annotations

    root = args.root.resolve()
    cfg: DatasetConfig = load_section(args.params or root / "params.yaml", "dataset")
    manifest = read_manifest(root / "outputs/ingest/manifest.jsonl")
    annotations = load_annotations(root / "outputs/annotations")
    passed = list(read_json(root / "outputs/quality/gate.json")["passed"])
    old = passed[: len(passed) - math.ceil(len(passed) / 10)]

    def run(out: Path, cache: Path | None, videos: list[str]) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        s = build_dataset(manifest, annotations, videos, root / "data", out, cfg, None, cache)
        return time.perf_counter() - t0, s

    best: dict[str, float] = {}
    counters: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        reference: dict[str, bytes] | None = None
        for r in range(args.repeats):
            cache, primed = t / f"cache{r}", t / f"primed{r}"
            run(t / f"prime{r}", primed, old)  # the previous night's cache: 90 % of the videos
            modes = (
                ("no_cache", None),
                ("cold", cache),
                ("warm", cache),
                ("ten_pct_new", primed),
            )
            for label, c in modes:
                out = t / f"{label}{r}"
                wall, s = run(out, c, passed)
                best[label] = min(best.get(label, math.inf), wall)
                counters[label] = s.get("frame_cache")
                files = _files(out)
                if reference is None:
                    reference = files
                elif files != reference:
                    raise SystemExit(f"{label}: dataset files differ from the uncached build")

    base = best["no_cache"]
    result = {
        "cpu_count": os.cpu_count(),
        "videos": len(passed),
        "new_videos": len(passed) - len(old),
        "wall_s": {k: round(v, 3) for k, v in best.items()},
        "ratio_to_no_cache": {k: round(v / base, 4) for k, v in best.items()},
        "frame_cache": counters,
        "identical_files": True,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    new = result["new_videos"]
    print(f"{len(passed)} videos ({new} new in ten_pct_new), {os.cpu_count()} cores")
    print("mode           wall s   ratio to no_cache   cache")
    for k, v in best.items():
        c = counters[k]
        hits = f"{c['hits']} hits / {c['misses']} misses" if c else "-"
        print(f"  {k:<12} {v:>7.3f}   {v / base:>16.2%}   {hits}")
    print("every mode wrote byte-identical dataset files")


if __name__ == "__main__":
    main()
