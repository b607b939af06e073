"""The warm/full plan's exact numbers, messages and records (pure: fast enough for mutation)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from hivid.configbase import ConfigError
from hivid.training.warmstart import (
    PLAN_FILE,
    ParentRecord,
    WarmStartConfig,
    WarmStartPlan,
    model_config_sha256,
    parent_record,
    plan_warm_start,
    read_plan,
    split_videos_with_hashes,
    training_record,
    warm_steps,
)

STEPS = {"stage1": 300, "stage2": 150}


def _train(n: int) -> dict[str, str]:
    return {f"v{i:02d}": f"h{i}" for i in range(n)}


def _parent(videos: dict[str, str], chain: int = 0) -> ParentRecord:
    return ParentRecord("hivid-narrator/4", "abc", videos, "m", chain)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("alias", " ", "warm_start.alias must not be empty"),
        ("max_new_fraction", 0.0, r"warm_start.max_new_fraction must be in \(0, 1\]"),
        ("max_new_fraction", 1.01, r"warm_start.max_new_fraction must be in \(0, 1\]"),
        ("max_chain", -1, "warm_start.max_chain must be >= 0"),
        ("step_scale", 0.0, "warm_start.step_scale must be > 0"),
        ("min_steps", 0, "warm_start.min_steps must be >= 1"),
        ("new_video_share", 0.0, r"warm_start.new_video_share must be in \(0, 1\)"),
        ("new_video_share", 1.0, r"warm_start.new_video_share must be in \(0, 1\)"),
    ],
)
def test_config_bounds_are_refused_with_the_key(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}$"):
        WarmStartConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_fraction", 1.0),
        ("max_new_fraction", 0.01),
        ("max_chain", 0),
        ("step_scale", 0.01),
        ("min_steps", 1),
        ("new_video_share", 0.01),
        ("new_video_share", 0.99),
    ],
)
def test_config_bounds_themselves_are_allowed(field: str, value: object) -> None:
    assert getattr(WarmStartConfig(**{field: value}), field) == value  # type: ignore[arg-type]


def test_defaults() -> None:
    cfg = WarmStartConfig()
    assert (cfg.enabled, cfg.alias, cfg.max_new_fraction, cfg.max_chain) == (
        True,
        "champion",
        0.5,
        7,
    )
    assert (cfg.step_scale, cfg.min_steps, cfg.new_video_share) == (2.0, 10, 0.5)


def test_warm_steps_exact() -> None:
    cfg = WarmStartConfig(min_steps=3, step_scale=2.0)
    assert warm_steps(100, 0.101, cfg) == 21  # ceil(100 x 0.202): rounds up, not down
    assert warm_steps(100, 0.5, cfg) == 100  # min(1, 2 x 0.5) = 1: the whole stage
    assert warm_steps(100, 0.75, cfg) == 100  # capped at 1 x max_steps
    assert warm_steps(100, 0.01, cfg) == 3  # floor min_steps
    assert warm_steps(2, 0.01, cfg) == 2  # ... never above max_steps
    assert warm_steps(100, 0.0, cfg) == 0
    assert warm_steps(100, -0.1, cfg) == 0
    assert warm_steps(100, 0.015, WarmStartConfig(min_steps=1, step_scale=1.0)) == 2


def test_warm_plan_records_every_number() -> None:
    cfg = WarmStartConfig(new_video_share=0.3)
    train = _train(10)
    p = plan_warm_start(cfg, train, "m", STEPS, _parent(_train(8), chain=2))
    assert p.to_dict() == {
        "mode": "warm",
        "reason": "2/10 training videos new since hivid-narrator/4: continuing it",
        "steps": {"stage1": 120, "stage2": 60},
        "parent": "hivid-narrator/4",
        "parent_sha256": "abc",
        "chain": 3,
        "new_videos": ["v08", "v09"],
        "gone_videos": [],
        "new_fraction": 0.2,
        "train_videos": 10,
        "new_video_share": 0.3,
    }
    assert STEPS == {"stage1": 300, "stage2": 150}  # the caller's dict is not changed


def test_fraction_is_rounded_to_four_places() -> None:
    p = plan_warm_start(WarmStartConfig(), _train(3), "m", STEPS, _parent(_train(2)))
    assert p.new_fraction == 0.3333 and p.mode == "warm"


def test_full_plans_keep_the_full_steps_and_say_why() -> None:
    cfg = WarmStartConfig()
    p = plan_warm_start(cfg, _train(4), "m", STEPS, None)
    assert p.to_dict() == {
        "mode": "full",
        "reason": "no @champion model in the registry",
        "steps": STEPS,
        "parent": None,
        "parent_sha256": None,
        "chain": 0,
        "new_videos": [],
        "gone_videos": [],
        "new_fraction": 0.0,
        "train_videos": 4,
        "new_video_share": 0.5,
    }
    alias = plan_warm_start(WarmStartConfig(alias="prod"), _train(4), "m", STEPS, None)
    assert alias.reason == "no @prod model in the registry"
    off = plan_warm_start(WarmStartConfig(enabled=False), _train(4), "m", STEPS, _parent(_train(4)))
    assert (off.reason, off.parent) == ("warm_start.enabled is false", None)
    changed = plan_warm_start(cfg, _train(4), "other", STEPS, _parent(_train(4)))
    assert changed.reason == "model config changed since hivid-narrator/4"
    assert (changed.parent, changed.parent_sha256, changed.new_videos) == (
        "hivid-narrator/4",
        "abc",
        [],
    )


def test_gone_videos_are_listed_first_five() -> None:
    parent = _parent(_train(12))
    train = {**_train(12), **{f"v{i:02d}": "changed" for i in range(7)}}
    p = plan_warm_start(WarmStartConfig(), train, "m", STEPS, parent)
    assert p.mode == "full" and p.steps == STEPS and p.chain == 0
    assert p.gone_videos == [f"v{i:02d}" for i in range(7)]
    assert p.new_videos == p.gone_videos  # changed content: gone and new at once
    assert p.reason == (
        "hivid-narrator/4 was trained on 7 video(s) no longer in the training split with the "
        "same content (v00, v01, v02, v03, v04 ...)"
    )
    few = plan_warm_start(WarmStartConfig(), _train(3), "m", STEPS, _parent(_train(4)))
    assert few.reason.endswith("same content (v03)")
    five = plan_warm_start(WarmStartConfig(), _train(1), "m", STEPS, _parent(_train(6)))
    assert five.reason.endswith("same content (v01, v02, v03, v04, v05)")
    six = plan_warm_start(WarmStartConfig(), _train(1), "m", STEPS, _parent(_train(7)))
    assert six.reason.endswith("same content (v01, v02, v03, v04, v05 ...)")


def test_chain_and_new_fraction_limits_are_inclusive_for_warm() -> None:
    cfg = WarmStartConfig(max_chain=3, max_new_fraction=0.5)
    at_chain = plan_warm_start(cfg, _train(5), "m", STEPS, _parent(_train(4), chain=2))
    assert at_chain.mode == "warm" and at_chain.chain == 3
    over = plan_warm_start(cfg, _train(5), "m", STEPS, _parent(_train(4), chain=3))
    assert over.mode == "full" and over.reason == (
        "3 warm start(s) in a row since the last full retrain (warm_start.max_chain=3)"
    )
    half = plan_warm_start(cfg, _train(4), "m", STEPS, _parent(_train(2)))
    assert half.mode == "warm" and half.new_fraction == 0.5
    more = plan_warm_start(cfg, _train(6), "m", STEPS, _parent(_train(2)))
    assert more.mode == "full" and more.reason == (
        "4/6 training videos are new (67% > warm_start.max_new_fraction=50%)"
    )


def test_no_new_training_video_keeps_the_weights() -> None:
    p = plan_warm_start(WarmStartConfig(), _train(4), "m", STEPS, _parent(_train(4), chain=1))
    assert p.mode == "warm" and p.steps == {"stage1": 0, "stage2": 0} and p.chain == 2
    assert p.reason == (
        "training split unchanged since hivid-narrator/4: its weights are kept (0 steps)"
    )
    empty = plan_warm_start(WarmStartConfig(), {}, "m", STEPS, _parent({}))
    assert empty.mode == "warm" and empty.new_fraction == 0.0 and empty.train_videos == 0


def test_training_record_and_parent_record_round_trip() -> None:
    plan = plan_warm_start(WarmStartConfig(), _train(3), "m", STEPS, _parent(_train(2), chain=4))
    rec = training_record({"b": "2", "a": "1"}, "cfg", plan)
    assert list(rec["videos"]) == ["a", "b"]  # sorted
    assert rec["model_config_sha256"] == "cfg" and rec["chain"] == 5
    assert rec["warm_start"] == plan.to_dict()
    assert training_record({}, "cfg", None) == {
        "videos": {},
        "model_config_sha256": "cfg",
        "warm_start": None,
        "chain": 0,
    }
    par = parent_record("hivid-narrator/9", "sha9", json.loads(json.dumps(rec)))
    assert par == ParentRecord("hivid-narrator/9", "sha9", {"a": "1", "b": "2"}, "cfg", 5)
    assert parent_record("r", "s", {}) == ParentRecord("r", "s", {}, "", 0)
    odd = parent_record("r", "s", {"videos": {"1": 2}, "model_config_sha256": None, "chain": "3"})
    assert (odd.videos, odd.model_config_sha256, odd.chain) == ({"1": "2"}, "", 3)


def test_read_plan(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"plan.json: missing \(run `hivid warm-start`"):
        read_plan(tmp_path)
    plan = plan_warm_start(WarmStartConfig(), _train(3), "m", STEPS, _parent(_train(2)))
    (tmp_path / PLAN_FILE).write_text(json.dumps({**plan.to_dict(), "future_key": 1}))
    assert read_plan(tmp_path) == plan  # unknown keys of a newer writer are ignored
    assert WarmStartPlan.from_dict({"mode": "full", "reason": "r"}).steps == {}


def test_split_hashes_skip_blank_lines_and_name_the_row(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(
        json.dumps({"video_id": "a", "sha256": "x"})
        + "\n\n   \n"
        + json.dumps({"video_id": 7, "sha256": "y"})
        + "\n"
    )
    assert split_videos_with_hashes(tmp_path, "train") == {"a": "x", "7": "y"}
    (tmp_path / "val.jsonl").write_text(json.dumps({"video_id": "b", "sha256": None}) + "\n")
    with pytest.raises(ValueError, match=r"val.jsonl: row 'b' has no sha256 \(rebuild it\)$"):
        split_videos_with_hashes(tmp_path, "val")
    assert split_videos_with_hashes(tmp_path, "val", strict=False) == {"b": ""}


@dataclass
class _Cfg:
    width: int = 32
    depth: int = 2
    use_compressor: bool = False


@dataclass
class _NoSwitch:
    b: str = "x"
    a: int = 1


def test_model_config_hash_is_pinned() -> None:
    """The hash is recorded in every champion's training.json: it must not change between
    versions of the code (a changed hash forces every deployment into a full retrain)."""
    want = hashlib.sha256(b'{"depth": 2, "width": 32}').hexdigest()
    assert model_config_sha256(_Cfg()) == want
    assert model_config_sha256(_Cfg(use_compressor=True)) == want
    # keys sorted, whatever the field order; a config without the switch hashes too
    assert model_config_sha256(_NoSwitch()) == hashlib.sha256(b'{"a": 1, "b": "x"}').hexdigest()
