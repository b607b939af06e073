"""The Great Expectations suites of the ``validate`` stage, in code, named and versioned.

One suite per table of ``hivid.quality.tables`` (``hivid.<table>.v<N>``). Every expectation is
wrapped in a ``Check``: a stable name (stored in the expectation's ``meta["check"]``, which is how a
GX result maps back to its check), the GX expectation itself, and ``explain``, which turns the rows
that failed for one video into a sentence a person can act on. A ``batch`` check guards the batch
as a whole (duplicate ids or hashes, an empty stage): its failure stops the pipeline.

Bump a suite's version when a check changes meaning, so results of different versions are never
compared as if they were the same test.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hivid.configbase import require
from hivid.labels import SCRIPT_LABELS

RELEVANCE_RANGE = (0.0, 5.0)
"""The ASR relevance filter's score scale (paper §3.1.1: 0-5, threshold 4)."""
SAFE_ID_REGEX = r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,127}$"
"""A video id that is one safe path component (same rule as ``hivid.data.ingest``)."""

# The import of great_expectations costs seconds: callers that only need the config
# (`hivid config check`) import this module without paying for it (see ``_gx``).


@dataclass
class QualityConfig:
    """Thresholds of the quality gate (params.yaml section ``quality``)."""

    min_duration_s: float = 0.5
    """Shortest acceptable video (seconds, > 0)."""
    max_duration_s: float = 3600.0
    """Longest acceptable video (seconds)."""
    min_fps: float = 1.0
    """Lowest acceptable container frame rate."""
    max_fps: float = 120.0
    """Highest acceptable container frame rate."""
    min_side_px: int = 16
    """Smallest acceptable frame width and height (pixels)."""
    max_side_px: int = 7680
    """Largest acceptable frame width and height (pixels)."""
    require_metadata: bool = True
    """Check that brand, category, attributes and price are present and typed."""
    time_tolerance_s: float = 0.5
    """How far an ASR segment, frame, TCoT item or chapter may end past the probed duration, and
    how far the record's duration may differ from it (container and decoder rounding)."""
    frame_fps: float = 1.0
    """Expected frame sampling rate of the annotation (the paper samples 1 fps)."""
    frame_count_tolerance: int = 1
    """Allowed |frames - floor(duration x frame_fps)| (the last partial second may be sampled)."""
    min_chapters: int = 1
    """Fewest chapters a video must have."""
    min_chapter_coverage: float = 0.9
    """Least share of the duration the chapters must cover."""
    max_chapter_gap_s: float = 1.0
    """Longest hole allowed between a chapter's end and the next chapter's start (contiguity)."""
    max_chapter_overlap_s: float = 0.05
    """Largest overlap allowed between consecutive chapters (float rounding)."""
    max_title_words: int = 12
    """Longest chapter title, in words."""
    max_title_chars: int = 80
    """Longest chapter title, in characters."""
    min_summary_chars: int = 1
    """Shortest chapter summary, in characters (stripped)."""
    max_summary_chars: int = 600
    """Longest chapter summary, in characters (stripped)."""
    min_tcot_items: int = 1
    """Fewest TCoT observations a video must have."""
    max_quarantine_share: float = 0.5
    """The batch fails when more than this share of its videos is quarantined."""
    min_videos: int = 1
    """The batch fails when fewer videos than this pass."""
    schema_versions: list[int] = field(default_factory=lambda: [1, 2])
    """Annotation record schema versions the gate accepts (see ``hivid.annotate.pipeline``)."""
    split_size_tolerance: int = 1
    """How many videos a split may differ from round(n x fraction) (the at-least-one rules).
    ``stable`` dataset splits get at least three standard deviations of their binomial size,
    ceil(3 sqrt(n f (1 - f))) (``split_sizes_suite``)."""

    def __post_init__(self) -> None:
        require(self.min_duration_s > 0, f"min_duration_s must be > 0, got {self.min_duration_s}")
        require(
            self.max_duration_s >= self.min_duration_s,
            f"max_duration_s ({self.max_duration_s}) must be >= min_duration_s "
            f"({self.min_duration_s})",
        )
        require(
            0 < self.min_fps <= self.max_fps,
            f"need 0 < min_fps <= max_fps, got {self.min_fps}, {self.max_fps}",
        )
        require(
            0 < self.min_side_px <= self.max_side_px,
            f"need 0 < min_side_px <= max_side_px, got {self.min_side_px}, {self.max_side_px}",
        )
        require(self.time_tolerance_s >= 0, "time_tolerance_s must be >= 0")
        require(
            self.frame_fps > 0 and math.isfinite(self.frame_fps),
            f"frame_fps must be > 0, got {self.frame_fps}",
        )
        require(self.frame_count_tolerance >= 0, "frame_count_tolerance must be >= 0")
        require(self.min_chapters >= 1, f"min_chapters must be >= 1, got {self.min_chapters}")
        require(
            0 <= self.min_chapter_coverage <= 1,
            f"min_chapter_coverage must be in [0, 1], got {self.min_chapter_coverage}",
        )
        require(self.max_chapter_gap_s >= 0, "max_chapter_gap_s must be >= 0")
        require(self.max_chapter_overlap_s >= 0, "max_chapter_overlap_s must be >= 0")
        require(self.max_title_words >= 1, "max_title_words must be >= 1")
        require(self.max_title_chars >= 1, "max_title_chars must be >= 1")
        require(
            0 <= self.min_summary_chars <= self.max_summary_chars,
            f"need 0 <= min_summary_chars <= max_summary_chars, got {self.min_summary_chars}, "
            f"{self.max_summary_chars}",
        )
        require(self.min_tcot_items >= 0, "min_tcot_items must be >= 0")
        require(
            0 <= self.max_quarantine_share <= 1,
            f"max_quarantine_share must be in [0, 1], got {self.max_quarantine_share}",
        )
        require(self.min_videos >= 0, f"min_videos must be >= 0, got {self.min_videos}")
        require(self.split_size_tolerance >= 0, "split_size_tolerance must be >= 0")
        require(bool(self.schema_versions), "schema_versions must not be empty")


