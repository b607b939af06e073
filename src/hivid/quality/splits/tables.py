"""Tables of the dataset-splits gate: split membership and split sizes of ``splits.json``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from hivid.quality.columns import INT, OBJ, _frame

SPLIT_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "split": OBJ,
    "n_splits": INT,
    "splits_of_video": OBJ,
}
"""One row per (split, video) of ``splits.json``, plus one row (``split`` None, ``n_splits`` 0)
per video that should be in a split and is in none; ``splits_of_video`` lists all its splits."""

SPLIT_SIZE_COLUMNS: dict[str, str] = {
    "row": INT,
    "split": OBJ,
    "size": INT,
    "expected": INT,
    "size_error": INT,
    "tolerance": INT,
    "excess": INT,
}
"""One row per split: its size, the size the configured fractions give, the difference, the
allowed |difference| (``split_size_tolerances``) and ``excess`` = max(0, |size_error| - tol)."""


SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def expected_split_sizes(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    """Sizes the configured fractions give ``n`` videos: round(n x fraction), train the rest."""
    test = round(n * test_fraction)
    val = round(n * val_fraction)
    return {"train": n - test - val, "val": val, "test": test}


def split_size_tolerances(
    n: int, val_fraction: float, test_fraction: float, base: int, method: str = "exact"
) -> dict[str, int]:
    """How far each split's size may be from ``expected_split_sizes``.

    ``exact`` splits (cut at round(n x fraction)) get ``base`` (the at-least-one rules of tiny
    corpora). ``stable`` splits (each video by its own hash) have binomial sizes, standard
    deviation sqrt(n f (1 - f)) for a split of share f: they get
    max(base, ceil(3 sqrt(n f (1 - f)))), three standard deviations, rounded up."""
    shares = {
        "train": 1.0 - val_fraction - test_fraction,
        "val": val_fraction,
        "test": test_fraction,
    }
    if method != "stable":
        return dict.fromkeys(shares, base)
    # (- 1e-9: float noise must not push an exact integer such as 3 x sqrt(1) up to 4)
    return {
        name: max(base, math.ceil(3 * math.sqrt(n * f * (1 - f)) - 1e-9))
        for name, f in shares.items()
    }


def splits_table(splits: Mapping[str, Any], videos: Iterable[str] = ()) -> pd.DataFrame:
    """Rows of ``splits`` (``{"train": [ids], "val": [...], "test": [...]}``; other keys such as
    ``seed`` are ignored); ``videos``: ids that must each be in exactly one split."""
    member: dict[str, list[str]] = {}
    pairs = []
    for name in SPLIT_NAMES:
        ids = splits.get(name)
        for vid in ids if isinstance(ids, list) else []:
            key = str(vid)
            member.setdefault(key, []).append(name)
            pairs.append((name, key))
    rows = [
        {
            "video_id": vid,
            "split": name,
            "n_splits": len(member[vid]),
            "splits_of_video": ", ".join(member[vid]),
        }
        for name, vid in pairs
    ]
    rows += [
        {"video_id": vid, "split": None, "n_splits": 0, "splits_of_video": ""}
        for vid in sorted(set(videos) - set(member))
    ]
    return _frame(rows, SPLIT_COLUMNS)


def split_sizes_table(
    splits: Mapping[str, Any],
    expected: Mapping[str, int],
    tolerance: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """One row per split name with its size, the expected size, the difference, its tolerance
    (``split_size_tolerances``; 0 where not given) and the excess over it."""
    rows = []
    for name in SPLIT_NAMES:
        ids = splits.get(name)
        size = len(ids) if isinstance(ids, list) else 0
        exp = int(expected.get(name, 0))
        tol = int((tolerance or {}).get(name, 0))
        err = size - exp
        rows.append(
            {
                "split": name,
                "size": size,
                "expected": exp,
                "size_error": err,
                "tolerance": tol,
                "excess": max(0, abs(err) - tol),
            }
        )
    return _frame(rows, SPLIT_SIZE_COLUMNS)
