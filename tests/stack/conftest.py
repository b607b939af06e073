"""The real stack (infra/stack.py), started once per test session in a temporary directory.

PostgreSQL, SeaweedFS S3, the MLflow server (basic auth) and the Prefect server (auth string) on
free 127.0.0.1 ports, one worker per work pool, a CPU-only GPU pool (``hivid_require_gpu=0``).
The *origin* repository is a fresh 2-video workspace (tiny configs) whose data is pushed to the
stack's S3 only; workers clone it, a third clean checkout traces the lineage.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TINY_PARAMS

REPO = Path(__file__).resolve().parents[2]
STACK_PY = REPO / "infra" / "stack.py"


class StackInfo:
    def __init__(self, root: Path, origin: Path) -> None:
        self.root = root
        self.origin = origin
        self.secrets: dict[str, str] = json.loads((root / "secrets.json").read_text())
        env: dict[str, str] = {}
        for line in (root / "env").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export ") :].partition("=")
                env[key] = value.strip("'")
        self.client_env = env

    def env(self, **extra: str) -> dict[str, str]:
        """The caller's environment pointed at the stack (for subprocesses)."""
        drop = ("MLFLOW_", "AWS_", "PREFECT_", "HIVID_")
        base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        path = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])
        return {**base, **self.client_env, "PATH": path, "PREFECT_HOME": str(self.home), **extra}

    @property
    def home(self) -> Path:
        return self.root / "test-client"

    def prefect(self) -> Any:
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(
            self.client_env["PREFECT_API_URL"],
            auth_string=self.client_env["PREFECT_API_AUTH_STRING"],
        )

    def mlflow(self) -> Any:
        """An MLflow client of the server (credentials from the environment: see the fixture)."""
        from mlflow.tracking import MlflowClient

        # the registry too: this process may have configured another project's store before
        uri = self.client_env["MLFLOW_TRACKING_URI"]
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.client_env["AWS_ENDPOINT_URL"],
            aws_access_key_id=self.client_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.client_env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.client_env["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}),
        )


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} in {cwd}: {proc.stdout[-1500:]}{proc.stderr[-3000:]}"
    return proc.stdout


def use_stack_remote(checkout: Path, env: dict[str, str]) -> None:
    """The checkout's git-ignored DVC config points at the stack's S3 (as `make stack-up`)."""
    dvc = [sys.executable, "-m", "dvc", "remote"]
    run(
        [*dvc, "add", "--local", "--force", "--default", "hivid", env["HIVID_DVC_REMOTE"]],
        checkout,
        env,
    )
    run([*dvc, "modify", "--local", "hivid", "endpointurl", env["AWS_ENDPOINT_URL"]], checkout, env)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    from hivid.workspace import create_workspace

    origin = create_workspace(REPO, tmp_path_factory.mktemp("origin") / "hivid-ops", TINY_PARAMS)
    # Not under pytest's 0700 base: the cluster's own user must reach its directory.
    root = Path(tempfile.mkdtemp(prefix="hivid-stack-"))
    cmd = [sys.executable, str(STACK_PY), "--dir", str(root)]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    proc = subprocess.run(
        [
            *cmd[:2],
            "up",
            *cmd[2:],
            "--require-gpu",
            "0",
            "--repo-url",
            str(origin),
            "--scheduler-loop-seconds",
            "5",
        ],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (root / "logs" / "up.json").write_text(proc.stdout.splitlines()[0])  # its timings
        info = StackInfo(root, origin)
        # the origin's data lives in the stack's S3 only (its local remote is never written)
        use_stack_remote(origin, info.env())
        run([sys.executable, "-m", "dvc", "push", "data.dvc"], origin, info.env())
        yield info
    finally:
        # the servers' and workers' logs outlive the stack (pytest keeps its last base temps)
        shutil.copytree(
            root / "logs", tmp_path_factory.getbasetemp() / "stack-logs", dirs_exist_ok=True
        )
        if not os.environ.get("HIVID_STACK_KEEP"):  # debugging: leave it running
            subprocess.run(
                [*cmd[:2], "down", *cmd[2:]], env=base_env, capture_output=True, timeout=180
            )
            pg_path = root / "pg.path"
            if pg_path.is_file():  # the cluster may live out of tree (see infra/stack.py)
                shutil.rmtree(pg_path.read_text().strip(), ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack_env(stack: StackInfo, monkeypatch: pytest.MonkeyPatch) -> StackInfo:
    """This test's own process pointed at the stack (undone afterwards)."""
    for k, v in stack.client_env.items():
        monkeypatch.setenv(k, v)
    return stack