Explain = Callable[[pd.DataFrame, Any], str]
"""(failed rows of one video, or of the batch for a batch check; the GX ``observed_value``) ->
the reason, without the video id and suite prefix."""


@dataclass(frozen=True)
class Check:
    """One expectation with its stable name and its explanation of a failure."""

    name: str
    """Stable id inside its suite, e.g. ``contiguous``; stored in ``meta["check"]``."""
    expectation: Any
    """A ``great_expectations.expectations.Expectation`` instance."""
    explain: Explain
    """Turns the failing rows of one video into a readable reason."""
    batch: bool = False
    """A failure stops the pipeline (besides quarantining the videos involved, if any)."""


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of checks over one table of ``hivid.quality.tables``."""

    name: str
    """``hivid.<table>.v<version>``."""
    table: str
    """Key of ``hivid.quality.tables.TABLES``."""
    version: int
    checks: tuple[Check, ...] = field(default_factory=tuple)

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}: no check named {name!r}")

    def expectation_suite(self) -> Any:
        """A fresh ``gx.ExpectationSuite`` (not yet added to a context)."""
        gx = _gx()
        for c in self.checks:
            c.expectation.meta = {**(c.expectation.meta or {}), "check": c.name, "batch": c.batch}
        return gx.ExpectationSuite(
            name=self.name,
            expectations=[c.expectation for c in self.checks],
            meta={"version": self.version, "table": self.table, "owner": "hivid.quality"},
        )


def _gx() -> Any:
    import great_expectations as gx

    return gx


# ---------------------------------------------------------------------------------------------
# Wording helpers: reasons name the item (1-based position) and the offending values.


def s(x: Any) -> str:
    """Seconds for a reason: ``12.3 s``, or ``missing`` for NaN/None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "missing"
    return "missing" if math.isnan(v) else f"{v:g} s"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def positions(rows: pd.DataFrame, noun: str, limit: int = 5) -> str:
    """``chapter 3`` / ``chapters 1, 4`` / ``segments 1, 2, 3, 4, 5 (+2 more)``."""
    pos = [int(p) for p in rows["pos"]]
    head = ", ".join(str(p) for p in pos[:limit])
    more = f" (+{len(pos) - limit} more)" if len(pos) > limit else ""
    return f"{noun if len(pos) == 1 else noun + 's'} {head}{more}"


