"""Promotion gate: the newest version is `challenger`; it becomes `champion` only when it passed
every quality gate and beats the current champion on the gate metric by at least the margin.

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
    champion_alias: str = "champion"
    """Alias of the promoted version."""
    lock_timeout_s: float = 120.0
    """How long to wait for another run's promotion to finish."""

    def __post_init__(self) -> None:
        require(bool(self.metric), "promotion.metric must not be empty")
        require(self.margin >= 0, "promotion.margin must be >= 0")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        verdict = "PROMOTED to champion" if self.promoted else "kept as challenger"
        return f"version {self.version} {verdict}: " + "; ".join(self.reasons)


def _metric(client: MlflowClient, mv: Any, names: list[str]) -> tuple[str | None, float | None]:
    run_id = (mv.tags or {}).get("eval.run")
    if not run_id:
        return None, None
    metrics = client.get_run(run_id).data.metrics
    for name in names:
        value = metrics.get(name)
        if value is not None and math.isfinite(value):
            return name, float(value)
    return None, None


def _champion(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:
        return None


def decide(client: MlflowClient, name: str, version: str, cfg: PromotionConfig) -> Decision:
    """The promotion decision for ``version`` against the current champion (no side effects)."""
    mv = client.get_model_version(name, version)
    champ = _champion(client, name, cfg.champion_alias)
    names = [cfg.metric] + ([cfg.fallback_metric] if cfg.fallback_metric else [])
    used, value = _metric(client, mv, names)
    d = Decision(
        False, str(version), str(champ.version) if champ else None, used or cfg.metric, value, None
    )
    gate = (mv.tags or {}).get("gx.result", "")
    if not gate.endswith(":success"):
        d.reasons.append(f"quality gate not passed (gx.result={gate or 'missing'})")
        return d
    d.reasons.append("quality gate passed")
    if value is None:
        d.reasons.append(f"no {' or '.join(names)} metric logged by its evaluate run")
        return d
    if champ is None:
        d.promoted = True
        d.reasons.append(f"no current champion; {used}={value:.4f}")
        return d
    if str(champ.version) == str(version):
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


def promote(root: Path, name: str, version: str, cfg: PromotionConfig) -> Decision:
    """Decide and, when deserved, move the champion alias, atomically with respect to other runs."""
    client = MlflowClient()
    lock_path = root / "mlruns" / ".promotion.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path), timeout=cfg.lock_timeout_s):
        for _ in range(5):
            decision = decide(client, name, version, cfg)
            if not decision.promoted:
                break
            current = _champion(client, name, cfg.champion_alias)
            now = str(current.version) if current else None
            if now != decision.champion_before:  # moved under us (a lock-free writer): decide again
                continue
            client.set_registered_model_alias(name, cfg.champion_alias, version)
            break
        client.set_model_version_tag(name, version, "promotion.decision", decision.text()[:5000])
    return decision
