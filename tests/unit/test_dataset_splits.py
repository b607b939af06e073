"""Dataset splits: ``stable`` never moves a video as the corpus grows; ``exact`` cuts sizes; the
GX split-size gate allows a stable split's binomial sizes and nothing more."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hivid.configbase import ConfigError
from hivid.dataset.build import DatasetConfig, hash_unit, split_videos
from hivid.quality.gate import run_splits_gate
from hivid.quality.suites import QualityConfig
from hivid.quality.tables import expected_split_sizes, split_size_tolerances

DEMO = [f"demo_{i:03d}" for i in range(8)]


def _where(ids: list[str], cfg: DatasetConfig) -> dict[str, str]:
    return {vid: name for name, vs in split_videos(ids, cfg).items() for vid in vs}


def _raw_split(vid: str, cfg: DatasetConfig) -> str:
    """The spec of a stable split, written out independently of the implementation."""
    u = hash_unit(vid, cfg.seed)
    if u < cfg.test_fraction:
        return "test"
    return "val" if u < cfg.test_fraction + cfg.val_fraction else "train"


def _every_range_filled(ids: set[str], cfg: DatasetConfig) -> bool:
    """The corpus has a video in each hash range whose fraction is non-zero (no tiny-n fix-up)."""
    got = {_raw_split(v, cfg) for v in ids}
    need = {"train"}
    need |= {"test"} if cfg.test_fraction > 0 else set()
    need |= {"val"} if cfg.val_fraction > 0 else set()
    return need <= got


def test_demo_split_is_the_same_under_both_methods() -> None:
    """The committed dvc.lock was built with ``exact``; the default ``stable`` keeps it."""
    want = {
        "train": ["demo_000", "demo_001", "demo_003", "demo_004", "demo_006"],
        "val": ["demo_005"],
        "test": ["demo_002", "demo_007"],
    }
    for method in ("stable", "exact"):
        assert split_videos(DEMO, DatasetConfig(seed=0, split_method=method)) == want


def test_stable_split_follows_each_videos_own_hash() -> None:
    cfg = DatasetConfig(seed=3)
    ids = [f"v{i}" for i in range(200)]
    assert _every_range_filled(set(ids), cfg)
    assert _where(ids, cfg) == {v: _raw_split(v, cfg) for v in ids}


def test_split_method_is_validated() -> None:
    with pytest.raises(ConfigError, match="split_method must be one of stable, exact"):
        DatasetConfig(split_method="random")  # type: ignore[arg-type]


ids_strategy = st.sets(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    a=st.sets(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True), min_size=12, max_size=60),
    extra=ids_strategy,
    seed=st.integers(0, 2**31),
    fractions=st.sampled_from([(0.125, 0.25), (0.1, 0.15), (0.0, 0.2), (0.3, 0.0), (0.2, 0.2)]),
)
def test_stable_never_moves_a_video_when_others_are_added(
    a: set[str], extra: set[str], seed: int, fractions: tuple[float, float]
) -> None:
    """A subset B of a corpus A: once A has a video in every hash range, each video of A has
    the same split in A and in A | B (and in any superset: the claim is per video)."""
    cfg = DatasetConfig(val_fraction=fractions[0], test_fraction=fractions[1], seed=seed)
    assume(_every_range_filled(a, cfg))
    small, big = _where(sorted(a), cfg), _where(sorted(a | extra), cfg)
    assert {v: big[v] for v in a} == small
    assert small == {v: _raw_split(v, cfg) for v in a}


@settings(max_examples=150, deadline=None)
@given(ids=ids_strategy, seed=st.integers(0, 2**31), method=st.sampled_from(["stable", "exact"]))
def test_tiny_corpus_guarantees_hold_for_both_methods(
    ids: set[str], seed: int, method: str
) -> None:
    cfg = DatasetConfig(seed=seed, split_method=method)  # type: ignore[arg-type]
    s = split_videos(sorted(ids), cfg)
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(ids)
    n = len(ids)
    assert len(s["train"]) >= 1
    assert len(s["test"]) >= (1 if n >= 2 else 0)
    assert len(s["val"]) >= (1 if n >= 3 else 0)


def test_tiny_corpus_fix_up_moves_the_nearest_boundary_video() -> None:
    """Three videos that all hash into train: the two of smallest u fill test, then val."""
    cfg = DatasetConfig(seed=0)
    train_only = [v for v in (f"x{i}" for i in range(200)) if _raw_split(v, cfg) == "train"][:3]
    by_u = sorted(train_only, key=lambda v: hash_unit(v, cfg.seed))
    s = split_videos(train_only, cfg)
    assert s == {"test": [by_u[0]], "val": [by_u[1]], "train": [by_u[2]]}
    # The documented exception: once the corpus fills the test and val hash ranges, the two
    # borrowed videos go back to train (their own hash).
    grown = _where([*train_only, *(f"y{i}" for i in range(100))], cfg)
    assert [grown[v] for v in by_u] == ["train", "train", "train"]


def test_exact_cuts_round_n_fraction_but_can_move_videos() -> None:
    cfg = DatasetConfig(split_method="exact")
    ids = [f"v{i}" for i in range(40)]
    s = split_videos(ids, cfg)
    assert (len(s["test"]), len(s["val"])) == (10, 5)
    # the documented cost: adding videos shifts the cut, so some existing video changes split
    moved = 0
    for extra in range(1, 40):
        bigger = _where([*ids, *(f"w{i}" for i in range(extra))], cfg)
        moved += sum(bigger[v] != _where(ids, cfg)[v] for v in ids)
    assert moved > 0


# ----------------------------------------------------------------------------------------------
# split-size gate


def test_split_size_tolerances() -> None:
    assert split_size_tolerances(8, 0.125, 0.25, 1, "exact") == {"train": 1, "val": 1, "test": 1}
    tol = split_size_tolerances(1000, 0.125, 0.25, 1, "stable")
    assert tol == {
        "train": math.ceil(3 * math.sqrt(1000 * 0.625 * 0.375)),  # 46
        "val": math.ceil(3 * math.sqrt(1000 * 0.125 * 0.875)),  # 32
        "test": math.ceil(3 * math.sqrt(1000 * 0.25 * 0.75)),  # 42
    }
    # never below the configured tolerance; an exact integer is not rounded up (3 x sqrt(1) = 3)
    assert split_size_tolerances(0, 0.125, 0.25, 2, "stable") == {"train": 2, "val": 2, "test": 2}
    assert split_size_tolerances(2, 0.0, 0.5, 0, "stable")["test"] == 3


def _splits_of(ids: list[str], sizes: dict[str, int]) -> dict[str, list[str]]:
    t, v = sizes["test"], sizes["val"]
    return {"test": ids[:t], "val": ids[t : t + v], "train": ids[t + v :]}


def test_gate_accepts_a_stable_split_that_exact_tolerance_rejects(tmp_path: Path) -> None:
    ids = [f"v{i:04d}" for i in range(1000)]
    exp = expected_split_sizes(1000, 0.125, 0.25)  # train 625, val 125, test 250
    off = _splits_of(ids, {"test": exp["test"] + 30, "val": exp["val"] - 20})
    cfg = QualityConfig()
    stable = run_splits_gate(off, ids, 0.125, 0.25, cfg, tmp_path / "s", method="stable")
    assert stable.success, stable.batch_failures
    exact = run_splits_gate(off, ids, 0.125, 0.25, cfg, tmp_path / "e", method="exact")
    assert not exact.success
    assert any("split test has 280 videos, expected 250 +- 1" in f for f in exact.batch_failures)


def test_gate_rejects_a_stable_split_beyond_three_sigma(tmp_path: Path) -> None:
    ids = [f"v{i:04d}" for i in range(1000)]
    exp = expected_split_sizes(1000, 0.125, 0.25)
    skew = _splits_of(ids, {"test": exp["test"] + 43, "val": exp["val"]})  # test tolerance 42
    g = run_splits_gate(skew, ids, 0.125, 0.25, QualityConfig(), tmp_path / "g", method="stable")
    assert not g.success
    msg = "split test has 293 videos, expected 250 +- 42 (3 sigma of a stable split's binomial"
    assert any(msg in f for f in g.batch_failures), g.batch_failures


def test_gate_accepts_real_stable_splits_of_many_corpora(tmp_path: Path) -> None:
    """The splits ``split_videos`` makes pass the gate (tiny corpora included)."""
    cfg = DatasetConfig()
    for n, seed in [(1, 0), (2, 1), (3, 2), (5, 3), (8, 0), (37, 4), (400, 5)]:
        ids = [f"c{seed}_{i}" for i in range(n)]
        s = split_videos(ids, dataclasses.replace(cfg, seed=seed))
        g = run_splits_gate(
            s,
            ids,
            cfg.val_fraction,
            cfg.test_fraction,
            QualityConfig(),
            tmp_path / f"{n}",
            method="stable",
        )
        assert g.success, (n, g.batch_failures)