def _first(rows: pd.DataFrame) -> pd.Series:
    return rows.iloc[0]


def fixed(message: str) -> Explain:
    """An explanation that does not depend on the rows."""
    return lambda rows, observed: message


def first_value(column: str, template: str) -> Explain:
    """``template.format(v=<column of the first failing row>)``."""
    return lambda rows, observed: template.format(v=_first(rows)[column])


def _ids(rows: pd.DataFrame, column: str) -> str:
    groups = rows.groupby(column, sort=True)["video_id"].apply(lambda v: ", ".join(map(str, v)))
    return "; ".join(f"{str(k)[:12]} shared by {v}" for k, v in groups.items())


# ---------------------------------------------------------------------------------------------
# Suites


def manifest_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    ok_dims = f"[{cfg.min_side_px}, {cfg.max_side_px}] px"
    checks = [
        Check(
            "video_id_safe",
            E.ExpectColumnValuesToMatchRegex(
                column="video_id",
                regex=SAFE_ID_REGEX,
                description="video ids are one safe path component (no '..', no '/')",
            ),
            lambda r, _: f"video id {_first(r)['video_id']!r} is not a safe file name",
        ),
        Check(
            "finite_numbers",
            E.ExpectColumnValuesToBeNull(
                column="nonfinite", description="no NaN or infinite number in the manifest row"
            ),
            lambda r, _: f"manifest row holds non-finite numbers: {_first(r)['nonfinite']}",
        ),
        Check(
            "video_id_unique",
            E.ExpectColumnValuesToBeUnique(column="video_id", description="video ids are unique"),
            lambda r, _: (
                "duplicate video id(s) in the manifest: "
                + ", ".join(sorted(set(map(str, r["video_id"]))))
            ),
            batch=True,
        ),
        Check(
            "sha256_unique",
            E.ExpectColumnValuesToBeUnique(
                column="sha256", description="content hashes are unique (no duplicate videos)"
            ),
            lambda r, _: f"duplicate content: sha256 {_ids(r, 'sha256')}",
            batch=True,
        ),
        Check(
            "sha256_present",
            E.ExpectColumnValuesToMatchRegex(
                column="sha256", regex=r"^[0-9a-f]{64}$", description="sha256 is 64 hex digits"
            ),
            lambda r, _: f"sha256 {_first(r)['sha256']!r} is not 64 hex digits",
        ),
        Check(
            "sha256_not_null",
            E.ExpectColumnValuesToNotBeNull(column="sha256", description="sha256 is present"),
            lambda r, _: "sha256 is missing",
        ),
        Check(
            "duration_range",
            E.ExpectColumnValuesToBeBetween(
                column="duration",
                min_value=cfg.min_duration_s,
                max_value=cfg.max_duration_s,
                description=f"duration in [{cfg.min_duration_s}, {cfg.max_duration_s}] s",
            ),
            lambda r, _: (
                f"duration {s(_first(r)['duration'])} outside "
                f"[{cfg.min_duration_s}, {cfg.max_duration_s}] s"
            ),
        ),
        Check(
            "duration_present",
            E.ExpectColumnValuesToNotBeNull(column="duration", description="duration is a number"),
            lambda r, _: "duration is missing or not a number",
        ),
        Check(
            "fps_range",
            E.ExpectColumnValuesToBeBetween(
                column="fps",
                min_value=cfg.min_fps,
                max_value=cfg.max_fps,
                description=f"frame rate in [{cfg.min_fps}, {cfg.max_fps}]",
            ),
            lambda r, _: (
                f"frame rate {_first(r)['fps']:g} outside [{cfg.min_fps:g}, {cfg.max_fps:g}]"
            ),
        ),
        Check(
            "fps_present",
            E.ExpectColumnValuesToNotBeNull(column="fps", description="frame rate is a number"),
            lambda r, _: "frame rate is missing or not a number",
        ),
    ]
    for side in ("width", "height"):
        checks += [
            Check(
                f"{side}_range",
                E.ExpectColumnValuesToBeBetween(
                    column=side,
                    min_value=cfg.min_side_px,
                    max_value=cfg.max_side_px,
                    description=f"{side} in {ok_dims}",
                ),
                first_value(side, f"{side} {{v:g}} px outside {ok_dims}"),
            ),
            Check(
                f"{side}_present",
                E.ExpectColumnValuesToNotBeNull(column=side, description=f"{side} is a number"),
                fixed(f"{side} is missing or not a number"),
            ),
        ]
    checks.append(
        Check(
            "has_audio_typed",
            E.ExpectColumnValuesToBeInSet(
                column="has_audio_type", value_set=["bool"], description="has_audio is a boolean"
            ),
            lambda r, _: f"has_audio is {_first(r)['has_audio_type']}, expected true/false",
        )
    )
    if cfg.require_metadata:
        for key, expected in (
            ("brand", "str"),
            ("category", "str"),
            ("title", "str"),
            ("attributes", "object"),
            ("price_amount", "number"),
        ):
            column = f"meta_{key}_type"
            label = "price.amount" if key == "price_amount" else key
            checks.append(
                Check(
                    f"metadata_{key}_typed",
                    E.ExpectColumnValuesToBeInSet(
                        column=column,
                        value_set=[expected],
                        description=f"metadata.{label} is a JSON {expected}",
                    ),
                    first_value(column, f"metadata.{label} is {{v}}, expected {expected}"),
                )
            )
        for key in ("brand", "category"):
            checks.append(
                Check(
                    f"metadata_{key}_nonempty",
                    E.ExpectColumnValueLengthsToBeBetween(
                        column=f"meta_{key}",
                        min_value=1,
                        description=f"metadata.{key} is not blank",
                    ),
                    fixed(f"metadata.{key} is blank"),
                )
            )
        checks += [
            Check(
                "metadata_price_nonnegative",
                E.ExpectColumnValuesToBeBetween(
                    column="meta_price_amount",
                    min_value=0,
                    description="metadata.price.amount >= 0 and finite",
                ),
                lambda r, _: (
                    f"metadata.price.amount {_first(r)['meta_price_amount']} is not a "
                    "non-negative number"
                ),
            ),
            Check(
                "metadata_currency",
                E.ExpectColumnValuesToMatchRegex(
                    column="meta_currency",
                    regex=r"^[A-Z]{3}$",
                    description="metadata.price.currency is an ISO 4217 code",
                ),
                lambda r, _: (
                    f"metadata.price.currency {_first(r)['meta_currency']!r} is not a 3-letter code"
                ),
            ),
        ]
    return Suite("hivid.manifest.v2", "manifest", 2, tuple(checks))


