"""The ``annotate`` stage: ASR -> relevance filter and correction -> 1 fps frame descriptions ->
coarse TCoT/chapters (shot changes + topic shifts) -> script labels, word budgets, LLM refinement.

``annotate_video`` turns one video into its record (schema below); ``annotate_batch`` runs a
manifest, quarantining videos that fail, in-process or over a spawn-context process pool (or Dask /
Ray by config) where each worker loads its models once and only when a sub-step needs them.

Cache: each sub-step has its own key (``step_keys``): ``asr`` and ``frames`` hash the video content
and that sub-step's config and model identity; ``correction`` hashes the ASR key, the metadata,
its knobs, the embedder/LLM identities and the prompt hashes; ``chapters`` hashes the correction
and frames keys and its knobs. A re-run reuses every sub-step whose key is unchanged from the
previous record, so changing one knob re-runs only the sub-steps it affects, and an unchanged
video (same ``cache_key``, a hash of all four) is not opened at all.

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

import contextlib
import hashlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hivid.annotate.asr import ASRBackend, make_asr_backend
from hivid.annotate.chapters import build_chapters
from hivid.annotate.correction import EmbeddingRelevance, correct_segments
from hivid.annotate.embeddings import Embedder, get_embedder, resolve_embedder
from hivid.annotate.frames import (
    FrameDescriber,
    describe_frames,
    get_ocr_describer,
)
from hivid.annotate.llm import LLM, LLMConfig, LLMError, make_llm
from hivid.annotate.models import resolve_asr_model
from hivid.annotate.prompts import prompt_hashes
from hivid.annotate.storyline import (
    ScriptLabeler,
    budget,
    llm_script_label,
    refine_with_llm,
    topic_shifts,
)
from hivid.configbase import require
from hivid.data.decode import decode_audio, sample_frames
from hivid.io import read_json, write_json

SCHEMA_VERSION = 2
STEPS: tuple[str, ...] = ("asr", "frames", "correction", "chapters")


@dataclass
class AnnotateConfig:
    """Knobs of the annotate stage (params.yaml section ``annotate``)."""

    asr_backend: Literal["faster-whisper", "whisperx"] = "faster-whisper"
    """ASR implementation. faster-whisper is the offline default: one model, Silero VAD bundled in
    the package, native word timestamps. whisperx (pyannote VAD, bundled) also runs offline and is
    the production choice on GPU with a reachable wav2vec2 align model."""
    asr_model: str = "whisper-base"
    """"whisper-base" (packaged, multilingual), "tiny.en" (packaged), a local CT2 model directory,
    or a hub id (production)."""
    compute_type: str = "int8"
    """CTranslate2 compute type ("int8" on CPU, "float16" on GPU)."""
    device: str = "cpu"
    """"cpu" or "cuda"."""
    language: str | None = None
    """Spoken language code ("en", "zh"); None detects it per video."""
    batch_size: int = 8
    """whisperx: VAD chunks decoded per batch."""
    beam_size: int = 5
    """Beam width of Whisper decoding."""
    max_sentence_s: float | None = 8.0
    """Sentences longer than this are split at their longest clause pause (None = never)."""
    vad_method: Literal["pyannote", "silero"] = "pyannote"
    """whisperx VAD; pyannote ships inside whisperx (offline), silero needs torch.hub."""
    align: bool = True
    """whisperx: try a wav2vec2 align model (once per process and language; offline it fails in
    a few seconds and faster-whisper word timestamps are used)."""
    align_model: str | None = None
    """whisperx align model name (None = whisperx's default for the language)."""
    model_cache_dir: str | None = None
    """Where packaged models are assembled (None = $HIVID_CACHE or ~/.cache/hivid)."""
    fps: float = 1.0
    """Frames sampled per second (the paper samples 1 fps)."""
    frame_max_side: int | None = 640
    """Longer side of sampled frames in pixels (None = native size)."""
    shot_threshold: float = 0.4
    """Histogram total-variation distance at which consecutive frames count as a shot change."""
    similarity_threshold: float = 0.98
    """Thumbnail similarity to the last described frame at which its description is reused."""
    ocr_min_score: float = 0.5
    """OCR lines below this recognition confidence are dropped."""
    n_colors: int = 3
    """Dominant colours reported per frame."""
    min_chapter_s: float = 4.0
    """Chapters shorter than this merge into a neighbour."""
    max_summary_chars: int = 300
    """Coarse chapter summaries are truncated to this many characters."""
    workers: int = 1
    """Videos annotated in parallel processes (1 = in-process)."""
    relevance_threshold: int = 4
    """ASR sentences with a relevance score (0-5) below this are dropped from chapters/TCoT."""
    lexicon_correction: bool = True
    """Correct near-miss transcriptions of metadata terms (brand, name, attributes)."""
    embedder: str | None = "all-MiniLM-L6-v2"
    """Sentence embedder for relevance, topic shifts and script labels: "all-MiniLM-L6-v2"
    (packaged), a local directory or a hub id; None turns these embedding passes off."""
    topic_shift_threshold: float | None = 0.1
    """Adjacent narration windows with cosine similarity below this add a chapter boundary where no
    shot change is near (None = shot changes only)."""
    script_labels: bool = True
    """Label each chapter with one of the 12 script types (needs the embedder or an LLM)."""
    llm: LLMConfig = field(default_factory=LLMConfig)
    """LLM backend for relevance, correction, script labels and TCoT/chapter refinement."""
    llm_relevance: bool = True
    """With an LLM: score relevance with the ``relevance`` prompt."""
    llm_correct: bool = True
    """With an LLM: correct kept sentences with the ``correct`` prompt after the lexicon pass."""
    llm_refine: bool = True
    """With an LLM: refine TCoT and chapter summaries, and classify script labels."""
    llm_max_edit_ratio: float = 0.5
    """An LLM correction changing more than this share of the words is rejected."""
    describer: Literal["ocr", "vlm", "vlm-endpoint"] = "ocr"
    """Frame describer: "ocr" (RapidOCR + colours, offline), "vlm" (transformers
    image-text-to-text checkpoint ``vlm_model``) or "vlm-endpoint" (OpenAI-compatible vision)."""
    vlm_model: str | None = None
    """vlm: hub id or local directory; vlm-endpoint: the model name sent in requests."""
    vlm_base_url: str = "http://127.0.0.1:8000/v1"
    """vlm-endpoint: base URL of the OpenAI-compatible server."""
    vlm_api_key_env: str | None = None
    """vlm-endpoint: environment variable holding the API key (None = no key)."""
    vlm_max_new_tokens: int = 96
    """vlm: longest frame caption in tokens."""
    parallel: Literal["process", "dask", "ray"] = "process"
    """Fan-out over videos when workers > 1: local processes, a Dask cluster or Ray."""
    dask_address: str | None = None
    """Scheduler of an existing Dask cluster (e.g. tcp://10.0.0.5:8786) for parallel: dask; None
    starts a local cluster of ``workers`` processes on 127.0.0.1 (no dashboard)."""
    progress_bars: bool = True
    """tqdm bars per video and sub-step on stderr (shown on a terminal only)."""

    def __post_init__(self) -> None:
        require(bool(self.asr_model), "asr_model must not be empty")
        require(self.device in ("cpu", "cuda"), f"device must be cpu or cuda, got {self.device!r}")
        require(1 <= self.batch_size <= 256, f"batch_size must be in 1..256, got {self.batch_size}")
        require(1 <= self.beam_size <= 20, f"beam_size must be in 1..20, got {self.beam_size}")
        require(
            self.max_sentence_s is None or self.max_sentence_s >= 1.0,
            f"max_sentence_s must be >= 1 or null, got {self.max_sentence_s}",
        )
        require(0 < self.fps <= 30, f"fps must be in (0, 30], got {self.fps}")
        require(
            self.frame_max_side is None or self.frame_max_side >= 32,
            f"frame_max_side must be >= 32 or null, got {self.frame_max_side}",
        )
        require(
            0 < self.shot_threshold <= 1,
            f"shot_threshold must be in (0, 1], got {self.shot_threshold}",
        )
        require(
            0 < self.similarity_threshold <= 1.0,
            f"similarity_threshold must be in (0, 1], got {self.similarity_threshold}",
        )
        require(
            0 <= self.ocr_min_score <= 1,
            f"ocr_min_score must be in [0, 1], got {self.ocr_min_score}",
        )
        require(1 <= self.n_colors <= 8, f"n_colors must be in 1..8, got {self.n_colors}")
        require(self.min_chapter_s >= 0, f"min_chapter_s must be >= 0, got {self.min_chapter_s}")
        require(
            self.max_summary_chars >= 20,
            f"max_summary_chars must be >= 20, got {self.max_summary_chars}",
        )
        require(1 <= self.workers <= 64, f"workers must be in 1..64, got {self.workers}")
        require(
            0 <= self.relevance_threshold <= 5,
            f"relevance_threshold must be in 0..5, got {self.relevance_threshold}",
        )
        require(
            self.topic_shift_threshold is None or -1 <= self.topic_shift_threshold <= 1,
            f"topic_shift_threshold must be in [-1, 1] or null, got {self.topic_shift_threshold}",
        )
        require(
            0 < self.llm_max_edit_ratio <= 1,
            f"llm_max_edit_ratio must be in (0, 1], got {self.llm_max_edit_ratio}",
        )
        require(
            self.describer == "ocr" or bool(self.vlm_model),
            f"describer {self.describer!r} needs vlm_model",
        )
        require(
            1 <= self.vlm_max_new_tokens <= 1024,
            f"vlm_max_new_tokens must be in 1..1024, got {self.vlm_max_new_tokens}",
        )

    @property
    def model_cache_dir_path(self) -> Path | None:
        return Path(self.model_cache_dir).expanduser() if self.model_cache_dir else None

    @property
    def llm_on(self) -> bool:
        return self.llm.backend != "none"

    def describer_identity(self) -> dict[str, Any]:
        if self.describer == "ocr":
            return {
                "describer": "ocr",
                "ocr_min_score": self.ocr_min_score,
                "n_colors": self.n_colors,
            }
        out: dict[str, Any] = {"describer": self.describer, "vlm_model": self.vlm_model}
        if self.describer == "vlm-endpoint":
            out["vlm_base_url"] = self.vlm_base_url
        else:
            out["vlm_max_new_tokens"] = self.vlm_max_new_tokens
        return {**out, "n_colors": self.n_colors}

    def step_fields(self, step: str) -> dict[str, Any]:
        """The knobs that change sub-step ``step``'s output (its cache identity)."""
        whisperx = self.asr_backend == "whisperx"
        if step == "asr":
            return {
                "asr_backend": self.asr_backend,
                "asr_model": self.asr_model,
                "compute_type": self.compute_type,
                "device": self.device,
                "language": self.language,
                "beam_size": self.beam_size,
                "max_sentence_s": self.max_sentence_s,
                "vad_method": self.vad_method if whisperx else None,
                "align": self.align if whisperx else None,
                "align_model": self.align_model if whisperx else None,
            }
        if step == "frames":
            return {
                "fps": self.fps,
                "frame_max_side": self.frame_max_side,
                "shot_threshold": self.shot_threshold,
                "similarity_threshold": self.similarity_threshold,
                **self.describer_identity(),
            }
        llm_used = self.llm_on and (
            (step == "correction" and (self.llm_relevance or self.llm_correct))
            or (step == "chapters" and self.llm_refine)
        )
        llm = self.llm.identity() if llm_used else {"backend": "none"}
        if step == "correction":
            return {
                "relevance_threshold": self.relevance_threshold,
                "lexicon_correction": self.lexicon_correction,
                "embedder": self.embedder,
                "llm": llm,
                "llm_relevance": self.llm_relevance if llm_used else None,
                "llm_correct": self.llm_correct if llm_used else None,
                "llm_max_edit_ratio": self.llm_max_edit_ratio if llm_used else None,
            }
        if step == "chapters":
            return {
                "min_chapter_s": self.min_chapter_s,
                "max_summary_chars": self.max_summary_chars,
                "embedder": self.embedder,
                "topic_shift_threshold": self.topic_shift_threshold,
                "script_labels": self.script_labels,
                "llm": llm,
            }
        raise KeyError(step)

    def output_fields(self) -> dict[str, Any]:
        """The fields that change a record's content (cache identity); not workers/cache dir."""
        return {step: self.step_fields(step) for step in STEPS}


@dataclass
class AnnotateSummary:
    """What a batch did: ids annotated now, ids served from cache, quarantined rows, timings."""

    annotated: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    step_cache_hits: dict[str, int] = field(default_factory=dict)
    """Per sub-step: videos whose sub-step output was reused (fully cached videos included)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Corpus-level counts (segments kept/dropped, corrections, chapters, LLM errors)."""
    models: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotated": self.annotated,
            "cached": self.cached,
            "quarantined": self.quarantined,
            "timings": self.timings,
            "step_cache_hits": self.step_cache_hits,
            "metrics": self.metrics,
            "models": self.models,
            "prompts": self.prompts,
        }


