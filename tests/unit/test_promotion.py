from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hivid.tracking.promotion import PromotionConfig, decide, promote

NAME = "hivid-narrator"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # earlier tests in this process may have left another store's experiment active
    mlflow.set_experiment("promotion-test")
    MlflowClient().create_registered_model(NAME)
    return tmp_path


def add_version(
    value: float | None,
    gate: str = "abc:success",
    baseline: float | None = 0.01,
    scored: str | None = None,
) -> str:
    """A version whose evaluate run logged SODA_c=value and baseline_trivial.SODA_c=baseline;
    ``scored``: the run id its evaluate run says it scored (default: the version's own run)."""
    client = MlflowClient()
    with mlflow.start_run() as train:
        pass
    with mlflow.start_run(tags={"model.run": scored or train.info.run_id}) as ev:
        if value is not None:
            mlflow.log_metric("SODA_c", value)
        if baseline is not None:
            mlflow.log_metric("baseline_trivial.SODA_c", baseline)
    mv = client.create_model_version(
        NAME,
        "file:///nowhere",
        train.info.run_id,
        tags={"gx.result": gate, "eval.run": ev.info.run_id},
    )
    return str(mv.version)


def champion() -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(NAME, "champion").version)
    except Exception:
        return None


def test_first_passing_version_becomes_champion(store: Path) -> None:
    v1 = add_version(0.4)
    d = promote(store, NAME, v1, PromotionConfig())
    assert d.promoted and champion() == v1
    assert "no current champion" in d.text()


def test_worse_or_within_margin_stays_challenger(store: Path) -> None:
    v1 = add_version(0.40)
    promote(store, NAME, v1, PromotionConfig())
    v2 = add_version(0.39)
    assert not promote(store, NAME, v2, PromotionConfig()).promoted
    v3 = add_version(0.41)
    d = promote(store, NAME, v3, PromotionConfig(margin=0.05))
    assert not d.promoted and "margin 0.05" in d.text()
    assert champion() == v1
    v4 = add_version(0.50)
    assert promote(store, NAME, v4, PromotionConfig(margin=0.05)).promoted
    assert champion() == v4
    tag = MlflowClient().get_model_version(NAME, v3).tags["promotion.decision"]
    assert "kept as challenger" in tag


def test_failed_gate_or_missing_metric_never_promotes(store: Path) -> None:
    bad = add_version(0.9, gate="abc:failure")
    d = decide(MlflowClient(), NAME, bad, PromotionConfig())
    assert not d.promoted and "quality gate not passed" in d.text()
    nometric = add_version(None)
    d = decide(MlflowClient(), NAME, nometric, PromotionConfig(fallback_metric=None))
    assert not d.promoted and "no SODA_c" in d.text()
    assert champion() is None
    client = MlflowClient()
    client.delete_model_version_tag(NAME, nometric, "eval.run")
    d = decide(client, NAME, nometric, PromotionConfig())
    assert not d.promoted and "eval.run tag missing" in d.text()


def test_no_champion_yet_still_must_beat_the_trivial_baseline(store: Path) -> None:
    weak = add_version(0.05, baseline=0.10)
    d = promote(store, NAME, weak, PromotionConfig())
    assert not d.promoted and champion() is None
    assert "does not beat the trivial baseline (0.1000)" in d.text(), d.text()
    assert d.baseline == "trivial" and d.baseline_value == pytest.approx(0.10)
    # equal is not better, and the configured margin applies
    equal = add_version(0.1, baseline=0.1)
    assert not decide(MlflowClient(), NAME, equal, PromotionConfig()).promoted
    close = add_version(0.12, baseline=0.10)
    d = decide(MlflowClient(), NAME, close, PromotionConfig(baseline_margin=0.05))
    assert not d.promoted and "margin 0.05" in d.text()
    assert decide(MlflowClient(), NAME, close, PromotionConfig(baseline_margin=0.01)).promoted
    # no baseline logged: the floor cannot be checked, so no promotion, unless it is switched off
    unknown = add_version(0.5, baseline=None)
    d = decide(MlflowClient(), NAME, unknown, PromotionConfig())
    assert not d.promoted and "logged no baseline_trivial.SODA_c" in d.text()
    assert decide(MlflowClient(), NAME, unknown, PromotionConfig(baseline=None)).promoted
    strong = add_version(0.3, baseline=0.10)
    d = promote(store, NAME, strong, PromotionConfig())
    assert d.promoted and champion() == strong
    assert "beats the trivial baseline (0.1000)" in d.text()


def test_a_version_is_judged_by_its_own_evaluation(store: Path) -> None:
    other = add_version(0.9)
    other_run = MlflowClient().get_model_version(NAME, other).run_id
    v = add_version(0.9, scored=other_run)  # its eval.run scored another model
    d = decide(MlflowClient(), NAME, v, PromotionConfig())
    assert not d.promoted and f"scored the model of run {other_run}" in d.text()


def _promote_in_process(root: str, uri: str, version: str, barrier: mp.Barrier) -> bool:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    barrier.wait()
    return promote(Path(root), NAME, version, PromotionConfig()).promoted


def test_two_runs_finishing_at_once_cannot_both_promote(store: Path) -> None:
    v1 = add_version(0.40)
    promote(store, NAME, v1, PromotionConfig())
    v2, v3 = add_version(0.60), add_version(0.60)  # both beat v1, neither beats the other
    uri = mlflow.get_tracking_uri()
    ctx = mp.get_context("spawn")
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        outcomes = pool.starmap(
            _promote_in_process, [(str(store), uri, v2, barrier), (str(store), uri, v3, barrier)]
        )
    assert sorted(outcomes) == [False, True]
    assert champion() in (v2, v3)
