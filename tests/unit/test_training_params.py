"""Trainable-parameter sets of stage 1 and stage 2 against the exact expected names; presets."""

from __future__ import annotations

import pytest
import torch

from hivid.configbase import ConfigError
from hivid.models.freezing import StageError, apply_stage_freezing, trainable_parameter_names
from hivid.models.narrator import (
    HiVidNarrator,
    fresh_llm,
    fresh_vision,
    narrator_config,
    resolve_dims,
)


def ln(p: str) -> set[str]:
    return {f"{p}.weight", f"{p}.bias"}


def linear(p: str) -> set[str]:
    return ln(p)


def mha(p: str) -> set[str]:
    return {f"{p}.attn.in_proj_weight", f"{p}.attn.in_proj_bias"} | linear(f"{p}.attn.out_proj")


def ffn(p: str) -> set[str]:
    return linear(f"{p}.net.0") | linear(f"{p}.net.2")


def expected_stage2(scene_layers: int, event_layers: int, gru_layers: int) -> set[str]:
    """Compressor (eqs. 2-12) and GRU time encoder parameter names, written out by hand."""
    c = "compressor"
    names = ln(f"{c}.norm_v")
    names |= ln(f"{c}.fusion.norm_a") | mha(f"{c}.fusion.attn") | ln(f"{c}.fusion.norm_ffn")
    names |= ffn(f"{c}.fusion.ffn")
    names |= {f"{c}.scene.queries"} | ln(f"{c}.scene.norm_q")
    for i in range(scene_layers):
        p = f"{c}.scene.layers.{i}"
        names |= ln(f"{p}.norm_q") | mha(f"{p}.attn") | ln(f"{p}.norm_ffn") | ffn(f"{p}.ffn")
    names |= {f"{c}.event.queries"} | ln(f"{c}.event.norm_q") | ln(f"{c}.event.norm_frame")
    names |= linear(f"{c}.event.frame_proj")
    for i in range(event_layers):
        p = f"{c}.event.layers.{i}"
        names |= ln(f"{p}.norm_self") | mha(f"{p}.self_attn") | ln(f"{p}.norm_cross")
        names |= mha(f"{p}.cross_attn") | ln(f"{p}.norm_ffn") | ffn(f"{p}.ffn")
    for k in range(gru_layers):
        names |= {
            f"time_encoder.gru.{w}_l{k}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
    return names | linear("time_encoder.proj")


def expected_stage1(vision_layers: int, llm_layers: int) -> set[str]:
    """SigLIP tower + projector + Qwen3 (untied head) parameter names, written out by hand."""
    v = "vision.vision_model"
    names = linear(f"{v}.embeddings.patch_embedding") | {
        f"{v}.embeddings.position_embedding.weight"
    }
    for i in range(vision_layers):
        p = f"{v}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            names |= linear(f"{p}.self_attn.{proj}")
        names |= ln(f"{p}.layer_norm1") | ln(f"{p}.layer_norm2")
        names |= linear(f"{p}.mlp.fc1") | linear(f"{p}.mlp.fc2")
    names |= ln(f"{v}.post_layernorm")
    names |= ln("projector.net.0") | linear("projector.net.1") | linear("projector.net.3")
    names |= {"llm.model.embed_tokens.weight", "llm.model.norm.weight", "llm.lm_head.weight"}
    for i in range(llm_layers):
        p = f"llm.model.layers.{i}"
        names |= {f"{p}.self_attn.{x}_proj.weight" for x in "qkvo"}
        names |= {f"{p}.self_attn.q_norm.weight", f"{p}.self_attn.k_norm.weight"}
        names |= {f"{p}.mlp.{x}_proj.weight" for x in ("gate", "up", "down")}
        names |= {f"{p}.input_layernorm.weight", f"{p}.post_attention_layernorm.weight"}
    return names


def tiny_model() -> HiVidNarrator:
    cfg = resolve_dims(narrator_config("tiny"))
    torch.manual_seed(0)
    return HiVidNarrator(cfg, fresh_vision(cfg.vision), fresh_llm(cfg.llm, 400, (1, 2, 0)), 3)


def test_stage_trainable_sets_are_exact() -> None:
    model = tiny_model()
    cfg = model.cfg
    apply_stage_freezing(model, 1)
    stage1 = expected_stage1(cfg.vision.num_layers, cfg.llm.num_layers)
    assert trainable_parameter_names(model) == stage1
    with pytest.raises(StageError, match="stage 2 needs"):
        apply_stage_freezing(model, 2)
    model.add_compressor(cfg.compressor, cfg.time_encoder)
    with pytest.raises(StageError, match="stage 1 trains"):
        apply_stage_freezing(model, 1)
    apply_stage_freezing(model, 2)
    c, t = model.cfg.compressor, model.cfg.time_encoder
    stage2 = expected_stage2(c.scene_layers, c.event_layers, t.num_layers)
    assert trainable_parameter_names(model) == stage2
    assert {n for n, _ in model.named_parameters()} == stage1 | stage2


def test_preset_geometry() -> None:
    paper = narrator_config("paper")
    assert paper.max_frames == 144 and paper.vision.tokens_per_frame == 729
    c = paper.compressor
    assert (c.num_scene_queries, c.num_event_queries, c.scene_layers, c.event_layers) == (
        64, 32, 2, 2)  # fmt: skip
    assert paper.vision.pretrained == "google/siglip-so400m-patch14-384"
    assert paper.llm.pretrained == "Qwen/Qwen3-8B"
    assert narrator_config("small").llm.pretrained == "Qwen/Qwen3-0.6B"
    assert narrator_config("tiny").llm.pretrained is None
    with pytest.raises(ConfigError, match="unknown narrator preset"):
        narrator_config("huge")


def test_paper_preset_param_count_on_meta_device() -> None:
    """The paper narrator built on the meta device (no memory): ~8.2B LLM + ~0.4B SigLIP."""
    cfg = resolve_dims(narrator_config("paper"))
    with torch.device("meta"):
        model = HiVidNarrator(
            cfg, fresh_vision(cfg.vision), fresh_llm(cfg.llm, 151_936, (None, 151_645, 151_643)), 0
        )
        model.add_compressor(cfg.compressor, cfg.time_encoder)
    count = {k: sum(p.numel() for p in getattr(model, k).parameters()) for k in
             ("vision", "llm", "projector", "compressor", "time_encoder")}  # fmt: skip
    assert 8.0e9 < count["llm"] < 8.4e9  # Qwen3-8B: 8.19B with an untied head
    assert 0.38e9 < count["vision"] < 0.45e9  # SigLIP so400m vision tower
    assert 0.3e9 < count["compressor"] < 1.5e9
    apply_stage_freezing(model, 2)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count["compressor"] + count["time_encoder"]


def test_target_only_loss_equals_full_hf_loss() -> None:
    """forward() runs the LM head on target positions only; the loss is HF's causal-LM loss."""
    from hivid.models.synthetic import SyntheticVideo, synthetic_batch

    model = tiny_model().eval()
    b = synthetic_batch(model, SyntheticVideo(frames=3, asr_sentences=2, target_tokens=7), 2)
    out = model(b)
    full = model.llm(inputs_embeds=model.embed_inputs(b), labels=b["labels"], use_cache=False)
    assert out.logits is not None and out.logits.shape == (2 * 7, model.llm.config.vocab_size)
    assert torch.allclose(out.loss, full.loss, atol=1e-5)


def test_precision_auto_is_bf16_on_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from hivid.training.fit import TrainConfig, resolve_precision

    assert TrainConfig().precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision(TrainConfig()) == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision(TrainConfig()) == "bf16-mixed"
    assert resolve_precision(TrainConfig(accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainConfig(precision="16-mixed")) == "16-mixed"
