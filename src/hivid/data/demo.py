"""Deterministic synthetic corpus of narrated e-commerce product videos (``hivid demo-data``).

Each video advertises one product drawn from a small pool (brand, category, name, attributes,
price) and is split into 2-6 chapters that follow the E-SyncVidStory script labels (a hook, then
e.g. design / material / trial / effect chapters, then a call to action). Every chapter has 1-3
narration sentences spoken by espeak-ng (``hivid.data.tts``), a title and a one-sentence summary.
Frames show a drawn product that drifts a little, plus on-screen text (brand, name, price, one
attribute) that OCR can read; each chapter has its own background colour and layout so chapter
boundaries are hard shot changes.

Layout written under ``out``::

    videos/<video_id>.mp4         H.264 (libx264) + AAC narration, byte-identical per (seed, i)
    metadata/<video_id>.json      product metadata (title, brand, category, attributes, price)
    ground_truth/<video_id>.json  sentences with exact audio times, chapters, per-chapter tcot

Video ``i`` depends only on ``(seed, i)``, so ``videos=2`` writes exactly the first two videos of
``videos=8``. Reproducibility: a string-seeded ``random.Random`` (sha512-based, independent of
PYTHONHASHSEED), deterministic TTS, an integer RGB->YUV conversion in numpy (no swscale SIMD
paths), single-threaded bitexact encoders and muxer, and fixed timestamps.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from hivid.configbase import require
from hivid.data.demo_catalog import (
    _ATTR_SENTENCES as _ATTR_SENTENCES,
)
from hivid.data.demo_catalog import (
    _BRANDS as _BRANDS,
)
from hivid.data.demo_catalog import (  # re-exported: the catalog lived here
    _COLOURS as _COLOURS,
)
from hivid.data.demo_catalog import (
    _HOOK_LABELS as _HOOK_LABELS,
)
from hivid.data.demo_catalog import (
    _MIDDLE_LABELS as _MIDDLE_LABELS,
)
from hivid.data.demo_catalog import (
    _SENTENCES as _SENTENCES,
)
from hivid.data.demo_catalog import (
    _SUMMARIES as _SUMMARIES,
)
from hivid.data.demo_catalog import (
    _TEMPLATES as _TEMPLATES,
)
from hivid.data.demo_catalog import (
    _TITLES as _TITLES,
)
from hivid.data.demo_catalog import (
    _UNITS_SPOKEN as _UNITS_SPOKEN,
)
from hivid.data.demo_catalog import (
    Product as Product,
)
from hivid.data.demo_catalog import (
    _fields as _fields,
)
from hivid.data.demo_catalog import (
    _spoken as _spoken,
)
from hivid.data.demo_catalog import (
    _Template as _Template,
)
from hivid.data.demo_catalog import (
    chapter_sentences as chapter_sentences,
)
from hivid.data.demo_catalog import (
    make_product as make_product,
)
from hivid.data.demo_catalog import (
    plan_labels as plan_labels,
)
from hivid.data.demo_frames import (
    _BACKGROUNDS as _BACKGROUNDS,
)
from hivid.data.demo_frames import (
    _LAYOUTS as _LAYOUTS,
)
from hivid.data.demo_frames import (
    _SWAY_PERIOD_S as _SWAY_PERIOD_S,
)
from hivid.data.demo_frames import (  # re-exported: the frames lived here
    DemoError as DemoError,
)
from hivid.data.demo_frames import (
    _dist as _dist,
)
from hivid.data.demo_frames import (
    _draw_product as _draw_product,
)
from hivid.data.demo_frames import (
    _fit_font as _fit_font,
)
from hivid.data.demo_frames import (
    _font as _font,
)
from hivid.data.demo_frames import (
    _pick_backgrounds as _pick_backgrounds,
)
from hivid.data.demo_frames import (
    _render as _render,
)
from hivid.data.demo_frames import (
    _Scene as _Scene,
)
from hivid.data.demo_frames import (
    _scene as _scene,
)
from hivid.data.demo_frames import (
    rgb_to_yuv420p as rgb_to_yuv420p,
)
from hivid.data.tts import SAMPLE_RATE, synthesize

SCHEMA_VERSION = 1
_SILENCE_LEVEL = 64  # |sample| below this (int16) counts as silence when trimming TTS output
_AUDIO_FRAME = 1024  # AAC frame size in samples


@dataclass
class DemoConfig:
    """How many synthetic videos to generate and how they look and sound."""

    videos: int = 8
    """Number of videos (ids ``demo_000`` ... ``demo_{videos-1:03d}``)."""
    seed: int = 0
    """Corpus seed; video i is a pure function of (seed, i)."""
    width: int = 640
    """Frame width in pixels (even, >= 320)."""
    height: int = 360
    """Frame height in pixels (even, >= 180)."""
    fps: int = 10
    """Frames per second; chapter boundaries fall on frame boundaries."""
    min_duration: float = 20.0
    """Shortest video in seconds (the spec range is 20-60 s; tests may use shorter videos)."""
    max_duration: float = 60.0
    """Longest video in seconds; narration is trimmed to fit."""
    min_chapters: int = 2
    """Fewest chapters per video (>= 2: a hook and a call to action)."""
    max_chapters: int = 6
    """Most chapters per video (<= 6)."""
    max_sentences_per_chapter: int = 3
    """Most narration sentences per chapter (each chapter has at least one)."""
    voice: str = "en-us"
    """espeak-ng voice of the narrator."""
    rate_wpm: int = 160
    """Narration speaking rate in words per minute."""
    crf: int = 26
    """libx264 constant rate factor (lower = larger files, sharper text)."""
    audio_bitrate: int = 48_000
    """AAC bit rate in bit/s."""

    def __post_init__(self) -> None:
        require(1 <= self.videos <= 1000, f"videos must be in 1..1000, got {self.videos}")
        require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        require(
            self.width >= 320 and self.width % 2 == 0,
            f"width must be even and >= 320, got {self.width}",
        )
        require(
            self.height >= 180 and self.height % 2 == 0,
            f"height must be even and >= 180, got {self.height}",
        )
        require(1 <= self.fps <= 60, f"fps must be in 1..60, got {self.fps}")
        require(
            4.0 <= self.min_duration <= self.max_duration <= 600.0,
            "need 4 <= min_duration <= max_duration <= 600, got "
            f"{self.min_duration}..{self.max_duration}",
        )
        require(
            2 <= self.min_chapters <= self.max_chapters <= 6,
            f"need 2 <= min_chapters <= max_chapters <= 6, got "
            f"{self.min_chapters}..{self.max_chapters}",
        )
        require(
            1 <= self.max_sentences_per_chapter <= 3,
            f"max_sentences_per_chapter must be in 1..3, got {self.max_sentences_per_chapter}",
        )
        require(80 <= self.rate_wpm <= 450, f"rate_wpm must be in 80..450, got {self.rate_wpm}")
        require(0 <= self.crf <= 51, f"crf must be in 0..51, got {self.crf}")
        require(
            8_000 <= self.audio_bitrate <= 320_000,
            f"audio_bitrate must be in 8000..320000, got {self.audio_bitrate}",
        )


# --------------------------------------------------------------------------------------------
# Timeline: place synthesized sentences inside chapters on the frame grid
# --------------------------------------------------------------------------------------------

_LEAD_S = 0.4  # silence before a chapter's first sentence (s)
_GAP_S = 0.35  # silence between sentences (s)
_TAIL_S = 0.4  # silence after a chapter's last sentence (s)
_MAX_STRETCH = 1.3  # a video lasts at most 1.3x its full script's minimal length (if >= min)


@dataclass
class _Chapter:
    label: str
    sentences: list[str]
    audio: list[np.ndarray]
    start_frame: int = 0
    end_frame: int = 0
    starts: tuple[int, ...] = ()  # sentence start samples in the whole track


def _trim(audio: np.ndarray) -> np.ndarray:
    """Drop leading/trailing near-silence so sentence times hug the speech."""
    loud = np.flatnonzero(np.abs(audio.astype(np.int32)) >= _SILENCE_LEVEL)
    if loud.size == 0:
        return audio[:0]
    return audio[loud[0] : loud[-1] + 1]


def _chapter_need(ch: _Chapter) -> float:
    speech = sum(a.size for a in ch.audio) / SAMPLE_RATE
    return _LEAD_S + speech + _GAP_S * (len(ch.audio) - 1) + _TAIL_S


def _split(total: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of integer ``total`` in proportion to ``weights``."""
    wsum = sum(weights)
    raw = [total * w / wsum for w in weights]
    out = [math.floor(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def _fit(chapters: list[_Chapter], target_s: float, cfg: DemoConfig, rng: random.Random) -> float:
    """Drop sentences until the narration fits the target; returns the final duration (s).

    The target is capped at ``_MAX_STRETCH`` times what the full script needs, so a video with
    little to say stays short instead of becoming mostly silence.
    """

    def need() -> float:  # chapters are whole frames long
        return sum(math.ceil(_chapter_need(c) * cfg.fps) for c in chapters) / cfg.fps

    target = max(cfg.min_duration, min(target_s, need() * _MAX_STRETCH))
    while need() > target:
        most = max(len(c.audio) for c in chapters)
        if most <= 1:
            break
        j = rng.choice([i for i, c in enumerate(chapters) if len(c.audio) == most])
        chapters[j].sentences.pop()
        chapters[j].audio.pop()
    if need() > math.floor(cfg.max_duration * cfg.fps + 1e-9) / cfg.fps:
        raise DemoError(
            f"narration of {len(chapters)} chapters needs {need():.1f} s > max_duration "
            f"{cfg.max_duration} s: raise max_duration or lower max_chapters"
        )
    return max(target, need())


def _layout(
    chapters: list[_Chapter], duration_s: float, cfg: DemoConfig, rng: random.Random
) -> int:
    """Assign frame ranges and sentence sample offsets; returns the total number of frames."""
    fps = cfg.fps
    spf = SAMPLE_RATE / fps  # samples per frame (may be fractional)
    min_frames = [math.ceil(_chapter_need(c) * fps) for c in chapters]
    # Whole frames in [min_duration, max_duration] (_fit made sum(min_frames) fit below max).
    wanted = min(math.ceil(duration_s * fps - 1e-9), math.floor(cfg.max_duration * fps + 1e-9))
    total = max(wanted, sum(min_frames))
    extra = _split(total - sum(min_frames), [0.5 + rng.random() for _ in chapters])
    frame = 0
    for ch, base, more in zip(chapters, min_frames, extra, strict=True):
        ch.start_frame, ch.end_frame = frame, frame + base + more
        frame = ch.end_frame
        s0 = round(ch.start_frame * spf)
        s1 = round(ch.end_frame * spf)
        speech = sum(a.size for a in ch.audio)
        fixed = round(_LEAD_S * SAMPLE_RATE) + round(_GAP_S * SAMPLE_RATE) * (len(ch.audio) - 1)
        slack = s1 - s0 - speech - fixed - round(_TAIL_S * SAMPLE_RATE)
        # Spread the slack evenly over the lead, the gaps and the tail (k + 1 slots).
        share = max(0, slack) // (len(ch.audio) + 1)
        pos = s0 + round(_LEAD_S * SAMPLE_RATE) + share
        starts = []
        for a in ch.audio:
            starts.append(pos)
            pos += a.size + round(_GAP_S * SAMPLE_RATE) + share
        ch.starts = tuple(starts)
    return frame


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _video_codec() -> str:
    import av

    if "libx264" not in av.codecs_available:
        raise DemoError("this PyAV build has no libx264 encoder (needed for H.264 demo videos)")
    return "libx264"


def encode_mp4(
    path: Path,
    frames: Callable[[int], np.ndarray],
    n_frames: int,
    audio: np.ndarray,
    cfg: DemoConfig,
) -> None:
    """Write an H.264 + AAC mp4 to ``path`` reproducibly.

    ``frames(i)`` returns frame i as planar I420, a (H*3/2, W) uint8 array (``rgb_to_yuv420p``);
    ``audio`` is int16 mono at 22 050 Hz.
    Packets are produced in presentation order (each video frame, then the audio up to its end),
    so the muxer's interleaving is a function of the inputs only.
    """
    import av
    from av.bitstream import BitStreamFilterContext, bitstream_filters_available

    container = av.open(
        str(path),
        mode="w",
        format="mp4",
        # bitexact: no "encoder"/version tags and zero creation times in the mov header.
        container_options={"fflags": "+bitexact", "movflags": "+faststart"},
    )
    try:
        video = container.add_stream(  # a VideoStream for a video codec
            _video_codec(),
            rate=cfg.fps,
            options={
                "flags": "+bitexact",
                "threads": "1",
                "preset": "veryfast",
                "crf": str(cfg.crf),
                "g": str(cfg.fps * 10),
            },
        )
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height = cfg.width, cfg.height
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, cfg.fps)
        video.codec_context.thread_count = 1
        sound = container.add_stream(
            "aac",
            rate=SAMPLE_RATE,
            options={"flags": "+bitexact", "threads": "1", "aac_coder": "fast"},
        )
        assert isinstance(sound, av.audio.stream.AudioStream)
        sound.layout = "mono"
        sound.bit_rate = cfg.audio_bitrate
        sound.time_base = Fraction(1, SAMPLE_RATE)
        sound.codec_context.thread_count = 1

        pcm = (audio.astype(np.float32) / 32768.0).reshape(1, -1)  # (channels=1, samples)
        next_sample = 0

        def push_audio(until: int) -> None:
            nonlocal next_sample
            while next_sample < until:
                n = min(_AUDIO_FRAME, pcm.shape[1] - next_sample)
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(pcm[:, next_sample : next_sample + n]),
                    format="fltp",
                    layout="mono",
                )
                frame.sample_rate = SAMPLE_RATE
                frame.pts = next_sample
                frame.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(sound.encode(frame))
                next_sample += n

        # libx264 always writes its version and option string as an SEI NAL unit (type 6) in the
        # first keyframe; drop SEI units so no encoder-version text ends up in the file.
        strip_sei = (
            BitStreamFilterContext("filter_units=remove_types=6", "h264")
            if "filter_units" in bitstream_filters_available
            else None
        )

        def mux_video(packets: list[av.Packet], filtered: bool = False) -> None:
            if strip_sei is not None and not filtered:
                packets = [q for p in packets for q in strip_sei.filter(p)]
            for q in packets:
                q.stream = video
            container.mux(packets)

        for i in range(n_frames):
            vf = av.VideoFrame.from_ndarray(frames(i), format="yuv420p")
            vf.pts = i
            vf.time_base = Fraction(1, cfg.fps)
            mux_video(video.encode(vf))
            push_audio(min(pcm.shape[1], round((i + 1) * SAMPLE_RATE / cfg.fps)))
        push_audio(pcm.shape[1])
        mux_video(video.encode(None))
        if strip_sei is not None:
            mux_video(strip_sei.filter(None), filtered=True)
        container.mux(sound.encode(None))
    finally:
        container.close()


