"""Speech recognition behind one Protocol, with sentence-level segments and word timestamps.

Two real backends, both on CTranslate2 Whisper models resolved by ``hivid.annotate.model_resolve``:

- ``FasterWhisperASR``: faster-whisper with its bundled Silero VAD (an ONNX file inside the
  faster_whisper package, so it works offline) and its own word timestamps (cross-attention DTW).
- ``WhisperXASR``: whisperx's VAD-batched pipeline (the paper's ASR stage). Its pyannote VAD loads
  from the checkpoint shipped inside the whisperx package (offline); its Silero option fetches
  ``snakers4/silero-vad`` through torch.hub and fails without a network unless already cached.
  whisperx transcribes VAD chunks without timestamps; word times then come from its wav2vec2
  alignment when an align model can be loaded (``word_timestamps="whisperx-align"``), otherwise
  from faster-whisper's DTW alignment of the same text against the same audio chunk
  (``word_timestamps="faster-whisper"``).

Both return sentence segments: the words are split after sentence-final punctuation.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hivid.annotate.config import MIN_PAUSE_S, ASRConfig
from hivid.annotate.model_resolve import ResolvedModel, resolve_asr_model

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Whisper's input rate; callers decode audio at this rate (``decode_audio`` does by default)."""

SENTENCE_END = ".!?。！？…"
"""A word ending in one of these (after closing quotes/brackets) ends a sentence."""

_CLOSERS = "\"'”’)]}」』"
_MIN_SAMPLES = SAMPLE_RATE // 10  # below 0.1 s there is nothing to recognise


class ASRError(RuntimeError):
    """ASR could not run (bad input or a model that cannot be loaded); the message says why."""


@dataclass
class ASRResult:
    """Sentence-level transcript of one audio track."""

    language: str | None
    segments: list[dict[str, Any]]
    """[{"start", "end", "text", "words": [{"start", "end", "word", "score"}]}] in seconds."""
    word_timestamps: str
    """Where word times come from: "whisperx-align" | "faster-whisper" | "none"."""
    backend: str
    model: str
    model_sha256: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ASRBackend(Protocol):
    """Transcribes mono float32 audio."""

    name: str

    def transcribe(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, language: str | None = None
    ) -> ASRResult: ...


# ------------------------------------------------------------------------------------------------
# Sentence segmentation (pure functions)
# ------------------------------------------------------------------------------------------------


def ends_sentence(word: str) -> bool:
    w = word.strip().rstrip(_CLOSERS)
    return bool(w) and w[-1] in SENTENCE_END


def _join_words(words: list[dict[str, Any]]) -> str:
    # Whisper words carry their own leading space ("  red"); CJK words carry none.
    return "".join(str(w["word"]) for w in words).strip()


def split_sentences(
    words: list[dict[str, Any]], max_sentence_s: float | None = None
) -> list[dict[str, Any]]:
    """Group timed words into sentence segments, cutting after sentence-final punctuation.

    Whisper often writes run-on sentences joined by commas; a sentence longer than
    ``max_sentence_s`` is split further at its clause breaks (see ``split_long``).
    """
    groups: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    for w in words:
        if not str(w["word"]).strip():
            continue
        cur.append(w)
        if ends_sentence(str(w["word"])):
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    if max_sentence_s is not None:
        groups = [part for g in groups for part in split_long(g, max_sentence_s)]
    return [_segment(g) for g in groups]


_CLAUSE_END = ",;:，；：、"


