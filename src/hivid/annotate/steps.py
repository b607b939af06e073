"""One video through the annotate sub-steps: ASR -> relevance filter and correction -> 1 fps frame
descriptions -> coarse TCoT/chapters (shot changes + topic shifts) -> script labels, word budgets,
LLM refinement.

Each sub-step is a small object (``ASRStep``, ``FramesStep``, ``CorrectionStep``,
``ChaptersStep``) with its own config, ``reuse`` (copy its parts of the previous record) and
``run``. ``annotate_video`` reuses every sub-step whose cache key (``keys.step_keys``) is unchanged
from the previous record, so changing one knob re-runs only the sub-steps it affects; the batch
(``batch.annotate_batch``) does not open a video whose ``cache_key`` is unchanged at all.

Record (``schema_version`` 2), written atomically as ``<out_dir>/<video_id>.json`` (sorted keys,
indent 1)::

    {"schema_version": 2, "video_id", "sha256", "duration", "cache_key",
     "step_keys": {"asr", "frames", "correction", "chapters"} (null: not cacheable, an LLM call
                   failed and the deterministic fallback was used),
     "asr": {"backend", "model", "model_sha256", "language", "word_timestamps", "audio": bool,
             "segments": [{"start", "end", "text", "words": [{"start", "end", "word", "score"}],
                           "text_raw", "relevance": 0-5|null, "kept": bool,
                           "corrections": [{"from", "to", "source"}]}]},
     "correction": {"relevance_scorer", "threshold", "kept", "dropped", "lexicon_changes",
                    "llm_changes", "llm_errors", "embedder", "llm"},
     "frames": {"fps", "describer", "similarity_threshold", "described": int,
                "items": [{"index", "t", "pts_time", "ocr_text", "ocr": [{"text", "score"}],
                           "colors": ["#rrggbb"], "shot_change": bool, "reused_from": int|null,
                           "caption"?: str}]},
     "topic_shifts": [{"t", "similarity"}],
     "tcot": [{"start", "end", "observation", "observation_coarse"?}],
     "chapters": [{"start", "end", "title", "summary", "summary_coarse"?, "script_label",
                   "script_label_source", "word_budget": {"min", "max", "unit"}}],
     "models": {"asr", "asr_sha256", "describer", "embedder", "embedder_sha256", "llm"},
     "prompts": {"<name>": sha256},
     "timings": {"asr_s", "frames_s", "correction_s", "chapters_s", "total_s"},
     "cached_steps": [names of sub-steps reused from the previous record]}

``asr.segments[].text`` is the corrected text (``text_raw`` the ASR output); chapters and TCoT use
only segments with ``kept`` (relevance >= threshold). Version 1 records (no ``step_keys``) are
re-annotated.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hivid.annotate.chapters import build_chapters, sentences_in
from hivid.annotate.config import (
    STEPS,
    AnnotateConfig,
    ASRConfig,
    ChaptersConfig,
    CorrectionConfig,
    FramesConfig,
)
from hivid.annotate.correction import CorrectionResult, correct_segments
from hivid.annotate.frames import describe_frames
from hivid.annotate.keys import SCHEMA_VERSION, cache_key, model_identities, step_keys
from hivid.annotate.llm import LLMError
from hivid.annotate.resources import Models
from hivid.annotate.storyline import budget, llm_script_label, refine_with_llm, topic_shifts
from hivid.data.decode import decode_audio, sample_frames

Record = dict[str, Any]


@dataclass(frozen=True)
class Video:
    """One manifest row's video, as the sub-steps see it."""

    path: Path
    video_id: str
    sha256: str
    duration: float
    metadata: dict[str, Any]


class Step(Protocol):
    """One sub-step: ``reuse`` copies its parts of the previous record into ``record``; ``run``
    computes them and returns whether an LLM call failed (the deterministic fallback was used, so
    the parts named by ``uncached_on_llm_error`` get no cache key)."""

    name: str
    uncached_on_llm_error: tuple[str, ...]

    def reuse(self, previous: Record, record: Record) -> None: ...

    def run(self, video: Video, record: Record) -> bool: ...


