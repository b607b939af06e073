"""Bounded fuzz of the prober: 50 mutations of a real demo mp4 never crash or hang the batch."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from hivid.data.ingest import IngestConfig, ingest

CASES = 50


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: flip bytes, zero a block, truncate, splice random bytes, duplicate a block."""
    buf = bytearray(data)
    n = len(buf)
    kind = int(rng.integers(0, 5))
    if kind == 0:  # flip up to 64 random bytes
        for i in rng.integers(0, n, size=int(rng.integers(1, 65))):
            buf[int(i)] ^= int(rng.integers(1, 256))
    elif kind == 1:  # zero a block (often the header or an index atom)
        a = int(rng.integers(0, n))
        k = min(n - a, int(rng.integers(16, 4097)))
        buf[a : a + k] = bytes(k)
    elif kind == 2:  # truncate anywhere
        del buf[int(rng.integers(1, n)) :]
    elif kind == 3:  # splice random bytes in
        a = int(rng.integers(0, n))
        buf[a:a] = rng.bytes(int(rng.integers(1, 2048)))
    else:  # duplicate a block elsewhere
        a, b = sorted(int(x) for x in rng.integers(0, n, size=2))
        b = min(b, a + 8192)
        at = int(rng.integers(0, n))
        buf[at:at] = buf[a:b]
    return bytes(buf)


@pytest.fixture(scope="module")
def demo_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hivid.data.demo import DemoConfig, generate_demo_corpus

    root = tmp_path_factory.mktemp("demo")
    generate_demo_corpus(
        root, DemoConfig(videos=1, min_duration=6.0, max_duration=20.0, max_chapters=2)
    )
    return next((root / "videos").glob("*.mp4"))


def test_mutated_mp4s_never_crash_or_hang_the_batch(demo_mp4: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    videos, metas = root / "videos", root / "metadata"
    videos.mkdir(parents=True)
    metas.mkdir()
    good = videos / "good.mp4"
    good.write_bytes(demo_mp4.read_bytes())
    meta = json.loads((demo_mp4.parent.parent / "metadata" / f"{demo_mp4.stem}.json").read_text())
    rng = np.random.default_rng(1234)
    data = demo_mp4.read_bytes()
    for i in range(CASES):
        (videos / f"fuzz_{i:03d}.mp4").write_bytes(mutate(data, rng))
        (metas / f"fuzz_{i:03d}.json").write_text(json.dumps({**meta, "video_id": f"fuzz_{i:03d}"}))
    (metas / "good.json").write_text(json.dumps({**meta, "video_id": "good"}))

    t0 = time.perf_counter()
    summary = ingest(root, IngestConfig(probe_timeout_s=10))
    elapsed = time.perf_counter() - t0

    ids = {r["video_id"] for r in summary.manifest}
    assert "good" in ids  # the valid video always finishes
    # every file is accounted for, exactly once
    assert len(summary.manifest) + len(summary.quarantined) == CASES + 1
    for q in summary.quarantined:
        assert q["reason"].startswith(q["path"] + ": ") and "\n" not in q["reason"]
        assert len(q["reason"]) < 400
    assert not any("metadata" in q["reason"] for q in summary.quarantined)  # only media faults
    for r in summary.manifest:  # whatever got through is self-consistent
        assert r["duration"] > 0 and r["fps"] > 0 and r["width"] * r["height"] > 0
    assert elapsed < CASES * 10, f"fuzz batch took {elapsed:.0f} s"
    print(
        f"fuzz: {CASES} mutations in {elapsed:.1f} s, {len(summary.manifest) - 1} still usable, "
        f"{len(summary.quarantined)} quarantined"
    )
