"""Fixtures shared by the unit tests (found by pytest, never imported)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import write_video
from tests.quality_batches import short_record

REPO = Path(__file__).resolve().parents[2]
META = {
    "title": "Acme Glow Serum 30ml",
    "brand": "Acme",
    "category": "beauty",
    "attributes": {"volume": "30ml"},
    "price": {"amount": 19.5, "currency": "USD"},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project dir with 4 ingested, annotated and validated videos (own MLflow store); used by
    test_quality_stages and test_frame_cache_stage."""
    from hivid.data.ingest import IngestConfig, ingest, write_ingest_outputs
    from hivid.stages import run_validate

    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    mp.delenv("HIVID_PARENT_RUN_ID", raising=False)
    root = tmp_path_factory.mktemp("proj")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    data = root / "data"
    for i in range(4):
        write_video(data / "videos" / f"v{i}.mp4", seconds=3.0, seed=i)
        (data / "metadata").mkdir(parents=True, exist_ok=True)
        (data / "metadata" / f"v{i}.json").write_text(json.dumps(META))
    summary = ingest(data, IngestConfig(probe_timeout_s=0))
    write_ingest_outputs(summary, root / "outputs" / "ingest")
    ann = root / "outputs" / "annotations"
    ann.mkdir(parents=True)
    for row in summary.manifest:
        (ann / f"{row['video_id']}.json").write_text(json.dumps(short_record(row)))
    report = run_validate(
        root,
        root / "params.yaml",
        root / "outputs/ingest/manifest.jsonl",
        ann,
        root / "outputs/quality",
    )
    (root / "report.json").write_text(json.dumps(report))
    yield root
    mp.undo()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 1 s, 32x24, 5 fps silent clips (ingest tests; a module's own ``clips`` wins)."""
    d = tmp_path_factory.mktemp("clips")
    return [
        write_video(d / f"c{i}.mp4", seconds=1.0, fps=5, size=(32, 24), audio=False, seed=i)
        for i in range(3)
    ]
