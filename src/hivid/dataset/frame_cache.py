"""Persistent cache of the frames ``build_dataset`` samples, so a nightly build decodes only the
videos it has not sampled before with the same settings.

Layout: one entry per (video content, sampling settings), two files named by the entry key::

    <key>.npy    the exact bytes ``build_dataset`` writes to ``frames/<video_id>.npy``
    <key>.json   {"version", "times", "npy_sha256", "shape"}: written last, it commits the entry

``key = sha256(video sha256, fps, frame_size, max_frames, CACHE_VERSION, sampler fingerprint)``: the
video's content hash (from the ingest manifest), not its path, so a renamed video still hits and a
changed one misses; the fingerprint (source of the sampling code, PyAV and Pillow versions) makes
an edited sampler miss too.
A hit returns the stored bytes unchanged, so a warm build writes byte-identical dataset files.
An entry that cannot be read, is truncated or fails its checksum counts as ``corrupt`` and is
re-decoded (a cache never fails a build). ``prune`` removes every entry the current build did not
use, so the cache holds at most one entry per video of the latest dataset.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hivid.io import write_bytes_atomic

CACHE_VERSION = 1
"""Bump when the sampling code (decode, resize, subsampling, npy layout) changes what a video's
frames are: every older entry then misses and is pruned by the next build."""

_ENTRY = re.compile(r"^[0-9a-f]{64}\.(?:npy|json)$")
_TMP = re.compile(r"^\.[0-9a-f]{64}\.(?:npy|json)\..*\.tmp$")


def cache_key(
    video_sha256: str, fps: float, frame_size: int, max_frames: int, sampler: str = ""
) -> str:
    """The entry key of one video's frames sampled with these settings; ``sampler`` fingerprints
    the sampling code itself (``sampler_fingerprint``)."""
    blob = json.dumps(
        {
            "video_sha256": video_sha256,
            "fps": float(fps),
            "frame_size": int(frame_size),
            "max_frames": int(max_frames),
            "version": CACHE_VERSION,
            "sampler": sampler,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def sampler_fingerprint(*sources: Callable[..., Any] | types.ModuleType) -> str:
    """sha256 of the given functions' and modules' source plus the decoder and image library
    versions: an edit to the sampling code (or a PyAV/Pillow upgrade) misses every old entry even
    when nobody remembered to bump ``CACHE_VERSION``."""
    import av
    import PIL

    h = hashlib.sha256(f"av {av.__version__} pillow {PIL.__version__}".encode())
    for src in sources:
        h.update(inspect.getsource(src).encode())
    return h.hexdigest()


@dataclass
class FrameCache:
    """A directory of frame entries with hit/miss counters for one build."""

    root: Path
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    write_errors: int = 0
    used: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> tuple[bytes, list[float]] | None:
        """The stored (npy bytes, frame times) of ``key``, or None (a miss: decode and ``put``)."""
        self.used.add(key)
        meta_path, npy_path = self.root / f"{key}.json", self.root / f"{key}.npy"
        if not meta_path.exists():
            self.misses += 1
            return None
        try:
            entry = _read_entry(meta_path, npy_path)
        except Exception:  # any unreadable entry is a miss, never a failed build
            # Truncated, hand-edited or half-written: decode again and overwrite it.
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, key: str, npy: bytes, shape: tuple[int, ...], times: list[float]) -> None:
        """Store an entry (the npy first, then the metadata that commits it). A cache that cannot
        be written (disk full, read-only) only costs the next build a decode."""
        self.used.add(key)
        meta = {
            "version": CACHE_VERSION,
            "times": times,
            "npy_sha256": hashlib.sha256(npy).hexdigest(),
            "shape": list(shape),
        }
        try:
            write_bytes_atomic(self.root / f"{key}.npy", npy)
            write_bytes_atomic(self.root / f"{key}.json", json.dumps(meta).encode())
        except OSError:
            self.write_errors += 1

    def prune(self) -> int:
        """Delete the entries (and leftover temporary files) this build did not use; returns how
        many entries went."""
        gone: set[str] = set()
        for p in self.root.iterdir():
            if not p.is_file():
                continue
            if _ENTRY.match(p.name) and p.name[:64] not in self.used:
                gone.add(p.name[:64])
                p.unlink(missing_ok=True)
            elif _TMP.match(p.name):
                p.unlink(missing_ok=True)
        return len(gone)

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "corrupt": self.corrupt,
            "write_errors": self.write_errors,
        }


def _read_entry(meta_path: Path, npy_path: Path) -> tuple[bytes, list[float]]:
    meta: Any = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta["version"] != CACHE_VERSION:
        raise ValueError(f"{meta_path}: cache version {meta['version']}, expected {CACHE_VERSION}")
    npy = npy_path.read_bytes()
    if hashlib.sha256(npy).hexdigest() != meta["npy_sha256"]:
        raise ValueError(f"{npy_path}: checksum mismatch")
    times = [float(t) for t in meta["times"]]
    arr = np.load(io.BytesIO(npy), allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[0] != len(times) or not times:
        raise ValueError(f"{npy_path}: frames {arr.dtype} {arr.shape} do not match the entry")
    return npy, times
