"""The stack's cost: `stack up` cold and warm, and the nightly on the stack vs the embedded default.

    .venv/bin/python benchmarks/stack.py [--videos 2] [--json]

In one run, side by side:
1. `infra/stack.py up` in a fresh state directory (cold: initdb, migrations, buckets), `down`,
   then `up` again on the same state (warm);
2. the nightly on N demo videos with the embedded default (`hivid nightly --no-demo`: ephemeral
   Prefect API, sqlite MLflow, local DVC remote) in one fresh workspace;
3. the same nightly as the `hivid-nightly/nightly` deployment on the stack (a copy of that
   workspace as the origin, data pushed to S3, `prefect deploy --all`, the CPU worker's clone,
   training handed to the GPU pool's deployment), timed from the run's creation to its end.
Tiny training settings (4 steps per stage) so the platform's overhead shows, not the model's.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
TINY: dict[str, Any] = {
    "annotate": {"asr_model": "tiny.en"},
    "train_stage1": {"max_steps": 4},
    "train_stage2": {"max_steps": 4},
    "evaluate": {"max_new_tokens": 48},
}


def _stack_module() -> Any:
    spec = importlib.util.spec_from_file_location("hivid_stack", REPO / "infra" / "stack.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hivid_stack"] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed in {cwd}: {proc.stdout[-800:]}{proc.stderr[-1500:]}")
    return proc.stdout


def _clean_env() -> dict[str, str]:
    drop = ("MLFLOW_", "AWS_", "PREFECT_", "HIVID_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    stackmod = _stack_module()
    from hivid.workspace import create_workspace

    tmp = Path(tempfile.mkdtemp(prefix="hivid-bench-stack-"))
    tmp.chmod(0o711)
    out: dict[str, Any] = {"videos": args.videos}
    stack = stackmod.Stack(tmp / "stack")
    try:
        params = {**TINY, "demo": {"videos": args.videos}}
        embedded = create_workspace(REPO, tmp / "embedded" / "hivid-ops", params, args.videos)
        origin = create_workspace(REPO, tmp / "origin" / "hivid-ops", params, args.videos)

        t0 = time.perf_counter()
        stackmod.up(stack, None, "0", repo_url=str(origin))
        out["stack_up_cold_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        stackmod.down(stack)
        out["stack_down_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        stackmod.up(stack, None, "0", repo_url=str(origin))
        out["stack_up_warm_s"] = round(time.perf_counter() - t0, 1)

        env = _clean_env()
        t0 = time.perf_counter()
        _run([str(BIN / "hivid"), "nightly", "--repo", str(embedded), "--no-demo"], embedded, env)
        out["nightly_embedded_s"] = round(time.perf_counter() - t0, 1)

        senv = {**env, **stack.client_env(), "PREFECT_HOME": str(tmp / "client")}
        dvc = [sys.executable, "-m", "dvc"]
        _run(
            [*dvc, "remote", "add", "--local", "-f", "-d", "hivid", senv["HIVID_DVC_REMOTE"]],
            origin,
            senv,
        )
        _run(
            [*dvc, "remote", "modify", "--local", "hivid", "endpointurl", senv["AWS_ENDPOINT_URL"]],
            origin,
            senv,
        )
        _run([*dvc, "push", "data.dvc"], origin, senv)
        _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], origin, senv)
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(
            senv["PREFECT_API_URL"], auth_string=senv["PREFECT_API_AUTH_STRING"]
        ) as client:
            dep = client.read_deployment_by_name("hivid-nightly/nightly")
            t0 = time.perf_counter()
            fr = client.create_flow_run_from_deployment(dep.id)
            while True:
                fr = client.read_flow_run(fr.id)
                if fr.state and fr.state.is_final():
                    break
                time.sleep(2)
            out["nightly_stack_s"] = round(time.perf_counter() - t0, 1)
            out["nightly_stack_state"] = fr.state.name
        out["ratio_stack_vs_embedded"] = round(
            out["nightly_stack_s"] / out["nightly_embedded_s"], 2
        )
    finally:
        stackmod.down(stack)
        pg = tmp / "stack" / "pg.path"
        if pg.is_file():
            shutil.rmtree(pg.read_text().strip(), ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
        return
    print(f"{'measure':34s} {'value':>10s}")
    for k, v in out.items():
        print(f"{k:34s} {v!s:>10s}")


if __name__ == "__main__":
    main()
