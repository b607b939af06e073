"""The nightly flow's hand-off of training to the GPU deployment (`train_on_pool`, `hivid.handoff`).

Prefect's `run_deployment` and the DVC transfers are replaced here: what is under test is which
deployment and parameters the hand-off asks for, what travels, and how it treats the training
run's final state. The states are Prefect's own, and the parameters sent are checked against the
GPU deployment's flow (`flows.train.train`) by Prefect's own parameter validation, so renaming a
parameter on either side fails here. A real worker running the hand-off: tests/stack.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.states import Cancelled, Completed, Crashed, Failed, Pending, Running, State

import hivid.handoff
from flows.nightly import train_on_pool
from flows.train import TRAIN_STAGES, train
from hivid.handoff import HandoffError, require_gpus, required_gpus, upstream_stages
from hivid.pipeline import PipelineError

REPO = Path(__file__).resolve().parents[2]


def _fake_run_deployment(calls: list[dict[str, Any]], state: State | None) -> Any:
    def run_deployment(name: str, **kwargs: Any) -> Any:
        calls.append({"name": name, **kwargs})
        return SimpleNamespace(state=state)

    return run_deployment


@pytest.fixture
def transfers(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []

    def send_inputs(root: Path, stages: tuple) -> str:
        calls.append(("send_inputs", str(root), stages))
        return "LOCK"

    def receive_results(root: Path, stages: tuple, parent: str) -> None:
        calls.append(("receive_results", str(root), stages, parent))

    monkeypatch.setattr(hivid.handoff, "send_inputs", send_inputs)
    monkeypatch.setattr(hivid.handoff, "receive_results", receive_results)
    return calls


def test_hand_off_passes_the_lock_and_parent_run(
    monkeypatch: pytest.MonkeyPatch, transfers: list[tuple]
) -> None:
    import prefect.deployments

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        prefect.deployments, "run_deployment", _fake_run_deployment(calls, Completed())
    )
    out = train_on_pool("hivid-train/train-gpu", "/srv/hivid", "run123")
    # the GPU deployment runs in its own checkout: no path of this host is passed
    assert calls == [
        {
            "name": "hivid-train/train-gpu",
            "parameters": {"parent_run_id": "run123", "dvc_lock": "LOCK"},
            "as_subflow": True,
        }
    ]
    assert transfers == [
        ("send_inputs", "/srv/hivid", TRAIN_STAGES),
        ("receive_results", "/srv/hivid", TRAIN_STAGES, "run123"),
    ]
    # every parameter sent is one the GPU deployment's flow takes, with the right type
    sent = calls[0]["parameters"]
    validated = train.validate_parameters(sent)
    assert {k: validated[k] for k in sent} == sent
    assert out == {s: "ran on hivid-train/train-gpu" for s in TRAIN_STAGES}


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
    monkeypatch: pytest.MonkeyPatch, state: State | None, name: str, transfers: list[tuple]
) -> None:
    import prefect.deployments

    monkeypatch.setattr(prefect.deployments, "run_deployment", _fake_run_deployment([], state))
    with pytest.raises(
        PipelineError, match=f"^training deployment hivid-train/train-gpu ended {name}$"
    ):
        train_on_pool("hivid-train/train-gpu", "/srv/hivid", "run123")
    assert [c[0] for c in transfers] == ["send_inputs"]  # no results taken from a failed run


def test_the_hand_off_sends_every_earlier_stage() -> None:
    # validate too: the training runs' gx.result tag comes from outputs/quality/gate.json
    assert upstream_stages(REPO, TRAIN_STAGES) == [
        "ingest",
        "annotate",
        "validate",
        "build_dataset",
        "warm_start",
    ]


def test_a_gpu_deployment_fails_at_once_without_its_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("HIVID_REQUIRE_GPU", raising=False)
    assert required_gpus(default=1) == 1
    with pytest.raises(HandoffError, match=r"0 usable CUDA GPU\(s\).*asks for 1"):
        require_gpus(required_gpus(default=1))
    monkeypatch.setenv("HIVID_REQUIRE_GPU", "0")  # a CPU-only stack
    require_gpus(required_gpus(default=1))
    monkeypatch.setenv("HIVID_REQUIRE_GPU", "two")
    with pytest.raises(HandoffError, match="HIVID_REQUIRE_GPU='two'"):
        required_gpus(default=1)
