"""The shapes of the records that cross stage boundaries, as types (``TypedDict``s: still JSON).

- ``AnnotationRecord``: one ``annotate`` output file (``outputs/annotations/<video_id>.json``,
  ``schema_version`` 2; ``hivid.annotate.steps``);
- ``DatasetRow``: one line of a ``build_dataset`` split (``<split>.jsonl``,
  ``hivid.dataset.build``);
- ``*Result`` / ``*Report``: what each ``hivid.stages.run_*`` returns (the CLI prints and indexes
  them, the flows read them).

These describe trusted, already validated data: the quality tables (``hivid.quality``) keep
reading the annotation records defensively, since there they are untrusted input. Keys marked
``NotRequired`` are absent from some records (older or fallback paths).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# ---------------------------------------------------------------------------------------------
# The annotation record (schema_version 2)


class Word(TypedDict):
    start: float
    end: float
    word: str
    score: float | None


class Segment(TypedDict):
    """One ASR sentence: ``text`` corrected, ``text_raw`` as recognised; ``kept``: relevance >=
    threshold (only kept segments feed chapters, TCoT and the dataset)."""

    start: float
    end: float
    text: str
    words: list[Word]
    text_raw: str
    relevance: float | None
    kept: bool
    corrections: list[dict[str, str]]
    """``{"from", "to", "source"}`` (``from`` is a keyword, hence not a ``Correction`` field)."""


class ASR(TypedDict):
    backend: str
    model: str
    model_sha256: str | None
    language: str | None
    word_timestamps: bool
    audio: bool
    segments: list[Segment]


class Frame(TypedDict):
    """One 1 fps frame: time, OCR, dominant colours, shot change, optional caption."""

    index: int
    t: float
    pts_time: float
    ocr_text: str | None
    ocr: list[dict[str, Any]]
    colors: list[str]
    shot_change: bool
    reused_from: int | None
    caption: NotRequired[str]


class Frames(TypedDict):
    fps: float
    describer: str
    similarity_threshold: float
    described: int
    items: list[Frame]


class TCoTItem(TypedDict):
    start: float
    end: float
    observation: str
    observation_coarse: NotRequired[str]


class WordBudget(TypedDict):
    min: int
    max: int
    unit: str


class Chapter(TypedDict):
    start: float
    end: float
    title: str
    summary: str
    summary_coarse: NotRequired[str]
    script_label: str
    script_label_source: str
    word_budget: WordBudget


class AnnotationRecord(TypedDict):
    """``outputs/annotations/<video_id>.json`` (see ``hivid.annotate.steps``)."""

    schema_version: int
    video_id: str
    sha256: str
    duration: float
    cache_key: str
    step_keys: dict[str, str | None]
    """``asr``, ``frames``, ``correction``, ``chapters``: None where not cacheable (an LLM call
    failed and the deterministic fallback was used)."""
    asr: ASR
    correction: dict[str, Any]
    """relevance_scorer, threshold, kept, dropped, lexicon_changes, llm_changes, llm_errors,
    embedder, llm."""
    frames: Frames
    topic_shifts: list[dict[str, float]]
    """``{"t", "similarity"}``."""
    tcot: list[TCoTItem]
    chapters: list[Chapter]
    models: dict[str, str | None]
    prompts: dict[str, str]
    """Prompt name -> sha256."""
    timings: dict[str, float]
    cached_steps: list[str]


# ---------------------------------------------------------------------------------------------
# The dataset row


class TimedText(TypedDict):
    start: float
    end: float
    text: str


class DatasetRow(TypedDict):
    """One video of ``<split>.jsonl`` (see ``hivid.dataset.build``)."""

    video_id: str
    sha256: str | None
    duration: float
    frame_times: list[float]
    frames: str
    """``frames/<video_id>.npy`` relative to the dataset directory."""
    asr: list[TimedText]
    tcot: list[TCoTItem]
    chapters: list[Chapter]
    metadata: dict[str, Any]
    ground_truth: str | None
    """Path relative to the data root, or None (then evaluation may use the pseudo-labels)."""


# ---------------------------------------------------------------------------------------------
# What each stage returns (hivid.stages.run_*)


class IngestResult(TypedDict):
    videos: int
    quarantined: int
    video_ids: list[str]
    quarantine: list[dict[str, Any]]
    variable_frame_rate: list[str]
    batch_failures: list[str]


class AnnotateReport(TypedDict):
    annotated: list[str]
    cached: list[str]
    quarantined: list[dict[str, Any]]
    timings: dict[str, Any]
    step_cache_hits: dict[str, int]
    metrics: dict[str, float]
    models: dict[str, Any]
    quality: dict[str, float]


class ValidateReport(TypedDict):
    success: bool
    result_id: str
    passed: list[str]
    quarantined: list[dict[str, Any]]
    batch_failures: list[str]
    run_id: str
    quarantine_report: str


class TrainStageResult(TypedDict):
    """``run_id`` is "" when no step ran; stage 2 adds the logged model's fields (``model_uri``)."""

    metrics: dict[str, float]
    run_id: str
    stage: int
    model_uri: NotRequired[str]
    model_id: NotRequired[str]


class EvaluateReport(TypedDict):
    metrics: dict[str, float]
    per_video: dict[str, dict[str, float]]
    reference_sources: dict[str, str]
    """Video id -> ``ground_truth`` or ``pseudo_labels``."""
    tags: dict[str, str]
    warnings: list[str]
    baselines: dict[str, Any]


class RegisterResult(TypedDict):
    name: str
    version: str
    alias: str
    run_id: str
    stage: int
    model_uri: str
    model_id: str
    warning: NotRequired[str]
    """Why the version has no metrics yet (no usable evaluate run)."""


class PromoteResult(TypedDict):
    """``name`` and ``text`` plus the fields of ``hivid.tracking.promotion.Decision``."""

    name: str
    promoted: bool
    version: str
    champion_before: str | None
    metric: str
    challenger_value: float | None
    champion_value: float | None
    reasons: list[str]
    baseline: str | None
    baseline_value: float | None
    eval_run: str | None
    text: str
