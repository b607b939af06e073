"""benchmarks/train_gpu.py runs on CPU with --tiny and reports both stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_gpu_tiny_on_cpu() -> None:
    """Run the way the GPU machine runs it: PYTHONPATH=src python benchmarks/train_gpu.py."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "train_gpu.py"), "--tiny", "--device", "cpu",
           "--steps", "1", "--warmup", "0", "--target-tokens", "8", "--no-bf16"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    s1, s2 = out["stage1"], out["stage2"]
    assert s1["stage"] == 1 and s2["stage"] == 2
    # Stage 1: 1 bos + 32 prompt + 4 frames * (1 timestamp + 4 visual) + 2 * 16 ASR + 8 target.
    assert s1["llm_input_tokens"] == 1 + 32 + 4 * 5 + 2 * 16 + 8
    # Stage 2: 1 + 32 + S=4 + 4 frames * (1 + E=2) + 8; ASR goes to the compressor instead.
    assert s2["llm_input_tokens"] == 1 + 32 + 4 + 4 * 3 + 8
    assert s2["trainable_params"] < s1["trainable_params"]
    assert s1["step_s"] > 0 and s1["tokens_per_s"] > 0 and s1["mfu"] is None  # no peak on CPU
    # Only hivid.models, torch and transformers are imported on this path.
    probe = (
        "import sys, runpy; sys.argv=['x']; "
        "import importlib; importlib.import_module('hivid.models.synthetic'); "
        "import hivid.models.freezing; "
        "bad=[m for m in sys.modules if m.split('.')[0] in "
        "('lightning','mlflow','prefect','dvc','great_expectations','pytorch_lightning')]; "
        "print(bad)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert proc.stdout.strip() == "[]"
