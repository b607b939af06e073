"""Every kind of bad input ingest must quarantine with a one-line reason, in one mixed batch."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from hivid.data.faults import vfr_times, write_clip, write_faults, write_huge_frame
from hivid.data.ingest import (
    IngestConfig,
    ManifestError,
    ingest,
    read_manifest,
    video_id_problem,
    write_ingest_outputs,
)
from hivid.data.probe import ProbeError, ProbeWorker, probe_video
from tests.helpers import write_video

from ..expected_faults import ACCEPTED, ALL, QUARANTINED, reason_matches

META = {
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "500ml"},
    "price": {"amount": 59.0, "currency": "USD"},
}
GOOD = ("demo_a", "demo_b")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Two good videos plus every file of the fault corpus, ingested once."""
    root = tmp_path_factory.mktemp("faulty") / "data"
    for seed, vid in enumerate(GOOD):
        write_video(root / "videos" / f"{vid}.mp4", seed=seed + 1)
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / f"{vid}.json").write_text(json.dumps(META))
    written = write_faults(root)
    summary = ingest(root, IngestConfig(probe_timeout_s=30))
    write_ingest_outputs(summary, root.parent / "out")
    return root, {"summary": summary, "written": [f.name for f in written]}


def test_every_fault_is_handled_and_good_videos_finish(faulty: tuple[Path, dict]) -> None:
    _root, ctx = faulty
    summary = ctx["summary"]
    kept = {r["video_id"]: r for r in summary.manifest}
    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    for vid in GOOD:
        assert vid in kept, reasons
    # every file the generator writes has an expectation here (a new fault needs one)
    assert sorted(ctx["written"]) == sorted(ALL)
    for name in QUARANTINED:
        path = f"videos/{name}"
        assert path in reasons, f"{name} was not quarantined"
        assert reason_matches(name, reasons[path]), reasons[path]
    for name, fields in ACCEPTED.items():
        row = kept.get(Path(name).stem)
        assert row is not None, f"{name} was rejected: {reasons.get(f'videos/{name}')}"
        assert {k: row[k] for k in fields} == fields
    assert len(summary.manifest) == len(GOOD) + len(ACCEPTED)
    assert len(summary.quarantined) == len(QUARANTINED)


def test_accepted_oddities_are_recorded(faulty: tuple[Path, dict]) -> None:
    kept = {r["video_id"]: r for r in faulty[1]["summary"].manifest}
    assert kept["fault_no_audio"]["has_audio"] is False
    assert kept["fault_no_audio"]["variable_frame_rate"] is False
    vfr = kept["fault_vfr"]
    assert vfr["variable_frame_rate"] is True
    lo, hi = vfr["frame_interval_range"]
    assert lo == pytest.approx(1 / 30, abs=2e-3) and hi == pytest.approx(1 / 6, abs=2e-3)
    assert not kept["demo_a"]["variable_frame_rate"]
    assert faulty[1]["summary"].to_dict()["variable_frame_rate"] == ["fault_vfr"]


def test_duplicate_names_the_first_copy(faulty: tuple[Path, dict]) -> None:
    q = {q["path"]: q for q in faulty[1]["summary"].quarantined}
    assert "same content as demo_a (sha256 " in q["videos/fault_duplicate.mp4"]["reason"]


def test_quarantine_report_written(faulty: tuple[Path, dict]) -> None:
    out = faulty[0].parent / "out"
    rows = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"ingest"}
    assert len(rows) == len(QUARANTINED)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["quarantined"] == len(rows)


def test_huge_frame_rejected_from_header_and_limit_is_configurable(tmp_path: Path) -> None:
    p = write_huge_frame(tmp_path / "huge.mp4")
    with pytest.raises(ProbeError, match=r"7680x4320 \(33177600 px\) exceeds max_pixels 8294400"):
        probe_video(p, max_pixels=3840 * 2160)
    info = probe_video(p, max_pixels=7680 * 4320)  # allowed: now it is decoded
    assert (info.width, info.height) == (7680, 4320)


def test_huge_frame_is_never_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hivid.data.probe as probe

    def no_decoding(*args: object) -> None:
        raise AssertionError("the prober decoded a frame it should have rejected from the header")

    monkeypatch.setattr(probe, "_first_frame_and_pts", no_decoding)
    with pytest.raises(ProbeError, match="exceeds max_pixels"):
        probe_video(write_huge_frame(tmp_path / "huge.mp4"), max_pixels=3840 * 2160)


def test_zero_duration_and_audio_only(tmp_path: Path) -> None:
    from hivid.data.faults import write_zero_duration

    with pytest.raises(ProbeError, match="zero duration"):
        probe_video(write_zero_duration(tmp_path / "z.mp4"))
    with pytest.raises(ProbeError, match="audio-only file"):
        probe_video(write_clip(tmp_path / "a.mp4", video=False))


def test_vfr_detection(tmp_path: Path) -> None:
    assert probe_video(write_clip(tmp_path / "v.mp4", frame_times=vfr_times())).variable_frame_rate
    assert not probe_video(write_clip(tmp_path / "c.mp4")).variable_frame_rate


RULE = "(1-128 of letters, digits, '_', '-', '.'; no '..' or path separators)"


