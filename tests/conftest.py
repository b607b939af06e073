"""Shared fixtures: tiny real media files written with PyAV (no binary fixtures in git)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def write_video(
    path: Path,
    seconds: float = 3.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    seed: int = 0,
) -> Path:
    """An H.264 (or MPEG-4) mp4 with moving colour blocks and an optional sine-tone AAC track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    with av.open(str(path), "w") as out:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        as_ = None
        if audio:
            as_ = out.add_stream("aac", rate=16000)
            as_.layout = "mono"
        n = int(seconds * fps)
        base = rng.integers(0, 255, size=3)
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = (base + i * 7) % 255
            img[: h // 2, (i * 3) % w :] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        if as_ is not None:
            sr, chunk = 16000, 1024
            t = np.arange(int(seconds * sr)) / sr
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(wave), chunk):
                block = wave[start : start + chunk]
                frame = av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
                frame.sample_rate = sr
                frame.pts = start
                frame.time_base = Fraction(1, sr)
                for p in as_.encode(frame):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)
    return path


@pytest.fixture
def make_video():
    return write_video
