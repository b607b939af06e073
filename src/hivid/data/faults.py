"""Bad input for a demo corpus: ``hivid demo-data --faults`` writes these next to the good videos.

Each fault is a file (and, where it matters, its metadata) that ingest must quarantine with a
one-line reason, or, for the two "accepted" faults (no audio track, variable frame rate), accept
and record. ``FAULTS`` lists them with the reason fragment ingest reports, so tests and the
README's table come from the same place. The files are deterministic (fixed seeds), small (the
8K frame is one flat-coloured frame, a few KB) and never written by default: ``data.dvc`` pins
the default corpus byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hivid.data.mp4 import write_mp4

DEFAULT_METADATA: dict[str, Any] = {
    "title": "Fault Fixture Bottle 500ml",
    "brand": "Faultline",
    "category": "home",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 9.5, "currency": "USD"},
    "language": "en",
}


@dataclass(frozen=True)
class Fault:
    """One bad (or odd but valid) input file of the fault set."""

    name: str
    """File name under ``videos/``."""
    expect: str
    """``quarantine``: ingest must reject it; ``accept``: it must reach the manifest."""
    reason: str
    """Fragment of the ingest reason (quarantine) or the manifest field set (accept)."""
    what: str
    """One line for people: what the file is."""


FAULTS: tuple[Fault, ...] = (
    Fault("fault_zero_bytes.mp4", "quarantine", "empty file (0 bytes)", "a zero-byte file"),
    Fault(
        "fault_truncated.mp4",
        "quarantine",
        "not a readable media container",
        "the first 40% of an mp4 whose index (moov) is at the end: the index is lost",
    ),
    Fault(
        "fault_truncated_tail.mp4",
        "quarantine",
        "truncated: ",
        "the first 40% of a fast-start mp4: the index lists frames that are not in the file",
    ),
    Fault(
        "fault_random_bytes.mp4",
        "quarantine",
        "not a readable media container",
        "4 KB of random bytes named .mp4",
    ),
    Fault("fault_audio_only.mp4", "quarantine", "audio-only file", "an AAC track, no video"),
    Fault(
        "fault_zero_duration.mp4",
        "quarantine",
        "zero duration",
        "an mp4 whose video stream has no frames",
    ),
    Fault(
        "fault_huge_frame.mp4",
        "quarantine",
        "exceeds max_pixels",
        "one 7680x4320 frame (rejected from the header, never decoded)",
    ),
    Fault(
        "fault_duplicate.mp4",
        "quarantine",
        "same content as",
        "a byte copy of the first good video under another name",
    ),
    Fault(
        "fault_meta_not_utf8.mp4",
        "quarantine",
        "metadata is not UTF-8",
        "a good video whose metadata is Latin-1 bytes",
    ),
    Fault(
        "fault_meta_not_json.mp4",
        "quarantine",
        "metadata is not JSON",
        "a good video whose metadata is not JSON",
    ),
    Fault(
        "fault_meta_missing_fields.mp4",
        "quarantine",
        "'brand' missing",
        "a good video whose metadata lacks brand and price and has a string for attributes",
    ),
    Fault(
        "fault_meta_wrong_id.mp4",
        "quarantine",
        "names video_id '../../x'",
        "a good video whose metadata claims the id '../../x' (path traversal via metadata)",
    ),
    Fault(
        "x..%2F..%2Fescape.mp4",
        "quarantine",
        "invalid video id",
        "a name that tries path traversal",
    ),
    Fault(
        "fault_link_escape.mp4",
        "quarantine",
        "resolves outside the videos/ directory",
        "a symlink pointing outside the data root",
    ),
    Fault("fault_no_audio.mp4", "accept", "has_audio=false", "a valid video without audio"),
    Fault(
        "fault_vfr.mp4",
        "accept",
        "variable_frame_rate=true",
        "a valid video with irregular frame intervals",
    ),
)


def write_clip(
    path: Path,
    seconds: float = 3.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 96),
    audio: bool = True,
    seed: int = 0,
    frame_times: list[float] | None = None,
    video: bool = True,
    faststart: bool = False,
) -> Path:
    """A small H.264/AAC mp4 of moving colour bands (``frame_times``: explicit, irregular times).

    Deterministic for a given ``seed``: the pixels, the tone and every timestamp are fixed.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    times = frame_times if frame_times is not None else [i / fps for i in range(int(seconds * fps))]
    frames: list[np.ndarray] = []
    if video:
        base = rng.integers(0, 255, size=3)
        for i in range(len(times)):
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = (base + i * 9) % 255
            img[: h // 2, (i * 5) % w :] = 255
            frames.append(img)
    wave = None
    if audio:
        sr = 16000
        tone = 220 + 40 * int(rng.integers(0, 10))
        secs = np.arange(int(seconds * sr)) / sr
        wave = (0.2 * np.sin(2 * np.pi * tone * secs)).astype(np.float32)
    return write_mp4(
        path,
        frames,
        size=size,
        fps=fps,
        times=times,
        audio=wave,
        sample_rate=16000,
        faststart=faststart,
        video=video,
    )


def write_huge_frame(path: Path, width: int = 7680, height: int = 4320) -> Path:
    """One flat-grey frame of ``width`` x ``height`` (a few KB of H.264)."""
    grey = np.full((height, width, 3), 128, np.uint8)
    return write_mp4(path, [grey], size=(width, height), fps=1, crf=23)


def write_zero_duration(path: Path, seed: int = 0) -> Path:
    """A one-frame mp4 whose movie, track and media headers and sample table all say 0 s.

    What a broken export or a still-image "video" looks like: the container parses, the stream is
    there, but there is no time in it.
    """
    write_clip(path, seconds=0.1, audio=False, seed=seed, frame_times=[0.0])
    data = bytearray(path.read_bytes())

    def zero(atom: bytes, offset: Callable[[int], int]) -> None:
        i = data.find(atom)
        while i >= 0:
            version = data[i + 4]
            o = i + 4 + offset(version)
            width = 8 if version == 1 else 4
            data[o : o + width] = bytes(width)
            i = data.find(atom, i + 4)

    # box payload after the 4-byte type: version+flags (4), creation+modification (8 or 16), ...
    zero(b"mvhd", lambda v: 4 + (16 if v == 1 else 8) + 4)  # ... timescale (4), duration
    zero(b"mdhd", lambda v: 4 + (16 if v == 1 else 8) + 4)  # ... timescale (4), duration
    zero(b"tkhd", lambda v: 4 + (16 if v == 1 else 8) + 8)  # ... track id, reserved, duration
    i = data.find(b"stts")  # time-to-sample: (count, delta) pairs; every delta -> 0
    for k in range(struct.unpack(">I", data[i + 8 : i + 12])[0]):
        o = i + 12 + 8 * k + 4
        data[o : o + 4] = bytes(4)
    path.write_bytes(bytes(data))
    return path


def vfr_times(seconds: float = 4.0) -> list[float]:
    """Frame times alternating 1/30 s and 1/6 s apart (a phone clip's burst-and-stall pattern)."""
    times, t, i = [], 0.0, 0
    while t < seconds:
        times.append(round(t, 3))
        t += 1 / 30 if i % 4 else 1 / 6
        i += 1
    return times


def _meta(path: Path, meta: dict[str, Any] | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(meta, bytes):
        path.write_bytes(meta)
    else:
        path.write_text(json.dumps(meta, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def write_faults(root: Path, seed: int = 0) -> list[Fault]:
    """Write every fault of ``FAULTS`` under ``root/videos`` (+ ``root/metadata``); return them.

    The duplicate and the truncated file copy the first existing ``videos/*.mp4`` (a fresh clip
    when there is none). Existing files of the same names are replaced.
    """
    videos, metas = root / "videos", root / "metadata"
    videos.mkdir(parents=True, exist_ok=True)
    metas.mkdir(parents=True, exist_ok=True)
    good = sorted(p for p in videos.glob("*.mp4") if not p.name.startswith(("fault_", "x..")))
    base = good[0] if good else write_clip(videos / "fault_base.mp4", seed=seed + 99)
    if not good:
        _meta(metas / "fault_base.json", DEFAULT_METADATA)
    meta = DEFAULT_METADATA
    base_meta = metas / f"{base.stem}.json"
    if base_meta.exists():
        meta = json.loads(base_meta.read_text(encoding="utf-8"))

    def m(stem: str, content: dict[str, Any] | bytes | None = None) -> None:
        _meta(metas / f"{stem}.json", {**meta, "video_id": stem} if content is None else content)

    for f in FAULTS:  # replace, never append to, what a previous run wrote
        target = videos / f.name
        if target.is_symlink() or target.exists():
            target.unlink()
    (videos / "fault_zero_bytes.mp4").write_bytes(b"")
    m("fault_zero_bytes")
    for name, faststart in (("fault_truncated", False), ("fault_truncated_tail", True)):
        clip = write_clip(videos / f"{name}.mp4", seconds=4.0, seed=seed + 10, faststart=faststart)
        data = clip.read_bytes()
        clip.write_bytes(data[: int(len(data) * 0.4)])
        m(name)
    rng = np.random.default_rng(seed + 7)
    (videos / "fault_random_bytes.mp4").write_bytes(rng.bytes(4096))
    m("fault_random_bytes")
    write_clip(videos / "fault_audio_only.mp4", seed=seed + 1, video=False)
    m("fault_audio_only")
    write_zero_duration(videos / "fault_zero_duration.mp4", seed=seed + 2)
    m("fault_zero_duration")
    write_huge_frame(videos / "fault_huge_frame.mp4")
    m("fault_huge_frame")
    shutil.copyfile(base, videos / "fault_duplicate.mp4")
    m("fault_duplicate")
    write_clip(videos / "fault_meta_not_utf8.mp4", seed=seed + 3)
    text = json.dumps({**meta, "brand": "Caf\u00e9"}, ensure_ascii=False)
    m("fault_meta_not_utf8", text.encode("latin-1", "replace"))
    write_clip(videos / "fault_meta_not_json.mp4", seed=seed + 4)
    m("fault_meta_not_json", b"brand: Faultline\nprice: 9.50\n")
    write_clip(videos / "fault_meta_missing_fields.mp4", seed=seed + 5)
    m("fault_meta_missing_fields", {"category": "home", "attributes": "500ml"})
    write_clip(videos / "fault_meta_wrong_id.mp4", seed=seed + 11)
    m("fault_meta_wrong_id", {**meta, "video_id": "../../x"})
    write_clip(videos / "x..%2F..%2Fescape.mp4", seed=seed + 6)
    outside = root.parent / f"{root.name}.outside.mp4"
    link = videos / "fault_link_escape.mp4"
    os.symlink(os.path.relpath(outside, videos), link)
    m("fault_link_escape")
    write_clip(videos / "fault_no_audio.mp4", seed=seed + 8, audio=False)
    m("fault_no_audio")
    write_clip(videos / "fault_vfr.mp4", seed=seed + 9, frame_times=vfr_times(), seconds=4.0)
    m("fault_vfr")
    return list(FAULTS)