def split_long(words: list[dict[str, Any]], max_s: float) -> list[list[dict[str, Any]]]:
    """Split a word run longer than ``max_s`` seconds at the clause break (comma etc.) followed by
    the longest pause, recursively. A run without a clause break (Whisper sometimes writes a whole
    narration without punctuation: "...5 stars The Zenthe Glow Cream sold out...") is split at its
    longest pause of at least ``MIN_PAUSE_S``; a run without either stays whole."""
    if len(words) < 2 or float(words[-1]["end"]) - float(words[0]["start"]) <= max_s:
        return [words]
    gaps = [
        (float(words[i + 1]["start"]) - float(words[i]["end"]), i) for i in range(len(words) - 1)
    ]
    cuts = [
        (gap, i)
        for gap, i in gaps
        if str(words[i]["word"]).strip().rstrip(_CLOSERS)[-1:] in _CLAUSE_END
    ] or [(gap, i) for gap, i in gaps if gap >= MIN_PAUSE_S]
    if not cuts:
        return [words]
    _, i = max(cuts)
    return split_long(words[: i + 1], max_s) + split_long(words[i + 1 :], max_s)


def _segment(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "start": round(float(words[0]["start"]), 3),
        "end": round(float(max(w["end"] for w in words)), 3),
        "text": _join_words(words),
        "words": [
            {
                "start": round(float(w["start"]), 3),
                "end": round(float(w["end"]), 3),
                "word": str(w["word"]).strip(),
                "score": round(float(w["score"]), 3),
            }
            for w in words
        ],
    }


