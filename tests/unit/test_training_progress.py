"""Training progress reaches a log (not a terminal) as plain lines at least every N seconds."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from hivid.training.progress import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_line_whenever_the_interval_has_passed() -> None:
    clock, out = Clock(), io.StringIO()
    cb = ProgressLog("train stage 1", every_s=30.0, clock=clock, stream=out)
    trainer = SimpleNamespace(
        global_step=0, max_steps=300, is_global_zero=True, callback_metrics={}
    )
    cb.on_train_start(trainer, None)
    for step in range(1, 301):  # 0.25 s per step: 75 s in all
        clock.t += 0.25
        trainer.global_step = step
        trainer.callback_metrics = {"train_loss": 3.0 - step / 150}
        cb.on_train_batch_end(trainer, None, None, None, step)
    cb.on_train_end(trainer, None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "train stage 1: training 300 steps"
    assert lines[1] == (
        "train stage 1: step 120/300 (40%), loss 2.2000, 4.00 steps/s, elapsed 30s, ETA 45s"
    )
    assert lines[2].startswith("train stage 1: step 240/300 (80%)")
    assert lines[-1].startswith("train stage 1: done, step 300/300 (100%)")
    assert len(lines) == 4  # 75 s: start, 30 s, 60 s, end


def test_resumed_run_counts_only_its_own_steps_and_other_ranks_are_quiet() -> None:
    clock, out = Clock(), io.StringIO()
    cb = ProgressLog("train stage 2", every_s=10.0, clock=clock, stream=out)
    trainer = SimpleNamespace(
        global_step=100, max_steps=200, is_global_zero=True, callback_metrics={}
    )
    cb.on_train_start(trainer, None)
    clock.t += 20.0
    trainer.global_step = 110
    cb.on_train_batch_end(trainer, None, None, None, 0)
    assert "resumed at step 100" in out.getvalue()
    assert "step 110/200 (55%), 2.0 s/step, elapsed 20s, ETA 3m00s" in out.getvalue()
    quiet = io.StringIO()
    other = ProgressLog("x", every_s=0.001, stream=quiet)
    rank1 = SimpleNamespace(global_step=0, max_steps=5, is_global_zero=False, callback_metrics={})
    other.on_train_start(rank1, None)
    other.on_train_batch_end(rank1, None, None, None, 0)
    assert quiet.getvalue() == ""


def test_train_stage_prints_progress_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hivid.models.narrator import narrator_config
    from hivid.training.fit import TrainConfig, train_stage
    from tests.helpers import make_dataset

    data = make_dataset(tmp_path / "dataset", n_videos=3)
    tcfg = TrainConfig(max_steps=3, batch_size=1, max_frames=4, limit_val_batches=0,
                       accelerator="cpu", devices=1, progress_every_s=1e-6)  # fmt: skip
    train_stage(1, data, tmp_path / "stage1", narrator_config("tiny"), tcfg)
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("train stage 1:")]
    assert lines[0] == "train stage 1: training 3 steps"
    assert any(x.startswith("train stage 1: step 2/3 (67%), loss ") and "ETA" in x for x in lines)
    assert lines[-1].startswith("train stage 1: done, step 3/3 (100%)")
