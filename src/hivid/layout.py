"""Where things live in a checkout, relative to the project root: the one place these paths are
spelled in code (``dvc.yaml`` spells the stage outputs too; ``tests/unit/test_layout.py`` checks
the two agree). Join with a root for absolute paths: ``root / layout.QUALITY_GATE``.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path("data")
"""The DVC-tracked corpus (videos + metadata)."""
OUTPUTS = Path("outputs")
"""Stage outputs (DVC-managed, never in git)."""

INGEST = OUTPUTS / "ingest"
"""``ingest``: the manifest and its quarantine rows."""
MANIFEST = INGEST / "manifest.jsonl"
INGEST_QUARANTINE = INGEST / "quarantine.jsonl"
ANNOTATIONS = OUTPUTS / "annotations"
"""``annotate``: one record per video."""
ANNOTATE_QUARANTINE = OUTPUTS / "annotate_quarantine.jsonl"
QUALITY = OUTPUTS / "quality"
"""``validate``: the annotation gate."""
QUALITY_GATE = QUALITY / "gate.json"
QUALITY_QUARANTINE = QUALITY / "quarantine.jsonl"
DATASET = OUTPUTS / "dataset"
"""``build_dataset``: splits and features."""
SPLITS_GATE = DATASET / "quality" / "gate.json"
FRAME_CACHE = OUTPUTS / "frame_cache"
WARM_START = OUTPUTS / "warm_start"
"""``warm_start``: the training plan."""
WARM_START_PLAN = WARM_START / "plan.json"
CKPT = OUTPUTS / "ckpt"
EVAL = OUTPUTS / "eval"
"""``evaluate``: predictions and metrics of the stage-2 model and the baselines."""
EVAL_METRICS = EVAL / "metrics.json"
EVAL_METRICS_SUMMARY = OUTPUTS / "eval_metrics.json"
"""The DVC metrics file of ``evaluate``."""
QUARANTINE = OUTPUTS / "quarantine"
"""Every quarantined file and why (``report.md``)."""
QUARANTINE_REPORT = QUARANTINE / "report.md"
NARRATE = OUTPUTS / "narrate"
"""``hivid narrate VIDEO``: one folder per video."""
COMPARE_REPORT = OUTPUTS / "compare" / "report.html"
"""The nightly's comparison of the new model with the champion."""

MLFLOW_RUN = "mlflow_run.json"
"""The file beside a stage's outputs naming the MLflow run that made them."""


def ckpt(stage: int) -> Path:
    """``train_stage<N>``'s output folder (``model/`` and ``mlflow_run.json`` inside)."""
    return CKPT / f"stage{stage}"


def model_dir(stage: int) -> Path:
    """The trained model of stage ``stage``."""
    return ckpt(stage) / "model"
