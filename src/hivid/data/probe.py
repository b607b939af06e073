"""Probe media files with PyAV: duration, fps, size, audio track, content hash.

Probing never trusts the container header alone: it decodes the first video frame, so a truncated or
mislabelled file is rejected here (with a one-line reason) instead of deep inside annotation.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av


class ProbeError(Exception):
    """A media file cannot be used; ``str(exc)`` is one line naming the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ProbeResult:
    """What ingest records about one video file."""

    duration: float
    fps: float
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int | None
    video_codec: str
    n_video_frames: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes (the content hash that keys caches and lineage)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _stream_duration(stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def probe_video(path: Path) -> ProbeResult:
    """Probe ``path``; raise ``ProbeError`` with a readable reason when it is not a usable video."""
    if not path.exists():
        raise ProbeError(path, "file not found")
    if path.stat().st_size == 0:
        raise ProbeError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise ProbeError(path, f"not a readable media container ({_short(exc)})") from None
    try:
        if not container.streams.video:
            kind = "audio-only file" if container.streams.audio else "no video stream"
            raise ProbeError(path, kind)
        vs = container.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        duration = _stream_duration(vs)
        if duration is None and container.duration is not None:
            duration = container.duration / av.time_base
        try:
            first = next(container.decode(vs), None)
        except av.FFmpegError as exc:
            raise ProbeError(path, f"video stream cannot be decoded ({_short(exc)})") from None
        if first is None:
            raise ProbeError(path, "video stream has no decodable frame")
        width, height = first.width, first.height
        audio = container.streams.audio[0] if container.streams.audio else None
        result = ProbeResult(
            duration=round(float(duration or 0.0), 3),
            fps=round(fps, 3),
            width=int(width),
            height=int(height),
            has_audio=audio is not None,
            audio_sample_rate=int(audio.rate) if audio is not None and audio.rate else None,
            video_codec=str(vs.codec_context.name),
            n_video_frames=int(vs.frames) if vs.frames else None,
        )
    finally:
        container.close()
    if not math.isfinite(result.duration) or result.duration <= 0:
        raise ProbeError(path, f"zero or unknown duration ({result.duration})")
    if not math.isfinite(result.fps) or result.fps <= 0:
        raise ProbeError(path, "unknown frame rate")
    return result


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