def videos_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    tol = cfg.frame_count_tolerance
    return Suite(
        "hivid.videos.v2",
        "videos",
        2,
        (
            Check(
                "finite_numbers",
                E.ExpectColumnValuesToBeNull(
                    column="nonfinite", description="no NaN or infinite number in the record"
                ),
                lambda r, _: f"record holds non-finite numbers: {_first(r)['nonfinite']}",
            ),
            Check(
                "not_empty",
                E.ExpectTableRowCountToBeBetween(
                    min_value=1, description="the stage produced at least one annotation record"
                ),
                lambda r, _: "empty stage: no annotation records to validate",
                batch=True,
            ),
            Check(
                "in_manifest",
                E.ExpectColumnValuesToBeInSet(
                    column="has_manifest_row",
                    value_set=[True],
                    description="every annotated video has a manifest row",
                ),
                lambda r, _: "annotation record has no manifest row",
            ),
            Check(
                "record_shape",
                E.ExpectColumnValuesToBeNull(
                    column="structure_error",
                    description="records have asr.segments, frames.items, tcot, chapters arrays",
                ),
                lambda r, _: f"malformed record: {_first(r)['structure_error']}",
            ),
            Check(
                "schema_version",
                E.ExpectColumnValuesToBeInSet(
                    column="schema_version",
                    value_set=[str(v) for v in cfg.schema_versions],
                    description=f"schema_version in {cfg.schema_versions}",
                ),
                lambda r, _: (
                    f"schema_version is {_first(r)['schema_version']}, expected one of "
                    f"{cfg.schema_versions}"
                ),
            ),
            Check(
                "sha256_matches",
                E.ExpectColumnValuesToBeInSet(
                    column="sha256_matches",
                    value_set=[True],
                    description="the record was made from the manifest's video content",
                ),
                lambda r, _: "record sha256 differs from the manifest (stale annotation)",
            ),
            Check(
                "duration_matches",
                E.ExpectColumnValuesToBeBetween(
                    column="duration_delta",
                    max_value=cfg.time_tolerance_s,
                    description=f"record duration within {cfg.time_tolerance_s} s of the probe",
                ),
                lambda r, _: (
                    f"record duration differs from the probed {s(_first(r)['duration'])} "
                    f"by {s(_first(r)['duration_delta'])}"
                ),
            ),
            Check(
                "frame_fps",
                E.ExpectColumnValuesToBeBetween(
                    column="frames_fps",
                    min_value=cfg.frame_fps * 0.999,
                    max_value=cfg.frame_fps * 1.001,
                    description=f"frames sampled at {cfg.frame_fps:g} fps",
                ),
                lambda r, _: (
                    f"frames sampled at {_first(r)['frames_fps']:g} fps, expected {cfg.frame_fps:g}"
                ),
            ),
            Check(
                "frame_count",
                E.ExpectColumnValuesToBeBetween(
                    column="frame_count_error",
                    min_value=-tol,
                    max_value=tol,
                    description=f"frame count = floor(duration x {cfg.frame_fps:g}) +- {tol}",
                ),
                lambda r, _: (
                    f"{count(int(_first(r)['n_frames']), 'frame')} for "
                    f"{s(_first(r)['duration'])} at {cfg.frame_fps:g} fps, expected "
                    f"{int(_first(r)['expected_frames'])} +- {tol}"
                ),
            ),
            Check(
                "min_chapters",
                E.ExpectColumnValuesToBeBetween(
                    column="n_chapters",
                    min_value=cfg.min_chapters,
                    description=f"at least {cfg.min_chapters} chapter(s)",
                ),
                lambda r, _: (
                    f"{count(int(_first(r)['n_chapters']), 'chapter')}, need at least "
                    f"{cfg.min_chapters}"
                ),
            ),
            Check(
                "chapter_coverage",
                E.ExpectColumnValuesToBeBetween(
                    column="chapter_coverage",
                    min_value=cfg.min_chapter_coverage,
                    description=f"chapters cover >= {cfg.min_chapter_coverage:.0%} of the video",
                ),
                lambda r, _: (
                    f"chapters cover {_first(r)['chapter_coverage']:.0%} of "
                    f"{s(_first(r)['duration'])}, need {cfg.min_chapter_coverage:.0%}"
                ),
            ),
            Check(
                "min_tcot",
                E.ExpectColumnValuesToBeBetween(
                    column="n_tcot",
                    min_value=cfg.min_tcot_items,
                    description=f"at least {cfg.min_tcot_items} TCoT item(s)",
                ),
                lambda r, _: (
                    f"{count(int(_first(r)['n_tcot']), 'TCoT item')}, need at least "
                    f"{cfg.min_tcot_items}"
                ),
            ),
        ),
    )


