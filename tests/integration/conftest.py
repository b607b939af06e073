"""One Prefect test harness per session (its ephemeral API takes ~15 s to start)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TINY_PARAMS as BASE_TINY_PARAMS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# Tiny settings of the same classes the demo uses: 2 short videos, the fast English Whisper,
# a handful of optimizer steps. A 4-step model cannot beat the trivial baseline, so these
# workspaces switch the promotion floor off: the tests that use them need a champion (lineage,
# warm start); test_gates.py runs the floor on a deliberately broken config.
TINY_PARAMS: dict[str, Any] = {**BASE_TINY_PARAMS, "registry": {"promotion": {"baseline": None}}}


def make_workspace(tmp: Path, overrides: dict[str, Any], videos: int = 2) -> Path:
    """A fresh git + DVC project holding this repo's pipeline and a small demo corpus."""
    from hivid.workspace import create_workspace

    return create_workspace(REPO, tmp / "ws", overrides, videos)


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