class ASRStep:
    """``asr``: the transcript (raw ASR text; correction fills ``text`` and ``kept``)."""

    name = "asr"
    uncached_on_llm_error: tuple[str, ...] = ()

    def __init__(self, cfg: ASRConfig, models: Models, identities: dict[str, Any]) -> None:
        self.cfg, self.models, self.ids = cfg, models, identities

    def reuse(self, previous: Record, record: Record) -> None:
        asr_rec = dict(previous["asr"])
        asr_rec["segments"] = [
            {k: v for k, v in seg.items() if k in ("start", "end", "words")}
            | {"text": seg.get("text_raw", seg["text"])}
            for seg in asr_rec["segments"]
        ]
        record["asr"] = asr_rec

    def run(self, video: Video, record: Record) -> bool:
        audio = decode_audio(video.path)
        meta = video.metadata
        language = self.cfg.language or (meta.get("language") if isinstance(meta, dict) else None)
        if audio is not None:
            result = self.models.asr.transcribe(audio, 16000, language=language)
            record["asr"] = {
                "backend": result.backend,
                "model": result.model,
                "model_sha256": result.model_sha256,
                "language": result.language,
                "word_timestamps": result.word_timestamps,
                "audio": True,
                "segments": result.segments,
            }
            return False
        # vision-only: no ASR model is loaded for a silent video
        model_id = self.ids.get("asr")
        loaded = self.models.asr_loaded
        record["asr"] = {
            "backend": self.cfg.backend
            if loaded is None
            else getattr(loaded, "name", type(loaded).__name__),
            "model": self.cfg.model,
            "model_sha256": model_id if model_id != self.cfg.model else None,
            "language": language,
            "word_timestamps": "none",
            "audio": False,
            "segments": [],
        }
        return False


class FramesStep:
    """``frames``: 1 fps frames, shot changes, descriptions (reused across similar frames)."""

    name = "frames"
    uncached_on_llm_error: tuple[str, ...] = ()

    def __init__(self, cfg: FramesConfig, models: Models) -> None:
        self.cfg, self.models = cfg, models

    def reuse(self, previous: Record, record: Record) -> None:
        record["frames"] = previous["frames"]

    def run(self, video: Video, record: Record) -> bool:
        describer = self.models.describer
        items = describe_frames(
            sample_frames(video.path, self.cfg.fps, self.cfg.frame_max_side),
            describer,
            shot_threshold=self.cfg.shot_threshold,
            similarity_threshold=self.cfg.similarity_threshold,
        )
        record["frames"] = {
            "fps": self.cfg.fps,
            "describer": getattr(describer, "name", type(describer).__name__),
            "similarity_threshold": self.cfg.similarity_threshold,
            "described": sum(1 for f in items if f["reused_from"] is None),
            "items": items,
        }
        return False


def correct_asr(
    cfg: CorrectionConfig, models: Models, segments: list[dict[str, Any]], metadata: dict[str, Any]
) -> CorrectionResult:
    """Relevance scores, kept flags and corrections of ASR ``segments`` against ``metadata``, as
    configured: the annotate stage's correction, and `hivid narrate --metadata` (so the narrator
    reads the same kind of ASR at inference as in its training data)."""
    llm = models.llm if (cfg.llm_relevance or cfg.llm_correct) else None
    return correct_segments(
        segments,
        metadata,
        lexicon=cfg.lexicon_correction,
        threshold=cfg.relevance_threshold,
        relevance=models.relevance if segments else None,
        llm=llm,
        llm_relevance_on=cfg.llm_relevance,
        llm_correct_on=cfg.llm_correct,
        llm_max_edit_ratio=cfg.llm_max_edit_ratio,
    )


