"""Tiny HiVid-Narrator: build through from_pretrained, save/load round trip, presets, counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from hivid.configbase import ConfigError
from hivid.models.narrator import (
    HiVidNarrator,
    NarratorLoadError,
    create_narrator,
    load_narrator,
    narrator_config,
    save_narrator,
    token_counts,
)
from hivid.models.sequence import (
    DEFAULT_PROMPT,
    encode_asr,
    encode_compressed,
    encode_interleaved,
    format_target,
)
from hivid.models.tokenizer import train_bpe_tokenizer
from hivid.training.datamodule import collate

ASR = [{"start": 0.4, "end": 1.0, "text": "red bottle"}, {"start": 1.5, "end": 2, "text": "foam"}]
TARGET = format_target(
    [{"start": 0, "end": 1, "observation": "a bottle"}],
    [{"start": 0, "end": 2, "title": "Intro", "summary": "red bottle shampoo"}],
)


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return train_bpe_tokenizer([DEFAULT_PROMPT, TARGET, "red bottle foam <t=1.0s>"] * 5, 400)


@pytest.fixture(scope="module")
def tiny(tok: PreTrainedTokenizerFast, tmp_path_factory: pytest.TempPathFactory) -> HiVidNarrator:
    torch.manual_seed(0)
    return create_narrator(narrator_config("tiny"), tok, tmp_path_factory.mktemp("init"))


def batch(model: HiVidNarrator, tok: PreTrainedTokenizerFast) -> dict[str, torch.Tensor]:
    """Two videos (2 and 3 frames) built for the model's stage."""
    spec = model.input_spec()
    g = torch.Generator().manual_seed(0)
    samples = []
    for times in ([0.0, 1.0], [0.0, 1.0, 2.0]):
        if spec.scene_tokens is None:
            enc = encode_interleaved(tok, times, ASR, TARGET, spec.visual_tokens_per_frame)
        else:
            enc = encode_compressed(tok, spec.num_compressed_tokens(len(times)), TARGET)
        s = spec.image_size
        samples.append({
            "video_id": "v",
            "input_ids": torch.tensor(enc.input_ids),
            "visual_mask": torch.tensor(enc.visual_mask),
            "labels": torch.tensor(enc.labels),
            "pixel_values": torch.randn(len(times), 3, s, s, generator=g),
            "frame_times": torch.tensor(times),
            "asr_ids": torch.tensor(encode_asr(tok, ASR[: len(times) - 1])),
        })  # fmt: skip
    return collate(samples, int(tok.pad_token_id))


def test_tiny_backbones_come_from_pretrained_dirs(tiny: HiVidNarrator) -> None:
    assert tiny.vision.name_or_path.endswith("vision")
    assert tiny.llm.name_or_path.endswith("llm")
    assert tiny.llm.config.num_hidden_layers == 2 and tiny.llm.config.hidden_size == 64
    assert tiny.vision.config.image_size == 32 and tiny.vision.config.patch_size == 8
    assert tiny.cfg.compressor.dim == 64 and tiny.cfg.time_encoder.dim == 64


@pytest.mark.parametrize("with_compressor", [False, True])
def test_save_load_round_trip_identical_logits(
    tiny: HiVidNarrator, tok: PreTrainedTokenizerFast, tmp_path: Path, with_compressor: bool
) -> None:
    model = tiny
    if with_compressor:
        model = load_narrator_copy(tiny, tok, tmp_path / "copy")
        model.add_compressor(model.cfg.compressor, model.cfg.time_encoder)
    model.eval()
    b = batch(model, tok)
    out = model(b)
    assert out.loss is not None and torch.isfinite(out.loss)
    save_narrator(model, tok, tmp_path / "m")
    loaded, tok2 = load_narrator(tmp_path / "m")
    loaded.eval()
    assert loaded.use_compressor == with_compressor
    assert tok2.get_vocab() == tok.get_vocab()
    assert torch.equal(loaded(b).logits, out.logits)


def load_narrator_copy(
    model: HiVidNarrator, tok: PreTrainedTokenizerFast, where: Path
) -> HiVidNarrator:
    save_narrator(model, tok, where)
    return load_narrator(where)[0]


def test_compressor_changes_llm_input_length(tiny: HiVidNarrator, tok: PreTrainedTokenizerFast,
                                             tmp_path: Path) -> None:  # fmt: skip
    comp = load_narrator_copy(tiny, tok, tmp_path / "c")
    comp.add_compressor(comp.cfg.compressor, comp.cfg.time_encoder)
    b1, b2 = batch(tiny, tok), batch(comp, tok)
    c = comp.cfg.compressor
    assert int(b2["visual_mask"][1].sum()) == c.num_scene_queries + 3 * (1 + c.num_event_queries)
    assert int(b1["visual_mask"][1].sum()) == 3 * tiny.cfg.vision.tokens_per_frame
    # A wrong-stage batch is refused with a clear message.
    with pytest.raises(ValueError, match="visual placeholders"):
        comp(b1)


