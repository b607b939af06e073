"""Training progress as plain log lines: step, loss, speed and ETA at least every ``every_s``.

Lightning's progress bar redraws one terminal line with carriage returns; in the nightly run the
stage's output goes through `dvc repro` into the Prefect log, where that is either one line at the
end of the epoch or a flood. ``ProgressLog`` prints one ordinary line (flushed) when training
starts, then whenever ``every_s`` seconds have passed since the last line (checked after every
optimizer step, so a line is never later than one step), and when it ends::

    train stage 1: step 120/300 (40%), loss 2.3456, 1.85 steps/s, elapsed 1m05s, ETA 1m37s

Only rank 0 prints. The clock is injectable for tests.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from lightning.pytorch.callbacks import Callback


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressLog(Callback):
    """Print training progress every ``every_s`` seconds (and at start and end)."""

    def __init__(
        self,
        label: str,
        every_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.label = label
        self.every_s = every_s
        self.clock = clock
        self.stream = stream
        self.lines = 0
        self._t0 = 0.0
        self._last = 0.0
        self._step0 = 0

    def _print(self, text: str) -> None:
        print(f"{self.label}: {text}", file=self.stream or sys.stdout, flush=True)
        self.lines += 1

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._t0 = self._last = self.clock()
        self._step0 = int(trainer.global_step)  # > 0 when resuming: speed counts new steps only
        if trainer.is_global_zero:
            resumed = f" (resumed at step {self._step0})" if self._step0 else ""
            self._print(f"training {self._total(trainer)} steps{resumed}")

    @staticmethod
    def _total(trainer: Any) -> int:
        return int(trainer.max_steps) if trainer.max_steps and trainer.max_steps > 0 else 0

    def line(self, trainer: Any) -> str:
        step, total = int(trainer.global_step), self._total(trainer)
        elapsed = self.clock() - self._t0
        done = step - self._step0
        rate = done / elapsed if elapsed > 0 and done > 0 else float("nan")
        eta = (total - step) / rate if total and rate > 0 else float("nan")
        loss = trainer.callback_metrics.get("train_loss")
        parts = [f"step {step}/{total}" + (f" ({100 * step / total:.0f}%)" if total else "")]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if math.isfinite(rate):
            parts.append(f"{rate:.2f} steps/s" if rate >= 1 else f"{1 / rate:.1f} s/step")
        parts += [f"elapsed {_duration(elapsed)}", f"ETA {_duration(eta)}"]
        return ", ".join(parts)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        now = self.clock()
        if now - self._last >= self.every_s:
            self._last = now
            if trainer.is_global_zero:
                self._print(self.line(trainer))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.is_global_zero:
            self._print("done, " + self.line(trainer))
