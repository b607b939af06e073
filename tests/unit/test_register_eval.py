"""`hivid register` attaches only the evaluation of the version's own model, and an
evaluate-only change re-attaches the new evaluation to the same version (never orphaned)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hivid.io import write_json
from hivid.stages import run_register

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "mlruns").mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HIVID_PARENT_RUN_ID", raising=False)
    monkeypatch.setenv("HIVID_EXPERIMENT", "register-test")
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    return tmp_path


def _run(tags: dict[str, str]) -> str:
    with mlflow.start_run(tags=tags) as r:
        pass
    return r.info.run_id


def test_register_attaches_the_model_s_own_evaluation(project: Path) -> None:
    from hivid.tracking.runs import configure

    configure(project)
    client = MlflowClient()
    train = _run({"hivid.stage": "train_stage2", "gx.result": "g:success"})
    client.create_registered_model("hivid-narrator")
    client.create_model_version("hivid-narrator", "file:///nowhere", train)  # version 1
    write_json(project / "outputs/ckpt/stage2/mlflow_run.json",
               {"run_id": train, "model_uri": "file:///nowhere"})  # fmt: skip
    params = project / "params.yaml"

    ev1 = _run({"hivid.stage": "evaluate", "model.run": train})
    write_json(project / "outputs/eval/mlflow_run.json", {"run_id": ev1})
    r = run_register(project, params, project / "outputs/ckpt/stage2")
    assert r["version"] == "1" and "warning" not in r
    assert client.get_model_version("hivid-narrator", "1").tags["eval.run"] == ev1

    # evaluate-only change: same weights, same version, the new evaluation attached
    ev2 = _run({"hivid.stage": "evaluate", "model.run": train})
    write_json(project / "outputs/eval/mlflow_run.json", {"run_id": ev2})
    assert run_register(project, params, project / "outputs/ckpt/stage2")["version"] == "1"
    assert client.get_model_version("hivid-narrator", "1").tags["eval.run"] == ev2

    # outputs/eval holds another model's evaluation: not attached, and said
    other = _run({"hivid.stage": "evaluate", "model.run": "someone-else"})
    write_json(project / "outputs/eval/mlflow_run.json", {"run_id": other})
    r = run_register(project, params, project / "outputs/ckpt/stage2")
    assert "scored the model of run someone-else" in r["warning"]
    assert client.get_model_version("hivid-narrator", "1").tags["eval.run"] == ev2
    write_json(project / "outputs/eval/mlflow_run.json", {"run_id": "0" * 32})  # another store's
    r = run_register(project, params, project / "outputs/ckpt/stage2")
    assert "is not in this tracking store" in r["warning"]