def _interval_checks(
    E: Any, cfg: QualityConfig, noun: str, strict: bool, text_col: str | None
) -> list[Check]:
    """Checks shared by time intervals (ASR segments, TCoT items, chapters)."""
    tol = cfg.time_tolerance_s
    checks = [
        Check(
            "start_present",
            E.ExpectColumnValuesToNotBeNull(
                column="start", description=f"{noun} start is a number"
            ),
            lambda r, _: f"{positions(r, noun)}: start time is missing or not a number (NaN)",
        ),
        Check(
            "end_present",
            E.ExpectColumnValuesToNotBeNull(column="end", description=f"{noun} end is a number"),
            lambda r, _: f"{positions(r, noun)}: end time is missing or not a number (NaN)",
        ),
        Check(
            "start_before_end",
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end",
                column_B="start",
                or_equal=not strict,
                ignore_row_if="either_value_is_missing",
                description=f"{noun} start {'<' if strict else '<='} end",
            ),
            lambda r, _: (
                "; ".join(
                    f"{noun} {int(x.pos)} ends at {s(x.end)}, not after its start {s(x.start)}"
                    for x in r.head(3).itertuples()
                )
                + (f" (+{len(r) - 3} more)" if len(r) > 3 else "")
            ),
        ),
        Check(
            "start_nonnegative",
            E.ExpectColumnValuesToBeBetween(
                column="start", min_value=0, description=f"{noun} start >= 0"
            ),
            lambda r, _: f"{positions(r, noun)} start before 0 s or at an infinite time",
        ),
        Check(
            "inside_video",
            E.ExpectColumnValuesToBeBetween(
                column="overrun",
                max_value=tol,
                description=f"{noun} ends at most {tol} s after the video",
            ),
            lambda r, _: (
                f"{count(len(r), noun)} {'ends' if len(r) == 1 else 'end'} after the video "
                f"(duration "
                f"{s(_first(r)['duration'])}; latest end {s(r['end'].max())})"
            ),
        ),
    ]
    if text_col is not None:
        checks += [
            Check(
                f"{text_col}_present",
                E.ExpectColumnValuesToNotBeNull(
                    column=text_col, description=f"{noun} {text_col} is a string"
                ),
                lambda r, _: f"{positions(r, noun)}: {text_col} is missing or not text",
            ),
            Check(
                f"{text_col}_nonempty",
                E.ExpectColumnValueLengthsToBeBetween(
                    column=text_col, min_value=1, description=f"{noun} {text_col} is not blank"
                ),
                lambda r, _: f"{positions(r, noun)}: {text_col} is empty",
            ),
        ]
    return checks


