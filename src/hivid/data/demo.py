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
from PIL import Image, ImageDraw, ImageFont

from hivid.configbase import require
from hivid.data.tts import SAMPLE_RATE, synthesize

SCHEMA_VERSION = 1
_SILENCE_LEVEL = 64  # |sample| below this (int16) counts as silence when trimming TTS output
_AUDIO_FRAME = 1024  # AAC frame size in samples


class DemoError(RuntimeError):
    """The demo corpus cannot be generated with the given config (the message says why)."""


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
# Product pool
# --------------------------------------------------------------------------------------------

_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (206, 42, 48),
    "blue": (40, 92, 200),
    "green": (46, 150, 74),
    "black": (34, 34, 38),
    "white": (236, 236, 232),
    "pink": (236, 120, 170),
    "yellow": (240, 200, 40),
    "purple": (128, 64, 170),
    "orange": (240, 128, 30),
    "teal": (30, 150, 150),
}

# Spoken form of units so the narration (and hence the ASR transcript) uses words.
_UNITS_SPOKEN = {"ml": "milliliters", "L": "liters", "mm": "millimeters", "h": "hours"}


@dataclass(frozen=True)
class _Template:
    category: str
    names: tuple[str, ...]
    shape: str
    colours: tuple[str, ...]
    attributes: tuple[tuple[str, tuple[str, ...]], ...]
    price_range: tuple[int, int]


_TEMPLATES: tuple[_Template, ...] = (
    _Template(
        "shampoo",
        ("Herbal Shampoo", "Repair Shampoo", "Silk Shampoo"),
        "bottle",
        ("red", "green", "purple", "teal"),
        (("volume", ("250 ml", "500 ml", "750 ml")), ("scent", ("lavender", "mint", "coconut"))),
        (9, 29),
    ),
    _Template(
        "face cream",
        ("Hydra Cream", "Night Cream", "Glow Cream"),
        "jar",
        ("white", "pink", "blue"),
        (
            ("volume", ("30 ml", "50 ml")),
            ("ingredient", ("aloe vera", "shea butter", "hyaluronic acid")),
        ),
        (15, 59),
    ),
    _Template(
        "water bottle",
        ("Trail Bottle", "Steel Bottle", "Sport Bottle"),
        "flask",
        ("blue", "black", "green", "orange"),
        (("capacity", ("600 ml", "750 ml", "1 L")), ("material", ("stainless steel", "glass"))),
        (14, 39),
    ),
    _Template(
        "coffee mug",
        ("Travel Mug", "Morning Mug", "Cafe Mug"),
        "mug",
        ("white", "yellow", "teal", "red"),
        (("capacity", ("350 ml", "450 ml")), ("material", ("ceramic", "bamboo fiber"))),
        (12, 29),
    ),
    _Template(
        "backpack",
        ("City Backpack", "Hiking Pack", "Laptop Backpack"),
        "bag",
        ("black", "green", "blue", "orange"),
        (("capacity", ("20 L", "28 L", "35 L")), ("material", ("nylon", "canvas", "leather"))),
        (39, 129),
    ),
    _Template(
        "wireless earbuds",
        ("Air Buds", "Sport Earbuds", "Studio Buds"),
        "round",
        ("white", "black", "blue"),
        (("battery", ("24 h", "30 h", "36 h")), ("feature", ("noise cancelling", "water proof"))),
        (29, 149),
    ),
    _Template(
        "yoga mat",
        ("Flow Mat", "Grip Mat", "Studio Mat"),
        "roll",
        ("purple", "teal", "pink", "green"),
        (("thickness", ("4 mm", "6 mm", "8 mm")), ("material", ("natural rubber", "cork"))),
        (19, 79),
    ),
    _Template(
        "bluetooth speaker",
        ("Boom Box", "Pocket Speaker", "Party Speaker"),
        "box",
        ("black", "red", "blue", "yellow"),
        (("battery", ("12 h", "20 h")), ("feature", ("deep bass", "water proof"))),
        (25, 99),
    ),
)

_BRANDS: tuple[str, ...] = (
    "Aquavita",
    "Lumora",
    "Nordvik",
    "Veltra",
    "Solenne",
    "Kairo",
    "Brisa",
    "Zenthe",
    "Orvana",
    "Tessel",
    "Calyx",
    "Mirabelle",
)