# --------------------------------------------------------------------------------------------
# Atomic file output
# --------------------------------------------------------------------------------------------


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# One video
# --------------------------------------------------------------------------------------------


def video_id(i: int) -> str:
    """Id of the i-th demo video (``demo_000``)."""
    return f"demo_{i:03d}"


def _r3(x: float) -> float:
    return round(x, 3)


@dataclass
class DemoVideo:
    """Everything about one demo video except its pixels and samples."""

    video_id: str
    product: Product
    chapters: list[_Chapter]
    n_frames: int
    backgrounds: list[str]
    layouts: list[str]
    attribute_texts: list[str]

    def metadata(self) -> dict[str, Any]:
        p = self.product
        return {
            "schema_version": SCHEMA_VERSION,
            "video_id": self.video_id,
            "title": p.title,
            "brand": p.brand,
            "category": p.category,
            "attributes": dict(p.attributes),
            "price": {"amount": p.price, "currency": "USD"},
            "language": "en",
        }

    def ground_truth(self, fps: int) -> dict[str, Any]:
        fields = _fields(self.product)
        sentences, chapters, tcot = [], [], []
        for j, ch in enumerate(self.chapters):
            start, end = ch.start_frame / fps, ch.end_frame / fps
            for text, s0, a in zip(ch.sentences, ch.starts, ch.audio, strict=True):
                sentences.append(
                    {
                        "start": _r3(s0 / SAMPLE_RATE),
                        "end": _r3((s0 + a.size) / SAMPLE_RATE),
                        "text": text,
                    }
                )
            chapters.append(
                {
                    "start": _r3(start),
                    "end": _r3(end),
                    "label": ch.label,
                    "title": _TITLES[ch.label].format(**fields),
                    "summary": _SUMMARIES[ch.label].format(**fields),
                }
            )
            p = self.product
            said = " ".join(ch.sentences)
            tcot.append(
                {
                    "start": _r3(start),
                    "end": _r3(end),
                    "observation": (
                        f"A {p.colour} {p.category} from {p.brand} sways gently on a "
                        f"{self.backgrounds[j]} background; the on-screen text reads "
                        f'"{p.brand.upper()}", "{p.name}", "{p.price_text}" and '
                        f'"{self.attribute_texts[j]}". The narrator says: {said}'
                    ),
                }
            )
        return {
            "schema_version": SCHEMA_VERSION,
            "video_id": self.video_id,
            "duration": _r3(self.n_frames / fps),
            "language": "en",
            "sentences": sentences,
            "chapters": chapters,
            "tcot": tcot,
        }

    def audio_track(self, fps: int) -> np.ndarray:
        """The narration as int16 mono at 22 050 Hz, silence between sentences."""
        track = np.zeros(round(self.n_frames * SAMPLE_RATE / fps), dtype=np.int16)
        for ch in self.chapters:
            for s0, a in zip(ch.starts, ch.audio, strict=True):
                track[s0 : s0 + a.size] = a
        return track