def _monotonic(E: Any, noun: str) -> Check:
    return Check(
        "monotonic_starts",
        E.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="start",
            column_B="prev_start",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            description=f"{noun}s are in time order (start >= previous start)",
        ),
        lambda r, _: (
            "; ".join(
                f"{noun} {int(x.pos)} starts at {s(x.start)}, before {noun} {int(x.pos) - 1} "
                f"({s(x.prev_start)})"
                for x in r.head(3).itertuples()
            )
            + (f" (+{len(r) - 3} more)" if len(r) > 3 else "")
        ),
    )


def asr_segments_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    lo, hi = RELEVANCE_RANGE
    checks = [
        *_interval_checks(E, cfg, "segment", True, "text"),
        _monotonic(E, "segment"),
        Check(
            "relevance_typed",
            E.ExpectColumnValuesToBeInSet(
                column="relevance_type",
                value_set=["missing", "null", "number"],
                description="segment relevance, when present, is a number",
            ),
            lambda r, _: (
                f"{positions(r, 'segment')}: relevance is {_first(r)['relevance_type']}, "
                "expected a number"
            ),
        ),
        Check(
            "relevance_range",
            E.ExpectColumnValuesToBeBetween(
                column="relevance",
                min_value=lo,
                max_value=hi,
                description=f"segment relevance score in [{lo:g}, {hi:g}]",
            ),
            lambda r, _: (
                f"{positions(r, 'segment')}: relevance "
                f"{', '.join(f'{v:g}' for v in r['relevance'].head(5))} outside [{lo:g}, {hi:g}]"
            ),
        ),
    ]
    return Suite("hivid.asr_segments.v2", "asr_segments", 2, tuple(checks))


def tcot_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    # Observations clipped to a chapter edge may have zero length, hence not strict.
    checks = [
        *_interval_checks(E, cfg, "TCoT item", False, "observation"),
        _monotonic(E, "TCoT item"),
    ]
    return Suite("hivid.tcot.v1", "tcot", 1, tuple(checks))


