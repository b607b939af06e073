"""Training augmentation (hivid.training.augment): views that can only be learnt by copying."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import numpy as np
import pytest

from hivid.configbase import ConfigError, from_mapping
from hivid.models.narrator import InputSpec
from hivid.models.sequence import format_grounded_target, timestamp_text
from hivid.models.tokenizer import ensure_narrator_tokens, train_bpe_tokenizer
from hivid.training.augment import AugmentConfig, augment_view, name_pool, name_words
from hivid.training.config import TrainConfig
from hivid.training.datamodule import (
    NarratorDataModule,
    NarratorDataset,
    corpus_texts,
    prepare_sample,
    select_frames,
)

ON = AugmentConfig(enabled=True, rename_prob=1.0, max_time_offset_s=15, min_keep_frames=0.6)


def record(i: int, n: int = 12) -> dict[str, Any]:
    brand, name = [("Lumora", "Silk Shampoo"), ("Zenthe", "Morning Mug")][i % 2]
    return {
        "video_id": f"v{i}",
        "duration": float(n),
        "frame_times": [float(t) for t in range(n)],
        "frames": f"frames/v{i}.npy",
        "metadata": {"brand": brand, "title": f"{brand} {name} 500 ml",
                     "attributes": {"volume": "500 ml"}},
        "asr": [
            {"start": 0.3, "end": 2.5, "text": f"Meet the {brand} {name} today."},
            {"start": 6.2, "end": 8.0, "text": f"The {name} holds 500 ml."},
        ],
        "tcot": [],
        "chapters": [
            {"start": 0.0, "end": 6.0, "title": name, "summary": f"Meet the {brand} {name} today."},
            {"start": 6.0, "end": float(n), "title": name, "summary": f"The {name} holds 500 ml."},
        ],
    }  # fmt: skip


def test_config_validated_and_off_by_default() -> None:
    assert TrainConfig().augment.enabled is False
    cfg = from_mapping(TrainConfig, {"augment": {"enabled": True, "max_time_offset_s": 5}})
    assert cfg.augment.enabled and cfg.augment.max_time_offset_s == 5
    with pytest.raises(ConfigError, match="min_keep_frames"):
        from_mapping(TrainConfig, {"augment": {"min_keep_frames": 0}})


def test_rename_is_consistent_between_input_and_target() -> None:
    rec = record(0)
    pool = name_pool([record(0), record(1)])
    assert name_words(rec["metadata"]) == ["Lumora", "Silk", "Shampoo"]
    seen_new = set()
    for seed in range(20):
        view, idx = augment_view(rec, select_frames(12, 64), ON, random.Random(seed), pool)
        target = format_grounded_target(
            view["chapters"], [view["frame_times"][k] for k in idx], view["metadata"]
        )
        said = " ".join(s["text"] for s in view["asr"])
        titles = set(re.findall(r"\] (.+?) \|", target.split("<chapters>")[1]))
        assert len(titles) == 1
        (title,) = titles
        assert title != "Silk Shampoo" and f"{title} holds" in said  # the name the narration says
        assert not {"Lumora", "Silk", "Shampoo"} & set(re.findall(r"\w+", said + target))
        seen_new.add(title)
    assert len(seen_new) > 10  # fresh names per view


def test_time_offset_and_frame_subset_apply_to_input_and_target() -> None:
    rec = record(1, n=20)
    offsets, kept = set(), set()
    for seed in range(20):
        view, idx = augment_view(rec, select_frames(20, 64), ON, random.Random(seed))
        off = view["frame_times"][0] - rec["frame_times"][0]
        assert off == int(off) and 0 <= off <= 15
        assert view["frame_times"] == [t + off for t in rec["frame_times"]]
        assert [s["start"] for s in view["asr"]] == [s["start"] + off for s in rec["asr"]]
        assert [c["start"] for c in view["chapters"]] == [c["start"] + off for c in rec["chapters"]]
        assert idx[0] == 0 and idx[-1] == 19 and len(idx) >= 12 and list(idx) == sorted(set(idx))
        times = [view["frame_times"][k] for k in idx]
        target = format_grounded_target(view["chapters"], times, view["metadata"])
        stamps = {timestamp_text(t)[3:-1] for t in times}
        assert set(re.findall(r"(\d+\.\d)s", target)) <= {s[:-1] for s in stamps}
        offsets.add(off)
        kept.add(len(idx))
    assert len(offsets) > 5 and len(kept) > 3


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("augment")
    (root / "frames").mkdir()
    rng = np.random.default_rng(0)
    recs = [record(i) for i in range(4)]
    for r in recs:
        np.save(root / r["frames"], rng.integers(0, 256, (12, 16, 16, 3), np.uint8))
    for split, rs in {"train": recs[:2], "val": recs[2:3], "test": recs[3:]}.items():
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    tok = ensure_narrator_tokens(train_bpe_tokenizer(corpus_texts(recs), vocab_size=400))
    spec = InputSpec(16, 2, 64, compressed_tokens_per_frame=None, scene_tokens=None)
    return {"root": root, "recs": recs, "tok": tok, "spec": spec}


def _ids(sample: dict[str, Any]) -> list[int]:
    return [int(x) for x in sample["input_ids"]]


def test_views_are_deterministic_under_seed_and_fresh_per_draw(data: dict[str, Any]) -> None:
    def draws(seed: int) -> list[list[int]]:
        ds = NarratorDataset(data["recs"][:2], data["root"], data["tok"], data["spec"], ON, seed)
        return [_ids(ds[i % 2]) for i in range(6)]

    a = draws(0)
    assert a == draws(0)
    assert a != draws(1)
    assert a[0] != a[2]  # the same video drawn again is another view


def test_never_augments_validation_test_or_generation(data: dict[str, Any]) -> None:
    dm = NarratorDataModule(data["root"], data["tok"], data["spec"], augment=ON, seed=0)
    dm.setup()
    assert dm.splits["train"].augment is not None
    for split in ("val", "test"):
        ds = dm.splits[split]
        assert ds.augment is None
        plain = prepare_sample(ds.records[0], data["root"], data["tok"], data["spec"])
        assert _ids(ds[0]) == _ids(ds[0]) == _ids(plain)
    rec = dm.splits["train"].records[0]
    plain = prepare_sample(rec, data["root"], data["tok"], data["spec"], with_target=False)
    assert plain["frame_times"].tolist() == rec["frame_times"]  # generation reads the video as is
    assert _ids(dm.splits["train"][0]) != _ids(
        prepare_sample(rec, data["root"], data["tok"], data["spec"])
    )
