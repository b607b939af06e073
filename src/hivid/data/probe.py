"""Probe media files with PyAV: duration, fps, size, audio track, frame-rate regularity, hash.

Probing never trusts the container header alone: it decodes the first video frame, so a truncated or
mislabelled file is rejected here (with a one-line reason) instead of deep inside annotation. What
the header can tell cheaply is checked *before* decoding: a frame larger than ``max_pixels`` (a
single 7680x4320 frame costs ~100 MB decoded) and a zero duration are rejected without decoding.

``ProbeWorker`` runs the prober in a long-lived child process with a per-file timeout: a file that
hangs the demuxer or crashes FFmpeg costs that one file (quarantined: "probe timed out after 30 s",
"prober crashed") and a fresh worker, never the batch.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import select
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from hivid.tracking.hashing import sha256_file  # noqa: F401  (re-exported: ingest, decode)

VFR_TOLERANCE = 0.1
"""A video is variable-frame-rate when a frame interval differs from the median by more than this
share of it (after sorting timestamps, so B-frame reordering does not count)."""


class ProbeError(Exception):
    """A media file cannot be used; ``str(exc)`` is one line naming the file and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across the worker's pipe
        return (ProbeError, (self.path, self.reason))


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
    variable_frame_rate: bool = False
    """Frame intervals are irregular (recorded, accepted: annotation samples by timestamp)."""
    frame_interval_range: list[float] | None = None
    """[shortest, longest] interval between consecutive frames (s) among the demuxed packets."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stream_duration(stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def frame_intervals(pts_s: list[float]) -> list[float]:
    """Positive intervals between sorted, de-duplicated presentation times (seconds)."""
    ts = sorted(set(pts_s))
    return [b - a for a, b in itertools.pairwise(ts) if b > a]


def is_variable_rate(intervals: list[float], tolerance: float = VFR_TOLERANCE) -> bool:
    """True when some interval is more than ``tolerance`` x the median away from the median."""
    if len(intervals) < 2:
        return False
    med = statistics.median(intervals)
    return any(abs(d - med) > tolerance * med for d in intervals)


def probe_video(path: Path, max_pixels: int | None = None) -> ProbeResult:
    """Probe ``path``; raise ``ProbeError`` with a readable reason when it is not a usable video.

    ``max_pixels``: reject frames larger than this from the stream header, before any decoding.
    """
    if not path.exists():
        raise ProbeError(path, "file not found")
    if not path.is_file():
        raise ProbeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ProbeError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise ProbeError(path, f"not a readable media container ({_short(exc)})") from None
    try:
        if not container.streams.video:
            kind = "audio-only file (no video stream)" if container.streams.audio else None
            raise ProbeError(path, kind or "no video or audio stream")
        vs = container.streams.video[0]
        hw, hh = int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
        if max_pixels is not None and hw * hh > max_pixels:
            raise ProbeError(
                path,
                f"frame {hw}x{hh} ({hw * hh} px) exceeds max_pixels {max_pixels}; not decoded",
            )
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else 0.0
        duration = _stream_duration(vs)
        if duration is None and container.duration is not None:
            duration = container.duration / av.time_base
        if duration is not None and duration <= 0:
            raise ProbeError(path, f"zero duration ({duration:g} s in the header)")
        first, pts = _first_frame_and_pts(path, container, vs)
        if first is None:
            raise ProbeError(path, "video stream has no decodable frame")
        if vs.frames and len(pts) < vs.frames - 1:
            raise ProbeError(
                path,
                f"truncated: {len(pts)} of the {vs.frames} video frames the header lists are "
                "in the file",
            )
        width, height = first.width, first.height
        if max_pixels is not None and width * height > max_pixels:
            raise ProbeError(path, f"frame {width}x{height} exceeds max_pixels {max_pixels}")
        intervals = frame_intervals(pts)
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
            variable_frame_rate=is_variable_rate(intervals),
            frame_interval_range=(
                [round(min(intervals), 4), round(max(intervals), 4)] if intervals else None
            ),
        )
    finally:
        container.close()
    if not math.isfinite(result.duration) or result.duration <= 0:
        raise ProbeError(path, f"zero or unknown duration ({result.duration})")
    if not math.isfinite(result.fps) or result.fps <= 0:
        raise ProbeError(path, "unknown frame rate")
    return result


def _first_frame_and_pts(path: Path, container: Any, vs: Any) -> tuple[Any, list[float]]:
    """Decode the first frame; demux every other packet without decoding it (cheap: no pixels)
    for the frame times (frame-rate regularity, truncation)."""
    first = None
    pts: list[float] = []
    tb = vs.time_base
    try:
        for packet in container.demux(vs):
            if packet.size and packet.pts is not None and tb is not None:
                pts.append(float(packet.pts * tb))
            if first is None:
                for frame in packet.decode():
                    first = frame
                    break
        if first is None:  # flush the decoder (a one-frame stream)
            first = next(iter(vs.codec_context.decode(None)), None)
    except av.FFmpegError as exc:
        if first is None:
            raise ProbeError(path, f"video stream cannot be decoded ({_short(exc)})") from None
        raise ProbeError(path, f"video stream is corrupt after frame 1 ({_short(exc)})") from None
    return first, pts


def _short(exc: BaseException) -> str:
    """First line of an error, without the file name FFmpeg errors repeat."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(exc, av.FFmpegError) and strerror:
        return str(strerror)[:200]
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Isolation: one child process (``python -m hivid.data.probe``), a per-file timeout