class CorrectionStep:
    """``correction``: relevance scores and kept flags, lexicon then LLM corrections."""

    name = "correction"
    uncached_on_llm_error: tuple[str, ...] = ("correction", "chapters")

    def __init__(self, cfg: CorrectionConfig, models: Models) -> None:
        self.cfg, self.models = cfg, models

    def reuse(self, previous: Record, record: Record) -> None:
        record["asr"] = {**record["asr"], "segments": previous["asr"]["segments"]}
        record["correction"] = previous["correction"]

    def run(self, video: Video, record: Record) -> bool:
        cfg = self.cfg
        llm = self.models.llm if (cfg.llm_relevance or cfg.llm_correct) else None
        res = correct_asr(cfg, self.models, record["asr"]["segments"], video.metadata)
        kept = sum(1 for s in res.segments if s["kept"])
        record["asr"] = {**record["asr"], "segments": res.segments}
        record["correction"] = {
            "relevance_scorer": res.relevance_scorer,
            "threshold": cfg.relevance_threshold,
            "kept": kept,
            "dropped": len(res.segments) - kept,
            "lexicon_changes": res.lexicon_changes,
            "llm_changes": res.llm_changes,
            "llm_errors": res.llm_errors,
            "embedder": cfg.embedder,
            "llm": cfg.llm.identity() if llm is not None else None,
        }
        return res.llm_errors > 0


class ChaptersStep:
    """``chapters``: topic shifts, coarse TCoT + chapters, script labels, word budgets, and the
    LLM refinement of summaries."""

    name = "chapters"
    uncached_on_llm_error: tuple[str, ...] = ("chapters",)

    def __init__(self, cfg: ChaptersConfig, models: Models) -> None:
        self.cfg, self.models = cfg, models

    def reuse(self, previous: Record, record: Record) -> None:
        for part in ("tcot", "chapters", "topic_shifts"):
            record[part] = previous[part]

    def run(self, video: Video, record: Record) -> bool:
        cfg, models = self.cfg, self.models
        frames = record["frames"]["items"]
        kept_segs = [s for s in record["asr"]["segments"] if s.get("kept", True)]
        shifts = []
        if cfg.topic_shift_threshold is not None and models.embedder is not None and kept_segs:
            shifts = topic_shifts(kept_segs, models.embedder, cfg.topic_shift_threshold)
        tcot, chapters = build_chapters(
            frames,
            kept_segs,
            video.duration,
            cfg.min_chapter_s,
            cfg.max_summary_chars,
            extra_cuts=[x["t"] for x in shifts],
        )
        errors = self._label(chapters, kept_segs, video.metadata, record["asr"].get("language"))
        llm = models.llm if cfg.llm_refine else None
        if llm is not None:
            errors += refine_with_llm(llm, tcot, chapters, frames, kept_segs, video.metadata)
        record.update(tcot=tcot, chapters=chapters, topic_shifts=shifts)
        return errors > 0

    def _label(
        self,
        chapters: list[dict[str, Any]],
        segments: list[dict[str, Any]],
        metadata: dict[str, Any],
        language: str | None,
    ) -> int:
        """Add ``script_label``, ``script_label_source`` and ``word_budget`` to each chapter.

        Returns the number of failed LLM calls."""
        sents = [
            [
                str(s["text"])
                for s in sentences_in(segments, c["start"], c["end"], i == len(chapters) - 1)
            ]
            for i, c in enumerate(chapters)
        ]
        texts = [" ".join(x) for x in sents]
        labels: list[tuple[str, str]] = [("others", "none")] * len(chapters)
        errors = 0
        if self.cfg.script_labels:
            labeler = self.models.labeler
            if labeler is not None:
                labels = [(lab, labeler.name) for lab, _ in labeler.label(sents)]
            llm = self.models.llm if self.cfg.llm_refine else None
            if llm is not None:
                for i, text in enumerate(texts):
                    if not text.strip():
                        continue
                    try:
                        got = llm_script_label(llm, text, metadata)
                    except LLMError:  # an LLM outage keeps the embedding label
                        got, errors = None, errors + 1
                    if got is not None:
                        labels[i] = (got, f"llm:{llm.name}")
        for c, (lab, src) in zip(chapters, labels, strict=True):
            c["script_label"] = lab
            c["script_label_source"] = src
            c["word_budget"] = budget(float(c["end"]) - float(c["start"]), language)
        return errors


