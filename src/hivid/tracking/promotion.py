"""Promotion gate: the newest version is `challenger`; it becomes `champion` only when it passed
every quality gate, beats the trivial baseline (an absolute floor, checked even when there is no
champion yet) and beats the current champion on the gate metric by at least the margin.

The metrics are those of the version's own evaluation: the ``eval.run`` tag names the evaluate
run, and that run's ``model.run`` tag must be the version's source run (a version is never judged
by the scores of another model). The baseline values come from the same evaluate run
(``baseline_<name>.<metric>``, see ``hivid.evaluation.baselines``), so model and baseline are
scored on the same videos by the same evaluator.

Two runs finishing at once can never both promote: the decision and the alias move happen under an
exclusive lock (a file lock beside the embedded store; with a tracking server, the same lock on the
shared project directory plus the deployment's concurrency limit of 1), and the alias is set only if
the champion is still the one the decision was made against (compare-and-set, else decide again).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow.tracking import MlflowClient

from hivid.configbase import require


@dataclass
class PromotionConfig:
    """Promotion gate settings (params.yaml section ``registry``, key ``promotion``)."""

    metric: str = "SODA_c"
    """Evaluation metric compared between challenger and champion (logged by `evaluate`)."""
    fallback_metric: str | None = "F1"
    """Used when neither version logged ``metric`` (e.g. a stack without the SODA scorer)."""
    margin: float = 0.0
    """The challenger must beat the champion by at least this much (absolute)."""
    higher_is_better: bool = True
    """Direction of the metric."""
    baseline: str | None = "trivial"
    """Baseline the version must beat on the same metric, even with no champion (its evaluate
    run logs ``baseline_<name>.<metric>``); null = no absolute floor."""
    baseline_margin: float = 0.0
    """The version must beat the baseline by at least this much (absolute, and always by > 0)."""
    champion_alias: str = "champion"
    """Alias of the promoted version."""
    lock_timeout_s: float = 120.0
    """How long to wait for another run's promotion to finish."""

    def __post_init__(self) -> None:
        require(bool(self.metric), "promotion.metric must not be empty")
        require(self.margin >= 0, "promotion.margin must be >= 0")
        require(self.baseline_margin >= 0, "promotion.baseline_margin must be >= 0")
        require(
            self.baseline is None or bool(self.baseline.strip()),
            "promotion.baseline must be a baseline name (trivial, teacher) or null",
        )
        require(self.lock_timeout_s > 0, "promotion.lock_timeout_s must be > 0")


@dataclass
class Decision:
    promoted: bool
    version: str
    champion_before: str | None
    metric: str
    challenger_value: float | None
    champion_value: float | None
    reasons: list[str] = field(default_factory=list)
    baseline: str | None = None
    baseline_value: float | None = None
    eval_run: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        verdict = "PROMOTED to champion" if self.promoted else "kept as challenger"
        return f"version {self.version} {verdict}: " + "; ".join(self.reasons)


def eval_run_of(client: MlflowClient, mv: Any) -> tuple[Any | None, str]:
    """(the version's evaluate run, "") or (None, why there is none usable)."""
    run_id = (mv.tags or {}).get("eval.run")
    if not run_id:
        return None, "no evaluate run recorded for it (eval.run tag missing)"
    try:
        run = client.get_run(run_id)
    except Exception:
        return None, f"its evaluate run {run_id} is not in the tracking store"
    scored = run.data.tags.get("model.run")
    if scored and mv.run_id and scored != mv.run_id:
        return None, (
            f"its evaluate run {run_id} scored the model of run {scored}, not this version's "
            f"source run {mv.run_id}"
        )
    return run, ""


def _value(metrics: dict[str, float], names: list[str]) -> tuple[str | None, float | None]:
    for name in names:
        value = metrics.get(name)
        if value is not None and math.isfinite(value):
            return name, float(value)
    return None, None


def _metric(client: MlflowClient, mv: Any, names: list[str]) -> tuple[str | None, float | None]:
    run, _ = eval_run_of(client, mv)
    if run is None:
        return None, None
    return _value(run.data.metrics, names)


