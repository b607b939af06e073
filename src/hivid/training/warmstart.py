"""Incremental nightly training: continue from the champion when only a little data is new.

A nightly run whose training split grew by a few videos does not need two full training stages.
``plan_warm_start`` decides, from the champion's training record and the new dataset, whether
stage 1 and stage 2 continue from the champion's weights with fewer optimizer steps ("warm"), or
train from scratch ("full"), and says why. The rules, in order:

1. ``warm_start.enabled`` is false -> full.
2. No champion in the registry -> full.
3. The ``model`` config differs from the champion's -> full (its weights would not fit).
4. The champion was trained on a video that is no longer in the training split with the same
   content hash (deleted, changed, or moved to val/test) -> full: the new model must not carry
   what it learned from data that is gone, and must never be evaluated on a video it saw.
5. ``max_chain`` warm starts in a row since the last full retrain -> full (a weekly full retrain
   bounds drift, and bounds how far an auditor walks back).
6. New videos are more than ``max_new_fraction`` of the training split -> full.
7. Otherwise warm: each stage runs ``ceil(max_steps * min(1, step_scale * new_fraction))``
   steps, at least ``min_steps`` (capped at ``max_steps``); with no new training video
   (the new videos all went to val/test) the champion's weights are kept as they are (0 steps).
   Warm stages draw ``new_video_share`` of their samples from the new videos and replay the
   champion's videos for the rest.

The record (``training.json`` in every saved model directory) carries the training split's
``{video_id: sha256}``, the model-config hash and the warm-start chain; it travels with the model
into the registry, so the next night plans from the champion alone. Library code: no MLflow and
no Lightning here (a 0-step stage never imports the trainer).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hivid.configbase import require, to_dict
from hivid.training.config import TrainConfig, TrainResult

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from hivid.models.narrator import HiVidNarrator, NarratorConfig

RECORD_FILE = "training.json"
"""The training record inside a saved narrator directory."""
PLAN_FILE = "plan.json"
"""The plan the warm_start stage writes (outputs/warm_start/plan.json)."""
MODEL_DIR = "model"
"""Where the warm_start stage puts the champion's narrator when the plan is warm."""


@dataclass
class WarmStartConfig:
    """Incremental training (params.yaml ``warm_start``)."""

    enabled: bool = True
    """Continue from the champion when the rules allow; false = always train from scratch."""
    alias: str = "champion"
    """Registry alias (of ``registry.model_name``) whose model a warm start continues."""
    max_new_fraction: float = 0.5
    """More new training videos than this share of the training split: full retrain."""
    max_chain: int = 7
    """Warm starts allowed in a row; the next run after that retrains from scratch."""
    step_scale: float = 2.0
    """Steps per stage = max_steps x min(1, step_scale x new_fraction)."""
    min_steps: int = 10
    """Fewest optimizer steps of a warm stage that has new training videos."""
    new_video_share: float = 0.5
    """Share of a warm stage's training samples drawn from the new videos; the rest replay the
    videos the champion saw (against forgetting)."""

    def __post_init__(self) -> None:
        require(bool(self.alias.strip()), "warm_start.alias must not be empty")
        require(0 < self.max_new_fraction <= 1, "warm_start.max_new_fraction must be in (0, 1]")
        require(self.max_chain >= 0, "warm_start.max_chain must be >= 0")
        require(self.step_scale > 0, "warm_start.step_scale must be > 0")
        require(self.min_steps >= 1, "warm_start.min_steps must be >= 1")
        require(0 < self.new_video_share < 1, "warm_start.new_video_share must be in (0, 1)")


@dataclass
class ParentRecord:
    """What the plan needs to know about the model it might continue."""

    ref: str
    """Registry reference, e.g. ``hivid-narrator/3``."""
    sha256: str
    """Checkpoint hash (``sha256_dir`` of its narrator directory)."""
    videos: dict[str, str]
    """Its training split: video id -> content sha256."""
    model_config_sha256: str
    """Hash of the resolved model config it was built with."""
    chain: int
    """Warm starts in a row that led to it (0 = trained from scratch)."""


