"""A stage whose inputs are missing fails fast, names the stage to run, and leaves nothing behind;
a busy DVC lock names its holder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CASES = {
    "train_stage2": (["train", "--stage", "2"], "run `hivid train --stage 1` first"),
    "evaluate": (["evaluate", "model"], "run `hivid train --stage 2` first"),
    "narrate": (["narrate", "/nonexistent.mp4"], "/nonexistent.mp4: no such video file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_inputs_fail_fast_with_no_run_and_no_outputs(tmp_path: Path, case: str) -> None:
    args, message = CASES[case]
    ws = tmp_path / "clean"
    ws.mkdir()
    (ws / "dvc.yaml").write_text("stages: {}\n")  # a clean clone: no outputs, no store
    (ws / "mlruns").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hivid"), *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 1, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "error" in x]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Errno" not in proc.stderr
    assert sorted(p.name for p in ws.iterdir()) == ["dvc.yaml", "mlruns"], list(ws.iterdir())
    assert list((ws / "mlruns").iterdir()) == []  # no MLflow store, so no run
    # the whole process, interpreter start included (the check itself is milliseconds); loose
    # because CI shares two cores: before the fix these took 10-35 s
    assert elapsed < 8, elapsed


def test_library_stage_checks_before_opening_a_run(tmp_path: Path) -> None:
    from hivid.preconditions import MissingInputError
    from hivid.stages import run_evaluate, run_train

    with pytest.raises(MissingInputError, match=r"stage1/model: no stage-1 model .*--stage 1"):
        run_train(
            tmp_path,
            tmp_path / "p.yaml",
            2,
            tmp_path / "ds",
            tmp_path / "o",
            tmp_path / "stage1/model",
        )
    with pytest.raises(MissingInputError, match=r"train\.jsonl: the train split not found"):
        run_train(tmp_path, tmp_path / "p.yaml", 1, tmp_path / "ds", tmp_path / "o", None)
    with pytest.raises(MissingInputError, match="run `hivid train --stage 2` first"):
        run_evaluate(
            tmp_path, tmp_path / "p.yaml", tmp_path / "m", tmp_path / "ds", tmp_path, tmp_path / "o"
        )
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "o").exists()


def test_busy_lock_names_its_holder() -> None:
    from hivid.pipeline import failure_reason

    lines = [
        "Running stage 'evaluate':",
        "ERROR: failed to reproduce 'evaluate': 'outputs/eval_metrics.json' is busy, it is being "
        "blocked by:",
        "  (PID 4242): /venv/bin/python -m dvc repro --single-item evaluate",
        "",
        "If there are no processes with such PIDs, you can manually remove '.dvc/tmp/rwlock' and "
        "try again.",
    ]
    lines = [x for x in lines if x]  # _repro drops empty lines
    reason = failure_reason(lines)
    assert "'outputs/eval_metrics.json' is busy" in reason
    assert "(PID 4242): /venv/bin/python -m dvc repro --single-item evaluate" in reason
    assert "another pipeline run holds it" in reason and ".dvc/tmp/rwlock" in reason
    assert not reason.endswith(":")
    assert failure_reason(["ok", "ERROR: boom"]) == "ERROR: boom"
    assert failure_reason(["a", "b"]) == "b"