def _attribute_text(key: str, value: str) -> str:
    return f"{key.capitalize()}: {value}"


def plan_video(cfg: DemoConfig, i: int) -> DemoVideo:
    """Script, narration audio and timeline of video ``i`` (a pure function of cfg and i)."""
    rng = random.Random(f"hivid-demo:{cfg.seed}:{i}")
    product = make_product(rng)
    n_ch = rng.randint(cfg.min_chapters, cfg.max_chapters)
    target = rng.uniform(cfg.min_duration, cfg.max_duration)
    chapters = []
    # Write every chapter with the most sentences allowed; _fit drops some to match the target.
    for label in plan_labels(rng, n_ch):
        texts = chapter_sentences(rng, product, label, cfg.max_sentences_per_chapter)
        audio = [_trim(synthesize(t, cfg.voice, cfg.rate_wpm)[0]) for t in texts]
        chapters.append(_Chapter(label, texts, audio))
    duration = _fit(chapters, target, cfg, rng)
    n_frames = _layout(chapters, duration, cfg, rng)
    backgrounds = _pick_backgrounds(rng, _COLOURS[product.colour], n_ch)
    first = rng.randrange(len(_LAYOUTS))
    layouts = [_LAYOUTS[(first + j) % len(_LAYOUTS)] for j in range(n_ch)]
    items = list(product.attributes.items())
    attribute_texts = [_attribute_text(*items[j % len(items)]) for j in range(n_ch)]
    return DemoVideo(
        video_id(i), product, chapters, n_frames, backgrounds, layouts, attribute_texts
    )


