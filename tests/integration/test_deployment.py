"""`prefect deploy` accepts prefect.yaml: the nightly deployment with its schedule and limits, and
pull steps that pin the code (a git clone of the deploying commit), not a host path.

The scheduler, the workers and the hand-off on real servers: tests/stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_prefect_deploy_accepts_the_deployment_file(tmp_path: Path) -> None:
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),  # a private ephemeral API for this test
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # each command starts its own ephemeral API: allow a loaded 2-core machine more than 20 s
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    env.pop("PREFECT_API_URL", None)

    def run(*args: str) -> str:
        proc = subprocess.run(
            [prefect, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run("work-pool", "create", "hivid-cpu", "--type", "process")
    run("work-pool", "create", "hivid-gpu", "--type", "process")
    assert "successfully created" in run("--no-prompt", "deploy", "--all")
    spec = run("deployment", "inspect", "hivid-nightly/nightly")
    for expected in (
        "'cron': '0 2 * * *'",
        "'timezone': 'Europe/Berlin'",
        "'limit': 1",
        "'collision_strategy': 'CANCEL_NEW'",
        "'work_pool_name': 'hivid-cpu'",
    ):
        assert expected in spec, expected
    gpu = run("deployment", "inspect", "hivid-train/train-gpu")
    assert "'work_pool_name': 'hivid-gpu'" in gpu
    assert "'train_deployment': 'hivid-train/train-gpu'" in spec
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    for deployment in (spec, gpu):
        # the code comes from a clone pinned to the deploying commit; the repository URL stays a
        # Variable reference, resolved by the worker when the run starts
        assert "'prefect.deployments.steps.git_clone'" in deployment
        assert f"'commit_sha': '{head}'" in deployment
        assert "'repository': '{{ prefect.variables.hivid_repo_url }}'" in deployment
        assert "set_working_directory" not in deployment
        # no credential is referenced by (and so frozen into) the deployment
        assert "prefect.blocks" not in deployment
