"""A training run SIGKILLed mid-epoch resumes at the last checkpoint's step, optimizer restored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import lightning as L
import torch

from hivid.models.narrator import narrator_config
from hivid.training.config import env_global_rank
from hivid.training.fit import TrainConfig, train_stage
from tests.helpers import make_dataset

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import lightning as L
    from hivid.models.narrator import narrator_config
    from hivid.training.fit import TrainConfig, train_stage

    class Kill(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == int(sys.argv[3]):
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final checkpoint

    cfg = narrator_config("tiny")
    tcfg = TrainConfig(max_steps=20, batch_size=1, checkpoint_every_n_steps=2, max_frames=3,
                       limit_val_batches=0, accelerator="cpu", devices=1)
    train_stage(1, Path(sys.argv[1]), Path(sys.argv[2]), cfg, tcfg, callbacks=[Kill()])
    """
)


class Probe(L.Callback):
    """Records the state the resumed run starts from."""

    def __init__(self) -> None:
        self.start_step = -1
        self.exp_avg: dict[int, torch.Tensor] = {}
        self.optimizer_step = -1.0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start_step = trainer.global_step
        opt = trainer.optimizers[0]
        for i, p in enumerate(q for g in opt.param_groups for q in g["params"]):
            state: dict[str, Any] = opt.state.get(p, {})
            if "exp_avg" in state:
                self.exp_avg[i] = state["exp_avg"].clone()
            if i == 0 and "step" in state:
                self.optimizer_step = float(state["step"])


def test_sigkilled_run_resumes_at_checkpoint_step(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "dataset", n_videos=7)  # 5 train videos: 5 steps per epoch
    out = tmp_path / "run"
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), str(data), str(out), "7"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = out / "checkpoints" / "last.ckpt"
    assert last.is_file() and not (out / "model").exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6  # the last multiple of 2 before the kill at step 7 (epoch 2)
    saved = ckpt["optimizer_states"][0]["state"]

    probe = Probe()
    cfg = narrator_config("tiny")
    tcfg = TrainConfig(max_steps=8, batch_size=1, checkpoint_every_n_steps=2, max_frames=3,
                       limit_val_batches=0, accelerator="cpu", devices=1)  # fmt: skip
    result = train_stage(1, data, out, cfg, tcfg, callbacks=[probe])
    assert probe.start_step == 6
    assert probe.optimizer_step == 6.0
    assert probe.exp_avg and set(probe.exp_avg) == set(saved)
    for i, avg in probe.exp_avg.items():
        assert torch.equal(avg, saved[i]["exp_avg"])
    assert result.metrics["steps"] == 8
    assert (out / "model" / "narrator_config.json").is_file()


def test_env_global_rank(monkeypatch: Any) -> None:
    for name in ("RANK", "SLURM_PROCID", "SLURM_NTASKS", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_global_rank() == 0
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert env_global_rank() == 0  # a single-task allocation is not a DDP rank
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert env_global_rank() == 3
    monkeypatch.setenv("RANK", "0")
    assert env_global_rank() == 0  # torchrun's RANK wins
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("SLURM_PROCID")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert env_global_rank() > 0