def _serve(stdin: Any, stdout: Any) -> None:
    """The worker loop: one path per input line -> one JSON line ``{"ok": {...}}``/``{"error"}``."""
    stdout.write(json.dumps({"ready": True}) + "\n")
    stdout.flush()
    for line in stdin:
        req = json.loads(line)
        try:
            msg: dict[str, Any] = {
                "ok": probe_video(Path(req["path"]), req.get("max_pixels")).to_dict()
            }
        except ProbeError as exc:
            msg = {"error": exc.reason}
        except Exception as exc:  # an unexpected prober bug costs one file, not the batch
            msg = {"error": f"prober error ({type(exc).__name__}: {_short(exc)})"}
        stdout.write(json.dumps(msg) + "\n")
        stdout.flush()


class ProbeWorker:
    """``probe_video`` in a child process with a timeout per file (a context manager).

    The child is a plain ``python -m hivid.data.probe`` speaking JSON lines, so it works from any
    caller (CLI, notebook, Prefect worker) without multiprocessing's main-module rules. On a
    timeout or a crash the child is killed and the file gets a one-line ``ProbeError``; the next
    file starts a fresh child. ``timeout_s`` counts the probe only, not the child's start.
    """

    def __init__(
        self, timeout_s: float, max_pixels: int | None = None, start_timeout_s: float = 120.0
    ) -> None:
        self.timeout_s = timeout_s
        self.max_pixels = max_pixels
        self.start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.restarts = 0
        """Children killed (timeouts) or lost (crashes) so far."""

    def __enter__(self) -> ProbeWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _readline(self, timeout: float) -> str | None:
        """One line from the child, or None on timeout; '' when the child died."""
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        return self._proc.stdout.readline() if ready else None

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "hivid.data.probe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        if not self._readline(self.start_timeout_s):
            self._kill()
            raise RuntimeError(f"probe worker did not start within {self.start_timeout_s:g} s")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def probe(self, path: Path) -> ProbeResult:
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.write(json.dumps({"path": str(path), "max_pixels": self.max_pixels}) + "\n")
            proc.stdin.flush()
            line = self._readline(self.timeout_s)
        except (BrokenPipeError, OSError):
            line = ""
        if line is None:
            self._kill()
            self.restarts += 1
            raise ProbeError(path, f"probe timed out after {self.timeout_s:g} s (worker killed)")
        if not line:
            code = proc.poll()
            self._kill()
            self.restarts += 1
            raise ProbeError(path, f"prober crashed on this file (exit code {code})")
        try:
            msg = json.loads(line)
            if "error" in msg:
                raise ProbeError(path, str(msg["error"]))
            return ProbeResult(**msg["ok"])
        except (ValueError, TypeError, KeyError):
            self._kill()
            self.restarts += 1
            raise ProbeError(path, f"prober sent a malformed reply ({line[:80]!r})") from None

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.close()  # EOF: the worker loop ends
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()


def _main() -> None:
    """Worker entry: keep the protocol on a private copy of stdout; anything FFmpeg or a library
    prints to fd 1 goes to stderr instead, so it can never corrupt a reply."""
    import os

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _serve(sys.stdin, proto)


if __name__ == "__main__":
    _main()
