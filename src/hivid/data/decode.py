"""Decode media with PyAV (bundled FFmpeg libraries, no ``ffmpeg`` program).

Two readers feed annotation:

- ``decode_audio``: the first audio stream as mono float32 at a fixed rate (Whisper wants 16 kHz),
  resampled by FFmpeg's swresample through ``av.AudioResampler``.
- ``sample_frames``: frames at a fixed rate (1 fps in the paper) with their exact presentation
  timestamps: target time ``t = k / fps`` takes the last decoded frame whose pts is <= t, so a frame
  is never taken from the future of its timestamp.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np


class DecodeError(Exception):
    """A media file cannot be decoded; ``str(exc)`` is one line naming the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: ``image`` is RGB uint8 of shape (H, W, 3)."""

    index: int
    """k, the position in the sampled sequence (0, 1, 2, ...)."""
    t: float
    """Target time k / fps in seconds."""
    pts_time: float
    """Presentation time of the decoded frame actually used (<= t), in seconds."""
    image: np.ndarray


def _short(exc: BaseException) -> str:
    # FFmpegError's str() repeats errno and file name; strerror is the readable part.
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, av.FFmpegError) and strerror:
        return str(strerror)
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _open(path: Path) -> Any:
    if not path.exists():
        raise DecodeError(path, "file not found")
    if path.stat().st_size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise DecodeError(path, f"not a readable media container ({_short(exc)})") from None


def decode_audio(path: Path, sample_rate: int = 16000) -> np.ndarray | None:
    """Mono float32 samples in [-1, 1] at ``sample_rate``, shape (n,); None without audio."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
    container = _open(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        # Planar float32 mono: each resampled frame's ndarray has shape (1, n_samples).
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let swresample keep its own running timeline
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray()[0])
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray()[0])
        except av.FFmpegError as exc:
            raise DecodeError(path, f"audio stream cannot be decoded ({_short(exc)})") from None
    finally:
        container.close()
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate(chunks).astype(np.float32, copy=False)
    return np.clip(audio, -1.0, 1.0)


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return None


def _to_rgb(frame: Any, max_side: int | None) -> np.ndarray:
    w, h = frame.width, frame.height
    if max_side is not None and max(w, h) > max_side:
        scale = max_side / max(w, h)
        # Even sizes keep chroma-subsampled formats exact in swscale.
        w = max(2, round(w * scale / 2) * 2)
        h = max(2, round(h * scale / 2) * 2)
        return np.asarray(frame.to_ndarray(format="rgb24", width=w, height=h))
    return np.asarray(frame.to_ndarray(format="rgb24"))


def sample_frames(
    path: Path, fps: float = 1.0, max_side: int | None = None
) -> Iterator[SampledFrame]:
    """Yield frames at target times ``k / fps`` (t < duration) with their exact timestamps.

    Each target takes the last decoded frame with pts_time <= t (the first frame for t before the
    first pts). ``max_side`` bounds the longer image side (aspect kept). Raises ``DecodeError``.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if max_side is not None and max_side < 2:
        raise ValueError(f"max_side must be >= 2, got {max_side}")
    container = _open(path)
    try:
        if not container.streams.video:
            raise DecodeError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = _duration(container, stream)
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        k = 0
        prev: Any = None
        prev_time = 0.0
        got_any = False
        try:
            for frame in container.decode(stream):
                got_any = True
                ft = float(frame.pts * stream.time_base) if frame.pts is not None else prev_time
                ft -= start  # timestamps relative to the first frame of the stream
                # Emit every target passed before this frame: they belong to the previous frame.
                while prev is not None and k / fps < ft and _before_end(k, fps, duration):
                    yield SampledFrame(
                        k, round(k / fps, 6), round(prev_time, 6), _to_rgb(prev, max_side)
                    )
                    k += 1
                if prev is None:
                    # Targets before the first pts take the first frame.
                    while k / fps < ft and _before_end(k, fps, duration):
                        yield SampledFrame(
                            k, round(k / fps, 6), round(ft, 6), _to_rgb(frame, max_side)
                        )
                        k += 1
                prev, prev_time = frame, ft
        except av.FFmpegError as exc:
            raise DecodeError(path, f"video stream cannot be decoded ({_short(exc)})") from None
        if not got_any:
            raise DecodeError(path, "video stream has no decodable frame")
        end = duration if duration is not None else prev_time + 1e-6
        while k / fps < end:
            yield SampledFrame(k, round(k / fps, 6), round(prev_time, 6), _to_rgb(prev, max_side))
            k += 1
    finally:
        container.close()


def _before_end(k: int, fps: float, duration: float | None) -> bool:
    return duration is None or k / fps < duration
