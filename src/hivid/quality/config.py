"""Thresholds of the quality gates (``params.yaml`` section ``quality``); imports no GX."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hivid.configbase import require


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
    """Annotation record schema versions the gate accepts (see ``hivid.annotate.steps``)."""
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