@dataclass
class WarmStartPlan:
    """The decision, with every number it was made from (written to plan.json and MLflow)."""

    mode: Literal["warm", "full"]
    reason: str
    steps: dict[str, int] = field(default_factory=dict)
    """Optimizer steps per stage (``stage1``, ``stage2``) this plan sets."""
    parent: str | None = None
    parent_sha256: str | None = None
    chain: int = 0
    """Warm starts in a row including this one (0 for a full retrain)."""
    new_videos: list[str] = field(default_factory=list)
    gone_videos: list[str] = field(default_factory=list)
    """Videos the parent trained on that are not in this training split with the same hash."""
    new_fraction: float = 0.0
    train_videos: int = 0
    new_video_share: float = 0.5
    """Share of warm training samples drawn from ``new_videos``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WarmStartPlan:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def model_config_sha256(model_cfg: Any) -> str:
    """Hash of a resolved NarratorConfig; ``use_compressor`` is left out (stage 1 has none)."""
    doc = to_dict(model_cfg)
    doc.pop("use_compressor", None)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def split_videos_with_hashes(dataset_dir: Path, split: str, strict: bool = True) -> dict[str, str]:
    """``{video_id: sha256}`` of a dataset split. A row without a content hash raises ValueError
    (``strict``) or maps to "" (never equal to a real hash, so a later plan treats the video as
    changed and retrains in full)."""
    out: dict[str, str] = {}
    path = Path(dataset_dir) / f"{split}.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        sha = row.get("sha256") or ""
        if not sha and strict:
            raise ValueError(f"{path}: row {row.get('video_id')!r} has no sha256 (rebuild it)")
        out[str(row["video_id"])] = str(sha)
    return out


def warm_steps(max_steps: int, new_fraction: float, cfg: WarmStartConfig) -> int:
    """Optimizer steps of one warm stage (0 when no training video is new)."""
    if new_fraction <= 0:
        return 0
    steps = math.ceil(max_steps * min(1.0, cfg.step_scale * new_fraction))
    return min(max_steps, max(cfg.min_steps, steps))


def plan_warm_start(
    cfg: WarmStartConfig,
    train: dict[str, str],
    model_config_hash: str,
    max_steps: dict[str, int],
    parent: ParentRecord | None,
) -> WarmStartPlan:
    """Warm or full for a training split ``train`` (see the module docstring for the rules)."""
    n = len(train)
    plan = WarmStartPlan(
        "full", "", dict(max_steps), train_videos=n, new_video_share=cfg.new_video_share
    )
    if not cfg.enabled:
        return replace(plan, reason="warm_start.enabled is false")
    if parent is None:
        return replace(plan, reason=f"no @{cfg.alias} model in the registry")
    plan = replace(plan, parent=parent.ref, parent_sha256=parent.sha256)
    if parent.model_config_sha256 != model_config_hash:
        return replace(plan, reason=f"model config changed since {parent.ref}")
    gone = sorted(v for v, sha in parent.videos.items() if train.get(v) != sha)
    new = sorted(v for v, sha in train.items() if parent.videos.get(v) != sha)
    fraction = len(new) / n if n else 0.0
    plan = replace(plan, new_videos=new, gone_videos=gone, new_fraction=round(fraction, 4))
    if gone:
        shown = ", ".join(gone[:5]) + (" ..." if len(gone) > 5 else "")
        return replace(
            plan,
            reason=f"{parent.ref} was trained on {len(gone)} video(s) no longer in the training "
            f"split with the same content ({shown})",
        )
    if parent.chain >= cfg.max_chain:
        return replace(
            plan,
            reason=f"{parent.chain} warm start(s) in a row since the last full retrain "
            f"(warm_start.max_chain={cfg.max_chain})",
        )
    if fraction > cfg.max_new_fraction:
        return replace(
            plan,
            reason=f"{len(new)}/{n} training videos are new ({fraction:.0%} > "
            f"warm_start.max_new_fraction={cfg.max_new_fraction:.0%})",
        )
    why = (
        f"{len(new)}/{n} training videos new since {parent.ref}: continuing it"
        if new
        else f"training split unchanged since {parent.ref}: its weights are kept (0 steps)"
    )
    steps = {stage: warm_steps(s, fraction, cfg) for stage, s in max_steps.items()}
    return replace(plan, mode="warm", reason=why, steps=steps, chain=parent.chain + 1)


def training_record(
    train: dict[str, str], model_config_hash: str, plan: WarmStartPlan | None
) -> dict[str, Any]:
    """The ``training.json`` a trained model directory carries."""
    return {
        "videos": dict(sorted(train.items())),
        "model_config_sha256": model_config_hash,
        "warm_start": plan.to_dict() if plan is not None else None,
        "chain": plan.chain if plan is not None else 0,
    }


def parent_record(ref: str, sha256: str, record: dict[str, Any]) -> ParentRecord:
    """A ParentRecord from a champion's ``training.json``."""
    return ParentRecord(
        ref=ref,
        sha256=sha256,
        videos={str(k): str(v) for k, v in (record.get("videos") or {}).items()},
        model_config_sha256=str(record.get("model_config_sha256") or ""),
        chain=int(record.get("chain") or 0),
    )