@dataclass(frozen=True)
class Product:
    """One advertised product (what metadata/<id>.json describes)."""

    brand: str
    category: str
    name: str
    shape: str
    colour: str
    attributes: dict[str, str]
    price: float

    @property
    def title(self) -> str:
        first = next(iter(self.attributes.items()))[1] if self.attributes else ""
        return f"{self.brand} {self.name} {first}".strip()

    @property
    def price_text(self) -> str:
        return f"${self.price:.2f}"


def _spoken(value: str) -> str:
    """'500 ml' -> '500 milliliters' (numbers stay digits; espeak reads them)."""
    words = value.split()
    return " ".join(_UNITS_SPOKEN.get(w, w) for w in words)


def make_product(rng: random.Random) -> Product:
    """Draw one product from the pool with ``rng``."""
    tpl = rng.choice(_TEMPLATES)
    colour = rng.choice(tpl.colours)
    attrs = {key: rng.choice(values) for key, values in tpl.attributes}
    attrs["color"] = colour
    return Product(
        brand=rng.choice(_BRANDS),
        category=tpl.category,
        name=rng.choice(tpl.names),
        shape=tpl.shape,
        colour=colour,
        attributes=attrs,
        price=float(rng.randint(*tpl.price_range)),
    )


# --------------------------------------------------------------------------------------------
# Script: chapter labels, narration, titles, summaries
# --------------------------------------------------------------------------------------------

_HOOK_LABELS = ("sore_point", "social_proof")
# Middle chapters appear in this narrative order.
_MIDDLE_LABELS = (
    "design_of_appearance",
    "ingredient_material_texture",
    "specific_characteristics",
    "product_trial",
    "product_effect",
    "product_security",
    "authoritative_certificate",
    "production_process",
)

_SENTENCES: dict[str, tuple[str, ...]] = {
    "sore_point": (
        "Tired of a {category} that lets you down after one week?",
        "Still looking for a {category} that actually works?",
        "Most {category} products look great online and disappoint at home.",
        "Meet the {brand} {name}, the fix I was waiting for.",
    ),
    "social_proof": (
        "Over ten thousand buyers gave the {brand} {name} five stars.",
        "This {category} is the one my friends keep asking me about.",
        "The {brand} {name} sold out three times this month.",
    ),
    "design_of_appearance": (
        "Look at this {colour} finish on the {brand} {name}.",
        "The {name} comes in a clean {colour} design that looks great anywhere.",
        "Its compact shape fits easily in your hand or your bag.",
    ),
    "ingredient_material_texture": (
        "{attr_sentence}",
        "You can feel the quality of the {brand} {name} the moment you touch it.",
        "Nothing cheap here, just honest materials from {brand}.",
    ),
    "specific_characteristics": (
        "{attr_sentence}",
        "The {colour} {name} is light, simple and easy to clean.",
        "Everything about this {category} is made for daily use.",
    ),
    "product_trial": (
        "Let me try the {brand} {name} right now.",
        "I have been using this {category} every day this week.",
        "Watch what happens when I use the {name} for the first time.",
    ),
    "product_effect": (
        "After one week with the {name} the difference is easy to see.",
        "It does exactly what {brand} promised.",
        "The result feels clean, fresh and comfortable.",
    ),
    "product_security": (
        "The {brand} {name} is tested for safety and free from harsh chemicals.",
        "Every {name} comes with a two year warranty.",
        "It is safe for the whole family.",
    ),
    "authoritative_certificate": (
        "The {brand} {name} is certified by an independent lab.",
        "Experts gave {brand} a quality award this year.",
        "Every batch of this {category} passes strict quality tests.",
    ),
    "production_process": (
        "Every {name} is made in small batches and checked by hand.",
        "{brand} builds this {category} in its own factory.",
        "Each piece is inspected twice before it leaves the line.",
    ),
    "call_to_action": (
        "Get the {brand} {name} today for only {price_spoken}.",
        "Tap the link below and order your {colour} {name} now.",
        "At {price_spoken} this {category} is a deal you should not miss.",
    ),
}

_ATTR_SENTENCES: dict[str, str] = {
    "volume": "The {name} holds {value}, enough for weeks.",
    "scent": "The {value} scent of the {name} is fresh but never too strong.",
    "ingredient": "The {name} is enriched with {value} for soft skin.",
    "capacity": "With {value} of space, the {name} carries everything you need.",
    "material": "The {brand} {name} is made of {value}, solid and durable.",
    "battery": "The battery of the {name} lasts up to {value} on one charge.",
    "feature": "The {name} is {value}, so it keeps up with your day.",
    "thickness": "At {value} thick, the {name} cushions every move.",
}

