"""The prober's exact answers: every field of a known clip, every reason word for word, the
frame-rate rules at their boundaries, the worker protocol (in process) and the error helpers.
The clips are written by the fault generator's writer with known parameters (64x48, 10 fps,
2 s, 16 kHz tone), so the expected values follow from how they were made."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import av
import pytest

from hivid.data.faults import vfr_times, write_clip, write_huge_frame, write_zero_duration
from hivid.data.probe import (
    VFR_TOLERANCE,
    ProbeError,
    ProbeResult,
    ProbeWorker,
    _serve,
    _short,
    frame_intervals,
    is_variable_rate,
    probe_video,
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {
        "av": write_clip(d / "av.mp4", seconds=2.0, fps=10, size=(64, 48)),
        "mute": write_clip(d / "mute.mp4", seconds=2.0, fps=10, size=(64, 48), audio=False),
        "vfr": write_clip(d / "vfr.mp4", size=(64, 48), frame_times=vfr_times()),
        "audio": write_clip(d / "audio.mp4", seconds=1.0, video=False),
        "zero": write_zero_duration(d / "zero.mp4"),
    }


def test_every_field_of_a_known_clip(clips: dict[str, Path]) -> None:
    info = probe_video(clips["av"])
    assert info == ProbeResult(
        duration=2.0,
        fps=10.0,
        width=64,
        height=48,
        has_audio=True,
        audio_sample_rate=16000,
        video_codec="h264",
        n_video_frames=20,
        variable_frame_rate=False,
        frame_interval_range=[0.1, 0.1],
    )
    assert info.to_dict() == {
        "duration": 2.0,
        "fps": 10.0,
        "width": 64,
        "height": 48,
        "has_audio": True,
        "audio_sample_rate": 16000,
        "video_codec": "h264",
        "n_video_frames": 20,
        "variable_frame_rate": False,
        "frame_interval_range": [0.1, 0.1],
    }
    mute = probe_video(clips["mute"])
    assert (mute.has_audio, mute.audio_sample_rate, mute.n_video_frames) == (False, None, 20)


def test_variable_rate_clip_is_recorded_not_rejected(clips: dict[str, Path]) -> None:
    info = probe_video(clips["vfr"])
    assert info.variable_frame_rate and info.frame_interval_range == [0.033, 0.167]
    assert info.n_video_frames == 61 and info.width == 64


def test_max_pixels_boundary_is_allowed(clips: dict[str, Path]) -> None:
    """A frame of exactly ``max_pixels`` is decoded; one pixel less rejects it unseen."""
    assert probe_video(clips["av"], max_pixels=64 * 48).width == 64
    with pytest.raises(ProbeError) as err:
        probe_video(clips["av"], max_pixels=64 * 48 - 1)
    assert err.value.reason == "frame 64x48 (3072 px) exceeds max_pixels 3071; not decoded"


def reason(path: Path, max_pixels: int | None = None) -> str:
    with pytest.raises(ProbeError) as err:
        probe_video(path, max_pixels)
    assert str(err.value) == f"{path}: {err.value.reason}" and err.value.path == str(path)
    return err.value.reason


def test_reasons_word_for_word(tmp_path: Path, clips: dict[str, Path]) -> None:
    assert reason(tmp_path / "missing.mp4") == "file not found"
    assert reason(tmp_path) == "not a regular file"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert reason(empty) == "empty file (0 bytes)"
    assert reason(clips["audio"]) == "audio-only file (no video stream)"
    assert reason(clips["zero"]) == "zero duration (0 s in the header)"
    huge = write_huge_frame(tmp_path / "huge.mp4", width=4096, height=2160)
    assert reason(huge, 4096 * 2160 - 1) == (
        "frame 4096x2160 (8847360 px) exceeds max_pixels 8847359; not decoded"
    )
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    assert (
        reason(junk) == "not a readable media container (Invalid data found when processing input)"
    )
    meta_only = tmp_path / "meta.txt"  # FFmpeg's metadata format: a container with no stream
    meta_only.write_text(";FFMETADATA1\ntitle=x\n")
    assert reason(meta_only) == "no video or audio stream"


def test_truncated_tail_names_the_frame_counts(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "t.mp4", seconds=4.0, size=(64, 48), faststart=True)
    data = clip.read_bytes()
    clip.write_bytes(data[: int(len(data) * 0.4)])
    why = reason(clip)
    head, _, tail = why.partition(" of the 40 video frames the header lists are in the file")
    assert tail == "" and head.startswith("truncated: ") and 0 < int(head[11:]) < 39, why


def test_frame_intervals_sort_and_deduplicate() -> None:
    assert frame_intervals([0.5, 0.0, 0.25, 0.25, 1.0]) == [0.25, 0.25, 0.5]
    assert frame_intervals([0.0]) == [] and frame_intervals([]) == []
    assert frame_intervals([0.25, 0.25]) == []


def test_variable_rate_rule_boundaries() -> None:
    assert VFR_TOLERANCE == 0.1
    assert not is_variable_rate([])
    assert not is_variable_rate([1.0])  # one interval cannot vary
    assert not is_variable_rate([1.0, 1.0, 1.0625])  # 6.25 % off the median
    assert is_variable_rate([1.0, 1.0, 1.125])  # 12.5 %
    assert is_variable_rate([1.0, 1.0, 0.875])  # shorter counts as well
    assert not is_variable_rate([1.0, 1.0, 1.25], tolerance=0.25)  # exactly the tolerance
    assert is_variable_rate([1.0, 1.0, 1.25], tolerance=0.125)
    assert is_variable_rate([1.0, 2.0])  # median 1.5: both are a third off


def test_probe_error_is_one_line_and_survives_the_pipe() -> None:
    exc = ProbeError(Path("videos/a.mp4"), "empty file (0 bytes)")
    assert str(exc) == "videos/a.mp4: empty file (0 bytes)"
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, ProbeError)
    assert (back.path, back.reason, str(back)) == (
        "videos/a.mp4",
        "empty file (0 bytes)",
        "videos/a.mp4: empty file (0 bytes)",
    )


def test_short_error_text() -> None:
    assert _short(ValueError("first line\nsecond")) == "first line"
    assert _short(ValueError("  x" * 100)) == ("  x" * 100).strip()[:200]
    assert len(_short(ValueError("y" * 300))) == 200
    assert _short(ValueError("")) == "ValueError"
    ff = av.error.InvalidDataError(1094995529, "Invalid data found when processing input", "f.mp4")
    assert _short(ff) == "Invalid data found when processing input"


def test_worker_protocol_one_json_line_per_path(tmp_path: Path, clips: dict[str, Path]) -> None:
    requests = [
        {"path": str(clips["av"])},
        {"path": str(tmp_path / "missing.mp4")},
        {"path": str(clips["av"]), "max_pixels": 100},
        {"nopath": 1},  # a prober bug costs one file: KeyError inside the loop
    ]
    out = io.StringIO()
    _serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), out)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines[0] == {"ready": True}
    assert lines[1] == {"ok": probe_video(clips["av"]).to_dict()}
    assert lines[2] == {"error": "file not found"}
    assert lines[3] == {"error": "frame 64x48 (3072 px) exceeds max_pixels 100; not decoded"}
    assert lines[4] == {"error": "prober error (KeyError: 'path')"}
    assert len(lines) == 5


def test_undecodable_first_frame(tmp_path: Path) -> None:
    """The first video packet overwritten with 0xff: FFmpeg refuses it before any frame."""
    clip = write_clip(tmp_path / "c.mp4", seconds=1.0, size=(64, 48), audio=False, faststart=True)
    with av.open(str(clip)) as c:
        pos, size = next((p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size)
    data = bytearray(clip.read_bytes())
    data[pos + 4 : pos + size] = b"\xff" * (size - 4)  # keep the NAL length, break the payload
    clip.write_bytes(bytes(data))
    assert reason(clip) == (
        "video stream cannot be decoded (Invalid data found when processing input)"
    )


def remux(clip: Path, out_path: Path, fmt: str, title: str | None = None) -> Path:
    """``clip``'s video packets in another container format (no re-encoding)."""
    with av.open(str(clip)) as inp, av.open(str(out_path), "w", format=fmt) as out:
        if title is not None:
            out.metadata["title"] = title
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return out_path


