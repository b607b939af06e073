from __future__ import annotations

import multiprocessing as mp
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from filelock import FileLock, Timeout
from mlflow.tracking import MlflowClient

from hivid.tracking.promotion import CAS_ATTEMPTS, PromotionConfig, decide, promote

NAME = "hivid-narrator"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # set_registry_uri exports MLFLOW_REGISTRY_URI: monkeypatched, so later tests do not inherit it
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
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
    tag = MlflowClient().get_model_version(NAME, v1).tags["promotion.decision"]
    assert tag == d.text() and tag.startswith(f"version {v1} PROMOTED to champion: ")
    # the decision tag keeps the first 5000 characters (the reason quotes the gx.result tag)
    v2 = add_version(0.9, gate="x" * 6000)
    d = promote(store, NAME, v2, PromotionConfig())
    assert not d.promoted and len(d.text()) > 6000
    assert MlflowClient().get_model_version(NAME, v2).tags["promotion.decision"] == d.text()[:5000]


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


def test_promotion_waits_for_the_lock_beside_the_store(store: Path) -> None:
    """Another run holding ``<root>/mlruns/.promotion.lock`` blocks promotion for at most
    ``lock_timeout_s``; the lock's folder is created when missing (a fresh project root)."""
    v1 = add_version(0.4)
    held, done = threading.Event(), threading.Event()

    def other_run() -> None:
        with FileLock(str(store / "mlruns" / ".promotion.lock")):
            held.set()
            done.wait(5)

    t = threading.Thread(target=other_run)
    t.start()
    try:
        assert held.wait(5)
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            promote(store, NAME, v1, PromotionConfig(lock_timeout_s=0.3))
        assert time.monotonic() - t0 < 3
    finally:
        done.set()
        t.join()
    assert champion() is None
    fresh = store / "elsewhere" / "project"
    assert promote(fresh, NAME, v1, PromotionConfig(lock_timeout_s=0.3)).promoted
    assert (fresh / "mlruns" / ".promotion.lock").exists() and champion() == v1


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


# The race: each process finishes its start-up (imports, MLflow client, database connection)
# before the barrier, so both call `promote` at the same instant; a delay injected just before the
# alias is written keeps each one inside the decide -> compare-and-set -> write window long
# enough for the other to enter it. Without the lock both see v1 as the champion, both pass the
# compare-and-set and both promote.
RACE_DELAY_S = 1.5


def _promote_in_process(
    root: str, uri: str, version: str, barrier: Any, delay_s: float
) -> tuple[bool, float]:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    MlflowClient().get_registered_model(NAME)  # start-up done before the race starts
    original = MlflowClient.set_registered_model_alias

    def slow_set_alias(self: MlflowClient, *args: Any, **kwargs: Any) -> None:
        time.sleep(delay_s)  # inside the locked region: after the decision, before the write
        original(self, *args, **kwargs)

    MlflowClient.set_registered_model_alias = slow_set_alias  # type: ignore[method-assign]
    barrier.wait()
    started = time.time()
    return promote(Path(root), NAME, version, PromotionConfig()).promoted, started


def test_two_runs_finishing_at_once_cannot_both_promote(store: Path) -> None:
    v1 = add_version(0.40)
    promote(store, NAME, v1, PromotionConfig())
    v2, v3 = add_version(0.60), add_version(0.60)  # both beat v1, neither beats the other
    uri = mlflow.get_tracking_uri()
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            outcomes = pool.starmap(
                _promote_in_process,
                [(str(store), uri, v, barrier, RACE_DELAY_S) for v in (v2, v3)],
            )
    (won_a, start_a), (won_b, start_b) = outcomes
    # the two promotions really overlapped: both entered `promote` within the injected window
    assert abs(start_a - start_b) < RACE_DELAY_S / 2
    assert sorted([won_a, won_b]) == [False, True]
    winner = v2 if won_a else v3
    assert champion() == winner
    loser = v3 if won_a else v2
    tag = MlflowClient().get_model_version(NAME, loser).tags["promotion.decision"]
    assert f"does not beat champion v{winner}" in tag


def test_champion_moved_by_a_lock_free_writer_is_decided_again(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compare-and-set: a writer that bypasses the lock moves the champion between the decision
    and the alias write; the stale decision must not overwrite it."""
    import hivid.tracking.promotion as promotion

    v1 = add_version(0.40)
    promote(store, NAME, v1, PromotionConfig())
    v2, v3 = add_version(0.60), add_version(0.90)
    real_decide = promotion.decide
    calls: list[str | None] = []

    def decide_then_someone_moves_the_champion(*args: Any, **kwargs: Any) -> Any:
        d = real_decide(*args, **kwargs)
        calls.append(d.champion_before)
        if len(calls) == 1:  # e.g. a person setting the alias in the MLflow UI
            MlflowClient().set_registered_model_alias(NAME, "champion", v3)
        return d

    monkeypatch.setattr(promotion, "decide", decide_then_someone_moves_the_champion)
    d = promote(store, NAME, v2, PromotionConfig())
    assert calls == [v1, v3]  # decided against v1, saw the alias move, decided again against v3
    assert not d.promoted and d.champion_before == v3
    assert champion() == v3


def test_champion_that_keeps_moving_is_never_overwritten(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock-free writer moving the alias after every decision: ``promote`` gives up after
    ``CAS_ATTEMPTS`` decisions and reports no promotion (its tag says so too)."""
    import hivid.tracking.promotion as promotion

    v1 = add_version(0.40)
    promote(store, NAME, v1, PromotionConfig())
    v2, v3, v4 = add_version(0.90), add_version(0.30), add_version(0.20)
    real_decide = promotion.decide
    calls: list[str | None] = []

    def decide_then_move(*args: Any, **kwargs: Any) -> Any:
        d = real_decide(*args, **kwargs)
        calls.append(d.champion_before)
        MlflowClient().set_registered_model_alias(NAME, "champion", v3 if len(calls) % 2 else v4)
        return d

    monkeypatch.setattr(promotion, "decide", decide_then_move)
    d = promote(store, NAME, v2, PromotionConfig())
    assert calls == [v1, v3, v4, v3, v4][:CAS_ATTEMPTS] and CAS_ATTEMPTS == 5
    assert d.promoted is False and champion() == v3
    assert d.reasons[-1] == "the champion alias moved after each of 5 decisions; not promoted"
    tag = MlflowClient().get_model_version(NAME, v2).tags["promotion.decision"]
    assert tag.startswith(f"version {v2} kept as challenger: ")
