"""`hivid build-dataset --frame-cache`: the counts reach the CLI line and MLflow, never the
DVC-tracked dataset; the split gate runs with the configured split method."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from hivid.cli import main

DATA_FILES = ("splits.json", "summary.json", "train.jsonl", "val.jsonl", "test.jsonl")


def _cli(project: Path, out: str) -> str:
    args = [
        "build-dataset",
        *("--data", str(project / "data")),
        *("--manifest", str(project / "outputs/ingest/manifest.jsonl")),
        *("--annotations", str(project / "outputs/annotations")),
        *("--quality", str(project / "outputs/quality")),
        *("--out", str(project / out)),
        *("--frame-cache", str(project / "outputs/frame_cache")),
        *("--params", str(project / "params.yaml")),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_frame_cache_cold_then_warm(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(project)
    assert "frame cache 0 hits / 4 misses" in _cli(project, "outputs/ds_cold")
    assert "frame cache 4 hits / 0 misses" in _cli(project, "outputs/ds_warm")
    for name in DATA_FILES:
        cold = (project / "outputs/ds_cold" / name).read_bytes()
        assert cold == (project / "outputs/ds_warm" / name).read_bytes(), name
    summary = json.loads((project / "outputs/ds_warm/summary.json").read_text())
    assert "frame_cache" not in summary and summary["config"]["split_method"] == "stable"
    splits = json.loads((project / "outputs/ds_warm/splits.json").read_text())
    assert splits["split_method"] == "stable"
    gate = json.loads((project / "outputs/ds_warm/quality/gate.json").read_text())
    assert gate["success"] is True
    sizes = (project / "outputs/ds_warm/quality/tables/split_sizes.csv").read_text()
    assert sizes.splitlines()[0] == "row,split,size,expected,size_error,tolerance,excess"

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["hivid"],
        filter_string="tags.mlflow.runName = 'build_dataset'",
        order_by=["attributes.start_time DESC"],
    )
    assert runs.iloc[0]["metrics.frame_cache_hits"] == 4.0
    assert runs.iloc[0]["metrics.frame_cache_misses"] == 0.0
    assert runs.iloc[1]["metrics.frame_cache_misses"] == 4.0