def test_stream_without_timestamps_has_no_duration(tmp_path: Path) -> None:
    """A raw H.264 elementary stream: packets without pts, no duration anywhere."""
    clip = write_clip(tmp_path / "s.mp4", seconds=1.0, size=(64, 48), audio=False)
    assert reason(remux(clip, tmp_path / "raw.h264", "h264")) == "zero or unknown duration (0.0)"


def test_duration_falls_back_to_the_container(tmp_path: Path) -> None:
    """NUT records no per-stream duration or frame count: the container's duration is used."""
    clip = write_clip(tmp_path / "s.mp4", seconds=2.0, size=(64, 48), audio=False)
    info = probe_video(remux(clip, tmp_path / "a.nut", "nut"))
    assert (info.duration, info.fps, info.n_video_frames) == (1.9, 10.0, None)
    assert info.frame_interval_range == [0.1, 0.1] and info.video_codec == "h264"


def test_metadata_that_is_not_utf8_is_ignored(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "s.mp4", seconds=1.0, size=(64, 48), audio=False)
    titled = remux(clip, tmp_path / "t.mp4", "mp4", title="QQQQQQ")
    data = titled.read_bytes()
    assert data.count(b"QQQQQQ") == 1
    titled.write_bytes(data.replace(b"QQQQQQ", b"\xe9\xff\xfeQQQ"))  # a Latin-1-ish title
    assert probe_video(titled).duration == 1.0


