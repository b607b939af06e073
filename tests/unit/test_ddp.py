"""DDP with 2 CPU processes (torchrun + gloo) and the rank-0-only tracking rule."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hivid.training.fit import TrainResult
from tests.helpers import make_dataset

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import lightning as L
    import torch
    from hivid.models.narrator import narrator_config
    from hivid.training.fit import TrainConfig, train_stage

    class Grab(L.Callback):
        def on_train_end(self, trainer, module):
            self.world = torch.distributed.get_world_size()
            self.backend = torch.distributed.get_backend()
            self.weights = [float(p.detach().double().sum()) for p in module.model.parameters()]

    grab = Grab()
    tcfg = TrainConfig(max_steps=3, batch_size=1, checkpoint_every_n_steps=2, max_frames=3,
                       limit_val_batches=1, accelerator="cpu", devices=2, strategy="ddp")
    out = Path(sys.argv[2])
    r = train_stage(1, Path(sys.argv[1]), out, narrator_config("tiny"), tcfg, callbacks=[grab])
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps({
        "steps": r.metrics["steps"], "world": grab.world, "backend": grab.backend,
        "weights": grab.weights}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "dataset", n_videos=8)  # 6 train videos: 3 per rank
    out = tmp_path / "run"
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           str(script), str(data), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{k}.json").read_text()) for k in (0, 1)]
    for r in ranks:
        assert r["world"] == 2 and r["backend"] == "gloo" and r["steps"] == 3
    # Rank 0 alone wrote the model and the metrics; every rank ended with the same weights.
    assert (out / "model" / "narrator_config.json").is_file() and (out / "metrics.json").is_file()
    assert ranks[0]["weights"] == ranks[1]["weights"]


def test_nonzero_rank_opens_no_mlflow_run(tmp_path: Path, monkeypatch: Any) -> None:
    import hivid.stages as stages
    import hivid.training.fit as fit

    calls: list[str] = []

    def fake_train_stage(*args: Any, **kwargs: Any) -> TrainResult:
        calls.append("train")
        return TrainResult(tmp_path, {"steps": 1.0}, [], tmp_path / "last.ckpt")

    def no_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rank 1 must not open an MLflow run")

    monkeypatch.setattr(fit, "train_stage", fake_train_stage)
    monkeypatch.setattr(stages, "stage_run", no_run)
    monkeypatch.setenv("RANK", "1")
    (tmp_path / "train.jsonl").touch()  # the stage checks its input exists before training
    r = stages.run_train(ROOT, ROOT / "params.yaml", 1, tmp_path, tmp_path / "out", None)
    assert calls == ["train"] and r["run_id"] == "" and r["metrics"]["steps"] == 1.0
