"""Two-stage training of the tiny narrator on a generated dataset directory (CPU, a few steps)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from hivid.configbase import from_mapping
from hivid.models.narrator import load_narrator, narrator_config
from hivid.models.sequence import IGNORE_INDEX
from hivid.training.datamodule import (
    DatasetFormatError,
    NarratorDataModule,
    read_split,
    select_frames,
)
from hivid.training.fit import TrainConfig, TrainResult, train_stage
from hivid.training.generate import generate_chapters
from hivid.training.module import NarratorLightningModule, StageError, trainable_parameter_names
from tests.helpers import make_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("train")
    data = make_dataset(root / "dataset")
    cfg = narrator_config("tiny")
    tcfg = TrainConfig(max_steps=3, batch_size=2, checkpoint_every_n_steps=2, max_frames=4)
    r1 = train_stage(1, data, root / "stage1", cfg, tcfg)
    r2 = train_stage(2, data, root / "stage2", cfg, tcfg, init_model_dir=r1.model_dir)
    return {"data": data, "root": root, "cfg": cfg, "tcfg": tcfg, "r1": r1, "r2": r2}


def test_train_config_from_mapping() -> None:
    cfg = from_mapping(TrainConfig, {"max_steps": 5, "devices": 2, "precision": "bf16-mixed"})
    assert (cfg.max_steps, cfg.devices, cfg.lr) == (5, 2, None)
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=0)


def test_stage1_then_stage2(trained: dict[str, Any]) -> None:
    r1: TrainResult = trained["r1"]
    r2: TrainResult = trained["r2"]
    for r in (r1, r2):
        assert np.isfinite(r.metrics["train_loss"]) and np.isfinite(r.metrics["val_loss"])
        assert r.metrics["steps"] == 3
        assert (r.model_dir / "narrator_config.json").is_file()
        assert r.lightning_checkpoint.is_file()
    assert all(n.startswith(("compressor.", "time_encoder.")) for n in r2.trainable_parameter_names)
    assert not any(
        n.startswith(("compressor.", "time_encoder.")) for n in r1.trainable_parameter_names
    )
    assert r2.metrics["trainable_params"] < r1.metrics["trainable_params"]

    m1, _ = load_narrator(r1.model_dir)
    m2, _ = load_narrator(r2.model_dir)
    assert m2.use_compressor and not m1.use_compressor
    assert m2.cfg.max_frames == 4
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert set(s1) == {n for n in s2 if not n.startswith(("compressor.", "time_encoder."))}
    changed = [n for n in s1 if not torch.equal(s1[n], s2[n])]
    assert changed == [], f"stage 2 changed frozen weights: {changed[:5]}"
    # Stage 1 did train: its weights differ from the initial ones.
    m0, _ = load_narrator(trained["root"] / "stage1" / "init")
    s0 = m0.state_dict()
    assert any(not torch.equal(s0[n], s1[n]) for n in s1)


class _FirstStepState(Callback):
    """Records, at the first training batch, the step and the state the run starts from."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] | None = None

    def on_train_batch_start(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if self.seen is None:
            self.seen = {
                "global_step": trainer.global_step,
                "optimizer": copy.deepcopy(trainer.optimizers[0].state_dict()),
                "scheduler": copy.deepcopy(trainer.lr_scheduler_configs[0].scheduler.state_dict()),
                "weights": {k: v.detach().clone() for k, v in module.state_dict().items()},
            }


def _assert_same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys differ"
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_from_last_checkpoint(trained: dict[str, Any]) -> None:
    """A second call with the same out_dir resumes at step 3, with the checkpoint's weights,
    optimizer moments and LR-scheduler position, and trains on to the new max_steps."""
    import dataclasses

    out = trained["root"] / "stage1"
    saved = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 3
    assert saved["optimizer_states"][0]["state"], "the checkpoint holds no optimizer moments"
    probe = _FirstStepState()
    tcfg = dataclasses.replace(trained["tcfg"], max_steps=4)
    r = train_stage(1, trained["data"], out, trained["cfg"], tcfg, callbacks=[probe])
    assert probe.seen is not None
    assert probe.seen["global_step"] == 3  # not a fresh start at 0
    _assert_same(probe.seen["optimizer"], saved["optimizer_states"][0], "optimizer")
    _assert_same(probe.seen["scheduler"], saved["lr_schedulers"][0], "lr_scheduler")
    _assert_same(probe.seen["weights"], saved["state_dict"], "weights")
    assert r.metrics["steps"] == 4


def test_generation_returns_text(trained: dict[str, Any]) -> None:
    sample = read_split(trained["data"], "test")[0]
    prompt = {}
    for stage in ("r1", "r2"):
        model, tok = load_narrator(trained[stage].model_dir)
        stats: dict[str, Any] = {}
        text, chapters = generate_chapters(
            model, tok, sample, trained["data"], max_new_tokens=8, stats=stats
        )
        assert isinstance(text, str) and isinstance(chapters, list)
        prompt[stage] = stats["llm_input_tokens"]
    # the stage-2 model reads the compressed visual input: a shorter prompt than stage 1's
    assert 0 < prompt["r2"] < prompt["r1"]


def test_stage_freezing_sets(trained: dict[str, Any]) -> None:
    model, _ = load_narrator(trained["r1"].model_dir)
    all_names = {n for n, _ in model.named_parameters()}
    NarratorLightningModule(model, stage=1)
    assert trainable_parameter_names(model) == all_names
    with pytest.raises(StageError):
        NarratorLightningModule(model, stage=2)
    model.add_compressor(trained["cfg"].compressor, trained["cfg"].time_encoder)
    with pytest.raises(StageError):
        NarratorLightningModule(model, stage=1)
    module = NarratorLightningModule(model, stage=2)
    expected = {
        n for n, _ in model.named_parameters() if n.startswith(("compressor.", "time_encoder."))
    }
    assert expected and trainable_parameter_names(model) == expected
    assert module.lr == 5e-5
    module.train()
    assert not model.llm.training and not model.vision.training and not model.projector.training
    assert model.compressor is not None and model.compressor.training


def test_datamodule_batches(trained: dict[str, Any]) -> None:
    model, tok = load_narrator(trained["r1"].model_dir)
    spec = model.input_spec()
    dm = NarratorDataModule(trained["data"], tok, spec, batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape[2:] == (3, spec.image_size, spec.image_size)
    assert batch["pixel_values"].shape[1] <= spec.max_frames
    # Each row's placeholder count is n_frames * L_v; padding positions carry no loss.
    per_row = batch["visual_mask"].sum(1)
    assert torch.equal(per_row, batch["frame_mask"].sum(1) * spec.visual_tokens_per_frame)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()


def test_select_frames_uniform() -> None:
    assert select_frames(3, 8).tolist() == [0, 1, 2]
    idx = select_frames(10, 4).tolist()
    assert idx[0] == 0 and idx[-1] == 9 and len(idx) == 4


def test_bad_dataset_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match=r"train\.jsonl: missing"):
        read_split(tmp_path, "train")
    (tmp_path / "train.jsonl").write_text('{"video_id": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"train\.jsonl:1: missing key"):
        read_split(tmp_path, "train")


def test_stage2_time_tokens_anchor_on_timestamp_text(tmp_path: Path) -> None:
    """With ``time_encoder.text_anchor`` the stage-2 sample carries each read frame's timestamp
    text ids, the time encoder trains a pooling query over their LLM embeddings, and what the
    LLM reads changes when the timestamp text does (the LLM input length does not)."""
    from hivid.models.sequence import timestamp_text
    from hivid.training.datamodule import collate, prepare_sample

    data = make_dataset(tmp_path / "dataset", n_videos=4)
    cfg = narrator_config("tiny", {"time_encoder": {"text_anchor": True}})
    tcfg = TrainConfig(max_steps=1, batch_size=2, max_frames=4, limit_val_batches=0)
    r1 = train_stage(1, data, tmp_path / "s1", cfg, tcfg)
    r2 = train_stage(2, data, tmp_path / "s2", cfg, tcfg, init_model_dir=r1.model_dir)
    assert "time_encoder.text_query" in r2.trainable_parameter_names
    model, tok = load_narrator(r2.model_dir)
    assert model.time_encoder is not None and model.time_encoder.cfg.text_anchor
    rec = read_split(data, "train")[0]
    sample = prepare_sample(rec, data, tok, model.input_spec())
    times = sample["frame_times"].tolist()
    assert sample["time_ids"].shape[0] == len(times) <= 4
    ids = [i for i in sample["time_ids"][1].tolist() if i >= 0]
    assert tok.decode(ids) == timestamp_text(times[1])
    model.eval()
    batch = collate([sample], int(tok.pad_token_id))
    shifted = {**batch, "time_ids": batch["time_ids"].roll(1, dims=1)}
    with torch.no_grad():
        a, b = model.embed_inputs(batch), model.embed_inputs(shifted)
    assert a.shape == b.shape and not torch.allclose(a, b)


def test_stage2_keeps_the_narration_text(tmp_path: Path) -> None:
    """``stage2_asr_text``: the stage-2 model the pipeline trains and saves reads each frame's
    T_e and event tokens followed by that frame's ASR sentences as text (its own words to copy),
    and the saved model keeps the layout; without it the stage-2 input holds no narration."""
    from hivid.training.datamodule import collate, prepare_sample

    data = make_dataset(tmp_path / "dataset", n_videos=4)
    cfg = narrator_config("tiny", {"stage2_asr_text": True})
    tcfg = TrainConfig(max_steps=1, batch_size=2, max_frames=4, limit_val_batches=0)
    r1 = train_stage(1, data, tmp_path / "s1", cfg, tcfg)
    r2 = train_stage(2, data, tmp_path / "s2", cfg, tcfg, init_model_dir=r1.model_dir)
    model, tok = load_narrator(r2.model_dir)
    assert model.use_compressor and model.cfg.stage2_asr_text and model.input_spec().asr_text
    rec = next(r for r in read_split(data, "train") if r["asr"])
    sample = prepare_sample(rec, data, tok, model.input_spec(), with_target=False)
    n = sample["frame_times"].shape[0]
    c = model.cfg.compressor
    assert int(sample["visual_mask"].sum()) == c.num_scene_queries + n * (1 + c.num_event_queries)
    text = tok.decode(sample["input_ids"][~sample["visual_mask"]])
    said = [str(s["text"]).strip() for s in rec["asr"]]
    assert said and all(s in text for s in said)
    model.eval()
    with torch.no_grad():
        out = model(collate([prepare_sample(rec, data, tok, model.input_spec())], 0))
    assert out.loss is not None and torch.isfinite(out.loss)
    plain_cfg = narrator_config("tiny")
    bare, _ = load_narrator(
        train_stage(2, data, tmp_path / "s2b", plain_cfg, tcfg, r1.model_dir).model_dir
    )
    plain = prepare_sample(rec, data, tok, bare.input_spec(), with_target=False)
    assert not bare.input_spec().asr_text
    assert not any(s in tok.decode(plain["input_ids"]) for s in said)
