"""The gates inside the stages: evidence in MLflow (results JSON, Data Docs, lineage tags), the
split gate of build_dataset stopping on leakage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest

from hivid.stages import StageFailed, run_build_dataset, run_validate


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
