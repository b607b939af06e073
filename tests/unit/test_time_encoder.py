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
