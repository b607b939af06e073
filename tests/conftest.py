"""Shared fixtures: tiny real media files written with PyAV (no binary fixtures in git)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hivid.data.faults import write_clip

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
    """An H.264 mp4 with moving colour blocks and an optional sine-tone AAC track (the fault
    generator's writer, at test size)."""
    return write_clip(path, seconds=seconds, fps=fps, size=size, audio=audio, seed=seed)


@pytest.fixture
def make_video():
    return write_video
