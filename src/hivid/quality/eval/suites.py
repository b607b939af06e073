"""The GX suites of the evaluation-inputs gate: ground truth and predictions.

The event checks are the interval checks of ``hivid.quality.checks`` (the same expectations the
annotation suites use), worded for events and predictions as they always were.
"""

from __future__ import annotations

from hivid.quality.checks import (
    Check,
    Suite,
    _first,
    _gx,
    count,
    end_present,
    fixed,
    inside_video,
    positions,
    reason_at,
    s,
    start_before_end,
    start_nonnegative,
    start_present,
    text_nonempty,
    text_present,
)
from hivid.quality.config import QualityConfig


def eval_gt_suite(cfg: QualityConfig) -> Suite:
    """Ground truth of the dense-captioning evaluator (ActivityNet Captions ``gt.json``)."""
    E = _gx().expectations
    tol = cfg.time_tolerance_s
    checks = (
        Check(
            "not_empty",
            E.ExpectTableRowCountToBeBetween(min_value=1, description="gt.json has videos"),
            fixed("empty stage: no ground-truth video to evaluate on"),
            batch=True,
        ),
        Check(
            "shape",
            E.ExpectColumnValuesToBeNull(
                column="shape_error", description="events are [start, end] pairs"
            ),
            lambda r, _: f"ground truth: {_first(r)['shape_error']}",
        ),
        Check(
            "duration_positive",
            E.ExpectColumnValuesToBeBetween(
                column="duration", min_value=0, strict_min=True, description="duration > 0"
            ),
            lambda r, _: f"ground-truth duration {s(_first(r)['duration'])} is not positive",
        ),
        Check(
            "duration_present",
            E.ExpectColumnValuesToNotBeNull(column="duration", description="duration is a number"),
            fixed("ground-truth duration is missing or not a number"),
        ),
        Check(
            "sentences_match",
            E.ExpectColumnPairValuesToBeEqual(
                column_A="n_timestamps",
                column_B="n_sentences",
                description="one sentence per timestamp",
            ),
            lambda r, _: (
                f"ground truth has {int(_first(r)['n_timestamps'])} timestamps but "
                f"{int(_first(r)['n_sentences'])} sentences"
            ),
        ),
        start_present(E, "event", explain=reason_at("event", "start is missing or not a number")),
        end_present(E, "event", explain=reason_at("event", "end is missing or not a number")),
        start_before_end(E, "event", True, explain=reason_at("event", "end not after start")),
        start_nonnegative(E, "event", description="start >= 0"),
        inside_video(
            E,
            "event",
            tol,
            description=f"events end <= duration + {tol} s",
            explain=lambda r, _: f"{count(len(r), 'event')} after the end of the video",
        ),
        text_nonempty(E, "event", "sentence", description="sentences are not blank"),
    )
    return Suite("hivid.eval_gt.v1", "eval_gt", 1, checks)


def eval_pred_suite(cfg: QualityConfig) -> Suite:
    """Predictions fed to the evaluator (``predictions.json`` results)."""
    E = _gx().expectations
    checks = (
        Check(
            "shape",
            E.ExpectColumnValuesToBeNull(
                column="shape_error", description="predicted events are [start, end] pairs"
            ),
            lambda r, _: f"prediction: {_first(r)['shape_error']}",
        ),
        start_present(
            E,
            "prediction",
            name="times_present",
            description="start is a number",
            explain=reason_at("prediction", "start is missing or not finite"),
        ),
        start_before_end(
            E,
            "prediction",
            False,
            description="predicted start <= end",
            explain=reason_at("prediction", "end before start"),
        ),
        start_nonnegative(
            E,
            "prediction",
            description="start >= 0",
            explain=lambda r, _: f"{positions(r, 'prediction')} start before 0 s",
        ),
        Check(
            "video_in_gt",
            E.ExpectColumnValuesToBeInSet(
                column="in_gt", value_set=[True], description="predicted videos are in gt.json"
            ),
            fixed("prediction for a video that is not in the ground truth"),
        ),
        text_present(E, "prediction", "sentence", description="predicted sentences are strings"),
    )
    return Suite("hivid.eval_pred.v1", "eval_pred", 1, checks)