def read_plan(warm_dir: Path) -> WarmStartPlan:
    """The plan the warm_start stage left in ``warm_dir``."""
    path = Path(warm_dir) / PLAN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (run `hivid warm-start` first)")
    return WarmStartPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))


def warm_model(
    stage: int, warm_from: Path, init_model_dir: Path | None, model_cfg: NarratorConfig
) -> tuple[HiVidNarrator, PreTrainedTokenizerBase]:
    """The starting model of a warm stage. ``warm_from`` is the champion (a stage-2 narrator):
    stage 1 takes it without its compressor (stage 2 froze everything else, so that is the
    champion's stage-1 narrator); stage 2 puts its compressor and time encoder on tonight's
    stage-1 model (``init_model_dir``)."""
    from hivid.models.freezing import StageError
    from hivid.models.narrator import load_compressor_weights, load_narrator

    if stage == 1:
        if init_model_dir is not None:
            raise StageError("stage 1 takes init_model_dir or warm_from, not both")
        model, tok = load_narrator(warm_from)
        model.remove_compressor()
        return model, tok
    if init_model_dir is None:
        raise StageError("stage 2 needs init_model_dir (the stage-1 model directory)")
    model, tok = load_narrator(init_model_dir)
    if not model.use_compressor:
        model.add_compressor(
            model_cfg.compressor,
            model_cfg.time_encoder,
            model_cfg.stage2_asr_text,
            model_cfg.stage2_positions,
        )
    load_compressor_weights(model, warm_from)
    return model, tok


def keep_weights(
    stage: int, model: HiVidNarrator, tokenizer: PreTrainedTokenizerBase, out_dir: Path
) -> TrainResult:
    """A 0-step stage: the starting model is the result (a warm start with no new training
    video keeps the champion's weights). Same files as a trained stage, minus the checkpoint."""
    import torch.distributed as dist

    from hivid.models.freezing import apply_stage_freezing, trainable_parameter_names
    from hivid.models.narrator import save_narrator

    apply_stage_freezing(model, stage)
    metrics = {
        "steps": 0.0,
        "trainable_params": float(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "total_params": float(sum(p.numel() for p in model.parameters())),
    }
    model_dir = Path(out_dir) / "model"
    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        save_narrator(model, tokenizer, model_dir)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2), "utf-8")
    names = sorted(trainable_parameter_names(model))
    return TrainResult(model_dir, metrics, names, Path(out_dir) / "checkpoints" / "last.ckpt")


def keep_champion(
    stage: int,
    warm_from: Path,
    init_model_dir: Path | None,
    out_dir: Path,
    model_cfg: NarratorConfig,
    train_cfg: TrainConfig,
) -> TrainResult:
    """A warm stage with 0 steps, without importing the trainer: ``warm_model`` saved as is."""
    import dataclasses

    model, tok = warm_model(stage, warm_from, init_model_dir, model_cfg)
    if train_cfg.max_frames is not None:
        model.cfg = dataclasses.replace(model.cfg, max_frames=train_cfg.max_frames)
    return keep_weights(stage, model, tok, out_dir)
