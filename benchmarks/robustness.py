"""Bad-input costs, measured side by side (issue 16).

1. Peak RSS of `hivid ingest` when every video's metadata is as large as allowed
   (``ingest.max_metadata_bytes``) and one more file is 50 MB, next to the same corpus with
   ordinary (~150 byte) metadata: the ratio shows memory stays bounded by the limit.
2. Time to the first error of each precondition failure in a clean checkout, next to
   `hivid --version` (interpreter + CLI start-up): they cost start-up, not model loading.

    .venv/bin/python benchmarks/robustness.py [--videos 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HIVID = str(Path(sys.executable).parent / "hivid")
META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    return env


def _seconds(args: list[str], cwd: Path) -> tuple[float, int]:
    """(wall seconds, exit code) of one command."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=_child_env())
    return time.perf_counter() - t0, proc.returncode


def _ingest_rss(ws: Path, videos: int, meta_bytes: int | None) -> tuple[float, float, int]:
    code = (
        "import resource, subprocess, sys;"
        "p = subprocess.run(sys.argv[1:], capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)"
    )
    data = ws / "data"
    if data.exists():
        shutil.rmtree(data)
    from hivid.data.demo import DemoConfig, generate_demo_corpus

    generate_demo_corpus(data, DemoConfig(videos=videos))
    if meta_bytes is not None:
        from hivid.data.ingest import IngestConfig

        limit = IngestConfig().max_metadata_bytes
        for p in sorted((data / "metadata").glob("*.json")):
            meta = json.loads(p.read_text())
            base = len(json.dumps({**meta, "pad": ""}).encode())
            p.write_text(json.dumps({**meta, "pad": "x" * (limit - base)}))
            assert p.stat().st_size == limit
        big = data / "videos" / "huge_meta.mp4"
        shutil.copy(next((data / "videos").glob("*.mp4")), big)
        with (data / "metadata" / "huge_meta.json").open("wb") as f:
            f.truncate(50 * 1024 * 1024)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, HIVID, "ingest"],
        cwd=ws,
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    seconds = time.perf_counter() - t0
    kib, rc = proc.stdout.split()
    return seconds, int(kib) / 1024, int(rc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        (ws / "dvc.yaml").write_text("stages: {}\n")
        (ws / "params.yaml").write_text("ingest:\n  probe_timeout_s: 0\n")
        small = _ingest_rss(ws, args.videos, None)
        large = _ingest_rss(ws, args.videos, 1)
        out["ingest"] = {
            "videos": args.videos,
            "small_metadata": {"seconds": round(small[0], 2), "peak_rss_mib": round(small[1], 1)},
            "max_metadata_plus_50mb": {
                "seconds": round(large[0], 2),
                "peak_rss_mib": round(large[1], 1),
                "exit": large[2],
            },
            "rss_ratio": round(large[1] / small[1], 3),
        }
        clean = Path(tmp) / "clean"
        clean.mkdir()
        (clean / "dvc.yaml").write_text("stages: {}\n")
        base = _seconds([HIVID, "--version"], clean)[0]
        pre = {}
        for name, cmd in {
            "train --stage 2": ["train", "--stage", "2"],
            "evaluate model": ["evaluate", "model"],
            "narrate /nonexistent.mp4": ["narrate", "/nonexistent.mp4"],
        }.items():
            seconds, rc = _seconds([HIVID, *cmd], clean)
            pre[name] = {
                "seconds": round(seconds, 3),
                "exit": rc,
                "ratio": round(seconds / base, 2),
            }
        out["preconditions"] = {"hivid --version s": round(base, 3), **pre}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    i = out["ingest"]
    print(f"ingest, {args.videos} videos:  small metadata  vs  every file at the limit + one 50 MB")
    print(
        f"  peak RSS MiB     {i['small_metadata']['peak_rss_mib']:>8}  vs  "  # type: ignore[index]
        f"{i['max_metadata_plus_50mb']['peak_rss_mib']:>8}   ratio {i['rss_ratio']}"  # type: ignore[index]
    )
    print("precondition failures (clean checkout): seconds to the error, and / `hivid --version`")
    for k, v in out["preconditions"].items():  # type: ignore[attr-defined]
        print(f"  {k:<28} {v}")


if __name__ == "__main__":
    main()
