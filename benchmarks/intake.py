"""Intake throughput vs a plain boto3 download loop, and the cost of a no-op intake.

    .venv/bin/python benchmarks/intake.py [--objects 40] [--mib 4] [--noop-objects 1000] [--json]

Starts a real SeaweedFS S3 server on loopback (`tests/s3server.py`), uploads ``--objects`` video
objects of ``--mib`` MiB each (with metadata), then measures side by side in one run:

1. ``boto3 download_file`` over the same objects (videos and their metadata) into a folder, one
   after the other, with a fresh client (the plain baseline);
2. ``hivid intake`` of the zone into a fresh data/: list, streamed GET with sha256 + md5, checks
   against ChecksumSHA256 / ETag, staging, atomic moves, ledger (``probe: false``: the payloads are
   ISO-BMFF-headed random bytes, not decodable media; the PyAV probe is per new video and is
   reported separately on real clips with ``--probe-clips``);
3. a no-op intake over ``--noop-objects`` unchanged videos (+ their metadata): the whole cost of a
   nightly whose landing zone has nothing new.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

META = json.dumps(
    {
        "brand": "Acme",
        "category": "beauty",
        "attributes": {"volume": "30ml"},
        "price": {"amount": 19.5, "currency": "USD"},
    }
).encode()


def payload(i: int, size: int) -> bytes:
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    return head + os.urandom(size - len(head)) if size > len(head) else head


def upload(client: object, bucket: str, prefix: str, n: int, size: int, tag: str) -> int:
    def put(i: int) -> int:
        body = payload(i, size)
        key = f"{prefix}/videos/{tag}{i:05d}.mp4"
        client.put_object(Bucket=bucket, Key=key, Body=body)  # type: ignore[attr-defined]
        client.put_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=f"{prefix}/metadata/{tag}{i:05d}.json", Body=META
        )
        return len(body)

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(put, range(n)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--mib", type=float, default=4.0)
    ap.add_argument("--noop-objects", type=int, default=1000)
    ap.add_argument("--probe-clips", type=int, default=5, help="real clips for the probe cost")
    ap.add_argument("--workers", type=int, default=4, help="intake.workers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from tests.s3server import S3Server

    from hivid.data.intake import IntakeConfig, intake

    size = int(args.mib * 1024 * 1024)
    out: dict[str, object] = {"objects": args.objects, "mib": args.mib}
    with tempfile.TemporaryDirectory() as tmp_s, S3Server(Path(tmp_s) / "s3", ["bench"]) as s3:
        tmp = Path(tmp_s)
        os.environ.update(s3.env())
        client = s3.client()
        total = upload(client, "bench", "tp", args.objects, size, "v")
        # the same objects intake takes: each video and its metadata
        keys = [
            k
            for i in range(args.objects)
            for k in (f"tp/videos/v{i:05d}.mp4", f"tp/metadata/v{i:05d}.json")
        ]

        t0 = time.perf_counter()
        plain_client = s3.client()  # a fresh client, as an intake run makes its own
        plain = tmp / "plain"
        plain.mkdir()
        for k in keys:
            plain_client.download_file("bench", k, str(plain / Path(k).name))
        t_plain = time.perf_counter() - t0

        cfg = IntakeConfig(
            probe=False, staging_dir="staging", state_dir="state", workers=args.workers
        )
        root = tmp / "proj"
        t0 = time.perf_counter()
        r = intake("s3://bench/tp", root / "data", cfg, root, log=lambda _: None)
        t_intake = time.perf_counter() - t0
        assert r.changed and len(r.taken) == 2 * args.objects, r.quarantined[:3]
        mib = total / 2**20
        out["throughput"] = {
            "plain_download_file_s": round(t_plain, 3),
            "intake_s": round(t_intake, 3),
            "plain_MiB_per_s": round(mib / t_plain, 1),
            "intake_MiB_per_s": round(mib / t_intake, 1),
            "intake_over_plain": round(t_intake / t_plain, 2),
        }

        n = args.noop_objects
        upload(client, "bench", "noop", n, 2048, "n")
        root2 = tmp / "proj2"
        t0 = time.perf_counter()
        first = intake("s3://bench/noop", root2 / "data", cfg, root2, log=lambda _: None)
        t_first = time.perf_counter() - t0
        assert first.changed and len(first.taken) == 2 * n
        t0 = time.perf_counter()
        again = intake("s3://bench/noop", root2 / "data", cfg, root2, log=lambda _: None)
        t_noop = time.perf_counter() - t0
        t0 = time.perf_counter()
        listed = sum(
            len(page.get("Contents", []))
            for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="bench", Prefix="noop/"
            )
        )
        t_list = time.perf_counter() - t0
        assert listed == 2 * n
        assert not again.changed and again.unchanged == n and again.downloaded_bytes == 0
        out["noop"] = {
            "objects": 2 * n,
            "first_intake_s": round(t_first, 3),
            "noop_intake_s": round(t_noop, 3),
            "noop_ms_per_video": round(1000 * t_noop / n, 3),
            "noop_over_first": round(t_noop / t_first, 4),
            "bare_list_s": round(t_list, 3),
            "noop_over_bare_list": round(t_noop / t_list, 2),
        }

        if args.probe_clips:
            from hivid.data.faults import write_clip

            for i in range(args.probe_clips):
                clip = write_clip(tmp / f"clip{i}.mp4", seconds=3.0, fps=10, size=(64, 48), seed=i)
                client.put_object(Bucket="bench", Key=f"pr/videos/c{i}.mp4", Body=clip.read_bytes())
                client.put_object(Bucket="bench", Key=f"pr/metadata/c{i}.json", Body=META)
            for probe in (False, True):
                root3 = tmp / f"proj3-{probe}"
                c3 = IntakeConfig(probe=probe, staging_dir="staging", state_dir="state")
                t0 = time.perf_counter()
                r3 = intake("s3://bench/pr", root3 / "data", c3, root3, log=lambda _: None)
                out[f"clips_probe_{str(probe).lower()}_s"] = round(time.perf_counter() - t0, 3)
                assert len(r3.taken) == 2 * args.probe_clips, r3.quarantined

    if args.json:
        print(json.dumps(out, indent=1))
        return
    tp, noop = out["throughput"], out["noop"]
    assert isinstance(tp, dict) and isinstance(noop, dict)
    print(f"intake benchmark: {args.objects} objects x {args.mib} MiB on loopback SeaweedFS")
    print(f"{'':28}{'plain download_file':>22}{'hivid intake':>16}{'ratio':>8}")
    print(
        f"{'seconds':28}{tp['plain_download_file_s']:>22}{tp['intake_s']:>16}"
        f"{tp['intake_over_plain']:>8}"
    )
    print(f"{'MiB/s':28}{tp['plain_MiB_per_s']:>22}{tp['intake_MiB_per_s']:>16}")
    print(
        f"no-op intake over {args.noop_objects} unchanged videos (+ metadata): "
        f"{noop['noop_intake_s']} s ({noop['noop_ms_per_video']} ms/video), "
        f"{noop['noop_over_first']} of the first intake ({noop['first_intake_s']} s); "
        f"a bare LIST of the same objects: {noop['bare_list_s']} s "
        f"(no-op / LIST = {noop['noop_over_bare_list']})"
    )
    if args.probe_clips:
        print(
            f"{args.probe_clips} real clips: intake {out['clips_probe_false_s']} s without the "
            f"PyAV probe, {out['clips_probe_true_s']} s with it"
        )


if __name__ == "__main__":
    main()
