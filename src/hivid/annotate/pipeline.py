"""The ``annotate`` stage: ASR + 1 fps frame descriptions + coarse TCoT/chapters per video.

``annotate_video`` turns one video into its record (schema below); ``annotate_batch`` runs a
manifest, skipping videos whose cached output has the same ``cache_key`` and quarantining videos
that fail, in-process or over a spawn-context process pool where each worker loads its models once.

Record (``schema_version`` 1), written as ``<out_dir>/<video_id>.json`` (sorted keys, indent 1)::

    {"schema_version": 1, "video_id", "sha256", "duration", "cache_key",
     "asr": {"backend", "model", "model_sha256", "language", "word_timestamps", "audio": bool,
             "segments": [{"start", "end", "text", "words": [{"start", "end", "word", "score"}]}]},
     "frames": {"fps", "describer", "similarity_threshold", "described": int,
                "items": [{"index", "t", "pts_time", "ocr_text", "ocr": [{"text", "score"}],
                           "colors": ["#rrggbb"], "shot_change": bool, "reused_from": int|null}]},
     "tcot": [{"start", "end", "observation"}],
     "chapters": [{"start", "end", "title", "summary"}],
     "timings": {"asr_s", "frames_s", "total_s"}}
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hivid.annotate.asr import ASRBackend, make_asr_backend
from hivid.annotate.chapters import build_chapters
from hivid.annotate.frames import (
    FrameDescriber,
    OCRFrameDescriber,
    describe_frames,
    get_ocr_describer,
)
from hivid.annotate.models import resolve_asr_model
from hivid.configbase import require
from hivid.data.decode import decode_audio, sample_frames
from hivid.io import read_json, write_json

SCHEMA_VERSION = 1


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

    @property
    def model_cache_dir_path(self) -> Path | None:
        return Path(self.model_cache_dir).expanduser() if self.model_cache_dir else None

    def output_fields(self) -> dict[str, Any]:
        """The fields that change a record's content (cache identity); not workers/cache dir."""
        return {
            "asr_backend": self.asr_backend,
            "asr_model": self.asr_model,
            "compute_type": self.compute_type,
            "device": self.device,
            "language": self.language,
            "beam_size": self.beam_size,
            "max_sentence_s": self.max_sentence_s,
            "vad_method": self.vad_method if self.asr_backend == "whisperx" else None,
            "align": self.align if self.asr_backend == "whisperx" else None,
            "align_model": self.align_model if self.asr_backend == "whisperx" else None,
            "fps": self.fps,
            "frame_max_side": self.frame_max_side,
            "shot_threshold": self.shot_threshold,
            "similarity_threshold": self.similarity_threshold,
            "ocr_min_score": self.ocr_min_score,
            "n_colors": self.n_colors,
            "min_chapter_s": self.min_chapter_s,
            "max_summary_chars": self.max_summary_chars,
        }


@dataclass
class AnnotateSummary:
    """What a batch did: ids annotated now, ids served from cache, quarantined rows, timings."""

    annotated: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotated": self.annotated,
            "cached": self.cached,
            "quarantined": self.quarantined,
            "timings": self.timings,
        }


def _r(x: float) -> float:
    return round(float(x), 3)