def write_video(out: Path, cfg: DemoConfig, i: int) -> str:
    """Generate video ``i`` with its metadata and ground truth under ``out``; returns its id."""
    plan = plan_video(cfg, i)
    scenes = [
        _scene(plan.product, bg, lay, attr, cfg.width, cfg.height)
        for bg, lay, attr in zip(plan.backgrounds, plan.layouts, plan.attribute_texts, strict=True)
    ]
    chapter_of = np.zeros(plan.n_frames, dtype=np.int64)
    for j, ch in enumerate(plan.chapters):
        chapter_of[ch.start_frame : ch.end_frame] = j

    # The product's sway repeats every _SWAY_PERIOD_S, so each chapter has only that many distinct
    # frames: render and convert each once.
    period = _SWAY_PERIOD_S * cfg.fps
    cache: dict[tuple[int, int], np.ndarray] = {}

    def frame(f: int) -> np.ndarray:
        j = int(chapter_of[f])
        key = (j, (f - plan.chapters[j].start_frame) % period)
        if key not in cache:
            cache[key] = rgb_to_yuv420p(_render(scenes[j], plan.product, key[1], cfg.fps))
        return cache[key]

    mp4 = out / "videos" / f"{plan.video_id}.mp4"
    tmp = _tmp_path(mp4)
    try:
        encode_mp4(tmp, frame, plan.n_frames, plan.audio_track(cfg.fps), cfg)
        os.replace(tmp, mp4)
    finally:
        tmp.unlink(missing_ok=True)
    _write_json(out / "metadata" / f"{plan.video_id}.json", plan.metadata())
    _write_json(out / "ground_truth" / f"{plan.video_id}.json", plan.ground_truth(cfg.fps))
    return plan.video_id


def generate_demo_corpus(
    out: Path,
    cfg: DemoConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Write ``cfg.videos`` demo videos with metadata and ground truth under ``out``.

    Returns the video ids written, in order. ``progress(done, total)`` is called after each video.
    Existing files with the same names are replaced atomically; other files are left alone.
    """
    out = Path(out)
    for sub in ("videos", "metadata", "ground_truth"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(cfg.videos):
        ids.append(write_video(out, cfg, i))
        if progress is not None:
            progress(i + 1, cfg.videos)
    return ids
