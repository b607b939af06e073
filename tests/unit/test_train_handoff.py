"""The nightly flow's hand-off of training to the GPU deployment (`train_on_pool`), in isolation.

Prefect's `run_deployment` is replaced here (a real worker running the GPU deployment is the
stack tests' job): what is under test is what the hand-off sends and how it reads the training
flow run's final state. The states are Prefect's own, and the parameters sent are checked against
the GPU deployment's flow (`flows.train.train`) by Prefect's own parameter validation, so renaming
a parameter on either side fails here instead of on the first nightly with a GPU pool.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import prefect.deployments
import pytest
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending, Running, State

from flows.nightly import train_on_pool
from flows.train import train
from hivid.pipeline import PipelineError

DEPLOYMENT = "hivid-train/train-gpu"


def _fake_run_deployment(calls: list[dict[str, Any]], state: State | None) -> Any:
    def run_deployment(name: str, **kwargs: Any) -> Any:
        calls.append({"name": name, **kwargs})
        return SimpleNamespace(state=state)

    return run_deployment


def test_hand_off_sends_what_the_training_flow_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        prefect.deployments, "run_deployment", _fake_run_deployment(calls, Completed())
    )
    out = train_on_pool(DEPLOYMENT, "/srv/hivid", "run123")
    assert len(calls) == 1
    sent = calls[0]
    assert sent["name"] == DEPLOYMENT
    assert sent["as_subflow"] is True  # the training run nests under the nightly flow run
    assert sent["parameters"] == {"repo": "/srv/hivid", "parent_run_id": "run123"}
    # every parameter sent is one the GPU deployment's flow takes, with the right type
    assert train.validate_parameters(sent["parameters"]) == sent["parameters"]
    assert out == {
        "train_stage1": f"ran on {DEPLOYMENT}",
        "train_stage2": f"ran on {DEPLOYMENT}",
    }


def test_a_misnamed_parameter_is_refused_by_the_training_flow() -> None:
    """The check above can fail: Prefect refuses a parameter the training flow does not take."""
    from prefect.exceptions import ParameterTypeError, SignatureMismatchError

    with pytest.raises((SignatureMismatchError, ParameterTypeError)):
        train.validate_parameters({"repo_dir": "/srv/hivid", "parent_run_id": "run123"})


@pytest.mark.parametrize(
    ("state", "name"),
    [
        (Failed(message="stage train_stage1 failed"), "Failed"),
        (Crashed(), "Crashed"),
        (Cancelled(), "Cancelled"),
        (Pending(), "Pending"),  # run_deployment gave up waiting (timeout): never "done"
        (Running(), "Running"),
        (None, "unknown"),
    ],
)
def test_unfinished_training_run_stops_the_pipeline(
    monkeypatch: pytest.MonkeyPatch, state: State | None, name: str
) -> None:
    monkeypatch.setattr(prefect.deployments, "run_deployment", _fake_run_deployment([], state))
    with pytest.raises(PipelineError) as err:
        train_on_pool(DEPLOYMENT, "/srv/hivid", "run123")
    assert str(err.value) == f"training deployment {DEPLOYMENT} ended {name}"