def _r(x: float) -> float:
    return round(float(x), 3)


def _hash(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def step_keys(
    video_sha256: str,
    metadata: dict[str, Any],
    cfg: AnnotateConfig,
    identities: dict[str, Any],
) -> dict[str, str]:
    """The four sub-step cache keys (see the module docstring).

    ``identities``: {"asr": model sha or hub id, "embedder": sha or name, "prompts": {name: sha}}.
    """
    prompts = identities.get("prompts", {})
    asr = _hash(
        {
            "v": SCHEMA_VERSION,
            "video": video_sha256,
            "cfg": cfg.step_fields("asr"),
            "model": identities.get("asr"),
        }
    )
    frames = _hash({"v": SCHEMA_VERSION, "video": video_sha256, "cfg": cfg.step_fields("frames")})
    correction = _hash(
        {
            "asr": asr,
            "metadata": metadata,
            "cfg": cfg.step_fields("correction"),
            "embedder": identities.get("embedder"),
            "prompts": [prompts.get(n) for n in ("relevance", "correct")],
        }
    )
    chapters = _hash(
        {
            "correction": correction,
            "frames": frames,
            "metadata": metadata,
            "cfg": cfg.step_fields("chapters"),
            "embedder": identities.get("embedder"),
            "prompts": [prompts.get(n) for n in ("tcot_refine", "chapter_summary", "script_label")],
        }
    )
    return {"asr": asr, "frames": frames, "correction": correction, "chapters": chapters}


def cache_key(keys: Mapping[str, str | None]) -> str:
    """The record's overall key: a hash of its four sub-step keys."""
    return _hash({"v": SCHEMA_VERSION, **{k: keys[k] for k in STEPS}})


def model_identities(cfg: AnnotateConfig) -> dict[str, Any]:
    """Model and prompt identities the cache keys depend on (assembles whisper-base once)."""
    resolved = resolve_asr_model(cfg.asr_model, cfg.model_cache_dir_path)
    emb: str | None = None
    if cfg.embedder:
        path, sha = resolve_embedder(cfg.embedder)
        emb = sha or path
    return {"asr": resolved.sha256 or resolved.path, "embedder": emb, "prompts": prompt_hashes()}


# ------------------------------------------------------------------------------------------------
# Models, loaded lazily (a fully cached sub-step never loads its model)
# ------------------------------------------------------------------------------------------------


class Models:
    """The models of one process, each built on first use; tests pass fakes as overrides."""

    def __init__(
        self,
        cfg: AnnotateConfig,
        asr: ASRBackend | None = None,
        describer: FrameDescriber | None = None,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.cfg = cfg
        self._asr, self._describer, self._embedder, self._llm = asr, describer, embedder, llm
        self._relevance: EmbeddingRelevance | None = None
        self._labeler: ScriptLabeler | None = None
        self.load_s = 0.0

    def _timed(self, build: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return build()
        finally:
            self.load_s += time.perf_counter() - t

    @property
    def asr(self) -> ASRBackend:
        if self._asr is None:
            self._asr = self._timed(lambda: make_asr_backend(self.cfg))
        return self._asr

    @property
    def describer(self) -> FrameDescriber:
        if self._describer is None:
            self._describer = self._timed(lambda: make_describer(self.cfg))
        return self._describer

    @property
    def embedder(self) -> Embedder | None:
        if self._embedder is None and self.cfg.embedder:
            name = self.cfg.embedder
            self._embedder = self._timed(lambda: get_embedder(name, self.cfg.device))
        return self._embedder

    @property
    def llm(self) -> LLM | None:
        if self._llm is None and self.cfg.llm_on:
            self._llm = self._timed(lambda: make_llm(self.cfg.llm, self.cfg.model_cache_dir_path))
        return self._llm

    @property
    def relevance(self) -> EmbeddingRelevance | None:
        if self._relevance is None and self.embedder is not None:
            emb = self.embedder
            self._relevance = self._timed(lambda: EmbeddingRelevance(emb))
        return self._relevance

    @property
    def labeler(self) -> ScriptLabeler | None:
        if self._labeler is None and self.embedder is not None:
            emb = self.embedder
            self._labeler = self._timed(lambda: ScriptLabeler(emb))
        return self._labeler


def make_describer(cfg: AnnotateConfig) -> FrameDescriber:
    """The configured frame describer (OCR + colours offline; a VLM by config)."""
    if cfg.describer == "ocr":
        return get_ocr_describer(cfg.ocr_min_score, cfg.n_colors)
    from hivid.annotate.vlm import make_vlm_describer

    return make_vlm_describer(cfg)


# ------------------------------------------------------------------------------------------------
# One video
# ------------------------------------------------------------------------------------------------


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


def _reusable(previous: dict[str, Any] | None, keys: dict[str, str], step: str) -> bool:
    if not previous or previous.get("schema_version") != SCHEMA_VERSION:
        return False
    return bool((previous.get("step_keys") or {}).get(step) == keys[step])


def annotate_video(
    video_path: Path,
    video_id: str,
    sha256: str,
    duration: float,
    metadata: dict[str, Any],
    cfg: AnnotateConfig,
    models: Models,
    previous: dict[str, Any] | None = None,
    identities: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Annotate one video, reusing the sub-steps of ``previous`` whose keys still match.

    Raises ``DecodeError`` (or the backend's error) on unusable input.
    """
    t0 = time.perf_counter()
    ids = identities if identities is not None else model_identities(cfg)
    keys = step_keys(sha256, metadata, cfg, ids)
    reused: list[str] = []
    llm_failed = False  # an LLM call failed in correction: it and chapters are not cached
    chapters_llm_failed = False
    timings = {f"{s}_s": 0.0 for s in STEPS}
    bar = _step_bar(video_id, cfg.progress_bars)
    prev = previous or {}

    # -- asr -------------------------------------------------------------------------------------
    bar.set_postfix_str("asr")
    t = time.perf_counter()
    if _reusable(previous, keys, "asr"):
        asr_rec = dict(prev["asr"])
        asr_rec["segments"] = [
            {k: v for k, v in seg.items() if k in ("start", "end", "words")}
            | {"text": seg.get("text_raw", seg["text"])}
            for seg in asr_rec["segments"]
        ]
        reused.append("asr")
    else:
        audio = decode_audio(video_path)
        language = cfg.language or (
            metadata.get("language") if isinstance(metadata, dict) else None
        )
        if audio is not None:
            result = models.asr.transcribe(audio, 16000, language=language)
            asr_rec = {
                "backend": result.backend,
                "model": result.model,
                "model_sha256": result.model_sha256,
                "language": result.language,
                "word_timestamps": result.word_timestamps,
                "audio": True,
                "segments": result.segments,
            }
        else:  # vision-only: no ASR model is loaded for a silent video
            asr_rec = {
                "backend": cfg.asr_backend,
                "model": cfg.asr_model,
                "model_sha256": ids.get("asr") if ids.get("asr") != cfg.asr_model else None,
                "language": language,
                "word_timestamps": "none",
                "audio": False,
                "segments": [],
            }
            if models._asr is not None:
                asr_rec["backend"] = getattr(models._asr, "name", type(models._asr).__name__)
    timings["asr_s"] = time.perf_counter() - t
    bar.update()

    # -- frames ----------------------------------------------------------------------------------
    bar.set_postfix_str("frames")
    t = time.perf_counter()
    if _reusable(previous, keys, "frames"):
        frames_rec = prev["frames"]
        reused.append("frames")
    else:
        describer = models.describer
        items = describe_frames(
            sample_frames(video_path, cfg.fps, cfg.frame_max_side),
            describer,
            shot_threshold=cfg.shot_threshold,
            similarity_threshold=cfg.similarity_threshold,
        )
        frames_rec = {
            "fps": cfg.fps,
            "describer": getattr(describer, "name", type(describer).__name__),
            "similarity_threshold": cfg.similarity_threshold,
            "described": sum(1 for f in items if f["reused_from"] is None),
            "items": items,
        }
    frames = frames_rec["items"]
    timings["frames_s"] = time.perf_counter() - t
    bar.update()

    # -- correction ------------------------------------------------------------------------------
    bar.set_postfix_str("correction")
    t = time.perf_counter()
    if _reusable(previous, keys, "correction"):
        segments = prev["asr"]["segments"]
        correction_rec = prev["correction"]
        reused.append("correction")
    else:
        llm = models.llm if (cfg.llm_relevance or cfg.llm_correct) else None
        res = correct_segments(
            asr_rec["segments"],
            metadata,
            lexicon=cfg.lexicon_correction,
            threshold=cfg.relevance_threshold,
            relevance=models.relevance if asr_rec["segments"] else None,
            llm=llm,
            llm_relevance_on=cfg.llm_relevance,
            llm_correct_on=cfg.llm_correct,
            llm_max_edit_ratio=cfg.llm_max_edit_ratio,
        )
        segments = res.segments
        llm_failed = llm_failed or res.llm_errors > 0
        kept = sum(1 for s in segments if s["kept"])
        correction_rec = {
            "relevance_scorer": res.relevance_scorer,
            "threshold": cfg.relevance_threshold,
            "kept": kept,
            "dropped": len(segments) - kept,
            "lexicon_changes": res.lexicon_changes,
            "llm_changes": res.llm_changes,
            "llm_errors": res.llm_errors,
            "embedder": cfg.embedder,
            "llm": cfg.llm.identity() if llm is not None else None,
        }
    asr_rec = {**asr_rec, "segments": segments}
    timings["correction_s"] = time.perf_counter() - t
    bar.update()

    # -- chapters --------------------------------------------------------------------------------
    bar.set_postfix_str("chapters")
    t = time.perf_counter()
    if _reusable(previous, keys, "chapters"):
        tcot, chapters, shifts = prev["tcot"], prev["chapters"], prev["topic_shifts"]
        reused.append("chapters")
    else:
        kept_segs = [s for s in segments if s.get("kept", True)]
        shifts = []
        if cfg.topic_shift_threshold is not None and models.embedder is not None and kept_segs:
            shifts = topic_shifts(kept_segs, models.embedder, cfg.topic_shift_threshold)
        tcot, chapters = build_chapters(
            frames,
            kept_segs,
            duration,
            cfg.min_chapter_s,
            cfg.max_summary_chars,
            extra_cuts=[x["t"] for x in shifts],
        )
        errors = _label_chapters(
            chapters, kept_segs, metadata, asr_rec.get("language"), cfg, models
        )
        llm = models.llm if cfg.llm_refine else None
        if llm is not None:
            errors += refine_with_llm(llm, tcot, chapters, frames, kept_segs, metadata)
        chapters_llm_failed = errors > 0
    timings["chapters_s"] = time.perf_counter() - t
    bar.update()
    bar.close()

    # A sub-step whose LLM calls failed fell back to the deterministic passes: record no key for
    # it (and for chapters, which depend on it), so the next run with the LLM back redoes them.
    recorded: dict[str, str | None] = dict(keys)
    if llm_failed:
        recorded["correction"] = recorded["chapters"] = None
    if chapters_llm_failed:
        recorded["chapters"] = None
    emb_sha = ids.get("embedder") if cfg.embedder else None
    return {
        "schema_version": SCHEMA_VERSION,
        "video_id": video_id,
        "sha256": sha256,
        "duration": _r(duration),
        "cache_key": cache_key(recorded),
        "step_keys": recorded,
        "asr": asr_rec,
        "correction": correction_rec,
        "frames": frames_rec,
        "topic_shifts": shifts,
        "tcot": tcot,
        "chapters": chapters,
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
            **{k: _r(v) for k, v in timings.items()},
            "total_s": _r(time.perf_counter() - t0),
        },
        "cached_steps": reused,
    }


def _label_chapters(
    chapters: list[dict[str, Any]],
    segments: list[dict[str, Any]],
    metadata: dict[str, Any],
    language: str | None,
    cfg: AnnotateConfig,
    models: Models,
) -> int:
    """Add ``script_label``, ``script_label_source`` and ``word_budget`` to each chapter.

    Returns the number of failed LLM calls."""
    from hivid.annotate.chapters import sentences_in

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
    if cfg.script_labels:
        labeler = models.labeler
        if labeler is not None:
            labels = [(lab, labeler.name) for lab, _ in labeler.label(sents)]
        llm = models.llm if cfg.llm_refine else None
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


# ------------------------------------------------------------------------------------------------
# Batch
# ------------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(cfg: AnnotateConfig, identities: dict[str, Any]) -> None:
    import os

    # Each worker gets an even share of the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    os.environ["HIVID_THREADS"] = str(threads)
    _WORKER["cfg"] = cfg
    _WORKER["ids"] = identities
    _WORKER["models"] = Models(cfg)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _read_previous(out_dir: Path, vid: str) -> dict[str, Any] | None:
    path = out_dir / f"{vid}.json"
    if not path.is_file():
        return None
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) else None


def _run_entry(
    entry: dict[str, Any],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    models: Models,
    identities: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """("ok", record) or ("quarantine", row); never raises for a bad video."""
    path = data_root / str(entry.get("path", ""))
    vid = str(entry.get("video_id", path.stem))
    try:
        record = annotate_video(
            path,
            vid,
            str(entry["sha256"]),
            float(entry["duration"]),
            dict(entry.get("metadata") or {}),
            cfg,
            models,
            previous=_read_previous(out_dir, vid),
            identities=identities,
        )
        return "ok", record
    except Exception as exc:
        reason = _one_line(exc)
        if str(path) not in reason:
            reason = f"{path}: {type(exc).__name__}: {reason}"
        # Name the file relative to the data root, as ingest's quarantine rows do.
        reason = reason.replace(str(data_root).rstrip("/") + "/", "")
        row = {
            "video_id": vid,
            "path": str(entry.get("path", "")),
            "stage": "annotate",
            "reason": reason,
        }
        return "quarantine", row


def _worker_task(entry: dict[str, Any], data_root: str, out_dir: str) -> tuple[str, dict[str, Any]]:
    return _run_entry(
        entry, Path(data_root), Path(out_dir), _WORKER["cfg"], _WORKER["models"], _WORKER["ids"]
    )


def _dask_task(
    entry: dict[str, Any], data_root: str, out_dir: str, cfg: AnnotateConfig, ids: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    if "models" not in _WORKER:
        _init_worker(cfg, ids)
    return _run_entry(entry, Path(data_root), Path(out_dir), cfg, _WORKER["models"], ids)


def _fan_out(
    todo: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    ids: dict[str, Any],
) -> Iterator[tuple[dict[str, Any], tuple[str, dict[str, Any]] | BaseException]]:
    """(entry, result or the worker's exception) as videos finish, over the configured backend."""
    n = min(cfg.workers, len(todo))
    if cfg.parallel == "dask":
        try:
            from dask.distributed import Client, LocalCluster
            from dask.distributed import as_completed as dask_completed
        except ImportError:
            raise RuntimeError(
                "annotate.parallel is 'dask' but dask.distributed is not installed"
            ) from None
        with contextlib.ExitStack() as stack:
            if cfg.dask_address:
                client = stack.enter_context(Client(cfg.dask_address))
            else:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                    )
                )
                client = stack.enter_context(Client(cluster))
            futs = {
                client.submit(_dask_task, e, str(data_root), str(out_dir), cfg, ids, pure=False): e
                for e in todo
            }
            for fut in dask_completed(futs):
                try:
                    yield futs[fut], fut.result()
                except Exception as exc:
                    yield futs[fut], exc
        return
    if cfg.parallel == "ray":
        try:
            import ray
        except ImportError:
            raise RuntimeError("annotate.parallel is 'ray' but ray is not installed") from None
        ray.init(num_cpus=n, include_dashboard=False, ignore_reinit_error=True)
        remote = ray.remote(_dask_task)
        refs = {remote.remote(e, str(data_root), str(out_dir), cfg, ids): e for e in todo}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                yield refs[done[0]], ray.get(done[0])
            except Exception as exc:
                yield refs[done[0]], exc
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, ids)
    ) as ex:
        futures = {ex.submit(_worker_task, e, str(data_root), str(out_dir)): e for e in todo}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except Exception as exc:  # a worker died (e.g. killed for memory)
                yield futures[fut], exc


def annotate_batch(
    entries: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    progress: Callable[[str, int, int], None] | None = None,
    models: Models | None = None,
) -> AnnotateSummary:
    """Annotate manifest rows into ``out_dir/<video_id>.json``; see the module docstring."""
    t0 = time.perf_counter()
    summary = AnnotateSummary()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Resolve (and, for whisper-base, assemble) the models once here, before any worker starts.
    ids = model_identities(cfg)
    summary.prompts = dict(ids["prompts"])
    summary.models = {
        "asr": cfg.asr_model,
        "asr_sha256": ids["asr"] if ids["asr"] != cfg.asr_model else None,
        "asr_backend": cfg.asr_backend,
        "describer": cfg.describer
        if cfg.describer == "ocr"
        else f"{cfg.describer}:{cfg.vlm_model}",
        "embedder": cfg.embedder,
        "embedder_sha256": ids["embedder"] if ids["embedder"] != cfg.embedder else None,
        "llm": cfg.llm.identity(),
    }
    hits = dict.fromkeys(STEPS, 0)
    records: list[dict[str, Any]] = []
    todo: list[dict[str, Any]] = []
    for e in entries:
        vid = str(e["video_id"])
        old = _read_previous(out_dir, vid)
        keys = step_keys(str(e["sha256"]), dict(e.get("metadata") or {}), cfg, ids)
        if old is not None and old.get("cache_key") == cache_key(keys):
            summary.cached.append(vid)
            records.append(old)
            for s in STEPS:
                hits[s] += 1
        else:
            todo.append(e)
    total, done = len(entries), len(summary.cached)
    if progress is not None and done:
        progress("cached", done, total)
    per_video: dict[str, float] = {}
    step_time = dict.fromkeys(STEPS, 0.0)

    def finish(kind: str, payload: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        vid = str(payload["video_id"])
        if kind == "ok":
            write_json(out_dir / f"{vid}.json", payload, indent=1)
            summary.annotated.append(vid)
            records.append(payload)
            per_video[vid] = payload["timings"]["total_s"]
            for s in STEPS:
                step_time[s] += payload["timings"][f"{s}_s"]
                hits[s] += s in payload.get("cached_steps", [])
        else:
            summary.quarantined.append(payload)
        if progress is not None:
            progress(vid, done, total)

    local = models or Models(cfg)
    if todo and cfg.workers == 1:
        for e in todo:
            finish(*_run_entry(e, data_root, out_dir, cfg, local, ids))
    elif todo:
        for e, res in _fan_out(todo, data_root, out_dir, cfg, ids):
            if isinstance(res, BaseException):
                path = data_root / str(e.get("path", ""))
                res = (
                    "quarantine",
                    {
                        "video_id": str(e["video_id"]),
                        "path": str(e.get("path", "")),
                        "stage": "annotate",
                        "reason": f"{path}: worker process failed ({_one_line(res)})",
                    },
                )
            finish(*res)
    summary.annotated.sort()
    summary.step_cache_hits = hits
    summary.metrics = corpus_metrics(records)
    times = list(per_video.values())
    # Flat floats (the stage logs each as an MLflow metric); per-video times are in the records.
    summary.timings = {
        "total_s": _r(time.perf_counter() - t0),
        "model_load_s": _r(local.load_s),
        "videos_s": _r(sum(times)),
        "per_video_mean_s": _r(sum(times) / len(times)) if times else 0.0,
        "per_video_max_s": _r(max(times)) if times else 0.0,
        **{f"{s}_s": _r(v) for s, v in step_time.items()},
    }
    return summary


def corpus_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """Counts over the batch's records (annotated now or cached)."""
    m = {
        "segments": 0.0,
        "segments_kept": 0.0,
        "segments_dropped": 0.0,
        "lexicon_corrections": 0.0,
        "llm_corrections": 0.0,
        "llm_errors": 0.0,
        "chapters": 0.0,
        "tcot_items": 0.0,
        "topic_shifts": 0.0,
        "frames": 0.0,
        "frames_described": 0.0,
        "vision_only": 0.0,
        "video_seconds": 0.0,
    }
    for r in records:
        segs = r.get("asr", {}).get("segments", [])
        corr = r.get("correction", {})
        m["segments"] += len(segs)
        m["segments_kept"] += sum(1 for s in segs if s.get("kept", True))
        m["segments_dropped"] += sum(1 for s in segs if not s.get("kept", True))
        m["lexicon_corrections"] += float(corr.get("lexicon_changes", 0))
        m["llm_corrections"] += float(corr.get("llm_changes", 0))
        m["llm_errors"] += float(corr.get("llm_errors", 0))
        m["chapters"] += len(r.get("chapters", []))
        m["tcot_items"] += len(r.get("tcot", []))
        m["topic_shifts"] += len(r.get("topic_shifts", []))
        m["frames"] += len(r.get("frames", {}).get("items", []))
        m["frames_described"] += float(r.get("frames", {}).get("described", 0))
        m["vision_only"] += 0.0 if r.get("asr", {}).get("audio", True) else 1.0
        m["video_seconds"] += float(r.get("duration", 0.0))
    return m
