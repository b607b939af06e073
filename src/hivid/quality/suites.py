"""Every gate's Great Expectations suites under their old names (the code lives with its gate).

``hivid.quality.config`` holds ``QualityConfig``; ``hivid.quality.checks`` the ``Check`` /
``Suite`` types, the wording helpers and the interval checks the gates share;
``annotations.suites``, ``splits.suites`` and ``eval.suites`` each gate's suites. Importing this
module does not import great_expectations (``hivid config check`` needs only the config).
"""

from __future__ import annotations

from hivid.quality.annotations.suites import (
    RELEVANCE_RANGE,
    asr_segments_suite,
    build_suites,
    chapters_suite,
    frames_suite,
    manifest_suite,
    tcot_suite,
    videos_suite,
)
from hivid.quality.checks import (
    SAFE_ID_REGEX,
    Check,
    Explain,
    Suite,
    _first,
    _gx,
    _ids,
    _interval_checks,
    _monotonic,
    count,
    first_value,
    fixed,
    positions,
    s,
)
from hivid.quality.config import QualityConfig
from hivid.quality.eval.suites import eval_gt_suite, eval_pred_suite
from hivid.quality.splits.suites import split_sizes_suite, splits_suite

__all__ = [
    "RELEVANCE_RANGE",
    "SAFE_ID_REGEX",
    "Check",
    "Explain",
    "QualityConfig",
    "Suite",
    "_first",
    "_gx",
    "_ids",
    "_interval_checks",
    "_monotonic",
    "asr_segments_suite",
    "build_suites",
    "chapters_suite",
    "count",
    "eval_gt_suite",
    "eval_pred_suite",
    "first_value",
    "fixed",
    "frames_suite",
    "manifest_suite",
    "positions",
    "s",
    "split_sizes_suite",
    "splits_suite",
    "tcot_suite",
    "videos_suite",
]