def test_generate_greedy_is_deterministic(
    tiny: HiVidNarrator, tok: PreTrainedTokenizerFast
) -> None:
    tiny.eval()
    b = batch(tiny, tok)
    one = {k: (v[:1] if isinstance(v, torch.Tensor) else v) for k, v in b.items()}
    n = int(one["attention_mask"].sum())
    one = {
        k: (v[:, :n] if k in ("input_ids", "attention_mask", "visual_mask", "labels") else v)
        for k, v in one.items()
    }
    a = tiny.generate(one, 6, int(tok.eos_token_id), int(tok.pad_token_id))
    assert a.shape[0] == 1 and 1 <= a.shape[1] <= 6
    assert torch.equal(a, tiny.generate(one, 6, int(tok.eos_token_id), int(tok.pad_token_id)))


def test_pretrained_llm_path(tiny: HiVidNarrator, tok: PreTrainedTokenizerFast,
                             tmp_path: Path) -> None:  # fmt: skip
    """``llm.pretrained`` = a local Qwen3 checkpoint dir with its tokenizer (the `small` path)."""
    ckpt = tmp_path / "qwen3-local"
    tiny.llm.save_pretrained(ckpt)
    tok.save_pretrained(ckpt)
    cfg = narrator_config("small", {"llm": {"pretrained": str(ckpt)}})
    from hivid.models.narrator import create_tokenizer

    tok2 = create_tokenizer(cfg, [])
    model = create_narrator(cfg, tok2, tmp_path / "work")
    assert model.cfg.llm.hidden_size == 64  # taken from the checkpoint, not the preset
    assert model.cfg.compressor.dim == 64
    sd_a, sd_b = tiny.llm.state_dict(), model.llm.state_dict()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


def test_presets_and_overrides() -> None:
    paper = narrator_config("paper")
    c = paper.compressor
    assert (c.num_scene_queries, c.num_event_queries, c.scene_layers, c.event_layers) == (
        64, 32, 2, 2,
    )  # fmt: skip
    assert paper.max_frames == 144 and paper.vision.pretrained and paper.llm.pretrained
    tiny = narrator_config("tiny", {"compressor": {"num_scene_queries": 8}, "max_frames": 3})
    assert tiny.compressor.num_scene_queries == 8 and tiny.compressor.num_event_queries == 2
    assert tiny.max_frames == 3
    with pytest.raises(ConfigError, match="unknown key"):
        narrator_config("tiny", {"compressor": {"scenes": 8}})
    with pytest.raises(ConfigError, match="unknown narrator preset"):
        narrator_config("huge")
    with pytest.raises(ConfigError, match="tokens_per_side"):
        narrator_config("tiny", {"vision": {"tokens_per_side": 9}})


def test_token_counts_paper_reduction() -> None:
    cfg = narrator_config("paper")
    counts = token_counts(cfg, n_frames=144, asr_tokens=800)
    assert counts["with_compressor"] == 64 + 144 * 33
    assert counts["visual_tokens"] == 144 * 729
    assert counts["without_compressor"] == 144 * (1 + 729) + 800
    assert 0.9 < counts["reduction"] < 1.0
    tiny = dataclasses.replace(narrator_config("tiny"))
    assert token_counts(tiny, 8, 0)["with_compressor"] == 4 + 8 * 3
    # Stage 2 keeping the narration as text: it is read in both stages.
    kept = token_counts(narrator_config("paper", {"stage2_asr_text": True}), 144, 800)
    assert kept["with_compressor"] == 64 + 144 * 33 + 800
    assert kept["without_compressor"] == counts["without_compressor"]


def test_load_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(NarratorLoadError, match=r"narrator_config\.json: missing"):
        load_narrator(tmp_path)
    (tmp_path / "narrator_config.json").write_text("{", encoding="utf-8")
    with pytest.raises(NarratorLoadError, match="invalid JSON"):
        load_narrator(tmp_path)


def test_unpadded_batch_reaches_sdpa_without_a_dense_mask(
    tiny: HiVidNarrator, tok: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No padding -> SDPA gets no mask tensor (so it can use causal flash attention on a GPU).

    Passing attention_mask=None made transformers 4.57 build a dense (T, T) "packed sequence"
    mask: 21 GiB per layer at the paper's 1e5 tokens, flash ruled out (measured on an H200).
    """
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    masks: list[torch.Tensor | None] = []
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def spy(module: torch.nn.Module, q: torch.Tensor, *args: object, **kwargs: object) -> object:
        if getattr(module, "is_causal", False):  # LLM layers, not the vision tower
            masks.append(args[2] if len(args) > 2 else kwargs.get("attention_mask"))  # type: ignore[arg-type]
        return sdpa(module, q, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "sdpa", spy)
    b = batch(tiny, tok)
    assert bool(b["attention_mask"][1].all())  # the longer video: nothing padded
    one = {k: v[1:2] for k, v in b.items() if k != "attention_mask" and torch.is_tensor(v)}
    assert masks == []
    tiny.eval()
    tiny(one)
    assert masks and all(m is None for m in masks)
