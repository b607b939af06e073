"""The registry follows the project a process configures, unless the user set one."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import pytest

from hivid.tracking import runs


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setattr(runs, "_exported_registry", None)


def test_second_project_in_one_process_gets_its_own_registry(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    runs.configure(a)
    assert mlflow.get_registry_uri() == runs.tracking_uri(a)
    # MLflow exported both URIs for subprocesses; a nightly test (or a long-lived worker) that
    # moves on to another project clears the tracking URI it set, never the registry's
    assert os.environ["MLFLOW_REGISTRY_URI"] == runs.tracking_uri(a)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    runs.configure(b)
    assert mlflow.get_registry_uri() == runs.tracking_uri(b)


def test_a_registry_the_user_set_is_kept(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = f"sqlite:///{tmp_path / 'registry.db'}"
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", own)
    runs.configure(tmp_path / "a")
    assert mlflow.get_registry_uri() == own
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    runs.configure(tmp_path / "b")
    assert mlflow.get_registry_uri() == own
