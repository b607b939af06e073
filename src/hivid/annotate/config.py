"""Configs of the annotate stage.

``AnnotateConfig`` is the params.yaml section ``annotate`` as users write it: one flat mapping
(plus ``llm``), each key validated on load with the key named in the error. The orchestrator maps
it, in one place (the ``*_cfg`` properties below), onto one small frozen config per sub-step, and
each backend receives only its own: ``ASRConfig`` (``asr.make_asr_backend``), ``DescriberConfig``
(``vlm.make_vlm_describer``), ``FramesConfig``, ``CorrectionConfig``, ``ChaptersConfig`` and
``ParallelConfig`` (the executors). A sub-step's ``identity()`` is what its cache key hashes
(``keys.step_keys``): the knobs that change its output, nothing else.

This module imports no model library, so loading params pays for none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hivid.annotate.llm import AnnotateLLMConfig
from hivid.configbase import require

STEPS: tuple[str, ...] = ("asr", "frames", "correction", "chapters")
"""The sub-steps of one video, in the order they run."""


MIN_PAUSE_S = 0.3
"""An over-long word run without a clause break is split at its longest pause of at least this
(``hivid.annotate.asr.split_long``); hashed into the ASR cache key."""


@dataclass(frozen=True)
class ASRConfig:
    """The ASR sub-step and its backend (from ``annotate.asr_*`` and the whisper knobs)."""

    backend: Literal["faster-whisper", "whisperx"]
    """``annotate.asr_backend``."""
    model: str
    """``annotate.asr_model``."""
    compute_type: str
    """``annotate.compute_type``."""
    device: str
    """``annotate.device``."""
    language: str | None
    """``annotate.language`` (None: the video's metadata language, else detected)."""
    batch_size: int
    """``annotate.batch_size`` (whisperx)."""
    beam_size: int
    """``annotate.beam_size``."""
    max_sentence_s: float | None
    """``annotate.max_sentence_s``."""
    vad_method: Literal["pyannote", "silero"]
    """``annotate.vad_method`` (whisperx)."""
    align: bool
    """``annotate.align`` (whisperx)."""
    align_model: str | None
    """``annotate.align_model`` (whisperx)."""
    model_cache_dir: Path | None
    """``annotate.model_cache_dir``, expanded (None = $HIVID_CACHE or ~/.cache/hivid)."""

    def identity(self) -> dict[str, Any]:
        """The knobs that change the transcript (whisperx-only ones are None for faster-whisper).

        The key names are the params keys: they are hashed into the cache keys."""
        whisperx = self.backend == "whisperx"
        return {
            "asr_backend": self.backend,
            "asr_model": self.model,
            "compute_type": self.compute_type,
            "device": self.device,
            "language": self.language,
            "beam_size": self.beam_size,
            "max_sentence_s": self.max_sentence_s,
            "min_pause_s": MIN_PAUSE_S,  # how an unpunctuated run is split (hivid.annotate.asr)
            "vad_method": self.vad_method if whisperx else None,
            "align": self.align if whisperx else None,
            "align_model": self.align_model if whisperx else None,
        }


@dataclass(frozen=True)
class DescriberConfig:
    """The frame describer (from ``annotate.describer``, ``annotate.vlm_*``, the OCR knobs)."""

    kind: Literal["ocr", "vlm", "vlm-endpoint"]
    """``annotate.describer``."""
    ocr_min_score: float
    """``annotate.ocr_min_score``."""
    n_colors: int
    """``annotate.n_colors``."""
    vlm_model: str | None
    """``annotate.vlm_model``."""
    vlm_base_url: str
    """``annotate.vlm_base_url``."""
    vlm_api_key_env: str | None
    """``annotate.vlm_api_key_env``."""
    vlm_max_new_tokens: int
    """``annotate.vlm_max_new_tokens``."""
    device: str
    """``annotate.device`` (vlm)."""
    timeout_s: float
    """``annotate.llm.timeout_s`` (vlm-endpoint requests)."""
    max_retries: int
    """``annotate.llm.max_retries`` (vlm-endpoint requests)."""
    backoff_s: float
    """``annotate.llm.backoff_s`` (vlm-endpoint requests)."""

    def identity(self) -> dict[str, Any]:
        """What changes the descriptions: the describer and its model, not timeouts."""
        if self.kind == "ocr":
            return {
                "describer": "ocr",
                "ocr_min_score": self.ocr_min_score,
                "n_colors": self.n_colors,
            }
        out: dict[str, Any] = {"describer": self.kind, "vlm_model": self.vlm_model}
        if self.kind == "vlm-endpoint":
            out["vlm_base_url"] = self.vlm_base_url
        else:
            out["vlm_max_new_tokens"] = self.vlm_max_new_tokens
        return {**out, "n_colors": self.n_colors}

    def label(self) -> str:
        """``ocr`` or ``<kind>:<model>`` (the batch summary's ``models.describer``)."""
        return self.kind if self.kind == "ocr" else f"{self.kind}:{self.vlm_model}"


@dataclass(frozen=True)
class FramesConfig:
    """The frames sub-step: 1 fps sampling, shot changes, similarity reuse, the describer."""

    fps: float
    """``annotate.fps``."""
    frame_max_side: int | None
    """``annotate.frame_max_side``."""
    shot_threshold: float
    """``annotate.shot_threshold``."""
    similarity_threshold: float
    """``annotate.similarity_threshold``."""
    describer: DescriberConfig
    """The describer's own config."""

    def identity(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "frame_max_side": self.frame_max_side,
            "shot_threshold": self.shot_threshold,
            "similarity_threshold": self.similarity_threshold,
            **self.describer.identity(),
        }


@dataclass(frozen=True)
class CorrectionConfig:
    """The correction sub-step: relevance scores, lexicon and LLM corrections."""

    relevance_threshold: int
    """``annotate.relevance_threshold``."""
    lexicon_correction: bool
    """``annotate.lexicon_correction``."""
    embedder: str | None
    """``annotate.embedder`` (embedding relevance)."""
    llm: AnnotateLLMConfig
    """``annotate.llm``."""
    llm_relevance: bool
    """``annotate.llm_relevance``."""
    llm_correct: bool
    """``annotate.llm_correct``."""
    llm_max_edit_ratio: float
    """``annotate.llm_max_edit_ratio``."""

    @property
    def llm_used(self) -> bool:
        """Whether this sub-step calls the LLM at all."""
        return self.llm.backend != "none" and (self.llm_relevance or self.llm_correct)

    def identity(self) -> dict[str, Any]:
        used = self.llm_used
        return {
            "relevance_threshold": self.relevance_threshold,
            "lexicon_correction": self.lexicon_correction,
            "embedder": self.embedder,
            "llm": self.llm.identity() if used else {"backend": "none"},
            "llm_relevance": self.llm_relevance if used else None,
            "llm_correct": self.llm_correct if used else None,
            "llm_max_edit_ratio": self.llm_max_edit_ratio if used else None,
        }


@dataclass(frozen=True)
class ChaptersConfig:
    """The chapters sub-step: topic shifts, TCoT/chapters, script labels, LLM refinement."""

    min_chapter_s: float
    """``annotate.min_chapter_s``."""
    max_summary_chars: int
    """``annotate.max_summary_chars``."""
    embedder: str | None
    """``annotate.embedder`` (topic shifts, script labels)."""
    topic_shift_threshold: float | None
    """``annotate.topic_shift_threshold``."""
    script_labels: bool
    """``annotate.script_labels``."""
    llm: AnnotateLLMConfig
    """``annotate.llm``."""
    llm_refine: bool
    """``annotate.llm_refine``."""

    @property
    def llm_used(self) -> bool:
        """Whether this sub-step calls the LLM at all."""
        return self.llm.backend != "none" and self.llm_refine

    def identity(self) -> dict[str, Any]:
        return {
            "min_chapter_s": self.min_chapter_s,
            "max_summary_chars": self.max_summary_chars,
            "embedder": self.embedder,
            "topic_shift_threshold": self.topic_shift_threshold,
            "script_labels": self.script_labels,
            "llm": self.llm.identity() if self.llm_used else {"backend": "none"},
        }


@dataclass(frozen=True)
class ParallelConfig:
    """How a batch fans out over videos (``executors``)."""

    workers: int
    """``annotate.workers`` (1 = in-process)."""
    backend: Literal["process", "dask", "ray"]
    """``annotate.parallel``."""
    dask_address: str | None
    """``annotate.dask_address``."""


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
    llm: AnnotateLLMConfig = field(default_factory=AnnotateLLMConfig)
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

    # -- the one place the flat params keys map onto the per-step configs --------------------

    @property
    def model_cache_dir_path(self) -> Path | None:
        return Path(self.model_cache_dir).expanduser() if self.model_cache_dir else None

    @property
    def llm_on(self) -> bool:
        return self.llm.backend != "none"

    @property
    def asr_cfg(self) -> ASRConfig:
        return ASRConfig(
            backend=self.asr_backend,
            model=self.asr_model,
            compute_type=self.compute_type,
            device=self.device,
            language=self.language,
            batch_size=self.batch_size,
            beam_size=self.beam_size,
            max_sentence_s=self.max_sentence_s,
            vad_method=self.vad_method,
            align=self.align,
            align_model=self.align_model,
            model_cache_dir=self.model_cache_dir_path,
        )

    @property
    def describer_cfg(self) -> DescriberConfig:
        return DescriberConfig(
            kind=self.describer,
            ocr_min_score=self.ocr_min_score,
            n_colors=self.n_colors,
            vlm_model=self.vlm_model,
            vlm_base_url=self.vlm_base_url,
            vlm_api_key_env=self.vlm_api_key_env,
            vlm_max_new_tokens=self.vlm_max_new_tokens,
            device=self.device,
            timeout_s=self.llm.timeout_s,
            max_retries=self.llm.max_retries,
            backoff_s=self.llm.backoff_s,
        )

    @property
    def frames_cfg(self) -> FramesConfig:
        return FramesConfig(
            fps=self.fps,
            frame_max_side=self.frame_max_side,
            shot_threshold=self.shot_threshold,
            similarity_threshold=self.similarity_threshold,
            describer=self.describer_cfg,
        )

    @property
    def correction_cfg(self) -> CorrectionConfig:
        return CorrectionConfig(
            relevance_threshold=self.relevance_threshold,
            lexicon_correction=self.lexicon_correction,
            embedder=self.embedder,
            llm=self.llm,
            llm_relevance=self.llm_relevance,
            llm_correct=self.llm_correct,
            llm_max_edit_ratio=self.llm_max_edit_ratio,
        )

    @property
    def chapters_cfg(self) -> ChaptersConfig:
        return ChaptersConfig(
            min_chapter_s=self.min_chapter_s,
            max_summary_chars=self.max_summary_chars,
            embedder=self.embedder,
            topic_shift_threshold=self.topic_shift_threshold,
            script_labels=self.script_labels,
            llm=self.llm,
            llm_refine=self.llm_refine,
        )

    @property
    def parallel_cfg(self) -> ParallelConfig:
        return ParallelConfig(
            workers=self.workers, backend=self.parallel, dask_address=self.dask_address
        )

    def step_fields(self, step: str) -> dict[str, Any]:
        """The knobs that change sub-step ``step``'s output (its cache identity)."""
        steps: dict[str, ASRConfig | FramesConfig | CorrectionConfig | ChaptersConfig] = {
            "asr": self.asr_cfg,
            "frames": self.frames_cfg,
            "correction": self.correction_cfg,
            "chapters": self.chapters_cfg,
        }
        return steps[step].identity()