def _champion(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:
        return None


def decide(client: MlflowClient, name: str, version: str, cfg: PromotionConfig) -> Decision:
    """The promotion decision for ``version`` against the baseline floor and the current champion
    (no side effects)."""
    mv = client.get_model_version(name, version)
    champ = _champion(client, name, cfg.champion_alias)
    names = [cfg.metric] + ([cfg.fallback_metric] if cfg.fallback_metric else [])
    run, why = eval_run_of(client, mv)
    metrics = dict(run.data.metrics) if run is not None else {}
    used, value = _value(metrics, names)
    d = Decision(
        False, str(version), str(champ.version) if champ else None, used or cfg.metric, value, None
    )
    d.eval_run = run.info.run_id if run is not None else None
    d.baseline = cfg.baseline
    gate = (mv.tags or {}).get("gx.result", "")
    if not gate.endswith(":success"):
        d.reasons.append(f"quality gate not passed (gx.result={gate or 'missing'})")
        return d
    d.reasons.append("quality gate passed")
    if run is None:
        d.reasons.append(why)
        return d
    if value is None:
        d.reasons.append(f"no {' or '.join(names)} metric logged by its evaluate run")
        return d
    is_champion = champ is not None and str(champ.version) == str(version)
    if cfg.baseline:
        key = f"baseline_{cfg.baseline}.{used}"
        base = metrics.get(key)
        if base is None or not math.isfinite(base):
            d.reasons.append(
                f"its evaluate run logged no {key}: cannot check that it beats the "
                f"{cfg.baseline} baseline (set registry.promotion.baseline: null to skip the floor)"
            )
            return d
        d.baseline_value = float(base)
        delta = value - base if cfg.higher_is_better else base - value
        if not (delta >= cfg.baseline_margin and delta > 0):
            d.reasons.append(
                f"{used} {value:.4f} does not beat the {cfg.baseline} baseline ({base:.4f}) by "
                f"margin {cfg.baseline_margin} (delta {delta:+.4f})"
                + ("; it stays champion (promotion never demotes)" if is_champion else "")
            )
            return d
        d.reasons.append(
            f"{used} {value:.4f} beats the {cfg.baseline} baseline ({base:.4f}) by {delta:.4f} "
            f">= margin {cfg.baseline_margin}"
        )
    if champ is None:
        d.promoted = True
        d.reasons.append(f"no current champion; {used}={value:.4f}")
        return d
    if is_champion:
        d.promoted = True
        d.champion_value = value
        d.reasons.append("already the champion")
        return d
    _, champ_value = _metric(client, champ, [used] if used else names)
    d.champion_value = champ_value
    if champ_value is None:
        d.promoted = True
        d.reasons.append(f"champion v{champ.version} has no {used}; challenger {used}={value:.4f}")
        return d
    delta = value - champ_value if cfg.higher_is_better else champ_value - value
    if delta >= cfg.margin and delta > 0:
        d.promoted = True
        d.reasons.append(
            f"{used} {value:.4f} beats champion v{champ.version} ({champ_value:.4f}) by "
            f"{delta:.4f} >= margin {cfg.margin}"
        )
    else:
        d.reasons.append(
            f"{used} {value:.4f} does not beat champion v{champ.version} ({champ_value:.4f}) by "
            f"margin {cfg.margin} (delta {delta:.4f})"
        )
    return d


CAS_ATTEMPTS = 5
"""Decisions ``promote`` makes when the champion alias moves under it before it gives up."""


def promote(root: Path, name: str, version: str, cfg: PromotionConfig) -> Decision:
    """Decide and, when deserved, move the champion alias, atomically with respect to other runs."""
    client = MlflowClient()
    lock_path = root / "mlruns" / ".promotion.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=cfg.lock_timeout_s):
        for _ in range(CAS_ATTEMPTS):
            decision = decide(client, name, version, cfg)
            if not decision.promoted:
                break
            current = _champion(client, name, cfg.champion_alias)
            now = str(current.version) if current else None
            if now != decision.champion_before:  # moved under us (a lock-free writer): decide again
                continue
            client.set_registered_model_alias(name, cfg.champion_alias, version)
            break
        else:  # the alias moved after every decision: never report a promotion that did not happen
            decision.promoted = False
            decision.reasons.append(
                f"the {cfg.champion_alias} alias moved after each of {CAS_ATTEMPTS} decisions; "
                "not promoted"
            )
        client.set_model_version_tag(name, version, "promotion.decision", decision.text()[:5000])
    return decision
