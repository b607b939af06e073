"""Checks added to the gate: NaN/inf anywhere, unsafe ids, ASR relevance, script labels; the
split gate (leakage, loss, sizes) and the evaluation-input gate (ActivityNet gt / predictions)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from hivid.quality.gate import GateResult, run_eval_gate, run_gate, run_splits_gate
from hivid.quality.suites import QualityConfig
from hivid.quality.tables import expected_split_sizes, nonfinite_paths
from tests.quality_batches import batch, manifest_row, reasons, record


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> GateResult:
    manifest, ann = batch(10)
    # v01: a NaN where no other check looks (a word score) and an infinite timing.
    ann["v01"]["asr"]["segments"][0]["words"] = [{"start": 1, "end": 2, "score": math.nan}]
    ann["v01"]["timings"] = {"asr_s": math.inf}
    # v02: relevance scores out of the 0-5 scale and of the wrong type.
    ann["v02"]["asr"]["segments"][0]["relevance"] = 7
    ann["v02"]["asr"]["segments"][1]["relevance"] = "high"
    # v03: a script label outside the 12 types.
    ann["v03"]["chapters"][1]["label"] = "unboxing"
    # v04: non-finite number in the manifest row's metadata.
    manifest[4]["metadata"]["attributes"]["weight_g"] = math.inf
    # v05: a path-traversal id (as a tampered manifest + record would carry).
    bad = manifest_row("../../x")
    manifest[5] = bad
    del ann["v05"]
    ann["../../x"] = record(bad)
    # valid optional fields: in-range relevance, known labels, null relevance
    for i, seg in enumerate(ann["v06"]["asr"]["segments"]):
        seg["relevance"] = [0, 5, None][i]
    for ch, label in zip(
        ann["v06"]["chapters"], ["sore_point", "product_effect", None], strict=True
    ):
        ch["label"] = label
    ann["v07"]["chapters"][0]["script_label"] = "call_to_action"
    ann["v08"]["schema_version"] = 2  # the annotate stage's current schema
    ann["v09"]["schema_version"] = 3  # unknown
    cfg = QualityConfig(max_quarantine_share=0.6)
    return run_gate(manifest, ann, cfg, tmp_path_factory.mktemp("more"))


def test_new_checks_quarantine_with_reasons(gate: GateResult) -> None:
    assert gate.success, gate.batch_failures
    assert sorted(q["video_id"] for q in gate.quarantined) == [
        "../../x",
        "v01",
        "v02",
        "v03",
        "v04",
        "v09",
    ]
    assert "schema_version is 3, expected one of [1, 2]" in reasons(gate, "v09")
    r1 = reasons(gate, "v01")
    assert "v01: videos: record holds non-finite numbers: asr.segments[0].words[0].score=nan" in r1
    assert "timings.asr_s=inf" in r1
    r2 = reasons(gate, "v02")
    assert "segment 1: relevance 7 outside [0, 5]" in r2
    assert "segment 2: relevance is str, expected a number" in r2
    assert "v03: chapters: chapter 2: script label 'unboxing' is not one of the 12 types" in (
        reasons(gate, "v03")
    )
    assert "manifest row holds non-finite numbers: metadata.attributes.weight_g=inf" in (
        reasons(gate, "v04")
    )
    assert "video id '../../x' is not a safe file name" in reasons(gate, "../../x")
    assert {"v06", "v07", "v08"} <= set(gate.passed)


def test_nonfinite_paths() -> None:
    assert nonfinite_paths({"a": [1.0, {"b": math.nan}], "c": -math.inf}) == [
        "a[1].b=nan",
        "c=-inf",
    ]
    assert nonfinite_paths({"a": 1, "b": "nan", "c": [0.5]}) == []
    assert len(nonfinite_paths([math.nan] * 10)) == 3


def test_expected_split_sizes() -> None:
    assert expected_split_sizes(8, 0.125, 0.25) == {"train": 5, "val": 1, "test": 2}
    assert expected_split_sizes(0, 0.125, 0.25) == {"train": 0, "val": 0, "test": 0}


def test_splits_gate(tmp_path: Path) -> None:
    videos = [f"v{i}" for i in range(8)]
    good = {"train": videos[:5], "val": videos[5:6], "test": videos[6:], "seed": 0}
    cfg = QualityConfig()
    ok = run_splits_gate(good, videos, 0.125, 0.25, cfg, tmp_path / "ok")
    assert ok.success, ok.batch_failures
    assert (tmp_path / "ok" / "results" / "hivid.splits.v1.json").exists()
    assert (tmp_path / "ok" / "data_docs" / "index.html").exists()

    leak = {**good, "test": [*good["test"], "v0"]}
    bad = run_splits_gate(leak, videos, 0.125, 0.25, cfg, tmp_path / "leak")
    assert not bad.success
    assert any("split leakage or loss: v0 is in train, test" in f for f in bad.batch_failures)

    lost = {**good, "train": videos[:4]}
    bad = run_splits_gate(lost, videos, 0.125, 0.25, cfg, tmp_path / "lost")
    assert any("v4 is in no split" in f for f in bad.batch_failures)

    skew = {"train": videos[:2], "val": videos[2:4], "test": videos[4:]}
    bad = run_splits_gate(skew, videos, 0.125, 0.25, cfg, tmp_path / "skew")
    assert any("split train has 2 videos, expected 5 +- 1" in f for f in bad.batch_failures)
    assert json.loads((tmp_path / "skew" / "gate.json").read_text())["success"] is False

    empty = run_splits_gate({}, [], 0.125, 0.25, cfg, tmp_path / "empty")
    assert any("empty stage" in f for f in empty.batch_failures)


def test_eval_gate(tmp_path: Path) -> None:
    gt = {
        "a": {"duration": 20.0, "timestamps": [[0, 10], [10, 20]], "sentences": ["x", "y"]},
        "b": {"duration": 9.0, "timestamps": [[0, 9]], "sentences": ["z"]},
    }
    pred = {"version": "VERSION 1.0", "results": {"a": [{"timestamp": [0, 5], "sentence": "s"}]}}
    cfg = QualityConfig()
    ok = run_eval_gate(gt, pred, cfg, tmp_path / "ok")
    assert ok.success, ok.batch_failures

    bad_gt = {
        "a": {"duration": 20.0, "timestamps": [[0, 10], [10, 25]], "sentences": ["x"]},
        "b": {"duration": 9.0, "timestamps": [], "sentences": []},
        "c": {"duration": 9.0, "timestamps": [[5, 3]], "sentences": [""]},
    }
    bad_pred = {"a": [{"timestamp": [4, 2], "sentence": "s"}], "zz": [{"timestamp": 3}]}
    res = run_eval_gate(bad_gt, bad_pred, cfg, tmp_path / "bad")
    assert not res.success
    text = " | ".join(r for q in res.quarantined for r in q["reasons"])
    assert "a: eval_gt: ground truth has 2 timestamps but 1 sentences" in text
    assert "a: eval_gt: 1 event after the end of the video" in text
    assert "b: eval_gt: ground truth: no ground-truth events" in text
    assert "c: eval_gt: event 1: end not after start" in text
    assert "c: eval_gt: event 1: sentence is empty" in text
    assert "a: eval_pred: prediction 1: end before start" in text
    assert "zz: eval_pred: prediction for a video that is not in the ground truth" in text
    assert "zz: eval_pred: prediction: timestamp 3 is not a [start, end] pair" in text