@pytest.mark.parametrize(
    ("vid", "reason"),
    [
        ("../../x", f"invalid video id '../../x' {RULE}"),  # traversal
        ("..", f"invalid video id '..' {RULE}"),
        ("a/b", f"invalid video id 'a/b' {RULE}"),  # separator
        ("a\\b", f"invalid video id 'a\\\\b' {RULE}"),  # Windows separator
        ("", f"invalid video id '' {RULE}"),  # empty
        ("-rf", f"invalid video id '-rf' {RULE}"),  # reads as an option
        ("x" * 129, f"invalid video id '{'x' * 129}' {RULE}"),  # too long
        ("a..b", f"invalid video id 'a..b' {RULE}"),  # '..' inside
        (" a", f"invalid video id ' a' {RULE}"),  # leading blank
        ("a\n", f"invalid video id 'a\\n' {RULE}"),  # newline: would split a report line
        (".hidden", f"invalid video id '.hidden' {RULE}"),  # dot file
        (None, "video id None is not a string"),
        (7, "video id 7 is not a string"),
    ],
)
def test_unsafe_ids(vid: object, reason: str) -> None:
    assert video_id_problem(vid) == reason


@pytest.mark.parametrize("vid", ["demo_000", "A.b-c_1", "x" * 128])
def test_safe_ids(vid: str) -> None:
    assert video_id_problem(vid) is None


def test_tampered_manifest_stops_the_stage(tmp_path: Path) -> None:
    good = {"video_id": "demo_a", "path": "videos/demo_a.mp4"}
    p = tmp_path / "manifest.jsonl"
    p.write_text(json.dumps(good) + "\n")
    assert read_manifest(p) == [good]
    for bad, why in (
        ({"video_id": "../../x", "path": "videos/x.mp4"}, "invalid video id"),
        ({"video_id": "x", "path": "../../etc/passwd"}, "not a relative path"),
        ({"video_id": "x", "path": "/etc/passwd"}, "not a relative path"),
    ):
        p.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(ManifestError, match=rf"manifest.jsonl:2: .*{why}"):
            read_manifest(p)
    p.write_text("{oops\n")
    with pytest.raises(ManifestError, match="not JSON"):
        read_manifest(p)


def test_metadata_missing_fields_and_types(tmp_path: Path) -> None:
    from hivid.data.ingest import MetadataError, load_metadata

    p = tmp_path / "m.json"
    p.write_text(json.dumps({"brand": 3, "category": " ", "attributes": [], "price": "9"}))
    with pytest.raises(MetadataError) as exc:
        load_metadata(p)
    msg = str(exc.value)
    assert "'brand'" in msg and "'category'" in msg and "'attributes'" in msg
    assert "'price.amount'" in msg and str(p) in msg and "\n" not in msg
    p.write_text("[1, 2]")
    with pytest.raises(MetadataError, match="must be a JSON object"):
        load_metadata(p)


def test_probe_worker_timeout_kills_and_batch_goes_on(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", seconds=2.0)
    with ProbeWorker(timeout_s=30) as w:
        assert w.probe(good).duration > 1
        first_pid = w.pid
        w.timeout_s = 1e-4  # no real probe answers this fast: a stand-in for a hanging file
        with pytest.raises(ProbeError, match=r"probe timed out after 0.0001 s \(worker killed\)"):
            w.probe(good)
        assert w.restarts == 1 and w.pid is None
        w.timeout_s = 30
        assert w.probe(good).width == 64  # a fresh worker
        assert w.pid != first_pid


def test_probe_worker_survives_a_crashed_child(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", seconds=2.0)
    with ProbeWorker(timeout_s=30) as w:
        w.probe(good)
        assert w.pid is not None
        os.kill(w.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert w.probe(good).height == 48  # restarted transparently
        with pytest.raises(ProbeError, match="file not found"):
            w.probe(tmp_path / "missing.mp4")


def test_ingest_batch_failures(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "zero.mp4").write_bytes(b"")
    summary = ingest(root, IngestConfig(probe_timeout_s=0))
    assert summary.manifest == [] and len(summary.quarantined) == 1
    failures = summary.batch_failures(IngestConfig())
    assert failures and "fewer than ingest.min_videos 1" in failures[0]
    assert summary.batch_failures(IngestConfig(min_videos=0)) == []
    share = summary.batch_failures(IngestConfig(min_videos=0, max_quarantine_share=0.5))
    assert "1 of 1 files quarantined (100%)" in share[0]


def test_fifo_and_broken_link_are_reported_not_opened(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_video(root / "videos" / "demo_a.mp4")
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "demo_a.json").write_text(json.dumps(META))
    os.mkfifo(root / "videos" / "pipe.mp4")  # opening it for reading would block forever
    os.symlink("missing.mp4", root / "videos" / "dangling.mp4")
    summary = ingest(root, IngestConfig(probe_timeout_s=30))
    assert [r["video_id"] for r in summary.manifest] == ["demo_a"]
    reasons = {q["path"]: q["reason"] for q in summary.quarantined}
    assert "not a regular file" in reasons["videos/pipe.mp4"]
    assert "not a regular file" in reasons["videos/dangling.mp4"]


def test_unreadable_file_is_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hivid.data.ingest as ingest_mod

    root = tmp_path / "data"
    for vid in GOOD:
        write_video(root / "videos" / f"{vid}.mp4", seed=len(vid) + (vid == "demo_b"))
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        (root / "metadata" / f"{vid}.json").write_text(json.dumps(META))
    real = ingest_mod.sha256_file

    def flaky(path: Path) -> str:
        if path.name == "demo_a.mp4":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(ingest_mod, "sha256_file", flaky)
    summary = ingest(root, IngestConfig(probe_timeout_s=0))
    assert [r["video_id"] for r in summary.manifest] == ["demo_b"]
    (q,) = summary.quarantined
    assert q["reason"] == "videos/demo_a.mp4: cannot read the file (Permission denied)"
