"""The demo corpus's frames: per-chapter scenes (background, layout, on-screen text), the drawn
product, and the integer RGB->I420 conversion the bit-exact encoder of ``hivid.data.demo`` reads.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hivid.data.demo_catalog import _COLOURS, Product


class DemoError(RuntimeError):
    """The demo corpus cannot be generated with the given config (the message says why)."""


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