def test_short_uses_strerror_of_ffmpeg_errors_only() -> None:
    assert _short(OSError(2, "No such file or directory")) == "[Errno 2] No such file or directory"
    long = av.error.InvalidDataError(1094995529, "z" * 300, "f.mp4")
    assert _short(long) == "z" * 200


def test_truncation_allows_one_missing_frame_not_two(tmp_path: Path) -> None:
    """The last frame's packet may be missing (an encoder's final flush); two missing frames
    are a truncated file."""
    clip = write_clip(tmp_path / "t.mp4", seconds=2.0, size=(64, 48), audio=False, faststart=True)
    with av.open(str(clip)) as c:
        starts = [p.pos for p in c.demux(c.streams.video[0]) if p.size]
    data = clip.read_bytes()
    assert len(starts) == 20
    (tmp_path / "one.mp4").write_bytes(data[: starts[-1]])
    assert probe_video(tmp_path / "one.mp4").n_video_frames == 20
    (tmp_path / "two.mp4").write_bytes(data[: starts[-2]])
    assert reason(tmp_path / "two.mp4") == (
        "truncated: 18 of the 20 video frames the header lists are in the file"
    )


def test_duration_and_rate_are_rounded_to_milliseconds(tmp_path: Path) -> None:
    info = probe_video(write_clip(tmp_path / "c.mp4", seconds=1 / 3, fps=30, size=(64, 48)))
    assert (info.duration, info.fps, info.n_video_frames) == (0.333, 30.002, 10)


def test_worker_start_and_probe_timeouts(tmp_path: Path, clips: dict[str, Path]) -> None:
    w = ProbeWorker(timeout_s=30)
    assert (w.timeout_s, w.max_pixels, w.start_timeout_s, w.restarts) == (30, None, 120.0, 0)
    slow_start = ProbeWorker(timeout_s=30, start_timeout_s=1e-4)  # no interpreter starts so fast
    with pytest.raises(RuntimeError) as err:
        slow_start.probe(clips["av"])
    assert str(err.value) == "probe worker did not start within 0.0001 s"
    assert slow_start.pid is None
    with ProbeWorker(timeout_s=1e-4, start_timeout_s=60) as hurried:
        with pytest.raises(ProbeError) as perr:
            hurried.probe(clips["av"])
        assert perr.value.reason == "probe timed out after 0.0001 s (worker killed)"
        assert hurried.restarts == 1


def test_worker_close_ends_the_child_and_its_pipes(clips: dict[str, Path]) -> None:
    w = ProbeWorker(timeout_s=60, max_pixels=100)
    with pytest.raises(ProbeError) as err:  # the limit travels to the child
        w.probe(clips["av"])
    assert err.value.reason == "frame 64x48 (3072 px) exceeds max_pixels 100; not decoded"
    proc = w._proc
    assert proc is not None and proc.stdin is not None and proc.stdout is not None
    w.close()
    assert proc.returncode == 0  # EOF on stdin: the worker loop ended by itself
    assert proc.stdin.closed and proc.stdout.closed and w.pid is None
