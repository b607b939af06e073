"""The nightly summary: model vs baselines side by side, and what this run trained (or not);
`repro_stage` streams a stage's output into the log while it runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from hivid.io import write_json
from hivid.pipeline import repro_stage, summary_text


def _outputs(root: Path) -> None:
    write_json(
        root / "outputs/warm_start/plan.json",
        {"mode": "full", "steps": {"stage1": 300, "stage2": 150}, "reason": "no champion"},
    )
    write_json(root / "outputs/ckpt/stage2/mlflow_run.json", {"run_id": "abc123"})
    write_json(
        root / "outputs/eval/metrics.json",
        {
            "SODA_c": 0.0004, "F1": 0.0, "videos": 2.0, "pred_chapters_clipped": 1.0,
            "baseline_trivial.SODA_c": 0.1234, "baseline_trivial.F1": 0.9,
            "baseline_teacher.SODA_c": 0.3456, "baseline_teacher.F1": 0.95,
        },
    )  # fmt: skip


def test_summary_shows_model_and_baselines_side_by_side(tmp_path: Path) -> None:
    _outputs(tmp_path)
    stages = {"train_stage1": "ran", "train_stage2": "ran", "evaluate": "ran"}
    text = summary_text(tmp_path, {"status": "succeeded", "stages": stages})
    lines = text.splitlines()
    i = next(k for k, x in enumerate(lines) if x.startswith("metrics (test split, 2 videos)"))
    assert lines[i + 1].split() == ["model", "teacher", "trivial"]
    assert lines[i + 2].split() == ["SODA_c", "0.0004", "0.3456", "0.1234"]
    assert lines[i + 3].split() == ["F1", "0.0000", "0.9500", "0.9000"]
    assert "pred_chapters_clipped=1.0000" in text
    assert "training: full (stage1 300 steps, stage2 150 steps) - no champion" in text


def test_summary_of_a_run_that_trained_nothing_says_so(tmp_path: Path) -> None:
    _outputs(tmp_path)
    stages = {"train_stage1": "skipped", "train_stage2": "skipped", "evaluate": "ran"}
    text = summary_text(tmp_path, {"status": "succeeded", "stages": stages})
    assert "training: nothing trained in this run (train_stage1 skipped, train_stage2 skipped)" in (
        text
    )
    assert "the model is the one trained by run abc123" in text
    assert "no champion" not in text  # the previous run's plan is not repeated
    unchanged = {s: "skipped (unchanged)" for s in ("train_stage1", "train_stage2", "evaluate")}
    text = summary_text(tmp_path, {"status": "succeeded", "stages": unchanged})
    assert "nothing trained in this run" in text and "an earlier run's" in text
    early = summary_text(tmp_path, {"status": "FAILED: x", "stages": {"validate": "ran"}})
    assert "training: not reached in this run" in early


def test_repro_stage_streams_output_while_the_stage_runs(tmp_path: Path) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    script = "import time; print('first', flush=True); time.sleep(3); print('second')"
    (tmp_path / "slow.py").write_text(script)
    (tmp_path / "dvc.yaml").write_text(
        json.dumps(
            {"stages": {"slow": {"cmd": f"{sys.executable} slow.py", "always_changed": True}}}
        )
    )
    seen: list[tuple[float, str]] = []
    how = repro_stage(tmp_path, "slow", None, lambda x: seen.append((time.monotonic(), x)))
    assert how == "ran"
    t = {x: when for when, x in seen}
    assert "first" in t and "second" in t
    assert t["second"] - t["first"] > 2.0  # 'first' reached the log before the stage ended
