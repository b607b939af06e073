"""GRU time encoder: shapes, padding, time sensitivity."""

from __future__ import annotations

import pytest
import torch

from hivid.configbase import ConfigError
from hivid.models.time_encoder import GRUTimeEncoder, TimeEncoderConfig


def make() -> GRUTimeEncoder:
    torch.manual_seed(0)
    return GRUTimeEncoder(TimeEncoderConfig(dim=24, hidden=16, num_frequencies=4)).eval()


def test_shape() -> None:
    enc = make()
    out = enc(torch.tensor([[0.0, 1.0, 2.5], [0.0, 3.0, 6.0]]))
    assert out.shape == (2, 3, 24)
    assert enc.features(torch.zeros(1, 5)).shape == (1, 5, 2 + 2 * 4)


def test_padding_is_ignored_and_zeroed() -> None:
    enc = make()
    times = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 99.0, -5.0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    out = enc(times, mask)
    assert (out[1, 2:] == 0).all()
    alone = enc(times[1:, :2])
    assert torch.allclose(out[1, :2], alone[0], atol=1e-6)


def test_distinct_times_give_distinct_tokens() -> None:
    enc = make()
    out = enc(torch.tensor([[0.0, 1.0, 1.0, 5.0]]))
    assert not torch.allclose(out[0, 0], out[0, 1])
    assert not torch.allclose(out[0, 1], out[0, 3])
    shifted = enc(torch.tensor([[10.0, 11.0, 11.0, 15.0]]))
    assert not torch.allclose(out, shifted)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="hidden"):
        TimeEncoderConfig(hidden=0)
    with pytest.raises(ConfigError, match="resolved dim"):
        GRUTimeEncoder(TimeEncoderConfig(dim=0))


def test_text_anchor_starts_as_the_mean_timestamp_text_embedding() -> None:
    """With text_anchor the token is GRU(t) + pooled text embeddings; the pooling query starts at
    zero (a plain mean) and padding, in text and in frames, is ignored."""
    torch.manual_seed(0)
    plain = GRUTimeEncoder(TimeEncoderConfig(dim=8, hidden=8))
    anchored = GRUTimeEncoder(TimeEncoderConfig(dim=8, hidden=8, text_anchor=True))
    anchored.load_state_dict({**plain.state_dict(), "text_query": torch.zeros(8)})
    times = torch.tensor([[0.0, 1.0, 2.0]])
    mask = torch.tensor([[True, True, False]])
    text = torch.randn(1, 3, 4, 8)
    text_mask = torch.tensor([[[True, True, True, False]] * 3])
    out = anchored(times, mask, text, text_mask)
    expected = plain(times, mask) + text[:, :, :3].mean(dim=2) * mask[..., None]
    assert torch.allclose(out, expected, atol=1e-6)
    assert out[0, 2].abs().sum() == 0  # a padded frame stays zero
    with pytest.raises(ValueError, match="text_anchor"):
        anchored(times, mask)
