from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hivid.config import load_section, read_params
from hivid.configbase import ConfigError, from_mapping, require
from hivid.dataset.build import DatasetConfig, split_videos


@dataclass
class Inner:
    rate: float = 1.0
    """a rate"""

    def __post_init__(self) -> None:
        require(self.rate > 0, "rate must be > 0")


@dataclass
class Outer:
    name: str = "x"
    """a name"""
    inner: Inner = field(default_factory=Inner)
    """nested"""
    sizes: list[int] = field(default_factory=list)
    """sizes"""


def test_from_mapping_builds_nested_and_coerces_ints_to_floats() -> None:
    cfg = from_mapping(Outer, {"name": "y", "inner": {"rate": 2}, "sizes": [1, 2]})
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float) and cfg.sizes == [1, 2]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"nmae": "typo"}, "unknown key"),
        ({"inner": {"rate": -1}}, "rate must be > 0"),
        ({"inner": {"rate": "fast"}}, "inner.rate: expected a number"),
        ({"sizes": [1, "two"]}, r"sizes\[1\]"),
        ({"name": 3}, "expected a string"),
    ],
)
def test_from_mapping_rejects_bad_values(data: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_mapping(Outer, data)


def test_params_file_sections_are_validated(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_text("dataset:\n  test_fraction: 0.5\n  val_fraction: 0.6\n")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_section(p, "dataset")
    p.write_text("datasett: {}\n")
    with pytest.raises(ConfigError, match="unknown section"):
        read_params(p)


@pytest.mark.parametrize("method", ["stable", "exact"])
def test_split_is_by_video_deterministic_and_complete(method: str) -> None:
    ids = [f"v{i}" for i in range(8)]
    cfg = DatasetConfig(split_method=method)  # type: ignore[arg-type]
    s1, s2 = split_videos(ids, cfg), split_videos(list(reversed(ids)), cfg)
    assert s1 == s2
    assert sorted(s1["train"] + s1["val"] + s1["test"]) == ids
    assert len(s1["test"]) == 2 and len(s1["val"]) == 1
    assert not set(s1["train"]) & set(s1["test"])
    two = split_videos(["a", "b"], cfg)
    assert len(two["train"]) == 1 and len(two["test"]) == 1 and two["val"] == []