def split_text_sentences(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Sentences of an untimed chunk, with times spread over [start, end] by character count."""
    parts: list[str] = []
    cur = ""
    for token in text.split(" "):
        cur = f"{cur} {token}" if cur else token
        if ends_sentence(token):
            parts.append(cur.strip())
            cur = ""
    if cur.strip():
        parts.append(cur.strip())
    total = sum(len(p) for p in parts) or 1
    out, t = [], start
    for p in parts:
        t2 = t + (end - start) * len(p) / total
        out.append({"start": round(t, 3), "end": round(t2, 3), "text": p, "words": []})
        t = t2
    return out


def _check_audio(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate != SAMPLE_RATE:
        raise ASRError(f"Whisper needs {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ASRError(f"audio must be mono with shape (n,), got shape {a.shape}")
    return a.astype(np.float32, copy=False)


def _threads() -> int:
    """CPU threads per model: $HIVID_THREADS (set by pool workers to share cores), else all."""
    env = os.environ.get("HIVID_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


# ------------------------------------------------------------------------------------------------
# faster-whisper
# ------------------------------------------------------------------------------------------------


class FasterWhisperASR:
    """faster-whisper with Silero VAD and DTW word timestamps (CPU int8 by default)."""

    name = "faster-whisper"

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        cpu_threads: int = 0,
        max_sentence_s: float | None = 8.0,
    ) -> None:
        from faster_whisper import WhisperModel

        self.model = model
        self.beam_size = beam_size
        self.max_sentence_s = max_sentence_s
        try:
            self._model = WhisperModel(
                model.path,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads or _threads(),
            )
        except Exception as exc:  # hub errors, missing files, bad compute types
            raise ASRError(f"{model.path}: cannot load Whisper model ({exc})") from None

    def transcribe(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, language: str | None = None
    ) -> ASRResult:
        a = _check_audio(audio, sample_rate)
        if not self._model.model.is_multilingual:
            language = "en"
        if a.shape[0] < _MIN_SAMPLES:
            return self._result(language, [])
        segments, info = self._model.transcribe(
            a,
            language=language,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        words: list[dict[str, Any]] = []
        for seg in segments:  # a generator: decoding happens here
            for w in seg.words or []:
                words.append(
                    {"start": w.start, "end": w.end, "word": w.word, "score": w.probability}
                )
        return self._result(info.language, split_sentences(words, self.max_sentence_s))

    def _result(self, language: str | None, segments: list[dict[str, Any]]) -> ASRResult:
        return ASRResult(
            language=language,
            segments=segments,
            word_timestamps="faster-whisper",
            backend=self.name,
            model=self.model.name,
            model_sha256=self.model.sha256,
        )


# ------------------------------------------------------------------------------------------------
# whisperx
# ------------------------------------------------------------------------------------------------

# Align models by (language, model name, device); None records a failed load so a process tries
# (and waits for a network timeout) once per language, not once per video.
_ALIGN_CACHE: dict[tuple[str, str | None, str], tuple[Any, dict[str, Any]] | None] = {}


def _load_align_model(language: str, model_name: str | None, device: str) -> Any:
    key = (language, model_name, device)
    if key not in _ALIGN_CACHE:
        import whisperx

        try:
            _ALIGN_CACHE[key] = whisperx.load_align_model(
                language_code=language, device=device, model_name=model_name
            )
        except Exception as exc:  # no network / no model for this language
            log.warning(
                "whisperx align model for %r unavailable (%s); using faster-whisper word "
                "timestamps",
                language,
                str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__,
            )
            _ALIGN_CACHE[key] = None
    return _ALIGN_CACHE[key]


class WhisperXASR:
    """whisperx VAD-batched transcription + alignment (wav2vec2 when reachable, else DTW)."""

    name = "whisperx"

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "cpu",
        compute_type: str = "int8",
        batch_size: int = 8,
        vad_method: str = "pyannote",
        align: bool = True,
        align_model: str | None = None,
        language: str | None = None,
        beam_size: int = 5,
        max_sentence_s: float | None = 8.0,
    ) -> None:
        with warnings.catch_warnings():
            # pyannote warns at import that torchcodec lacks FFmpeg; we pass arrays, not files.
            warnings.filterwarnings("ignore", message=r"(?s).*torchcodec")
            import whisperx
            from whisperx.asr import WhisperModel
            from whisperx.vads import pyannote as _pyannote  # noqa: F401

        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.align = align
        self.align_model = align_model
        self.max_sentence_s = max_sentence_s
        try:
            wm = WhisperModel(
                model.path, device=device, compute_type=compute_type, cpu_threads=_threads()
            )
        except Exception as exc:
            raise ASRError(f"{model.path}: cannot load Whisper model ({exc})") from None
        self.multilingual = bool(wm.model.is_multilingual)
        self.language = language if self.multilingual else "en"
        try:
            self._pipe = whisperx.load_model(
                model.path,
                device,
                compute_type=compute_type,
                language=self.language,
                vad_method=vad_method,
                model=wm,
                threads=_threads(),
                asr_options={"beam_size": beam_size},
            )
        except Exception as exc:
            raise ASRError(
                f"whisperx pipeline ({vad_method} VAD) cannot be built ({exc}); "
                "the pyannote VAD ships with whisperx and works offline"
            ) from None

    def transcribe(
        self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, language: str | None = None
    ) -> ASRResult:
        a = _check_audio(audio, sample_rate)
        language = language or self.language
        if a.shape[0] < _MIN_SAMPLES:
            return self._result(language, [], "none")
        out = self._pipe.transcribe(a, batch_size=self.batch_size, language=language)
        language = out.get("language") or language
        chunks = [c for c in out["segments"] if str(c["text"]).strip()]
        if not chunks:
            return self._result(language, [], "none")
        aligned = self._align_wav2vec2(chunks, a, language)
        if aligned is not None:
            return self._result(
                language, split_sentences(aligned, self.max_sentence_s), "whisperx-align"
            )
        words = [w for c in chunks for w in self._dtw_words(c, a, language)]
        if words:
            return self._result(
                language, split_sentences(words, self.max_sentence_s), "faster-whisper"
            )
        segs = [
            s
            for c in chunks
            for s in split_text_sentences(str(c["text"]).strip(), c["start"], c["end"])
        ]
        return self._result(language, segs, "none")

    def _align_wav2vec2(
        self, chunks: list[dict[str, Any]], audio: np.ndarray, language: str | None
    ) -> list[dict[str, Any]] | None:
        if not self.align or not language:
            return None
        loaded = _load_align_model(language, self.align_model, self.device)
        if loaded is None:
            return None
        import whisperx

        align_model, metadata = loaded
        try:
            res = whisperx.align(chunks, align_model, metadata, audio, self.device)
        except LookupError as exc:  # NLTK's punkt_tab sentence data: downloaded on first use
            log.warning(
                "whisperx alignment unavailable (%s); using faster-whisper word timestamps",
                str(exc).strip().splitlines()[0][:160] if str(exc).strip() else "LookupError",
            )
            return None
        words = [w for s in res["segments"] for w in s.get("words", [])]
        return _fill_word_times(words) if words else None

    def _dtw_words(
        self, chunk: dict[str, Any], audio: np.ndarray, language: str | None
    ) -> list[dict[str, Any]]:
        """faster-whisper's cross-attention DTW word times for one VAD chunk's known text."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import merge_punctuations

        wm = self._pipe.model
        f1, f2 = int(chunk["start"] * SAMPLE_RATE), int(chunk["end"] * SAMPLE_RATE)
        features = wm.feature_extractor(audio[f1:f2])[..., :-1]  # (n_mels, frames), 100 fps
        num_frames = int(features.shape[-1])
        encoder_output = wm.encode(pad_or_trim(features))  # (1, 1500, d_model)
        tok = Tokenizer(wm.hf_tokenizer, self.multilingual, task="transcribe", language=language)
        tokens = [t for t in tok.encode(" " + str(chunk["text"]).strip()) if t < tok.eot]
        if not tokens:
            return []
        alignment = wm.find_alignment(tok, [tokens], encoder_output, num_frames)[0]
        merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
        return [
            {
                "start": float(chunk["start"]) + float(t["start"]),
                "end": float(chunk["start"]) + float(t["end"]),
                "word": t["word"],
                "score": float(t["probability"]),
            }
            for t in alignment
            if t["word"]
        ]

    def _result(self, language: str | None, segments: list[dict[str, Any]], src: str) -> ASRResult:
        return ASRResult(
            language=language,
            segments=segments,
            word_timestamps=src,
            backend=self.name,
            model=self.model.name,
            model_sha256=self.model.sha256,
        )


def _fill_word_times(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """wav2vec2 leaves words it cannot align (digits, symbols) untimed: borrow neighbours' times."""
    out: list[dict[str, Any]] = []
    last_end = next((float(w["end"]) for w in words if "end" in w), 0.0)
    for i, w in enumerate(words):
        if "start" in w and "end" in w:
            start, end = float(w["start"]), float(w["end"])
        else:
            nxt = next((float(v["start"]) for v in words[i + 1 :] if "start" in v), last_end)
            start, end = last_end, max(last_end, nxt)
        word = str(w["word"])
        out.append(
            {"start": start, "end": end, "word": " " + word, "score": float(w.get("score", 0.0))}
        )
        last_end = end
    return out


# ------------------------------------------------------------------------------------------------
# Factory with a per-process instance cache
# ------------------------------------------------------------------------------------------------

_BACKENDS: dict[tuple[Any, ...], ASRBackend] = {}
_BACKENDS_LOCK = threading.Lock()


def make_asr_backend(cfg: ASRConfig) -> ASRBackend:
    """The backend ``cfg.backend`` with ``cfg.model``; built once per process and config."""
    resolved = resolve_asr_model(cfg.model, cfg.model_cache_dir)
    key = (cfg, resolved.path, resolved.sha256)
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            backend: ASRBackend
            if cfg.backend == "faster-whisper":
                backend = FasterWhisperASR(
                    resolved,
                    cfg.device,
                    cfg.compute_type,
                    beam_size=cfg.beam_size,
                    max_sentence_s=cfg.max_sentence_s,
                )
            elif cfg.backend == "whisperx":
                backend = WhisperXASR(
                    resolved,
                    cfg.device,
                    cfg.compute_type,
                    batch_size=cfg.batch_size,
                    vad_method=cfg.vad_method,
                    align=cfg.align,
                    align_model=cfg.align_model,
                    language=cfg.language,
                    beam_size=cfg.beam_size,
                    max_sentence_s=cfg.max_sentence_s,
                )
            else:
                raise ASRError(f"unknown asr_backend {cfg.backend!r}")
            _BACKENDS[key] = backend
        return _BACKENDS[key]
