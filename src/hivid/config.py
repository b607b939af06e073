"""params.yaml: one section per stage, each validated by that stage's own typed config.

Sections and the dataclass that validates each (fields and their docstrings live beside the code
that uses them)::

    demo          hivid.data.demo.DemoConfig
    intake        hivid.data.intake.IntakeConfig
    ingest        hivid.data.ingest.IngestConfig
    annotate      hivid.annotate.pipeline.AnnotateConfig
    quality       hivid.quality.suites.QualityConfig
    dataset       hivid.dataset.build.DatasetConfig
    model         hivid.models.narrator.NarratorConfig   (via ``preset`` + overrides)
    train_stage1  hivid.training.config.TrainConfig
    train_stage2  hivid.training.config.TrainConfig
    evaluate      hivid.evaluation.stage.EvaluateConfig
    registry      hivid.tracking.registry.RegistryConfig
    warm_start    hivid.training.warmstart.WarmStartConfig

Classes are imported lazily so that `hivid ingest` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hivid.configbase import ConfigError, from_mapping

T = TypeVar("T")

SECTIONS: dict[str, str] = {
    "demo": "hivid.data.demo:DemoConfig",
    "intake": "hivid.data.intake:IntakeConfig",
    "ingest": "hivid.data.ingest:IngestConfig",
    "annotate": "hivid.annotate.pipeline:AnnotateConfig",
    "quality": "hivid.quality.suites:QualityConfig",
    "dataset": "hivid.dataset.build:DatasetConfig",
    "train_stage1": "hivid.training.config:TrainConfig",
    "train_stage2": "hivid.training.config:TrainConfig",
    "evaluate": "hivid.evaluation.stage:EvaluateConfig",
    "registry": "hivid.tracking.registry:RegistryConfig",
    "warm_start": "hivid.training.warmstart:WarmStartConfig",
}


def read_params(path: Path) -> dict[str, Any]:
    """The whole params file as a dict ({} when the file does not exist)."""
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    unknown = sorted(set(doc) - set(SECTIONS) - {"model"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}")
    return doc


def section_class(section: str) -> type[Any]:
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def load_section(path: Path, section: str, cls: type[T] | None = None) -> T:
    """Validated config of ``section`` from ``path`` (defaults where the file says nothing)."""
    cls = cls or section_class(section)
    try:
        return from_mapping(cls, read_params(path).get(section) or {}, section)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_model_config(path: Path) -> Any:
    """The narrator config: ``model.preset`` (tiny | small | paper) plus field overrides."""
    from hivid.models.narrator import narrator_config

    raw = dict(read_params(path).get("model") or {})
    preset = raw.pop("preset", "tiny")
    try:
        return narrator_config(preset, raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: model: {exc}") from None


def check_all(path: Path) -> dict[str, Any]:
    """Validate every section (used by `hivid config check` and the tests)."""
    out: dict[str, Any] = {name: load_section(path, name) for name in SECTIONS}
    out["model"] = load_model_config(path)
    return out