_TITLES: dict[str, str] = {
    "sore_point": "Why you need a better {category}",
    "social_proof": "Why buyers love the {name}",
    "design_of_appearance": "The {colour} design of the {name}",
    "ingredient_material_texture": "What the {name} is made of",
    "specific_characteristics": "Key features of the {name}",
    "product_trial": "Trying the {name}",
    "product_effect": "Results with the {name}",
    "product_security": "Safety and warranty",
    "authoritative_certificate": "Certified quality from {brand}",
    "production_process": "How {brand} makes it",
    "call_to_action": "Get the {name} for {price}",
}

_SUMMARIES: dict[str, str] = {
    "sore_point": "The presenter raises a common problem with {category} products and "
    "introduces the {brand} {name}.",
    "social_proof": "The presenter says how popular the {brand} {name} is with buyers.",
    "design_of_appearance": "The presenter shows the {colour} design of the {brand} {name}.",
    "ingredient_material_texture": "The presenter explains what the {brand} {name} is made of.",
    "specific_characteristics": "The presenter lists the key features of the {brand} {name}.",
    "product_trial": "The presenter tries the {brand} {name} on camera.",
    "product_effect": "The presenter describes the results of using the {brand} {name}.",
    "product_security": "The presenter explains that the {brand} {name} is safe and covered "
    "by warranty.",
    "authoritative_certificate": "The presenter mentions the certificates and quality tests "
    "behind the {brand} {name}.",
    "production_process": "The presenter describes how {brand} makes the {name}.",
    "call_to_action": "The presenter asks viewers to buy the {brand} {name} for {price}.",
}


def _fields(product: Product) -> dict[str, str]:
    return {
        "brand": product.brand,
        "name": product.name,
        "category": product.category,
        "colour": product.colour,
        "price": product.price_text,
        "price_spoken": f"{int(product.price)} dollars",
    }


def plan_labels(rng: random.Random, n_chapters: int) -> list[str]:
    """Hook, ``n_chapters - 2`` middle chapters in narrative order, call to action."""
    middle = sorted(rng.sample(_MIDDLE_LABELS, n_chapters - 2), key=_MIDDLE_LABELS.index)
    return [rng.choice(_HOOK_LABELS), *middle, "call_to_action"]


def chapter_sentences(rng: random.Random, product: Product, label: str, k: int) -> list[str]:
    """``k`` distinct narration sentences of a chapter with ``label`` about ``product``."""
    fields = _fields(product)
    attr_keys = [key for key in product.attributes if key in _ATTR_SENTENCES]
    pool = list(_SENTENCES[label])
    picked = rng.sample(pool, min(k, len(pool)))
    out = []
    for template in picked:
        if template == "{attr_sentence}":
            key = rng.choice(attr_keys)
            value = _spoken(product.attributes[key])
            template = _ATTR_SENTENCES[key].replace("{value}", value)
        out.append(template.format(**fields))
    return out


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
# Frames
# --------------------------------------------------------------------------------------------

_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "navy": (24, 36, 84),
    "cream": (245, 232, 200),
    "forest green": (30, 84, 52),
    "light grey": (210, 212, 216),
    "maroon": (110, 26, 40),
    "sky blue": (120, 180, 230),
    "charcoal": (52, 54, 60),
    "peach": (250, 190, 150),
    "gold": (222, 172, 40),
    "lavender": (186, 160, 232),
}
_LAYOUTS = ("left", "right", "top")
_SWAY_PERIOD_S = 3  # the product sways back and forth once every 3 s


