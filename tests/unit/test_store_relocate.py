"""The embedded MLflow store survives moving the checkout (absolute artifact URIs are rewritten)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from hivid.tracking.runs import configure
from hivid.tracking.store import needs_relocation, relocate_store


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    monkeypatch.setenv("HIVID_EXPERIMENT", "hivid")
    _fresh_process_env()
    yield
    for k, v in saved.items():  # mlflow.set_tracking_uri() exports the variable itself
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _fresh_process_env() -> None:
    """What a new `hivid` process sees: no tracking URI left over from the last configure()."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


def _store_with_model(root: Path) -> tuple[str, str]:
    """A run with an artifact and a registered model version in ``root``'s embedded store."""
    configure(root)
    with mlflow.start_run() as run:
        mlflow.log_text("gate result", "quality/gate.json")
        mlflow.log_dict({"a": 1}, "model/narrator_config.json")
    client = MlflowClient()
    client.create_registered_model("m")
    mv = client.create_model_version("m", f"{run.info.artifact_uri}/model", run.info.run_id)
    return run.info.run_id, str(mv.version)


def _read_everything(root: Path, run_id: str, version: str, tmp: Path) -> None:
    _fresh_process_env()
    configure(root)
    client = MlflowClient()
    got = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="quality/gate.json", dst_path=str(tmp / "a")
    )
    assert Path(got).read_text() == "gate result"
    got = mlflow.artifacts.download_artifacts(f"models:/m/{version}", dst_path=str(tmp / "b"))
    assert (Path(got) / "narrator_config.json").is_file()
    exp = client.get_experiment_by_name("hivid")
    assert exp is not None and exp.artifact_location.startswith(root.resolve().as_uri())
    assert client.get_run(run_id).info.artifact_uri.startswith(root.resolve().as_uri())


def test_moved_checkout_heals_on_next_configure(tmp_path: Path, isolated: None) -> None:
    old = tmp_path / "old" / "checkout"
    old.mkdir(parents=True)
    run_id, version = _store_with_model(old)
    new = tmp_path / "elsewhere" / "checkout"
    new.parent.mkdir()
    shutil.move(str(old), str(new))
    db = new / "mlruns" / "mlflow.db"
    assert needs_relocation(db)
    _fresh_process_env()
    _read_everything(new, run_id, version, tmp_path / "dl")  # configure() rewrote the URIs
    assert not needs_relocation(db)
    assert relocate_store(db).total == 0  # idempotent


def test_relocate_command_rewrites_a_copy(tmp_path: Path, isolated: None) -> None:
    src = tmp_path / "src"
    src.mkdir()
    run_id, version = _store_with_model(src)
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    db = dst / "mlruns" / "mlflow.db"
    assert not needs_relocation(db)  # the original is still there: never rewritten silently
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hivid"), "store", "relocate"],
        cwd=dst,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "rewrote" in proc.stdout and str(src.resolve()) in proc.stdout, proc.stdout
    shutil.rmtree(src)
    _read_everything(dst, run_id, version, tmp_path / "dl")
