"""One Prefect test harness per session (its ephemeral API takes ~15 s to start)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


# Tiny settings of the same classes the demo uses: 2 short videos, the fast English Whisper,
# a handful of optimizer steps.
TINY_PARAMS: dict[str, Any] = {
    "demo": {"videos": 2},
    "annotate": {"asr_model": "tiny.en"},
    "train_stage1": {"max_steps": 4},
    "train_stage2": {"max_steps": 4},
    "evaluate": {"max_new_tokens": 48},
}


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_workspace(tmp: Path, overrides: dict[str, Any], videos: int = 2) -> Path:
    """A fresh git + DVC project holding this repo's pipeline and a small demo corpus."""
    ws = tmp / "ws"
    ws.mkdir()
    for name in ("dvc.yaml", "prefect.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, ws / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "flows", ws / "flows", ignore=ignore)
    shutil.copytree(REPO / "src", ws / "src", ignore=ignore)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    _deep_update(params, overrides)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (ws / "mlruns").mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run(["git", "init", "-q"], ws)
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "init", "-q"], ws)
    run([*dvc, "config", "core.analytics", "false"], ws)
    run([*dvc, "remote", "add", "-d", "local", str(ws / "dvcstore")], ws)

    from hivid.config import load_section
    from hivid.data.demo import generate_demo_corpus

    cfg = load_section(ws / "params.yaml", "demo")
    cfg.videos = videos
    generate_demo_corpus(ws / "data", cfg)
    run([*dvc, "add", "-q", "data"], ws)
    run(["git", "add", "-A"], ws)
    run([*git, "commit", "-qm", "workspace"], ws)
    return ws


@pytest.fixture(scope="module")
def nightly_run(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    """One real nightly run on a fresh 2-video workspace, shared by the tests of a module."""
    from flows.nightly import nightly

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    ws = make_workspace(tmp_path_factory.mktemp("nightly"), TINY_PARAMS)
    return ws, nightly(repo=str(ws), demo=False)


def hivid(ws: Path, *args: str) -> subprocess.CompletedProcess:
    """The real CLI, run in the workspace (same install as the tests)."""
    exe = Path(sys.executable).parent / "hivid"
    return subprocess.run([str(exe), *args], cwd=ws, capture_output=True, text=True)