def make_steps(cfg: AnnotateConfig, models: Models, identities: dict[str, Any]) -> list[Step]:
    """The four sub-steps in ``STEPS`` order, each with its own config."""
    return [
        ASRStep(cfg.asr_cfg, models, identities),
        FramesStep(cfg.frames_cfg, models),
        CorrectionStep(cfg.correction_cfg, models),
        ChaptersStep(cfg.chapters_cfg, models),
    ]


def _step_bar(video_id: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=len(STEPS),
        desc=video_id,
        unit="step",
        leave=False,
        disable=None if enabled else True,  # None: only on a terminal
        file=sys.stderr,
    )


def _reusable(previous: Record | None, keys: dict[str, str], step: str) -> bool:
    if not previous or previous.get("schema_version") != SCHEMA_VERSION:
        return False
    return bool((previous.get("step_keys") or {}).get(step) == keys[step])


def round3(x: float) -> float:
    return round(float(x), 3)


def annotate_video(
    video_path: Path,
    video_id: str,
    sha256: str,
    duration: float,
    metadata: dict[str, Any],
    cfg: AnnotateConfig,
    models: Models,
    previous: Record | None = None,
    identities: dict[str, Any] | None = None,
) -> Record:
    """Annotate one video, reusing the sub-steps of ``previous`` whose keys still match.

    Raises ``DecodeError`` (or the backend's error) on unusable input.
    """
    t0 = time.perf_counter()
    ids = identities if identities is not None else model_identities(cfg)
    keys = step_keys(sha256, metadata, cfg, ids)
    video = Video(video_path, video_id, sha256, duration, metadata)
    record: Record = {}
    reused: list[str] = []
    recorded: dict[str, str | None] = dict(keys)
    timings = {f"{s}_s": 0.0 for s in STEPS}
    bar = _step_bar(video_id, cfg.progress_bars)
    for step in make_steps(cfg, models, ids):
        bar.set_postfix_str(step.name)
        t = time.perf_counter()
        if previous is not None and _reusable(previous, keys, step.name):
            step.reuse(previous, record)
            reused.append(step.name)
        elif step.run(video, record):
            # Its LLM calls failed and it fell back to the deterministic passes: record no key
            # for it (nor for what depends on it), so the next run with the LLM back redoes them.
            for name in step.uncached_on_llm_error:
                recorded[name] = None
        timings[f"{step.name}_s"] = time.perf_counter() - t
        bar.update()
    bar.close()

    asr_rec, frames_rec = record["asr"], record["frames"]
    emb_sha = ids.get("embedder") if cfg.embedder else None
    return {
        "schema_version": SCHEMA_VERSION,
        "video_id": video_id,
        "sha256": sha256,
        "duration": round3(duration),
        "cache_key": cache_key(recorded),
        "step_keys": recorded,
        "asr": asr_rec,
        "correction": record["correction"],
        "frames": frames_rec,
        "topic_shifts": record["topic_shifts"],
        "tcot": record["tcot"],
        "chapters": record["chapters"],
        "models": {
            "asr": asr_rec["model"],
            "asr_sha256": asr_rec["model_sha256"],
            "describer": frames_rec["describer"],
            "embedder": cfg.embedder,
            "embedder_sha256": emb_sha if emb_sha != cfg.embedder else None,
            "llm": cfg.llm.identity() if cfg.llm_on else None,
        },
        "prompts": dict(ids.get("prompts", {})),
        "timings": {
            **{k: round3(v) for k, v in timings.items()},
            "total_s": round3(time.perf_counter() - t0),
        },
        "cached_steps": reused,
    }
