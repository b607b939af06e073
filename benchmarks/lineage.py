"""`hivid lineage` wall time: a clean checkout verifying over S3 vs a warm local DVC cache, side by
side in one run, and how long the audit takes to give up on a down or hung server.

    .venv/bin/python benchmarks/lineage.py [--videos 20] [--mb 1] [--repeats 3] [--json]

Builds a complete audit chain (``build_chain`` of tests/audit_chain.py: a git + DVC project
with ``--videos`` raw videos of ``--mb`` MiB, every stage run in an embedded MLflow store, a
warm-started model version registered with the real registry code and the nightly's own commit)
whose DVC remote is a bucket on a private SeaweedFS server (tests/s3server.py, 127.0.0.1 only).
Then, each best of ``--repeats``:

1. ``warm_cache``: ``trace()`` in the project itself (every object in its DVC cache);
2. ``s3_clean``: ``trace()`` in a fresh ``git clone`` with no DVC cache and no data/: every
   object streamed from S3 and hashed (md5 + sha256 in one pass);
3. the same two through the CLI (``hivid lineage``, process start-up included);

and once each, through the CLI with its default limits (10 s per request, 2 retries):

4. ``s3_hung``: the DVC remote's endpoint accepts connections and never answers;
5. ``mlflow_refused`` / ``mlflow_hung``: the tracking server refuses connections / never answers.

Prints seconds, the ratio of each to ``warm_cache`` and the exit codes (0 verified, 3 not).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))


def best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, int]:
    exe = Path(sys.executable).parent / "hivid"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(exe), "lineage", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--mb", type=float, default=1.0, help="MiB per raw video")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from tests.audit_chain import DVC, MODEL, build_chain, run
    from tests.helpers import blackhole, free_port
    from tests.s3server import S3Server

    from hivid.tracking.audit import trace

    with tempfile.TemporaryDirectory(prefix="hivid-bench-lineage-") as tmp_s:
        tmp = Path(tmp_s)
        with S3Server(tmp / "s3") as s3:
            bucket = s3.make_bucket()
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'proj' / 'mlruns' / 'mlflow.db'}"
            os.environ.pop("HIVID_PARENT_RUN_ID", None)
            local = {
                "endpointurl": s3.endpoint,
                "access_key_id": s3.access_key,
                "secret_access_key": s3.secret_key,
            }
            t0 = time.perf_counter()
            chain = build_chain(
                tmp / "proj", f"s3://{bucket}/dvc", local, args.videos, int(args.mb * 2**20)
            )
            build_s = time.perf_counter() - t0
            clone = tmp / "auditor"
            run(["git", "clone", "-q", str(chain.root), str(clone)], tmp)
            for key, value in local.items():
                run([*DVC, "remote", "modify", "--local", "s3", key, value], clone)

            def verified(root: Path) -> Callable[[], Any]:
                def go() -> Any:
                    lineage = trace(root, MODEL)
                    assert lineage.verified, {x.name: x.reason for x in lineage.links}
                    return lineage

                return go

            warm_s, _ = best(verified(chain.root), args.repeats)
            s3_s, lineage = best(verified(clone), args.repeats)
            sources = {x.detail.get("source") for x in lineage.links if x.name.startswith("raw")}
            assert sources == {"remote s3"}, sources
            cli_warm = min(cli(chain.root, MODEL)[0] for _ in range(args.repeats))
            cli_s3 = min(cli(clone, MODEL)[0] for _ in range(args.repeats))
            with blackhole() as port:
                hung = tmp / "hung"
                run(["git", "clone", "-q", str(chain.root), str(hung)], tmp)
                conf = {**local, "endpointurl": f"http://127.0.0.1:{port}"}
                for key, value in conf.items():
                    run([*DVC, "remote", "modify", "--local", "s3", key, value], hung)
                s3_hung = cli(hung, MODEL)
                mlflow_hung = cli(
                    clone, MODEL, env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
                )
            refused = cli(
                clone, MODEL, env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
            )
    result = {
        "videos": args.videos,
        "mib_per_video": args.mb,
        "links": len(lineage.links),
        "chain_build_s": round(build_s, 1),
        "trace_s": {"warm_cache": round(warm_s, 2), "s3_clean": round(s3_s, 2)},
        "trace_ratio_s3_clean_to_warm": round(s3_s / warm_s, 2),
        "cli_s": {"warm_cache": round(cli_warm, 2), "s3_clean": round(cli_s3, 2)},
        "cli_ratio_s3_clean_to_warm": round(cli_s3 / cli_warm, 2),
        "failure_cli_s_and_exit": {
            "s3_hung": [round(s3_hung[0], 1), s3_hung[1]],
            "mlflow_hung": [round(mlflow_hung[0], 1), mlflow_hung[1]],
            "mlflow_refused": [round(refused[0], 1), refused[1]],
        },
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"hivid lineage over {args.videos} videos x {args.mb} MiB ({len(lineage.links)} links)")
    print(f"  {'':<22}{'warm cache':>12}{'S3, clean':>12}{'ratio':>8}")
    print(f"  {'trace() seconds':<22}{warm_s:>12.2f}{s3_s:>12.2f}{s3_s / warm_s:>8.2f}")
    print(f"  {'CLI seconds':<22}{cli_warm:>12.2f}{cli_s3:>12.2f}{cli_s3 / cli_warm:>8.2f}")
    print("  down servers (CLI, default limits: 10 s per request, 2 retries):")
    for name, (sec, code) in result["failure_cli_s_and_exit"].items():
        print(f"    {name:<16} exit {code} after {sec:.1f} s")


if __name__ == "__main__":
    main()
