"""Ingest's rows word for word: every quarantine row's path, id, stage and reason, the order of
both tables, the progress it reports and the files it writes (real probes of real clips)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import hivid.data.ingest as ingest_mod
from hivid.data.ingest import IngestConfig, IngestSummary, ingest, write_ingest_outputs

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}
FAST = IngestConfig(probe_timeout_s=0)  # probe in-process: no worker child


def _add(root: Path, clip: Path, name: str, mtime: int | None = None) -> Path:
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    dst = root / "videos" / name
    shutil.copy(clip, dst)
    (root / "metadata" / f"{Path(name).stem}.json").write_text(json.dumps(META))
    if mtime is not None:
        os.utime(dst, (mtime, mtime))
    return dst


def _rows(summary: IngestSummary) -> list[tuple[Any, ...]]:
    return [(q["path"], q["video_id"], q["stage"], q["reason"]) for q in summary.quarantined]


def test_every_reject_row_word_for_word(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "b.mp4", mtime=1_000)  # processed first (older), listed second
    _add(root, clips[1], "a.mp4", mtime=2_000)
    _add(root, clips[2], "b.mov", mtime=3_000)  # same id as b.mp4, seen later
    _add(root, clips[0], ".hidden.mp4")  # dot files are not looked at at all
    (root / "videos" / "d.mp4").mkdir()  # a directory named like a video
    (root / "videos" / "plain_dir").mkdir()  # any other directory is walked, not reported
    os.mkfifo(root / "videos" / "p.mp4")
    (root / "videos" / "broken.mp4").write_bytes(b"\x00" * 64)
    summary = ingest(root, FAST)
    assert [r["path"] for r in summary.manifest] == ["videos/a.mp4", "videos/b.mp4"]
    rows = _rows(summary)
    assert [r[:3] for r in rows] == [
        ("videos/b.mov", "b", "ingest"),
        ("videos/broken.mp4", "broken", "ingest"),
        ("videos/d.mp4", "d", "ingest"),
        ("videos/p.mp4", "p", "ingest"),
    ]
    reasons = {r[0]: r[3] for r in rows}
    assert reasons["videos/b.mov"] == (
        "videos/b.mov: duplicate video id 'b' (kept the earlier videos/b.mp4)"
    )
    assert reasons["videos/d.mp4"] == "videos/d.mp4: is a directory, not a video file"
    assert reasons["videos/p.mp4"] == (
        "videos/p.mp4: not a regular file (broken link, FIFO or device)"
    )
    assert reasons["videos/broken.mp4"] == (  # the prober's reason, with the id kept
        "videos/broken.mp4: not a readable media container "
        "(Invalid data found when processing input)"
    )


def test_the_in_process_probe_gets_the_pixel_limit(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "v.mp4")
    big = ingest(root, IngestConfig(probe_timeout_s=0, max_pixels=32 * 24 - 1))
    ((path, vid, stage, reason),) = _rows(big)
    assert (path, vid, stage) == ("videos/v.mp4", "v", "ingest")
    # rejected by the prober from the stream header, never decoded (not by the later check)
    assert reason == "videos/v.mp4: frame 32x24 (768 px) exceeds max_pixels 767; not decoded"
    ok = ingest(root, IngestConfig(probe_timeout_s=0, max_pixels=32 * 24))
    assert [r["video_id"] for r in ok.manifest] == ["v"]


def test_the_probe_worker_runs_when_a_timeout_is_set(
    tmp_path: Path, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[float, int]] = []
    real = ingest_mod.ProbeWorker

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, timeout_s: float, max_pixels: int) -> None:
            made.append((timeout_s, max_pixels))
            super().__init__(timeout_s, max_pixels)

    monkeypatch.setattr(ingest_mod, "ProbeWorker", Recording)
    root = tmp_path / "data"
    _add(root, clips[0], "v.mp4")
    assert [r["video_id"] for r in ingest(root, IngestConfig(probe_timeout_s=7.5)).manifest] == [
        "v"
    ]
    assert made == [(7.5, IngestConfig().max_pixels)]
    ingest(root, FAST)
    assert len(made) == 1  # no worker without a timeout


def test_progress_names_each_file_then_done(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "y.mp4", mtime=1_000)
    _add(root, clips[1], "x.mp4", mtime=2_000)
    calls: list[tuple[str, int, int]] = []
    ingest(root, FAST, progress=lambda name, i, n: calls.append((name, i, n)))
    assert calls == [("y.mp4", 0, 2), ("x.mp4", 1, 2), ("done", 2, 2)]


def test_an_error_costs_its_file_with_the_id_when_the_id_is_safe(
    tmp_path: Path, clips: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "ok_id.mp4")
    _add(root, clips[1], "bad id.mp4")
    _add(root, clips[2], "long.mp4")
    _add(root, clips[0], "empty.mp4")

    def boom(path: Path, *args: Any) -> None:
        if path.stem == "ok_id":
            raise OSError(5, "Input/output error")
        if path.stem == "bad id":
            raise PermissionError()  # no strerror: the type names it
        if path.stem == "long":
            raise RuntimeError("x" * 250 + "\nsecond line")
        raise KeyError  # str(KeyError()) is empty

    monkeypatch.setattr(ingest_mod, "_one", boom)
    rows = _rows(ingest(root, FAST))
    assert rows == [
        (
            "videos/bad id.mp4",
            None,
            "ingest",
            "videos/bad id.mp4: cannot read the file (PermissionError)",
        ),
        (
            "videos/empty.mp4",
            "empty",
            "ingest",
            "videos/empty.mp4: unexpected error while ingesting (KeyError: )",
        ),
        (
            "videos/long.mp4",
            "long",
            "ingest",
            f"videos/long.mp4: unexpected error while ingesting (RuntimeError: {'x' * 200})",
        ),
        (
            "videos/ok_id.mp4",
            "ok_id",
            "ingest",
            "videos/ok_id.mp4: cannot read the file (Input/output error)",
        ),
    ]


def test_no_videos_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        ingest(tmp_path, FAST)
    assert str(err.value) == f"{tmp_path / 'videos'}: no videos/ directory in the data root"


def test_outputs_are_written_into_a_new_nested_folder_and_replaced(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "ingest"
    first = IngestSummary([{"video_id": "v", "path": "videos/v.mp4"}], [])
    write_ingest_outputs(first, out)
    second = IngestSummary([], [{"path": "videos/w.mp4", "video_id": "w", "reason": "r"}])
    write_ingest_outputs(second, out)  # the folder exists now: written over, no error
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.jsonl",
        "quarantine.jsonl",
        "summary.json",
    ]
    assert (out / "manifest.jsonl").read_text() == ""
    quarantine = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert quarantine == second.quarantined
    assert json.loads((out / "summary.json").read_text()) == second.to_dict()


def test_limits_are_inclusive_and_every_failed_check_is_named(
    tmp_path: Path, clips: list[Path]
) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "v.mp4")
    (row,) = ingest(root, FAST).manifest
    fps, duration = row["fps"], row["duration"]
    at = IngestConfig(probe_timeout_s=0, min_fps=fps, max_fps=fps, max_duration_s=duration)
    assert [r["video_id"] for r in ingest(root, at).manifest] == ["v"]  # every limit exactly met
    over = IngestConfig(probe_timeout_s=0, min_fps=fps + 1, max_fps=fps + 2, max_duration_s=0.5)
    assert _rows(ingest(root, over)) == [
        (
            "videos/v.mp4",
            "v",
            "ingest",
            f"videos/v.mp4: frame rate {fps} outside range; duration {duration}s too long",
        )
    ]
    below = IngestConfig(probe_timeout_s=0, min_fps=fps - 2, max_fps=fps - 1)
    assert _rows(ingest(root, below))[0][3] == f"videos/v.mp4: frame rate {fps} outside range"


def test_manifest_row_and_content_duplicates(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    first = _add(root, clips[0], "v.mp4", mtime=1_000)
    _add(root, clips[0], "w.mp4", mtime=2_000)  # the same bytes, seen second
    _add(root, clips[1], "u.mp4", mtime=3_000)
    (root / "metadata" / "u.json").unlink()  # metadata not required: kept with {}
    (root / "ground_truth").mkdir()
    (root / "ground_truth" / "v.json").write_text("{}")
    summary = ingest(root, IngestConfig(probe_timeout_s=0, require_metadata=False))
    rows = {r["video_id"]: r for r in summary.manifest}
    assert sorted(rows) == ["u", "v"]
    v = rows["v"]
    assert (v["path"], v["size_bytes"], v["metadata"], v["ground_truth"]) == (
        "videos/v.mp4",
        first.stat().st_size,
        META,
        "ground_truth/v.json",
    )
    assert (rows["u"]["metadata"], rows["u"]["ground_truth"]) == ({}, None)
    ((path, vid, stage, reason),) = _rows(summary)
    assert (path, vid, stage) == ("videos/w.mp4", "w", "ingest")
    assert reason == f"videos/w.mp4: same content as v (sha256 {v['sha256'][:12]})"


def test_metadata_naming_another_video_is_rejected(tmp_path: Path, clips: list[Path]) -> None:
    root = tmp_path / "data"
    _add(root, clips[0], "v.mp4")
    (root / "metadata" / "v.json").write_text(json.dumps({**META, "video_id": "x"}))
    assert _rows(ingest(root, FAST)) == [
        (
            "videos/v.mp4",
            "v",
            "ingest",
            "videos/v.mp4: metadata/v.json names video_id 'x', not 'v' "
            "(metadata of another video, or an id trying to escape)",
        )
    ]


def test_metadata_reads_at_most_one_byte_over_the_limit(tmp_path: Path) -> None:
    # /proc files are regular files whose stat() size is 0: like a file that grew after stat()
    status = Path("/proc/self/status")
    assert status.stat().st_size == 0 and len(status.read_bytes()) > 50
    with pytest.raises(ingest_mod.MetadataError) as err:
        ingest_mod.load_metadata(status, 50)
    assert str(err.value) == f"{status}: metadata larger than ingest.max_metadata_bytes (50 bytes)"


def test_metadata_read_size_and_read_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps(META))
    sizes: list[int | None] = []
    real_open = Path.open

    class Recording:
        def __init__(self, f: Any) -> None:
            self.f = f

        def __enter__(self) -> Recording:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def read(self, n: int | None = None) -> bytes:
            sizes.append(n)
            return self.f.read(n)  # type: ignore[no-any-return]

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Recording(real_open(self, *a, **k)))
    assert ingest_mod.load_metadata(p, 4096) == META
    assert sizes == [4097]

    def denied(self: Path, *a: Any, **k: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ingest_mod.MetadataError) as err:
        ingest_mod.load_metadata(p)
    assert str(err.value) == f"{p}: cannot read metadata (Permission denied)"

    def bare(self: Path, *a: Any, **k: Any) -> Any:
        raise OSError("device went away")

    monkeypatch.setattr(Path, "open", bare)
    with pytest.raises(ingest_mod.MetadataError) as err:
        ingest_mod.load_metadata(p)
    assert str(err.value) == f"{p}: cannot read metadata (device went away)"
