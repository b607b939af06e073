"""The gates' verdicts at their exact boundaries and what they write, word for word (real GX)."""

from __future__ import annotations

import json
from pathlib import Path

from hivid.quality.gate import jsonable, run_eval_gate, run_gate, run_splits_gate
from hivid.quality.suites import QualityConfig
from tests.quality_batches import batch

SUITE_STATS = {
    "table",
    "rows",
    "success",
    "evaluated_expectations",
    "successful_expectations",
    "unsuccessful_expectations",
    "success_percent",
}


def two_of_four_broken() -> tuple[list[dict], dict[str, dict]]:  # type: ignore[type-arg]
    manifest, ann = batch(4)
    for vid in ("v01", "v03"):
        ann[vid]["chapters"][0]["title"] = ""
    return manifest, ann


def test_quarantine_share_and_min_videos_at_their_limits(tmp_path: Path) -> None:
    manifest, ann = two_of_four_broken()
    at_limit = run_gate(
        manifest, ann, QualityConfig(max_quarantine_share=0.5, min_videos=2), tmp_path / "a"
    )
    assert at_limit.success and at_limit.batch_failures == []  # 50% is not above 50%, 2 >= 2
    over = run_gate(
        manifest, ann, QualityConfig(max_quarantine_share=0.49, min_videos=3), tmp_path / "b"
    )
    assert not over.success
    assert over.batch_failures == [
        "2 of 4 videos quarantined (50%), more than max_quarantine_share 49%",
        "2 video(s) passed, fewer than min_videos 3",
    ]
    assert over.result_id == at_limit.result_id  # the same outcomes, whatever the limits
    out = tmp_path / "b"
    assert over.passed == ["v00", "v02"]
    assert [(q["video_id"], q["stage"]) for q in over.quarantined] == [
        ("v01", "validate"),
        ("v03", "validate"),
    ]
    assert all(r.startswith(q["video_id"] + ": ") for q in over.quarantined for r in q["reasons"])
    rows = [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]
    assert rows == over.quarantined
    assert json.loads((out / "passed.json").read_text()) == ["v00", "v02"]
    assert json.loads((out / "gate.json").read_text()) == jsonable(over.to_dict())
    assert over.results_dir == out.resolve() / "results"
    assert over.data_docs_dir == out.resolve() / "data_docs"
    assert "HiVid quality gate (validate)" in (out / "report.html").read_text()
    stats = over.statistics
    assert (stats["videos"], stats["passed"], stats["quarantined"]) == (4, 2, 2)
    assert stats["quarantine_share"] == 0.5
    chapters = stats["suites"]["hivid.chapters.v2"]
    assert set(chapters) == SUITE_STATS and chapters["table"] == "chapters"
    assert chapters["success"] is False and chapters["unsuccessful_expectations"] >= 1
    assert stats["suites"]["hivid.manifest.v2"]["rows"] == 4
    assert stats["suites"]["hivid.manifest.v2"]["success"] is True
    tables = {p.name for p in (out / "tables").iterdir()}
    assert {"manifest.csv", "chapters.csv"} <= tables


def test_a_rerun_replaces_the_previous_results(tmp_path: Path) -> None:
    manifest, ann = batch(2)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "hivid.old.v0.json").write_text("{}")
    (tmp_path / "data_docs").mkdir()
    (tmp_path / "data_docs" / "stale.html").write_text("x")
    run_gate(manifest, ann, QualityConfig(), tmp_path)
    assert not (tmp_path / "results" / "hivid.old.v0.json").exists()
    assert not (tmp_path / "data_docs" / "stale.html").exists()


def test_splits_gate_every_reason_stops_it_and_at_most_ten_are_repeated(tmp_path: Path) -> None:
    videos = [f"v{i:02d}" for i in range(12)]
    leak = {"train": videos, "val": videos[:1], "test": videos[1:]}  # every video in two splits
    gate = run_splits_gate(leak, videos, 0.125, 0.25, QualityConfig(), tmp_path)
    assert not gate.success
    assert gate.passed == []
    assert [q["video_id"] for q in gate.quarantined][:3] == ["v00", "v01", "v02"]
    assert {q["stage"] for q in gate.quarantined} == {"splits"}
    reasons = [r for q in gate.quarantined for r in q["reasons"]]
    assert len(reasons) > 10
    assert gate.batch_failures[-10:] == reasons[:10]
    assert set(gate.statistics) == {"suites", "timings_s"}
    assert list(gate.statistics["timings_s"]) == ["total"]
    assert json.loads((tmp_path / "gate.json").read_text()) == jsonable(gate.to_dict())
    rows = [json.loads(x) for x in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert rows == gate.quarantined
    assert "HiVid quality gate (splits)" in (tmp_path / "report.html").read_text()
    assert set(gate.statistics["suites"]["hivid.splits.v1"]) == SUITE_STATS


def test_splits_gate_passes_the_videos_in_their_order(tmp_path: Path) -> None:
    videos = ["v3", "v1", "v2", "v0", "v1", "v4", "v5", "v6"]  # one listed twice
    ids = sorted(set(videos))
    good = {"train": ids[:5], "val": ids[5:6], "test": ids[6:]}
    gate = run_splits_gate(good, videos, 1 / 7, 1 / 7, QualityConfig(), tmp_path)
    assert gate.success, gate.batch_failures
    assert gate.passed == ids and gate.quarantined == [] and gate.batch_failures == []


def test_eval_gate_reads_the_whole_file_or_its_results(tmp_path: Path) -> None:
    gt = {"a": {"duration": 20.0, "timestamps": [[0, 10]], "sentences": ["x"]}}
    results = {"a": [{"timestamp": [4, 2], "sentence": "s"}]}
    whole = run_eval_gate(gt, {"version": "1", "results": results}, QualityConfig(), tmp_path / "w")
    alone = run_eval_gate(gt, results, QualityConfig(), tmp_path / "r")
    for gate in (whole, alone):
        assert not gate.success
        assert gate.quarantined == [
            {
                "video_id": "a",
                "stage": "evaluate",
                "reasons": ["a: eval_pred: prediction 1: end before start"],
            }
        ]
        assert gate.batch_failures == ["a: eval_pred: prediction 1: end before start"]
        assert gate.passed == []
    assert "HiVid quality gate (evaluate)" in (tmp_path / "w" / "report.html").read_text()
    odd = run_eval_gate(gt, {"results": [1]}, QualityConfig(), tmp_path / "o")
    assert odd.passed == ["a"] and odd.success, odd.batch_failures  # no predictions: nothing bad
