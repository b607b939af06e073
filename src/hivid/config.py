"""params.yaml: one section per stage, each validated by that stage's own typed config.

Sections and the dataclass that validates each (fields and their docstrings live beside the code
that uses them)::

    demo          hivid.data.demo.DemoConfig
    intake        hivid.data.intake.IntakeConfig
    ingest        hivid.data.ingest.IngestConfig
    annotate      hivid.annotate.config.AnnotateConfig
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
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hivid.configbase import ConfigError, from_mapping

T = TypeVar("T")

SECTIONS: dict[str, str] = {
    "demo": "hivid.data.demo:DemoConfig",
    "intake": "hivid.data.intake:IntakeConfig",
    "ingest": "hivid.data.ingest:IngestConfig",
    "annotate": "hivid.annotate.config:AnnotateConfig",
    "quality": "hivid.quality.suites:QualityConfig",
    "dataset": "hivid.dataset.build:DatasetConfig",
    "train_stage1": "hivid.training.config:TrainConfig",
    "train_stage2": "hivid.training.config:TrainConfig",
    "evaluate": "hivid.evaluation.stage:EvaluateConfig",
    "registry": "hivid.tracking.registry:RegistryConfig",
    "warm_start": "hivid.training.warmstart:WarmStartConfig",
}


FLOAT_RE = re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)
"""Floats as YAML 1.2 (and DVC, which reads params.yaml with ruamel) write them: PyYAML's 1.1
resolver reads ``3e-3`` (no dot) or ``1e5`` as *strings*; this loader reads them as numbers."""


class ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``3e-3`` as a float and rejects duplicate keys (PyYAML keeps
    the last value silently), naming both lines."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
                line = key_node.start_mark.line + 1
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML reports it below
                    continue
                if first is not None:
                    raise ConfigError(
                        f"line {line}: duplicate key {key!r} (first at line {first}; "
                        "YAML would silently keep only the last value)"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


ParamsLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ParamsLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_RE, list("-+0123456789."))


def _plain_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    if not any(ch.isdigit() for ch in text):
        return loader.construct_yaml_float(node)  # .inf / .nan
    try:
        return int(text) if re.fullmatch(r"[-+]?[0-9]+", text) else float(text)
    except ValueError:
        return loader.construct_yaml_float(node)


ParamsLoader.add_constructor("tag:yaml.org,2002:float", _plain_float)


def parse_params(path: Path) -> Any:
    """The YAML document of ``path``; a syntax error or duplicate key is a ``ConfigError`` naming
    the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=ParamsLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path}:{str(exc).removeprefix('line ')}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise ConfigError(f"{where}: YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML error: {str(exc).splitlines()[0]}") from None


def key_lines(path: Path) -> dict[str, int]:
    """``{dotted key: line}`` of every mapping key in ``path`` ({} when it cannot be parsed)."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=ParamsLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    out: dict[str, int] = {}
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = f"{prefix}.{k.value}" if prefix else str(k.value)
                out.setdefault(key, k.start_mark.line + 1)
                stack.append((v, key))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = f"{prefix}[{i}]"
                out.setdefault(key, v.start_mark.line + 1)
                stack.append((v, key))
    return out


def _located(path: Path, exc: ConfigError, section: str) -> ConfigError:
    """``exc`` prefixed with ``path:line`` of the key at fault (or of its section)."""
    lines = key_lines(path)
    key = exc.key or section
    if key == section:  # a range check in __post_init__: the first key of the section it names
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(exc)))
        named = [k for k in lines if k.startswith(f"{section}.") and k.split(".")[-1] in words]
        key = min(named, key=lines.__getitem__, default=section)
    while key and key not in lines:  # unknown nested key: the nearest parent that is there
        key = key.rpartition(".")[0] if "." in key else ""
    line = lines.get(key) or lines.get(section)
    where = f"{path}:{line}" if line else str(path)
    return ConfigError(f"{where}: {exc}", exc.key or section)


def read_params(path: Path) -> dict[str, Any]:
    """The whole params file as a dict ({} when the file does not exist)."""
    if not path.exists():
        return {}
    doc = parse_params(path)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(doc).__name__}")
    unknown = sorted(set(map(str, doc)) - set(SECTIONS) - {"model"})
    if unknown:
        lines = key_lines(path)
        where = f"{path}:{lines[unknown[0]]}" if unknown[0] in lines else str(path)
        raise ConfigError(
            f"{where}: unknown section(s) {unknown} (known: {', '.join([*SECTIONS, 'model'])})",
            unknown[0],
        )
    return doc


def section_class(section: str) -> type[Any]:
    module, _, name = SECTIONS[section].partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def load_section(path: Path, section: str, cls: type[T] | None = None) -> T:
    """Validated config of ``section`` from ``path`` (defaults where the file says nothing)."""
    cls = cls or section_class(section)
    raw = read_params(path).get(section)
    try:
        return from_mapping(cls, {} if raw is None else raw, section)
    except ConfigError as exc:
        raise _located(path, exc, section) from None


def load_model_config(path: Path) -> Any:
    """The narrator config: ``model.preset`` (tiny | small | paper) plus field overrides."""
    from hivid.models.narrator import narrator_config

    section = read_params(path).get("model")
    if section is not None and not isinstance(section, dict):
        exc = ConfigError(
            f"model: expected a mapping of keys to values, got {type(section).__name__}", "model"
        )
        raise _located(path, exc, "model")
    raw = dict(section or {})
    preset = raw.pop("preset", "tiny")
    try:
        return narrator_config(preset, raw)
    except ConfigError as exc:
        raise _located(path, ConfigError(f"model: {exc}", exc.key), "model") from None
    except (TypeError, ValueError) as exc:
        raise _located(path, ConfigError(f"model: {exc}", "model"), "model") from None


def check_all(path: Path) -> dict[str, Any]:
    """Validate every section (used by `hivid config check` and the tests)."""
    out: dict[str, Any] = {name: load_section(path, name) for name in SECTIONS}
    out["model"] = load_model_config(path)
    return out


def config_problems(path: Path) -> list[str]:
    """Every problem of the params file, one line each, file and line first ([] when valid):
    the YAML itself, then each section on its own (one bad section does not hide another).
    `hivid nightly` calls this before any stage runs."""
    if not path.is_file():
        return [f"{path}: params file not found"]
    try:
        read_params(path)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for name in SECTIONS:
        try:
            load_section(path, name)
        except ConfigError as exc:
            problems.append(str(exc))
    try:
        load_model_config(path)
    except ConfigError as exc:
        problems.append(str(exc))
    return problems


def config_failure(path: Path, root: Path | None = None) -> str | None:
    """None when ``path`` is valid; else one line naming every problem (paths shown relative to
    ``root``): what the nightly raises, so its summary and notification name the key."""
    problems = config_problems(path)
    if not problems:
        return None
    if root is not None:
        prefix = f"{root.resolve()}/"
        problems = [p.replace(prefix, "") for p in problems]
    return f"invalid configuration, no stage ran: {' | '.join(problems)}"