def frames_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    tol = cfg.time_tolerance_s
    checks = (
        Check(
            "t_present",
            E.ExpectColumnValuesToNotBeNull(column="t", description="frame time is a number"),
            lambda r, _: f"{positions(r, 'frame')}: time is missing or not a number (NaN)",
        ),
        Check(
            "t_nonnegative",
            E.ExpectColumnValuesToBeBetween(column="t", min_value=0, description="frame time >= 0"),
            lambda r, _: f"{positions(r, 'frame')} before 0 s or at an infinite time",
        ),
        Check(
            "inside_video",
            E.ExpectColumnValuesToBeBetween(
                column="overrun",
                max_value=tol,
                description=f"frame time at most {tol} s after the video end",
            ),
            lambda r, _: (
                f"{count(len(r), 'frame')} after the end of the video (duration "
                f"{s(_first(r)['duration'])}; latest {s(r['t'].max())})"
            ),
        ),
        Check(
            "increasing",
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="t",
                column_B="prev_t",
                or_equal=False,
                ignore_row_if="either_value_is_missing",
                description="frame times strictly increase",
            ),
            lambda r, _: "; ".join(
                f"frame {int(x.pos)} at {s(x.t)} is not after frame {int(x.pos) - 1} "
                f"({s(x.prev_t)})"
                for x in r.head(3).itertuples()
            ),
        ),
        Check(
            "ocr_text_typed",
            E.ExpectColumnValuesToBeInSet(
                column="ocr_text_type",
                value_set=["str", "null"],
                description="ocr_text is a string or null",
            ),
            lambda r, _: (
                f"{positions(r, 'frame')}: ocr_text is "
                f"{_first(r)['ocr_text_type']}, expected a string"
            ),
        ),
    )
    return Suite("hivid.frames.v1", "frames", 1, checks)


def chapters_suite(cfg: QualityConfig) -> Suite:
    E = _gx().expectations
    checks = [
        *_interval_checks(E, cfg, "chapter", True, "title"),
        Check(
            "no_overlap",
            E.ExpectColumnValuesToBeBetween(
                column="gap_to_prev",
                min_value=-cfg.max_chapter_overlap_s,
                description=f"chapters overlap by at most {cfg.max_chapter_overlap_s} s",
            ),
            lambda r, _: "; ".join(
                f"chapter {int(x.pos)} starts at {s(x.start)} before chapter {int(x.pos) - 1} "
                f"ends at {s(x.prev_end)}"
                for x in r.head(3).itertuples()
            ),
        ),
        Check(
            "contiguous",
            E.ExpectColumnValuesToBeBetween(
                column="gap_to_prev",
                max_value=cfg.max_chapter_gap_s,
                description=f"at most {cfg.max_chapter_gap_s} s between consecutive chapters",
            ),
            lambda r, _: "; ".join(
                f"{s(x.gap_to_prev)} hole between chapter {int(x.pos) - 1} (ends "
                f"{s(x.prev_end)}) and chapter {int(x.pos)} (starts {s(x.start)})"
                for x in r.head(3).itertuples()
            ),
        ),
        Check(
            "title_words",
            E.ExpectColumnValuesToBeBetween(
                column="title_words",
                max_value=cfg.max_title_words,
                description=f"titles have at most {cfg.max_title_words} words",
            ),
            lambda r, _: (
                f"{positions(r, 'chapter')}: title longer than {cfg.max_title_words} "
                f"words ({int(r['title_words'].max())})"
            ),
        ),
        Check(
            "title_chars",
            E.ExpectColumnValuesToBeBetween(
                column="title_chars",
                max_value=cfg.max_title_chars,
                description=f"titles have at most {cfg.max_title_chars} characters",
            ),
            lambda r, _: (
                f"{positions(r, 'chapter')}: title longer than {cfg.max_title_chars} "
                f"characters ({int(r['title_chars'].max())})"
            ),
        ),
        Check(
            "summary_present",
            E.ExpectColumnValuesToNotBeNull(
                column="summary", description="chapter summary is a string"
            ),
            lambda r, _: f"{positions(r, 'chapter')}: summary is missing or not text",
        ),
        Check(
            "summary_length",
            E.ExpectColumnValuesToBeBetween(
                column="summary_chars",
                min_value=cfg.min_summary_chars,
                max_value=cfg.max_summary_chars,
                description=f"summaries have {cfg.min_summary_chars}-{cfg.max_summary_chars} "
                "characters",
            ),
            lambda r, _: (
                f"{positions(r, 'chapter')}: summary length "
                f"{', '.join(str(int(v)) for v in r['summary_chars'].head(5))} outside "
                f"[{cfg.min_summary_chars}, {cfg.max_summary_chars}] characters"
            ),
        ),
        _monotonic(E, "chapter"),
        Check(
            "script_label_typed",
            E.ExpectColumnValuesToBeInSet(
                column="label_type",
                value_set=["missing", "null", "str"],
                description="chapter script label, when present, is a string",
            ),
            lambda r, _: (
                f"{positions(r, 'chapter')}: script label is {_first(r)['label_type']}, "
                "expected a string"
            ),
        ),
        Check(
            "script_label",
            E.ExpectColumnValuesToBeInSet(
                column="label",
                value_set=list(SCRIPT_LABELS),
                description="chapter script labels are among the 12 E-SyncVidStory types",
            ),
            lambda r, _: (
                f"{positions(r, 'chapter')}: script label "
                f"{', '.join(repr(v) for v in r['label'].head(3))} is not one of the 12 types"
            ),
        ),
    ]
    return Suite("hivid.chapters.v2", "chapters", 2, tuple(checks))


