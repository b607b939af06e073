"""The GX suites of the ``validate`` stage (one annotation batch), named and versioned.

One suite per table of ``hivid.quality.annotations.tables`` (``hivid.<table>.v<N>``). Bump a
suite's version when a check changes meaning, so results of different versions are never
compared as if they were the same test.
"""

from __future__ import annotations

from hivid.labels import SCRIPT_LABELS
from hivid.quality.checks import (
    SAFE_ID_REGEX,
    Check,
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

RELEVANCE_RANGE = (0.0, 5.0)
"""The ASR relevance filter's score scale (paper §3.1.1: 0-5, threshold 4)."""


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
