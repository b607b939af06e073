"""Gates that refuse a model that does not narrate, through the real flow and CLI on a tiny
workspace: a deliberately broken training config (1 step) yields a challenger the promotion gate
refuses (below the trivial baseline, with no champion yet), with the reason printed; the nightly
log shows training progress; an evaluate-only change attaches its metrics to the registered
version and the summary says nothing was trained."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from .conftest import TINY_PARAMS, hivid, make_workspace

pytestmark = pytest.mark.slow

BROKEN = {
    **TINY_PARAMS,
    "train_stage1": {"max_steps": 1},
    "train_stage2": {"max_steps": 1},
    "registry": {"promotion": {"baseline": "trivial", "baseline_margin": 0.0}},
}


def _flow_logs(flow_run_id: str) -> list[str]:
    """Every log message of the flow run (its tasks' included), as the Prefect API stored them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)  # logs are sent in the background: all of them first
    flt = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    out: list[str] = []
    with get_client(sync_client=True) as client:
        while batch := client.read_logs(flt, limit=200, offset=len(out)):
            out += [log.message for log in batch]
    return out


def test_broken_training_is_refused_and_evaluate_only_change_attaches_metrics(
    prefect_harness: None, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    ws = make_workspace(tmp_path, BROKEN)
    first = nightly(repo=str(ws), demo=False, push_data=False)
    assert first["status"] == "succeeded", first
    decision = first["promotion"]
    assert not decision["promoted"] and decision["champion_before"] is None
    assert "does not beat the trivial baseline" in decision["text"], decision["text"]
    assert f"promotion: version {first['model']['version']} kept as challenger" in first["text"]
    assert "does not beat the trivial baseline" in first["text"]  # the printed summary
    # the summary puts the model beside the baselines
    table = first["text"].split("metrics (test split", 1)[1].splitlines()
    assert table[1].split() == ["model", "teacher", "trivial"]
    assert table[2].split()[0] == "SODA_c" or table[2].split()[0] == "F1"

    mlflow.set_tracking_uri(f"sqlite:///{ws / 'mlruns' / 'mlflow.db'}")
    client = MlflowClient()
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("hivid-narrator", "champion")
    version = first["model"]["version"]
    mv = client.get_model_version("hivid-narrator", version)
    ev1 = client.get_run(mv.tags["eval.run"])
    assert ev1.data.tags["model.run"] == mv.run_id
    assert "baseline_trivial.F1" in ev1.data.metrics and "pred_chapters_clipped" in ev1.data.metrics

    # the real CLI says why, too
    out = hivid(ws, "promote", "--version", version)
    assert out.returncode == 0, out.stderr
    assert "kept as challenger" in out.stdout and "trivial baseline" in out.stdout

    # the nightly log showed training progress (step, loss, ETA) from inside `dvc repro`
    flow_run = client.get_run(first["run_id"]).data.tags["prefect.flow_run"]
    lines = [x for x in _flow_logs(flow_run) if x.startswith("train stage")]
    assert any(x.startswith("train stage 1: done, step 1/1") and "loss" in x and "ETA" in x
               for x in lines), lines  # fmt: skip
    assert any(x.startswith("train stage 2: training 1 steps") for x in lines), lines

    # an evaluate-only change: nothing is trained, the new metrics go to the same version
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["evaluate"]["max_new_tokens"] = 32
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = nightly(repo=str(ws), demo=False, push_data=False)
    assert second["status"] == "succeeded", second
    assert second["stages"]["train_stage1"] == "skipped"
    assert second["stages"]["evaluate"] == "ran"
    assert second["model"]["version"] == version
    assert "training: nothing trained in this run" in second["text"]
    assert "training: full" not in second["text"]  # the first run's plan is not repeated
    ev2 = client.get_model_version("hivid-narrator", version).tags["eval.run"]
    assert ev2 != ev1.info.run_id
    assert client.get_run(ev2).data.params["evaluate.max_new_tokens"] == "32"
    assert second["promotion"]["eval_run"] == ev2  # judged by the metrics of its own new eval
