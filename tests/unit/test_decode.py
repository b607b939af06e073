"""PyAV decoding: audio resampling to 16 kHz mono and 1 fps frame sampling with exact timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hivid.data.decode import DecodeError, SampledFrame, decode_audio, sample_frames
from tests.helpers import tone, write_scenes

RED, BLUE = (200, 30, 40), (30, 60, 200)


def write_clip(
    path: Path,
    scenes: list[tuple[float, tuple[int, int, int]]],
    fps: int = 10,
    size: tuple[int, int] = (320, 180),
    audio: np.ndarray | None = None,
    sample_rate: int = 22050,
) -> Path:
    """H.264 (+ AAC when ``audio`` is int16 mono) mp4 of solid-colour scenes [(seconds, rgb)]."""
    return write_scenes(
        path, list(scenes), fps=fps, size=size, audio=audio, sample_rate=sample_rate
    )


def test_decode_audio_length_range_and_pitch(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", [(3.0, RED)], audio=tone(3.0, 440.0))
    x = decode_audio(clip)
    assert x is not None
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(x.shape[0] - 3.0 * 16000) < 0.05 * 16000
    assert float(np.abs(x).max()) <= 1.0
    assert 0.3 < float(np.abs(x).max()) < 0.7  # amplitude 0.5 survives AAC + resampling
    # The resampler keeps the pitch: the spectrum peaks at 440 Hz at the new rate.
    spec = np.abs(np.fft.rfft(x[4000:36000]))
    peak_hz = np.argmax(spec) * 16000 / 32000
    assert abs(peak_hz - 440.0) < 2.0


def test_decode_audio_other_rate(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "a.mp4", [(2.0, RED)], audio=tone(2.0))
    x = decode_audio(clip, sample_rate=8000)
    assert x is not None and abs(x.shape[0] - 16000) < 400


def test_no_audio_stream_gives_none(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "mute.mp4", [(2.0, RED)])
    assert decode_audio(clip) is None


def test_sample_frames_timestamps_and_content(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "v.mp4", [(1.5, RED), (1.5, BLUE)])
    frames = list(sample_frames(clip, fps=1.0))
    assert [f.index for f in frames] == [0, 1, 2]
    assert [f.t for f in frames] == [0.0, 1.0, 2.0]
    assert [f.pts_time for f in frames] == pytest.approx([0.0, 1.0, 2.0], abs=1e-6)
    assert all(isinstance(f, SampledFrame) for f in frames)
    img = frames[0].image
    assert img.dtype == np.uint8 and img.shape == (180, 320, 3)
    assert np.abs(frames[1].image[90, 160].astype(int) - RED).max() < 12
    assert np.abs(frames[2].image[90, 160].astype(int) - BLUE).max() < 12


def test_sample_frames_takes_last_frame_not_after_target(tmp_path: Path) -> None:
    # 4 fps video sampled at 3 fps: target 1/3 s takes the frame at 0.25 s (never 0.5 s).
    clip = write_clip(tmp_path / "v.mp4", [(2.0, RED)], fps=4)
    frames = list(sample_frames(clip, fps=3.0))
    assert len(frames) == 6  # t = 0, 1/3, ..., 5/3 < 2.0
    for f in frames:
        assert f.pts_time <= f.t + 1e-9
        assert f.t - f.pts_time < 0.25 + 1e-6


def test_sample_frames_max_side(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "v.mp4", [(1.0, RED)])
    (frame,) = list(sample_frames(clip, fps=1.0, max_side=160))
    assert frame.image.shape == (90, 160, 3)


def test_random_bytes_raise_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError, match=r"bad\.mp4: "):
        list(sample_frames(bad))
    with pytest.raises(DecodeError, match=r"bad\.mp4: "):
        decode_audio(bad)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="file not found"):
        decode_audio(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty file"):
        list(sample_frames(empty))


def test_write_mp4_keeps_irregular_frame_times_and_the_audio(tmp_path: Path) -> None:
    """The one mp4 writer (hivid.data.mp4): each frame at its own time, to the millisecond, and
    int16 audio of the given length."""
    import av

    from hivid.data.mp4 import write_mp4

    times = [0.0, 0.1, 0.35, 0.4, 1.0]
    frames = [np.full((48, 64, 3), 40 * i, np.uint8) for i in range(len(times))]
    path = write_mp4(
        tmp_path / "irregular.mp4",
        frames,
        size=(64, 48),
        fps=10,
        times=times,
        audio=tone(1.5),
        sample_rate=22050,
    )
    with av.open(str(path)) as c:
        got = [float(f.time) for f in c.decode(video=0)]
    assert got == pytest.approx(times, abs=1e-3)
    audio = decode_audio(path)
    assert audio is not None and len(audio) / 16000 == pytest.approx(1.5, abs=0.05)
