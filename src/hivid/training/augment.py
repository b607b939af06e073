"""Training-time augmentation that makes copying from the input the only way to lower the loss.

A random-initialised narrator trained on a few dozen videos memorises them: the product name, the
chapter times and the first sentences are predictable from *which* video it is. Every training
sample drawn gets a fresh random view of its video, applied consistently to the input and the
target (``NarratorDataset`` -> ``prepare_sample``):

- **renamed product**: the words of the brand and the product name are replaced by other words
  (names of the other training products, or made-up words), in the narration, in the chapter
  texts and in the metadata the target's title comes from: the name in the target is the one the
  narration says;
- **shifted timeline**: one random offset (whole seconds) is added to every frame time, ASR time
  and chapter time, so the timestamp tokens and the target times differ per view: the chapter
  times in the target are the input timestamps of the frames where the shots change;
- **frame subset**: a random share of the frames (first and last kept) is read, so the frames a
  chapter starts on, and the tokens around them, move.

Validation, test and generation never augment (``prepare_sample`` without ``augment``). Views
are drawn from a ``random.Random`` the dataset seeds from ``TrainConfig.seed``: the same seed and
sampling order give the same views.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hivid.configbase import require
from hivid.models.sequence import product_name

_NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "st")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")


@dataclass
class AugmentConfig:
    """Random per-sample views of training videos (``hivid.training.augment``); off by default."""

    enabled: bool = False
    """Augment training samples (never validation, test or generation)."""
    rename_prob: float = 0.8
    """Chance that a view renames the product's brand and name words (input and target alike)."""
    invented_share: float = 0.5
    """Share of replacement words made up from syllables; the rest are other training products'
    name words."""
    max_time_offset_s: int = 20
    """A view's timeline is shifted by a whole number of seconds in [0, this] (0 = no shift)."""
    min_keep_frames: float = 0.75
    """A view reads a random share in [this, 1] of the frames it would read (1 = all of them)."""

    def __post_init__(self) -> None:
        require(0.0 <= self.rename_prob <= 1.0, "rename_prob must be in [0, 1]")
        require(0.0 <= self.invented_share <= 1.0, "invented_share must be in [0, 1]")
        require(self.max_time_offset_s >= 0, "max_time_offset_s must be >= 0")
        require(0.0 < self.min_keep_frames <= 1.0, "min_keep_frames must be in (0, 1]")


def name_words(metadata: Mapping[str, Any] | None) -> list[str]:
    """The words that name a product: its brand and its name (``product_name``), in order."""
    if not metadata:
        return []
    text = f"{metadata.get('brand', '')} {product_name(metadata)}"
    out: list[str] = []
    for w in _NAME_WORD.findall(text):
        if len(w) > 2 and w not in out:
            out.append(w)
    return out


def name_pool(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every product-name word of ``records`` (replacement candidates), sorted."""
    return sorted({w for r in records for w in name_words(r.get("metadata"))})


def invented_word(rng: random.Random) -> str:
    """A pronounceable made-up capitalised word of 2-3 syllables, e.g. ``Bralo``."""
    n = rng.randint(2, 3)
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(n)).capitalize()


def _rename(text: Any, mapping: Mapping[str, str]) -> str:
    if not mapping:
        return str(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in mapping) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], str(text))


def _shift(x: Any, offset: float) -> float:
    return round(float(x) + offset, 3)


def _pick_frames(indices: np.ndarray, keep: float, rng: random.Random) -> np.ndarray:
    n = len(indices)
    k = max(2, round(n * keep))
    if n <= 2 or k >= n:
        return indices
    inner = sorted(rng.sample(range(1, n - 1), k - 2))
    return indices[[0, *inner, n - 1]]


def augment_view(
    record: Mapping[str, Any],
    indices: np.ndarray,
    cfg: AugmentConfig,
    rng: random.Random,
    pool: Sequence[str] = (),
) -> tuple[dict[str, Any], np.ndarray]:
    """One random view of ``record``: (renamed and shifted record, the frame indices it reads).

    ``indices`` are the frames ``prepare_sample`` would read (``select_frames``); the returned
    ones are a subset of them. The record keeps its frames file: its ``frame_times`` are shifted,
    not subset (``prepare_sample`` reads ``frame_times[i]`` for the returned indices).
    """
    out = dict(record)
    mapping: dict[str, str] = {}
    if rng.random() < cfg.rename_prob:
        words = name_words(record.get("metadata"))
        candidates = [w for w in pool if w not in words]
        used: set[str] = set(words)
        for w in words:
            for _ in range(20):
                if candidates and rng.random() >= cfg.invented_share:
                    new = rng.choice(candidates)
                else:
                    new = invented_word(rng)
                if new not in used:
                    break
            used.add(new)
            mapping[w] = new
    offset = float(rng.randint(0, cfg.max_time_offset_s))
    out["frame_times"] = [_shift(t, offset) for t in record["frame_times"]]
    out["asr"] = [
        {**s, "start": _shift(s["start"], offset), "end": _shift(s["end"], offset),
         "text": _rename(s["text"], mapping)}
        for s in record["asr"]
    ]  # fmt: skip
    out["chapters"] = [
        {**c, "start": _shift(c["start"], offset), "end": _shift(c["end"], offset),
         "title": _rename(c.get("title", ""), mapping),
         "summary": _rename(c.get("summary", ""), mapping)}
        for c in record["chapters"]
    ]  # fmt: skip
    meta = record.get("metadata")
    if meta:
        out["metadata"] = {
            **meta,
            "title": _rename(meta.get("title", ""), mapping),
            "brand": _rename(meta.get("brand", ""), mapping),
            **({"name": _rename(meta["name"], mapping)} if "name" in meta else {}),
        }
    keep = rng.uniform(cfg.min_keep_frames, 1.0)
    return out, _pick_frames(np.asarray(indices), keep, rng)
