"""Optional components (off by default): shapes, trainable sets, save/load of each switch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from hivid.models.freezing import apply_stage_freezing, trainable_parameter_names
from hivid.models.narrator import (
    HiVidNarrator,
    load_narrator,
    narrator_config,
    save_narrator,
)
from hivid.models.options import NarratorOptions, consolidate
from hivid.models.sequence import keyword_example
from hivid.training.module import NarratorLightningModule
from tests.helpers import corpus_tokenizer, make_dataset, tiny_narrator, train_batch


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("opts") / "dataset", n_videos=4)


@pytest.fixture(scope="module")
def tok(data: Path) -> Any:
    return corpus_tokenizer(data)


def build(tok: Any, tmp: Path, **opts: Any) -> HiVidNarrator:
    return tiny_narrator(tok, tmp, **opts)


def batch_for(model: HiVidNarrator, tok: Any, data: Path, **extra: Any) -> dict[str, Any]:
    return train_batch(model, tok, data, **extra)


def test_defaults_are_off() -> None:
    o = NarratorOptions()
    assert (o.clip_position_bins, o.memory_tokens, o.lora_rank, o.keyword_task_weight) == (0,) * 4
    assert not o.dual_alignment
    with pytest.raises(ValueError, match="lora_rank"):
        NarratorOptions(lora_rank=-1)


def test_clip_position_embedding(tok: Any, data: Path, tmp_path: Path) -> None:
    base = build(tok, tmp_path / "a")
    model = build(tok, tmp_path / "b", clip_position_bins=10)
    assert model.clip_position is not None
    b = batch_for(model, tok, data)
    mask = b["frame_mask"]
    emb = model.clip_position(b["frame_times"], mask)
    assert emb.shape == (*mask.shape, 64)
    # zero-initialised: switching it on does not change the input until it is trained
    assert torch.equal(model.embed_inputs(b), base.embed_inputs(b))
    torch.nn.init.normal_(model.clip_position.embed.weight)
    assert not torch.equal(model.embed_inputs(b), base.embed_inputs(b))
    apply_stage_freezing(model, 1)
    assert "clip_position.embed.weight" in trainable_parameter_names(model)
    save_narrator(model, tok, tmp_path / "saved")
    loaded, _ = load_narrator(tmp_path / "saved")
    assert torch.equal(loaded.clip_position.embed.weight, model.clip_position.embed.weight)
    loaded.add_compressor(loaded.cfg.compressor, loaded.cfg.time_encoder)
    apply_stage_freezing(loaded, 2)
    assert not any(n.startswith("clip_position") for n in trainable_parameter_names(loaded))


def test_frame_change_embedding(tok: Any, data: Path, tmp_path: Path) -> None:
    from hivid.models.options import FrameChangeEmbedding

    fc = FrameChangeEmbedding(8, 4)
    torch.nn.init.normal_(fc.embed.weight)
    still = torch.zeros(1, 3, 3, 4, 4)
    cut = still.clone()
    cut[0, 2] = 1.0  # frame 2 differs from frame 1 by 1.0 everywhere: c / (c + 0.1) = 0.909
    mask = torch.tensor([[True, True, False]])
    w = fc.embed.weight
    out = fc(cut, torch.ones(1, 3, dtype=torch.bool))
    # first frame: its own bucket (8); no change: bucket 0; the cut: floor(0.909 * 8) = 7
    assert torch.equal(out[0], torch.stack([w[8], w[0], w[7]]))
    assert torch.equal(fc(still, mask)[0, 2], torch.zeros(4))  # padded frames get nothing
    small = still.clone()
    small[0, 1] = 0.05  # 0.05 / 0.15 = 0.333 -> bucket 2
    assert torch.equal(fc(small, mask)[0, 1], w[2])

    base = build(tok, tmp_path / "a")
    model = build(tok, tmp_path / "b", frame_change_bins=8)
    assert model.frame_change is not None
    b = batch_for(model, tok, data)
    assert torch.equal(model.embed_inputs(b), base.embed_inputs(b))  # zero-initialised
    torch.nn.init.normal_(model.frame_change.embed.weight)
    assert not torch.equal(model.embed_inputs(b), base.embed_inputs(b))
    apply_stage_freezing(model, 1)
    assert "frame_change.embed.weight" in trainable_parameter_names(model)
    save_narrator(model, tok, tmp_path / "saved")
    loaded, _ = load_narrator(tmp_path / "saved")
    assert torch.equal(loaded.frame_change.embed.weight, model.frame_change.embed.weight)
    loaded.add_compressor(loaded.cfg.compressor, loaded.cfg.time_encoder)
    apply_stage_freezing(loaded, 2)
    assert not any(n.startswith("frame_change") for n in trainable_parameter_names(loaded))
    with pytest.raises(ValueError, match="frame_change_bins"):
        NarratorOptions(frame_change_bins=-1)


def test_dual_visual_alignment(tok: Any, data: Path, tmp_path: Path) -> None:
    model = build(tok, tmp_path / "m", dual_alignment=True)
    assert model.projector_aux is not None
    prim = batch_for(model, tok, data)
    aux = batch_for(model, tok, data, source="auxiliary")
    assert not prim["is_aux"].any() and aux["is_aux"].all()
    v_prim = model.encode_frames(prim["pixel_values"], prim["frame_mask"], None, prim["is_aux"])
    v_aux = model.encode_frames(aux["pixel_values"], aux["frame_mask"], None, aux["is_aux"])
    real = prim["frame_mask"]
    assert not torch.allclose(v_prim[real], v_aux[real])  # its own embedding space (eq. 11)
    apply_stage_freezing(model, 1)
    names = trainable_parameter_names(model)
    assert {n for n in names if n.startswith("projector_aux.")} == {
        f"projector_aux.net.{i}.{w}" for i in (0, 1, 3) for w in ("weight", "bias")
    }


def test_lora_trainable_set_and_merged_save(tok: Any, data: Path, tmp_path: Path) -> None:
    model = build(tok, tmp_path / "m", lora_rank=4, lora_targets=["q_proj", "v_proj"])
    apply_stage_freezing(model, 1)
    llm_trainable = {n for n in trainable_parameter_names(model) if n.startswith("llm.")}
    expected = {
        f"llm.model.layers.{i}.self_attn.{m}.lora_{ab}.default.weight"
        for i in range(2) for m in ("q_proj", "v_proj") for ab in "AB"
    }  # fmt: skip
    assert llm_trainable == expected
    others = {n for n in trainable_parameter_names(model) if not n.startswith("llm.")}
    assert others == {n for n, _ in model.named_parameters() if n.split(".")[0] in
                      ("vision", "projector")}  # fmt: skip
    for n, p in model.llm.named_parameters():  # a trained adapter: non-zero delta
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.5)
    model.eval()
    b = batch_for(model, tok, data)
    logits = model(b).logits
    save_narrator(model, tok, tmp_path / "saved")
    from safetensors.torch import load_file

    on_disk = load_file(str(tmp_path / "saved" / "llm" / "model.safetensors"))
    assert not any("lora" in k or "base_layer" in k for k in on_disk)  # adapters merged
    loaded, _ = load_narrator(tmp_path / "saved")
    loaded.eval()
    assert torch.allclose(loaded(b).logits, logits, atol=1e-4)


def test_memory_consolidation(tok: Any, data: Path, tmp_path: Path) -> None:
    x = torch.randn(10, 8)
    assert consolidate(x, 4).shape == (4, 8) and consolidate(x, 20).shape == (10, 8)
    y = torch.stack([torch.ones(8), torch.ones(8), -torch.ones(8)])
    assert torch.equal(consolidate(y, 2), torch.stack([torch.ones(8), -torch.ones(8)]))
    model = build(tok, tmp_path / "m", memory_tokens=3, memory_recent_frames=2)
    spec = model.input_spec()
    b = batch_for(model, tok, data)
    for row, n in enumerate(b["frame_mask"].sum(1).tolist()):
        old, m = spec.memory_split(int(n))
        assert old == n - 2 and m == min(3, old * spec.visual_tokens_per_frame)
        assert int(b["visual_mask"][row].sum()) == m + 2 * spec.visual_tokens_per_frame
    out = model(b)
    assert out.loss is not None and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.projector.net[1].weight.grad is not None


def test_keyword_generation_task(tok: Any, data: Path, tmp_path: Path) -> None:
    text = "a gentle shampoo for soft hair"
    ex = keyword_example(text, "vid01")
    assert ex is not None and ex == keyword_example(text, "vid01")
    prompt, word = ex
    assert word in text.split() and "__" in prompt and word not in prompt.split()
    assert keyword_example("a b c", "x") is None
    model = build(tok, tmp_path / "m", keyword_task_weight=0.5)
    b = batch_for(model, tok, data)
    assert {"kw_input_ids", "kw_labels", "kw_visual_mask", "kw_attention_mask"} <= set(b)
    # same visual input, different prompt and target
    assert torch.equal(b["kw_visual_mask"].sum(1), b["visual_mask"].sum(1))
    module = NarratorLightningModule(model, stage=1)
    logged: dict[str, torch.Tensor] = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, value)  # type: ignore[method-assign]
    total = module.training_step(b, 0)
    main = model(b).loss
    assert "train_keyword_loss" in logged
    assert torch.allclose(total, main + 0.5 * logged["train_keyword_loss"])
    plain = build(tok, tmp_path / "p")
    assert "kw_input_ids" not in batch_for(plain, tok, data)


def test_options_round_trip_through_config() -> None:
    cfg = narrator_config("tiny", {"options": {"lora_rank": 8, "dual_alignment": True}})
    assert cfg.options.lora_rank == 8 and cfg.options.dual_alignment
    assert dataclasses.asdict(cfg)["options"]["lora_targets"] == ["q_proj", "k_proj", "v_proj",
                                                                  "o_proj"]  # fmt: skip


def test_generation_forces_chapters_when_tcot_runs_long(
    tok: Any, data: Path, tmp_path: Path
) -> None:
    """Thinking budget: a TCoT that has not ended by (1 - share) * budget is closed and the
    chapters section opened at a line boundary, so the rest of the budget goes to chapters."""
    from hivid.training.datamodule import read_split
    from hivid.training.generate import generate_chapters

    model = build(tok, tmp_path / "m")
    rec = read_split(data, "test")[0]
    text, _ = generate_chapters(model, tok, rec, data, max_new_tokens=20, chapter_share=0.5)
    assert "</think>\n<chapters>\n" in text
    head = text.split("</think>")[0]
    assert head == "" or head.endswith("\n")  # cut back to the last complete line
    plain, _ = generate_chapters(model, tok, rec, data, max_new_tokens=20, chapter_share=0.0)
    assert "</think>\n<chapters>\n" not in plain  # share 0: one pass, nothing forced
