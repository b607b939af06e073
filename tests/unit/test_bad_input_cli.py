"""`hivid demo-data --faults` -> `hivid ingest` -> `hivid validate`: reports and exit codes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.quality_batches import short_record

from ..expected_faults import ALL, QUARANTINED, reason_matches, unanchored

REPO = Path(__file__).resolve().parents[2]


def hivid(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["OMP_NUM_THREADS"] = "1"
    exe = Path(sys.executable).parent / "hivid"
    return subprocess.run(
        [str(exe), *args], cwd=ws, capture_output=True, text=True, env=env, timeout=300
    )


def _params(ws: Path, **quality: Any) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.setdefault("quality", {}).update(quality)
    (ws / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.slow
def test_faults_are_quarantined_and_reported_end_to_end(tmp_path: Path) -> None:
    ws = tmp_path
    _params(ws)
    r = hivid(ws, "demo-data", "--out", "data", "--videos", "1", "--faults")
    assert r.returncode == 0, r.stderr
    assert f"wrote {len(ALL)} fault files" in r.stdout

    r = hivid(ws, "ingest", "--data", "data", "--out", "outputs/ingest")
    assert r.returncode == 0, r.stderr
    bad = list(QUARANTINED)
    assert f"ingest: 3 videos in manifest, {len(bad)} quarantined" in r.stdout
    lines = [x.strip() for x in r.stdout.splitlines() if "quarantined: " in x]
    for name in bad:  # one line per file, naming it and the reason
        assert any(reason_matches(name, x.removeprefix("quarantined: ")) for x in lines), name
    manifest = [
        json.loads(x) for x in (ws / "outputs/ingest/manifest.jsonl").read_text().splitlines()
    ]
    rows = {m["video_id"]: m for m in manifest}
    assert set(rows) == {"demo_000", "fault_no_audio", "fault_vfr"}
    report = [
        json.loads(x) for x in (ws / "outputs/ingest/quarantine.jsonl").read_text().splitlines()
    ]
    assert {q["path"] for q in report} == {f"videos/{name}" for name in bad}

    # Annotations: one clean, one with overlapping chapters, one ending after the video.
    ann = ws / "outputs" / "annotations"
    ann.mkdir(parents=True)
    recs = {vid: short_record(row) for vid, row in rows.items()}
    recs["fault_no_audio"]["chapters"][1]["start"] -= 1.0
    recs["fault_vfr"]["chapters"][1]["end"] += 5.0
    for vid, rec in recs.items():
        (ann / f"{vid}.json").write_text(json.dumps(rec))

    r = hivid(ws, "validate")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "hivid validate: error: quality gate failed" in r.stderr
    assert "2 of 3 videos quarantined (67%), more than max_quarantine_share 50%" in r.stderr
    assert "quarantined: fault_no_audio: fault_no_audio: chapters: chapter 2 starts" in r.stdout
    assert "quarantined: fault_vfr: fault_vfr: chapters: 1 chapter ends after the video" in r.stdout
    gate = json.loads((ws / "outputs/quality/gate.json").read_text())
    assert gate["success"] is False and gate["passed"] == ["demo_000"]

    _params(ws, max_quarantine_share=0.7)
    r = hivid(ws, "validate")
    assert r.returncode == 0, r.stderr
    assert "validate: 1 passed, 2 quarantined" in r.stdout
    q = [
        json.loads(x)
        for x in (ws / "outputs/quality/quarantine.jsonl").read_text().split("\n")
        if x
    ]
    assert [x["video_id"] for x in q] == ["fault_no_audio", "fault_vfr"]

    # One report over every stage: ingest's files and validate's videos, each with its reasons.
    assert "quarantine report (all stages): outputs/quarantine/report.md" in r.stdout
    rows = [
        json.loads(x) for x in (ws / "outputs/quarantine/report.jsonl").read_text().splitlines()
    ]
    assert [x["stage"] for x in rows] == ["ingest"] * len(bad) + ["validate"] * 2
    md = (ws / "outputs/quarantine/report.md").read_text()
    assert f"{len(bad) + 2} quarantined: {len(bad)} at ingest, 0 at annotate, 2 at validate" in md
    for name in bad:
        line = next(x for x in md.splitlines() if f"| videos/{name} |" in x)
        assert line.startswith("| ingest |") and re.search(unanchored(name), line), line


def test_empty_ingest_stops_with_exit_2(tmp_path: Path) -> None:
    ws = tmp_path
    _params(ws)
    (ws / "data" / "videos").mkdir(parents=True)
    (ws / "data" / "videos" / "broken.mp4").write_bytes(b"\x00" * 64)
    r = hivid(ws, "ingest", "--data", "data", "--out", "outputs/ingest")
    assert r.returncode == 2
    assert "quarantined: videos/broken.mp4: not a readable media container" in r.stdout
    err = [x for x in r.stderr.splitlines() if x.startswith("hivid ingest: error:")]
    assert err == [
        "hivid ingest: error: 0 usable video(s) of 1 file(s), fewer than ingest.min_videos 1"
    ]
    assert (ws / "outputs/ingest/quarantine.jsonl").exists()  # the report is written first


def test_demo_data_without_faults_writes_none(tmp_path: Path) -> None:
    from hivid.data.faults import write_faults

    root = tmp_path / "data"
    written = write_faults(root)  # no good video: a base clip is made
    assert (root / "videos" / "fault_base.mp4").exists()
    again = write_faults(root)  # idempotent: files are replaced, the symlink too
    assert [f.name for f in again] == [f.name for f in written]
    shutil.rmtree(root)


@pytest.mark.slow
def test_faulty_corpus_runs_through_annotate_and_validate(tmp_path: Path) -> None:
    """With every fault in the corpus, the good video and the accepted oddities (no audio track,
    variable frame rate) are annotated (real Whisper tiny.en, OCR) and pass the gate."""
    ws = tmp_path
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["annotate"]["asr_model"] = "tiny.en"
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    assert hivid(ws, "demo-data", "--out", "data", "--videos", "1", "--faults").returncode == 0
    assert hivid(ws, "ingest").returncode == 0
    r = hivid(ws, "annotate")
    assert r.returncode == 0, r.stderr
    assert "annotate: 3 annotated, 0 cached, 0 quarantined" in r.stdout
    rec = json.loads((ws / "outputs/annotations/fault_no_audio.json").read_text())
    assert rec["asr"]["audio"] is False and rec["frames"]["items"]
    r = hivid(ws, "validate")
    assert r.returncode == 0, r.stderr
    assert "validate: 3 passed, 0 quarantined" in r.stdout
    summary = json.loads((ws / "outputs/quarantine/summary.json").read_text())
    bad = len(QUARANTINED)
    assert summary["by_stage"] == {"ingest": bad, "annotate": 0, "validate": 0}
