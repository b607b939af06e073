"""The nightly flow's hand-off of training to the GPU deployment (`train_on_pool`).

Prefect's `run_deployment` is replaced here: what is under test is which deployment and
parameters the hand-off asks for and how it treats the training run's final state.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from flows.nightly import train_on_pool
from flows.train import TRAIN_STAGES
from hivid.pipeline import PipelineError


class _State:
    def __init__(self, name: str) -> None:
        self.name = name

    def is_completed(self) -> bool:
        return self.name == "Completed"


def _fake_run_deployment(calls: list[dict[str, Any]], state: str | None) -> Any:
    def run_deployment(name: str, **kwargs: Any) -> Any:
        calls.append({"name": name, **kwargs})
        return SimpleNamespace(state=_State(state) if state else None)

    return run_deployment


def test_hand_off_passes_repo_and_parent_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.deployments

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        prefect.deployments, "run_deployment", _fake_run_deployment(calls, "Completed")
    )
    out = train_on_pool("hivid-train/train-gpu", "/srv/hivid", "run123")
    assert calls == [
        {
            "name": "hivid-train/train-gpu",
            "parameters": {"repo": "/srv/hivid", "parent_run_id": "run123"},
            "as_subflow": True,
        }
    ]
    assert set(out) == set(TRAIN_STAGES)


@pytest.mark.parametrize("state", ["Failed", "Crashed", "Cancelled", None])
def test_unfinished_training_run_stops_the_pipeline(
    monkeypatch: pytest.MonkeyPatch, state: str | None
) -> None:
    import prefect.deployments

    monkeypatch.setattr(prefect.deployments, "run_deployment", _fake_run_deployment([], state))
    with pytest.raises(PipelineError, match="hivid-train/train-gpu ended"):
        train_on_pool("hivid-train/train-gpu", "/srv/hivid", "run123")
