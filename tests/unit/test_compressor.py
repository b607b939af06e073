"""SPA-Compressor: output layout (eq. 12), masking of padded frames/ASR, zero ASR, gradients."""

from __future__ import annotations

import pytest
import torch

from hivid.configbase import ConfigError
from hivid.models.compressor import SPACompressor, SPACompressorConfig

D, S, E, LV = 32, 4, 3, 5


def make(dropout: float = 0.0) -> SPACompressor:
    torch.manual_seed(0)
    cfg = SPACompressorConfig(
        dim=D, num_scene_queries=S, num_event_queries=E, scene_layers=2, event_layers=2,
        num_heads=4, ffn_mult=2, dropout=dropout,
    )  # fmt: skip
    return SPACompressor(cfg).eval()


def inputs(b: int, n: int, la: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "vision": torch.randn(b, n, LV, D, generator=g),
        "vision_mask": torch.ones(b, n, dtype=torch.bool),
        "asr": torch.randn(b, la, D, generator=g),
        "asr_mask": torch.ones(b, la, dtype=torch.bool),
        "time_tokens": torch.randn(b, n, D, generator=g),
    }


@pytest.mark.parametrize("n", [1, 3, 7])
def test_output_shape_and_layout(n: int) -> None:
    comp = make()
    x = inputs(2, n, 6)
    tokens, mask = comp(**x)
    assert tokens.shape == (2, S + n * (1 + E), D)
    assert comp.cfg.num_output_tokens(n) == tokens.shape[1]
    assert mask.all()
    # Eq. 11-12: after the S scene tokens, each frame starts with its timestamp token.
    frames = tokens[:, S:].reshape(2, n, 1 + E, D)
    assert torch.equal(frames[:, :, 0], x["time_tokens"])


def test_padded_frames_and_asr_do_not_change_real_tokens() -> None:
    comp = make()
    x = inputs(2, 4, 6)
    x["vision_mask"][1, 2:] = False  # video 1 has 2 real frames
    x["asr_mask"][1, 3:] = False  # and 3 real ASR tokens
    x["time_tokens"][1, 2:] = 0.0
    tokens, mask = comp(**x)
    assert mask[0].all()
    assert mask[1].sum() == S + 2 * (1 + E) and mask[1, : S + 2 * (1 + E)].all()

    y = {k: v.clone() for k, v in x.items()}
    y["vision"][1, 2:] = 100.0 * torch.randn(2, LV, D)
    y["asr"][1, 3:] = -50.0
    y["time_tokens"][1, 2:] = 7.0
    tokens2, _ = comp(**y)
    assert torch.allclose(tokens[mask], tokens2[mask], atol=1e-5)

    # The same video alone, unpadded, gives the same real tokens.
    solo = {
        "vision": x["vision"][1:, :2], "vision_mask": x["vision_mask"][1:, :2],
        "asr": x["asr"][1:, :3], "asr_mask": x["asr_mask"][1:, :3],
        "time_tokens": x["time_tokens"][1:, :2],
    }  # fmt: skip
    tokens3, _ = comp(**solo)
    assert torch.allclose(tokens3[0], tokens[1][mask[1]], atol=1e-5)


def test_zero_asr_tokens() -> None:
    comp = make()
    x = inputs(2, 3, 0)
    tokens, _mask = comp(**x)
    assert tokens.shape == (2, S + 3 * (1 + E), D) and torch.isfinite(tokens).all()
    # A row whose ASR is entirely padding behaves like a video with no speech.
    y = dict(x, asr=torch.randn(2, 4, D), asr_mask=torch.zeros(2, 4, dtype=torch.bool))
    tokens2, _ = comp(**y)
    assert torch.allclose(tokens, tokens2, atol=1e-5)


def test_events_depend_on_their_own_frame() -> None:
    comp = make()
    x = inputs(1, 3, 4)
    tokens, _ = comp(**x)
    y = {k: v.clone() for k, v in x.items()}
    y["vision"][0, 2] += 1.0
    tokens2, _ = comp(**y)
    ev = lambda t, i: t[0, S + i * (1 + E) + 1 : S + (i + 1) * (1 + E)]  # noqa: E731
    assert not torch.allclose(ev(tokens, 2), ev(tokens2, 2))
    frames = tokens[0, S:].reshape(3, 1 + E, D)
    assert not torch.allclose(frames[0, 1:], frames[1, 1:])


def test_gradients_reach_every_parameter() -> None:
    comp = make()
    comp.train()
    x = inputs(2, 3, 5)
    x["vision_mask"][1, 2] = False
    tokens, mask = comp(**x)
    tokens[mask].pow(2).mean().backward()
    missing = [
        n for n, p in comp.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="divide"):
        SPACompressorConfig(dim=30, num_heads=4)
    with pytest.raises(ConfigError, match="num_scene_queries"):
        SPACompressorConfig(num_scene_queries=0)


def test_every_video_needs_a_frame() -> None:
    comp = make()
    x = inputs(2, 2, 3)
    x["vision_mask"][0] = False
    with pytest.raises(ValueError, match="at least one real frame"):
        comp(**x)


def test_benchmark_json_reproduces_paper_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/compressor.py --json: one object; eq. 13/14 give 82.59 % for S=64, E=32."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "compressor.py"
    spec = importlib.util.spec_from_file_location("bench_compressor", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    kept, ratio = bench.paper_ratio(64, 32, 1.836, 384)
    assert round(kept, 4) == 0.1741 and round(100 * ratio, 2) == 82.59

    args = [
        *("--frames", "6", "--scene", "4", "--event", "2", "--tokens-per-side", "3"),
        *("--asr-sentences", "2", "--asr-tokens-per-sentence", "5", "--time-frames", "3"),
        *("--time-tokens-per-side", "2", "--target-tokens", "8", "--repeats", "1", "--json"),
    ]
    bench.main(args)
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["frames"] == 6 and out["visual_tokens_per_frame"] == 9
    assert out["llm_input_tokens_without_compressor"] == 6 * (1 + 9) + 2 * 5
    assert out["llm_input_tokens_with_compressor"] == 4 + 6 * (1 + 2)
    assert out["token_reduction"] == pytest.approx(1 - 22 / 70)
    assert out["paper_compression_ratio"] == pytest.approx(1 - (4 + 1.836 * 2) / (1.836 * 384))
    assert out["step_time_ratio"] > 0
    t = out["timing"]
    assert t["stage1_seq_len"] == 1 + 32 + 3 * (1 + 4) + 2 * 5 + 8
    assert t["stage2_seq_len"] == 1 + 32 + 4 + 3 * (1 + 2) + 8
