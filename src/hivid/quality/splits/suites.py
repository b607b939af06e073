"""The GX suites of the dataset-splits gate: membership (no leakage, none lost) and sizes."""

from __future__ import annotations

from typing import Any

import pandas as pd

from hivid.quality.checks import SAFE_ID_REGEX, Check, Suite, _first, _gx, fixed
from hivid.quality.config import QualityConfig


def splits_suite(cfg: QualityConfig) -> Suite:
    """Dataset splits: every video in exactly one split (no leakage, none lost)."""
    E = _gx().expectations

    def where(r: pd.DataFrame, _: Any) -> str:
        rows = r.drop_duplicates("video_id")
        head = "; ".join(
            f"{x.video_id} is in {x.splits_of_video or 'no split'}"
            for x in rows.head(5).itertuples()
        )
        more = f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
        return f"split leakage or loss: {head}{more}"

    checks = (
        Check(
            "not_empty",
            E.ExpectTableRowCountToBeBetween(min_value=1, description="the splits hold videos"),
            fixed("empty stage: no video in any split"),
            batch=True,
        ),
        Check(
            "in_one_split",
            E.ExpectColumnValuesToBeBetween(
                column="n_splits",
                min_value=1,
                max_value=1,
                description="every video is in exactly one split",
            ),
            where,
            batch=True,
        ),
        Check(
            "video_id_safe",
            E.ExpectColumnValuesToMatchRegex(
                column="video_id", regex=SAFE_ID_REGEX, description="split ids are safe names"
            ),
            lambda r, _: f"unsafe video id {_first(r)['video_id']!r} in the splits",
            batch=True,
        ),
    )
    return Suite("hivid.splits.v1", "splits", 1, checks)


def split_sizes_suite(cfg: QualityConfig, method: str = "exact") -> Suite:
    """Dataset splits: sizes as the configured fractions give them.

    ``exact`` splits: within ``split_size_tolerance`` of round(n x fraction). ``stable`` splits
    (binomial sizes): within max(split_size_tolerance, ceil(3 sqrt(n f (1 - f)))) for a split of
    share f, three standard deviations. The table's ``tolerance`` column holds each split's
    allowance (``hivid.quality.tables.split_size_tolerances``), ``excess`` what exceeds it."""
    E = _gx().expectations
    tol = cfg.split_size_tolerance
    allowance = (
        f"max({tol}, ceil(3 sqrt(n f (1 - f)))) (stable split: binomial sizes)"
        if method == "stable"
        else f"{tol}"
    )
    checks = (
        Check(
            "size_as_configured",
            E.ExpectColumnValuesToBeBetween(
                column="excess",
                min_value=0,
                max_value=0,
                description=f"split sizes within {allowance} of round(n x fraction)",
            ),
            lambda r, _: "; ".join(
                f"split {x.split} has {x.size} videos, expected {x.expected} +- {x.tolerance}"
                + (" (3 sigma of a stable split's binomial size)" if method == "stable" else "")
                for x in r.itertuples()
            ),
            batch=True,
        ),
    )
    return Suite("hivid.split_sizes.v2", "split_sizes", 2, checks)
