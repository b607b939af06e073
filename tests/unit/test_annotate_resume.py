"""Kill `hivid annotate` mid-run, run it again: finished videos are not redone, and no partial
file ever looks complete (records are written via tmp + rename, see ``hivid.io``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


def _hivid(ws: Path, *args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "hivid"
    return subprocess.run(
        [str(exe), *args], cwd=ws, capture_output=True, text=True, env=_env(), timeout=600
    )


def _records(out: Path) -> dict[str, Path]:
    return {p.stem: p for p in out.glob("*.json") if not p.name.startswith(".")}


@pytest.mark.slow
def test_killed_annotate_resumes_without_redoing_finished_videos(tmp_path: Path) -> None:
    ws = tmp_path
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["demo"].update(videos=3, min_duration=6.0, max_duration=20.0, max_chapters=2)
    params["annotate"]["asr_model"] = "tiny.en"
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    assert _hivid(ws, "demo-data", "--out", "data").returncode == 0
    assert _hivid(ws, "ingest").returncode == 0
    out = ws / "outputs" / "annotations"

    exe = Path(sys.executable).parent / "hivid"
    proc = subprocess.Popen(
        [str(exe), "annotate"],
        cwd=ws,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while not _records(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's group: no cleanup runs
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "annotate finished before it could be killed"
    first = _records(out)
    assert 1 <= len(first) < 3
    for vid, p in first.items():  # whatever is there is complete
        rec = json.loads(p.read_text())
        assert rec["video_id"] == vid and rec["cache_key"] and rec["chapters"]
    done = sorted(first)
    stamps = {vid: p.stat().st_mtime_ns for vid, p in first.items()}

    # A crash of a non-atomic writer would leave a prefix of a record under the final name;
    # plant one for an unfinished video: it must be redone, not taken as complete.
    todo = sorted({"demo_000", "demo_001", "demo_002"} - set(done))
    partial = out / f"{todo[0]}.json"
    partial.write_text(first[done[0]].read_text()[:200])

    r = _hivid(ws, "annotate")
    assert r.returncode == 0, r.stderr
    assert f"annotate: {3 - len(done)} annotated, {len(done)} cached, 0 quarantined" in r.stdout
    summary = json.loads((ws / "outputs" / "annotate_summary.json").read_text())
    assert sorted(summary["cached"]) == done and sorted(summary["annotated"]) == todo
    final = _records(out)
    assert sorted(final) == ["demo_000", "demo_001", "demo_002"]
    for vid in done:  # not rewritten
        assert final[vid].stat().st_mtime_ns == stamps[vid]
    for p in final.values():
        assert json.loads(p.read_text())["cache_key"]