def _dist(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _pick_backgrounds(rng: random.Random, product_rgb: tuple[int, int, int], n: int) -> list[str]:
    """n background names far from the product colour, each far from the previous one.

    Every chapter also moves to the next layout, so together with the colour jump each chapter
    boundary is a hard cut that a histogram/pixel shot detector finds.
    """
    usable = [k for k, v in _BACKGROUNDS.items() if _dist(v, product_rgb) > 110]
    out = [rng.choice(usable)]
    while len(out) < n:
        prev = _BACKGROUNDS[out[-1]]
        others = sorted(
            (k for k in usable if k != out[-1]), key=lambda k: -_dist(_BACKGROUNDS[k], prev)
        )
        out.append(rng.choice(others[: max(1, len(others) // 2)]))
    return out


def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise DemoError("Pillow has no FreeType support: ImageFont.load_default(size=...) needs it")
    return font


def _fit_font(text: str, size: int, max_width: float) -> ImageFont.FreeTypeFont:
    font = _font(size)
    while size > 12 and font.getlength(text) > max_width:
        size -= 2
        font = _font(size)
    return font


def _draw_product(
    draw: ImageDraw.ImageDraw, shape: str, cx: int, cy: int, s: int, rgb: tuple[int, int, int]
) -> None:
    """Draw ``shape`` centred at (cx, cy) with size scale ``s`` (pixels)."""
    dark = tuple(max(0, c - 70) for c in rgb)
    light = tuple(min(255, c + 60) for c in rgb)
    outline = (20, 20, 20)
    if shape in ("bottle", "flask"):
        bw, bh = int(s * 0.42), int(s * 0.72)
        top = cy - bh // 2 + s // 8
        draw.rounded_rectangle(
            (cx - bw // 2, top, cx + bw // 2, cy + bh // 2 + s // 8),
            radius=s // 10,
            fill=rgb,
            outline=outline,
            width=2,
        )
        nw = bw // 3 if shape == "bottle" else bw // 2
        draw.rectangle((cx - nw // 2, top - s // 8, cx + nw // 2, top), fill=rgb, outline=outline)
        draw.rectangle((cx - nw // 2 - 2, top - s // 5, cx + nw // 2 + 2, top - s // 8), fill=dark)
        draw.rectangle((cx - bw // 2 + 4, cy, cx + bw // 2 - 4, cy + bh // 5), fill=light)
    elif shape == "jar":
        w, h = int(s * 0.7), int(s * 0.45)
        draw.rounded_rectangle(
            (cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2),
            radius=s // 12,
            fill=rgb,
            outline=outline,
            width=2,
        )
        draw.rectangle(
            (cx - w // 2 - 4, cy - h // 2 - s // 8, cx + w // 2 + 4, cy - h // 2), fill=dark
        )
        draw.rectangle((cx - w // 2 + 6, cy - h // 8, cx + w // 2 - 6, cy + h // 8), fill=light)
    elif shape == "mug":
        w, h = int(s * 0.5), int(s * 0.55)
        draw.ellipse(
            (cx + w // 2 - s // 8, cy - h // 4, cx + w // 2 + s // 6, cy + h // 4),
            outline=rgb,
            width=max(4, s // 16),
        )
        draw.rounded_rectangle(
            (cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2),
            radius=s // 14,
            fill=rgb,
            outline=outline,
            width=2,
        )
        draw.rectangle((cx - w // 2 + 4, cy - h // 2 + 6, cx + w // 2 - 4, cy - h // 3), fill=light)
    elif shape == "bag":
        w, h = int(s * 0.62), int(s * 0.72)
        draw.arc(
            (cx - w // 4, cy - h // 2 - s // 6, cx + w // 4, cy - h // 2 + s // 6),
            180,
            360,
            fill=dark,
            width=max(4, s // 18),
        )
        draw.rounded_rectangle(
            (cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2),
            radius=s // 6,
            fill=rgb,
            outline=outline,
            width=2,
        )
        draw.rounded_rectangle(
            (cx - w // 3, cy, cx + w // 3, cy + h // 3), radius=s // 14, fill=dark
        )
    elif shape == "round":
        r = int(s * 0.36)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=rgb, outline=outline, width=2)
        draw.ellipse((cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2), fill=light)
        draw.line((cx - r, cy, cx + r, cy), fill=dark, width=3)
    elif shape == "roll":
        w, h = int(s * 0.85), int(s * 0.3)
        draw.rounded_rectangle(
            (cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2),
            radius=h // 2,
            fill=rgb,
            outline=outline,
            width=2,
        )
        draw.ellipse(
            (cx + w // 2 - h, cy - h // 2, cx + w // 2, cy + h // 2), fill=light, outline=outline
        )
    else:  # box
        w, h = int(s * 0.7), int(s * 0.5)
        d = s // 8
        draw.polygon(
            [
                (cx - w // 2, cy - h // 2),
                (cx - w // 2 + d, cy - h // 2 - d),
                (cx + w // 2 + d, cy - h // 2 - d),
                (cx + w // 2, cy - h // 2),
            ],
            fill=light,
            outline=outline,
        )
        draw.rectangle(
            (cx - w // 2, cy - h // 2, cx + w // 2, cy + h // 2), fill=rgb, outline=outline, width=2
        )
        for k in range(3):
            y = cy - h // 4 + k * h // 4
            draw.ellipse((cx - 6, y - 6, cx + 6, y + 6), fill=dark)


@dataclass(frozen=True)
class _Scene:
    """What is static within a chapter: the background image and where the product goes."""

    background: Image.Image
    product_xy: tuple[int, int]
    product_size: int
    background_name: str
    attribute_text: str


def _scene(
    product: Product, background: str, layout: str, attribute_text: str, width: int, height: int
) -> _Scene:
    img = Image.new("RGB", (width, height), _BACKGROUNDS[background])
    draw = ImageDraw.Draw(img)
    pad = width // 32
    if layout == "top":
        panel = (pad, height * 58 // 100, width - pad, height - pad)
        product_xy, size = (width // 2, height * 29 // 100), height * 46 // 100
    elif layout == "left":
        panel = (width // 2, pad * 2, width - pad, height - pad * 2)
        product_xy, size = (width // 4, height // 2), height * 62 // 100
    else:
        panel = (pad, pad * 2, width // 2, height - pad * 2)
        product_xy, size = (width * 3 // 4, height // 2), height * 62 // 100
    draw.rounded_rectangle(panel, radius=pad, fill=(250, 250, 248), outline=(30, 30, 30), width=2)
    px0, py0, px1, py1 = panel
    inner = px1 - px0 - 2 * pad
    lines = [
        (product.brand.upper(), round(height * 0.06), (90, 90, 96)),
        (product.name, round(height * 0.095), (20, 20, 24)),
        (product.price_text, round(height * 0.11), (196, 20, 30)),
        (attribute_text, round(height * 0.07), (30, 60, 120)),
    ]
    fonts = [_fit_font(t, s, inner) for t, s, _ in lines]
    heights = [int(f.getbbox(t)[3]) for f, (t, _, _) in zip(fonts, lines, strict=True)]
    gap = max(2, (py1 - py0 - sum(heights)) // (len(lines) + 1))
    if layout == "top":  # wide, short panel: two columns (name block left, price block right)
        left = [(lines[0], fonts[0]), (lines[1], fonts[1])]
        right = [(lines[2], fonts[2]), (lines[3], fonts[3])]
        for col, x in ((left, px0 + pad), (right, (px0 + px1) // 2 + pad)):
            y = py0 + pad // 2
            for (text, _, colour), font in col:
                draw.text((x, y), text, font=font, fill=colour)
                y += int(font.getbbox(text)[3]) + pad // 2
    else:
        y = py0 + gap
        for (text, _, colour), font, h in zip(lines, fonts, heights, strict=True):
            draw.text((px0 + pad, y), text, font=font, fill=colour)
            y += h + gap
    return _Scene(img, product_xy, size, background, attribute_text)


def _render(scene: _Scene, product: Product, t: int, fps: int) -> np.ndarray:
    """Frame ``t`` (0-based within the chapter) as an (H, W, 3) uint8 RGB array."""
    img = scene.background.copy()
    draw = ImageDraw.Draw(img)
    phase = 2 * math.pi * t / (_SWAY_PERIOD_S * fps)
    amp = max(3, scene.product_size // 20)
    cx = scene.product_xy[0] + round(amp * math.sin(phase))
    cy = scene.product_xy[1] + round(amp * 0.6 * math.sin(2 * phase))
    _draw_product(draw, product.shape, cx, cy, scene.product_size, _COLOURS[product.colour])
    return np.asarray(img, dtype=np.uint8)


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H*3/2, W) uint8 planar I420, BT.601 limited range, integer math."""
    x = rgb.astype(np.int32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    # Chroma from the 2x2-averaged RGB (H/2, W/2).
    h, w = r.shape
    rs, gs, bs = (c[0::2, 0::2] + c[1::2, 0::2] + c[0::2, 1::2] + c[1::2, 1::2] for c in (r, g, b))
    u = ((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128
    v = ((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128
    planes = [y.astype(np.uint8).ravel(), u.astype(np.uint8).ravel(), v.astype(np.uint8).ravel()]
    return np.concatenate(planes).reshape(h * 3 // 2, w)


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