def cache_key(
    video_sha256: str, cfg: AnnotateConfig, model_sha256: str | None, describer: str
) -> str:
    """sha256 over the video content hash, output-affecting config and model identity."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "video_sha256": video_sha256,
        "config": cfg.output_fields(),
        "asr_model_sha256": model_sha256,
        "describer": describer,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _asr_model_identity(cfg: AnnotateConfig) -> str | None:
    resolved = resolve_asr_model(cfg.asr_model, cfg.model_cache_dir_path)
    return resolved.sha256 or resolved.path  # a hub id stands for itself


def annotate_video(
    video_path: Path,
    video_id: str,
    sha256: str,
    duration: float,
    metadata: dict[str, Any],
    cfg: AnnotateConfig,
    asr: ASRBackend,
    describer: FrameDescriber,
) -> dict[str, Any]:
    """Annotate one video; raises ``DecodeError`` (or the backend's error) on unusable input."""
    t0 = time.perf_counter()
    audio = decode_audio(video_path)
    language = cfg.language or (metadata.get("language") if isinstance(metadata, dict) else None)
    if audio is not None:
        result = asr.transcribe(audio, 16000, language=language)
        segments, lang, src = result.segments, result.language, result.word_timestamps
        backend, model, model_sha = result.backend, result.model, result.model_sha256
    else:
        segments, lang, src = [], language, "none"
        backend = getattr(asr, "name", type(asr).__name__)
        model = getattr(getattr(asr, "model", None), "name", cfg.asr_model)
        model_sha = getattr(getattr(asr, "model", None), "sha256", None)
    t1 = time.perf_counter()
    frames = describe_frames(
        sample_frames(video_path, cfg.fps, cfg.frame_max_side),
        describer,
        shot_threshold=cfg.shot_threshold,
        similarity_threshold=cfg.similarity_threshold,
    )
    t2 = time.perf_counter()
    tcot, chapters = build_chapters(
        frames, segments, duration, cfg.min_chapter_s, cfg.max_summary_chars
    )
    describer_name = getattr(describer, "name", type(describer).__name__)
    return {
        "schema_version": SCHEMA_VERSION,
        "video_id": video_id,
        "sha256": sha256,
        "duration": _r(duration),
        "cache_key": cache_key(sha256, cfg, model_sha or model, describer_name),
        "asr": {
            "backend": backend,
            "model": model,
            "model_sha256": model_sha,
            "language": lang,
            "word_timestamps": src,
            "audio": audio is not None,
            "segments": segments,
        },
        "frames": {
            "fps": cfg.fps,
            "describer": describer_name,
            "similarity_threshold": cfg.similarity_threshold,
            "described": sum(1 for f in frames if f["reused_from"] is None),
            "items": frames,
        },
        "tcot": tcot,
        "chapters": chapters,
        "timings": {
            "asr_s": _r(t1 - t0),
            "frames_s": _r(t2 - t1),
            "total_s": _r(time.perf_counter() - t0),
        },
    }


# ------------------------------------------------------------------------------------------------
# Batch
# ------------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _models(cfg: AnnotateConfig) -> tuple[ASRBackend, FrameDescriber]:
    return make_asr_backend(cfg), get_ocr_describer(cfg.ocr_min_score, cfg.n_colors)


def _init_worker(cfg: AnnotateConfig) -> None:
    import os

    # Each worker gets an even share of the cores instead of oversubscribing them.
    threads = max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    os.environ["HIVID_THREADS"] = str(threads)
    _WORKER["cfg"] = cfg
    _WORKER["models"] = _models(cfg)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__


def _run_entry(
    entry: dict[str, Any], data_root: Path, cfg: AnnotateConfig, models: tuple[Any, Any] | None
) -> tuple[str, dict[str, Any]]:
    """("ok", record) or ("quarantine", row); never raises for a bad video."""
    path = data_root / str(entry.get("path", ""))
    vid = str(entry.get("video_id", path.stem))
    try:
        asr, describer = models if models is not None else _WORKER["models"]
        record = annotate_video(
            path,
            vid,
            str(entry["sha256"]),
            float(entry["duration"]),
            dict(entry.get("metadata") or {}),
            cfg,
            asr,
            describer,
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


def _worker_task(entry: dict[str, Any], data_root: str) -> tuple[str, dict[str, Any]]:
    return _run_entry(entry, Path(data_root), _WORKER["cfg"], None)


def _cached(out_path: Path, key: str) -> bool:
    if not out_path.is_file():
        return False
    try:
        old = read_json(out_path)
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and old.get("cache_key") == key


def annotate_batch(
    entries: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    progress: Callable[[str, int, int], None] | None = None,
) -> AnnotateSummary:
    """Annotate manifest rows into ``out_dir/<video_id>.json``; see the module docstring."""
    t0 = time.perf_counter()
    summary = AnnotateSummary()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Resolve (and, for whisper-base, assemble) the model once here, before any worker starts.
    model_id = _asr_model_identity(cfg)
    describer_name = OCRFrameDescriber.name
    todo: list[dict[str, Any]] = []
    for e in entries:
        vid = str(e["video_id"])
        if _cached(
            out_dir / f"{vid}.json", cache_key(str(e["sha256"]), cfg, model_id, describer_name)
        ):
            summary.cached.append(vid)
        else:
            todo.append(e)
    total, done = len(entries), len(summary.cached)
    if progress is not None and done:
        progress("cached", done, total)
    per_video: dict[str, float] = {}

    def finish(kind: str, payload: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        vid = str(payload["video_id"])
        if kind == "ok":
            write_json(out_dir / f"{vid}.json", payload, indent=1)
            summary.annotated.append(vid)
            per_video[vid] = payload["timings"]["total_s"]
        else:
            summary.quarantined.append(payload)
        if progress is not None:
            progress(vid, done, total)

    t_models = 0.0
    if todo and cfg.workers == 1:
        tm = time.perf_counter()
        models = _models(cfg)
        t_models = time.perf_counter() - tm
        for e in todo:
            finish(*_run_entry(e, data_root, cfg, models))
    elif todo:
        ctx = multiprocessing.get_context("spawn")
        n = min(cfg.workers, len(todo))
        with ProcessPoolExecutor(
            n, mp_context=ctx, initializer=_init_worker, initargs=(cfg,)
        ) as ex:
            futures = {ex.submit(_worker_task, e, str(data_root)): e for e in todo}
            for fut in as_completed(futures):
                try:
                    finish(*fut.result())
                except Exception as exc:  # a worker died (e.g. killed for memory)
                    e = futures[fut]
                    path = data_root / str(e.get("path", ""))
                    finish(
                        "quarantine",
                        {
                            "video_id": str(e["video_id"]),
                            "path": str(e.get("path", "")),
                            "stage": "annotate",
                            "reason": f"{path}: worker process failed ({_one_line(exc)})",
                        },
                    )
    summary.annotated.sort()
    times = list(per_video.values())
    # Flat floats (the stage logs each as an MLflow metric); per-video times are in the records.
    summary.timings = {
        "total_s": _r(time.perf_counter() - t0),
        "model_load_s": _r(t_models),
        "videos_s": _r(sum(times)),
        "per_video_mean_s": _r(sum(times) / len(times)) if times else 0.0,
        "per_video_max_s": _r(max(times)) if times else 0.0,
    }
    return summary
