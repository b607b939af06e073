"""The quality gate end to end on hand-made records (real GX, in-memory context)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hivid.quality.gate import GateFailed, GateResult, enforce, run_gate
from hivid.quality.suites import QualityConfig
from tests.quality_batches import batch, manifest_row, reasons, record


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[GateResult, Path]:
    manifest, ann = batch(10)
    out = tmp_path_factory.mktemp("clean")
    return run_gate(manifest, ann, QualityConfig(), out), out


def test_clean_batch_passes_and_writes_reports(clean: tuple[GateResult, Path]) -> None:
    result, out = clean
    assert result.success, result.batch_failures
    assert result.passed == [f"v{i:02d}" for i in range(10)]
    assert result.quarantined == [] and result.batch_failures == []
    assert len(result.result_id) == 64
    names = {p.stem for p in (out / "results").glob("*.json")}
    assert names == {
        "hivid.manifest.v2",
        "hivid.videos.v2",
        "hivid.asr_segments.v2",
        "hivid.frames.v1",
        "hivid.tcot.v1",
        "hivid.chapters.v2",
    }
    chapters = json.loads((out / "results" / "hivid.chapters.v2.json").read_text())
    assert chapters["success"] and chapters["suite_name"] == "hivid.chapters.v2"
    index = out / "data_docs" / "index.html"
    assert index.exists() and "hivid.chapters.v2" in index.read_text()
    gate = json.loads((out / "gate.json").read_text())
    assert gate["success"] and gate["result_id"] == result.result_id
    assert json.loads((out / "passed.json").read_text()) == result.passed
    assert (out / "quarantine.jsonl").read_text() == ""
    assert result.statistics["suites"]["hivid.frames.v1"]["rows"] == 10 * 30
    assert enforce(result) is result


def test_result_id_is_stable(clean: tuple[GateResult, Path], tmp_path: Path) -> None:
    manifest, ann = batch(10)
    again = run_gate(manifest, ann, QualityConfig(), tmp_path)
    assert again.result_id == clean[0].result_id


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> GateResult:
    """10 videos, 5 broken in different ways (share 50%: not above the limit)."""
    manifest, ann = batch(10)
    # v01: chapter 2 starts before chapter 1 ends.
    ann["v01"]["chapters"][1]["start"] = 8.0
    # v02: two segments end after the video.
    ann["v02"]["asr"]["segments"][1]["end"] = 31.5
    ann["v02"]["asr"]["segments"][2]["end"] = 33.0
    # v03: NaN start of a TCoT item and a non-numeric chapter end.
    ann["v03"]["tcot"][1]["start"] = float("nan")
    ann["v03"]["chapters"][0]["end"] = "ten"
    # v04: empty chapter title.
    ann["v04"]["chapters"][2]["title"] = "   "
    # v05: half the frames are missing and metadata brand is a number.
    ann["v05"]["frames"]["items"] = ann["v05"]["frames"]["items"][:15]
    manifest[5]["metadata"]["brand"] = 42
    return run_gate(manifest, ann, QualityConfig(), tmp_path_factory.mktemp("mixed"))


def test_bad_videos_are_quarantined_with_readable_reasons(mixed: GateResult) -> None:
    assert mixed.success, mixed.batch_failures
    assert [q["video_id"] for q in mixed.quarantined] == ["v01", "v02", "v03", "v04", "v05"]
    assert mixed.passed == ["v00", "v06", "v07", "v08", "v09"]
    assert all(q["stage"] == "validate" for q in mixed.quarantined)

    r1 = reasons(mixed, "v01")
    assert "v01: chapters: chapter 2 starts at 8 s before chapter 1 ends at 10 s" in r1
    r2 = reasons(mixed, "v02")
    assert "v02: asr_segments: 2 segments end after the video (duration 30 s" in r2
    r3 = reasons(mixed, "v03")
    assert "v03: tcot: TCoT item 2: start time is missing or not a number" in r3
    assert "v03: chapters: chapter 1: end time is missing" in r3
    r4 = reasons(mixed, "v04")
    assert "v04: chapters: chapter 3: title is empty" in r4
    r5 = reasons(mixed, "v05")
    assert "v05: videos: 15 frames for 30 s at 1 fps, expected 30" in r5
    assert "v05: manifest: metadata.brand is number, expected str" in r5
    # A reason names only its own video.
    for q in mixed.quarantined:
        assert all(r.startswith(q["video_id"] + ": ") for r in q["reasons"])


def test_more_than_half_bad_fails_the_batch(tmp_path: Path) -> None:
    manifest, ann = batch(4)
    for vid in ("v00", "v01", "v02"):
        ann[vid]["chapters"][0]["title"] = ""
    result = run_gate(manifest, ann, QualityConfig(), tmp_path)
    assert not result.success
    # the only batch failure: the one video that passed is enough for min_videos 1
    assert result.batch_failures == [
        "3 of 4 videos quarantined (75%), more than max_quarantine_share 50%"
    ]
    stats = result.statistics
    assert (stats["videos"], stats["passed"], stats["quarantined"]) == (4, 1, 3)
    assert stats["quarantine_share"] == 0.75
    timings = stats["timings_s"]
    assert list(timings) == ["tables", "gx_context", "validate", "data_docs", "total"]
    assert all(0 <= t < 600 and t == round(t, 3) for t in timings.values()), timings
    assert timings["total"] >= max(timings["gx_context"], timings["validate"])
    with pytest.raises(GateFailed, match=r"quality gate failed .*max_quarantine_share") as info:
        enforce(result)
    assert info.value.result is result
    assert json.loads((tmp_path / "gate.json").read_text())["success"] is False


def test_duplicate_content_fails_the_batch(tmp_path: Path) -> None:
    manifest, ann = batch(4)
    manifest[3] = manifest_row("v03", content="v00")  # same bytes as v00 under another id
    ann["v03"] = record(manifest[3])
    result = run_gate(manifest, ann, QualityConfig(), tmp_path)
    assert not result.success
    assert any("duplicate content" in f and "v00, v03" in f for f in result.batch_failures)
    assert {q["video_id"] for q in result.quarantined} == {"v00", "v03"}


def test_empty_stage_fails(tmp_path: Path) -> None:
    manifest, _ = batch(2)
    result = run_gate(manifest, {}, QualityConfig(), tmp_path)
    assert not result.success
    assert any("empty stage" in f for f in result.batch_failures)
    assert result.batch_failures[-1] == "0 video(s) passed, fewer than min_videos 1"
    assert not any("quarantined" in f for f in result.batch_failures)
    assert result.statistics["quarantine_share"] == 0.0
    assert (tmp_path / "data_docs" / "index.html").exists()


def test_malformed_record_is_quarantined_not_crashing(tmp_path: Path) -> None:
    manifest, ann = batch(3)
    broken = copy.deepcopy(ann["v01"])
    broken["chapters"] = "none"
    del broken["asr"]
    ann["v01"] = broken
    ann["v09"] = record(manifest_row("v09"))  # annotation without a manifest row
    result = run_gate(manifest, ann, QualityConfig(max_quarantine_share=1.0), tmp_path)
    assert result.success
    assert result.passed == ["v00", "v02"]
    r1 = reasons(result, "v01")
    assert "'asr' is missing" in r1 and "'chapters' is a JSON str, not an array" in r1
    assert "v09: videos: annotation record has no manifest row" in reasons(result, "v09")


def test_duplicate_video_id_fails_the_batch(tmp_path: Path) -> None:
    manifest, ann = batch(3)
    manifest.append(manifest_row("v01", content="other bytes"))
    result = run_gate(manifest, ann, QualityConfig(), tmp_path)
    assert not result.success
    assert "manifest: duplicate video id(s) in the manifest: v01" in result.batch_failures
    assert [q["video_id"] for q in result.quarantined] == ["v01"]
