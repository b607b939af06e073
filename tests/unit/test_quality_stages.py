"""The gates inside the stages: evidence in MLflow (results JSON, Data Docs, lineage tags), the
split gate of build_dataset stopping on leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest

from hivid.data.ingest import IngestConfig, ingest, write_ingest_outputs
from hivid.stages import StageFailed, run_build_dataset, run_validate

from ..conftest import write_video
from .test_bad_input_cli import short_record

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
    """A project dir with 4 ingested, annotated and validated videos (own MLflow store)."""
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


def test_validate_logs_results_data_docs_and_lineage_tag(project: Path) -> None:
    report = json.loads((project / "report.json").read_text())
    assert report["success"] and report["passed"] == ["v0", "v1", "v2", "v3"]
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    run = client.get_run(report["run_id"])
    assert run.data.tags["gx.result"] == f"{report['result_id']}:success"
    results = {a.path for a in client.list_artifacts(run.info.run_id, "quality/results")}
    assert "quality/results/hivid.chapters.v2.json" in results
    assert len(results) == 6
    docs = {a.path for a in client.list_artifacts(run.info.run_id, "quality/data_docs")}
    assert "quality/data_docs/index.html" in docs
    q = {a.path for a in client.list_artifacts(run.info.run_id, "quarantine")}
    assert {"quarantine/report.md", "quarantine/report.jsonl", "quarantine/summary.json"} <= q
    summary = json.loads((project / "outputs/quarantine/summary.json").read_text())
    assert summary == {"total": 0, "by_stage": {"ingest": 0, "annotate": 0, "validate": 0}}


def test_build_dataset_split_gate(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = (
        project,
        project / "params.yaml",
        project / "data",
        project / "outputs/ingest/manifest.jsonl",
        project / "outputs/annotations",
        project / "outputs/quality",
    )
    summary = run_build_dataset(*args, project / "outputs/dataset")
    assert sum(summary["splits"].values()) == 4
    gate = json.loads((project / "outputs/dataset/quality/gate.json").read_text())
    assert gate["success"] is True
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["hivid"], filter_string="tags.mlflow.runName = 'build_dataset'"
    )
    assert runs.iloc[0]["tags.gx.splits"] == f"{gate['result_id']}:success"
    from hivid.stages import _gate_tag  # what train/evaluate runs (and the model) carry

    tags = _gate_tag(project)
    assert tags["gx.splits"] == f"{gate['result_id']}:success"
    assert tags["gx.result"].endswith(":success")

    import hivid.dataset.build as build

    real = build.split_videos

    def leaky(ids: list[str], cfg: build.DatasetConfig) -> dict[str, list[str]]:
        s = real(ids, cfg)
        return {**s, "test": [*s["test"], s["train"][0]]}  # a training video also in test

    monkeypatch.setattr(build, "split_videos", leaky)
    with pytest.raises(StageFailed, match=r"split gate failed: .*split leakage or loss: v\d is in"):
        run_build_dataset(*args, project / "outputs/dataset2")


def test_a_truncated_record_is_quarantined_not_fatal(project: Path, tmp_path: Path) -> None:
    """A record cut short (a writer that was not atomic) costs its video, not the stage."""
    ann = tmp_path / "annotations"
    shutil.copytree(project / "outputs/annotations", ann)
    text = (ann / "v2.json").read_text()
    (ann / "v2.json").write_text(text[: len(text) // 2])
    report = run_validate(
        project,
        project / "params.yaml",
        project / "outputs/ingest/manifest.jsonl",
        ann,
        tmp_path / "quality",
    )
    assert report["success"] and report["passed"] == ["v0", "v1", "v3"]
    (q,) = report["quarantined"]
    assert q["video_id"] == "v2"
    assert "v2: videos: malformed record: record file cannot be read (v2.json: " in q["reasons"][0]
