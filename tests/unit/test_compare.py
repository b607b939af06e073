"""`hivid compare` shows each subject's own runs and own evaluation, and clips timelines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hivid.tracking.compare import _timeline_png, build_report, clip_spans


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mlruns").mkdir()
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return tmp_path


def run(
    stage: str | None,
    tags: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> str:
    client = MlflowClient()
    exp = client.get_experiment_by_name("hivid") or client.get_experiment(
        client.create_experiment("hivid")
    )
    all_tags = {**({"hivid.stage": stage} if stage else {"hivid.kind": "pipeline"}), **(tags or {})}
    if "parent.run" in all_tags:
        all_tags["mlflow.parentRunId"] = all_tags["parent.run"]
    r = client.create_run(exp.experiment_id, tags=all_tags)
    for k, v in (params or {}).items():
        client.log_param(r.info.run_id, k, v)
    for k, v in (metrics or {}).items():
        client.log_metric(r.info.run_id, k, v)
    client.set_terminated(r.info.run_id)
    time.sleep(0.01)  # distinct start times
    return r.info.run_id


def test_two_training_runs_show_their_own_params_and_evaluations(store: Path) -> None:
    p1 = run(None)
    a1 = run("train_stage1", {"parent.run": p1}, {"train.lr": 0.003})
    a2 = run(
        "train_stage2", {"parent.run": p1, "upstream.train_stage1.run": a1}, {"train.lr": 0.001}
    )
    # someone scored the stage-1 model on its own, then the pipeline scored stage 2
    run("evaluate", {"model.run": a1}, {"evaluate.max_new_tokens": 512}, {"SODA_c": 0.05})
    run("evaluate", {"parent.run": p1, "model.run": a2}, {"evaluate.max_new_tokens": 512},
        {"SODA_c": 0.10})  # fmt: skip
    _, s = build_report(store, [a1, a2])
    m = s["metrics"]
    assert [v["SODA_c"] for v in m.values()] == [0.05, 0.10]
    assert s["model_runs"] == [a1, a2]
    assert "train_stage2: train.lr" in s["params_differing"]

    # an evaluate-only nightly: its pipeline run stands for the stage-2 model it re-scored, with
    # that model's training params, and its new evaluation
    p2 = run(None)
    run("evaluate", {"parent.run": p2, "model.run": a2}, {"evaluate.max_new_tokens": 64},
        {"SODA_c": 0.12})  # fmt: skip
    html, s = build_report(store, [a2, p2])
    assert [v["SODA_c"] for v in s["metrics"].values()] == [0.12, 0.12]  # a2's newest
    assert s["model_runs"] == [a2, a2]
    assert "Whose evaluation" in html

    # a stage-1 run nobody evaluated says so instead of borrowing its pipeline's evaluation
    b1 = run("train_stage1", {"parent.run": p2}, {"train.lr": 0.01})
    html, s = build_report(store, [b1, a2])
    assert s["metrics"][next(iter(s["metrics"]))] == {} and s["eval_runs"][0] is None
    assert f"no evaluate run scored the model of run {b1}" in html


def test_timelines_are_clipped_to_the_video() -> None:
    spans, changed = clip_spans([(0.0, 10.0), (31.4, 34.6), (33.0, 35.0)], 32.5)
    assert spans == [(0.0, 10.0), (31.4, 32.5)] and changed == 2
    gt = {"duration": 32.5, "timestamps": [[0.0, 16.0], [16.0, 32.5]], "sentences": ["a", "b"]}
    png = _timeline_png("v", gt, [("model", [{"timestamp": [31.4, 34.6], "sentence": "x"}])])
    assert len(png) > 100