def build_suites(cfg: QualityConfig) -> list[Suite]:
    """Every suite of the gate, in the order they run (fresh GX expectation objects)."""
    return [
        manifest_suite(cfg),
        videos_suite(cfg),
        asr_segments_suite(cfg),
        frames_suite(cfg),
        tcot_suite(cfg),
        chapters_suite(cfg),
    ]


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
        Check(
            "start_present",
            E.ExpectColumnValuesToNotBeNull(column="start", description="event start is a number"),
            lambda r, _: f"{positions(r, 'event')}: start is missing or not a number",
        ),
        Check(
            "end_present",
            E.ExpectColumnValuesToNotBeNull(column="end", description="event end is a number"),
            lambda r, _: f"{positions(r, 'event')}: end is missing or not a number",
        ),
        Check(
            "start_before_end",
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end",
                column_B="start",
                or_equal=False,
                ignore_row_if="either_value_is_missing",
                description="event start < end",
            ),
            lambda r, _: f"{positions(r, 'event')}: end not after start",
        ),
        Check(
            "start_nonnegative",
            E.ExpectColumnValuesToBeBetween(column="start", min_value=0, description="start >= 0"),
            lambda r, _: f"{positions(r, 'event')} start before 0 s or at an infinite time",
        ),
        Check(
            "inside_video",
            E.ExpectColumnValuesToBeBetween(
                column="overrun", max_value=tol, description=f"events end <= duration + {tol} s"
            ),
            lambda r, _: f"{count(len(r), 'event')} after the end of the video",
        ),
        Check(
            "sentence_nonempty",
            E.ExpectColumnValueLengthsToBeBetween(
                column="sentence", min_value=1, description="sentences are not blank"
            ),
            lambda r, _: f"{positions(r, 'event')}: sentence is empty",
        ),
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
        Check(
            "times_present",
            E.ExpectColumnValuesToNotBeNull(column="start", description="start is a number"),
            lambda r, _: f"{positions(r, 'prediction')}: start is missing or not finite",
        ),
        Check(
            "start_before_end",
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="end",
                column_B="start",
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                description="predicted start <= end",
            ),
            lambda r, _: f"{positions(r, 'prediction')}: end before start",
        ),
        Check(
            "start_nonnegative",
            E.ExpectColumnValuesToBeBetween(column="start", min_value=0, description="start >= 0"),
            lambda r, _: f"{positions(r, 'prediction')} start before 0 s",
        ),
        Check(
            "video_in_gt",
            E.ExpectColumnValuesToBeInSet(
                column="in_gt", value_set=[True], description="predicted videos are in gt.json"
            ),
            fixed("prediction for a video that is not in the ground truth"),
        ),
        Check(
            "sentence_present",
            E.ExpectColumnValuesToNotBeNull(
                column="sentence", description="predicted sentences are strings"
            ),
            lambda r, _: f"{positions(r, 'prediction')}: sentence is missing or not text",
        ),
    )
    return Suite("hivid.eval_pred.v1", "eval_pred", 1, checks)
