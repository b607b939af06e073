"""Frame-level descriptions at 1 fps: on-screen text (OCR) and dominant colours.

Offline there is no packaged VLM (see offline-models.md), so the describer here reads text with
RapidOCR (PP-OCRv4 zh/en, ONNX) and adds colours; a VLM describer implements the same Protocol.

Two cheap signals between consecutive sampled frames keep the pass fast and feed chapters:

- shot change: total-variation distance between joint RGB histograms (8 bins per channel)
  >= ``shot_threshold``;
- similarity compression: 1 - mean absolute difference of 64-px grey thumbnails against the last
  *described* frame; at >= ``similarity_threshold`` the description is reused (``reused_from``)
  instead of running OCR again. Comparing against the last described frame (not the previous one)
  means slow drift still triggers a fresh description once it adds up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from hivid.data.decode import SampledFrame

_HIST_BINS = 8  # per channel: 8^3 = 512 joint bins
_THUMB_SIDE = 64


@runtime_checkable
class FrameDescriber(Protocol):
    """Describes one RGB uint8 (H, W, 3) frame as a JSON-able dict."""

    name: str

    def describe(self, image: np.ndarray) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------------------------
# Pure image functions
# ------------------------------------------------------------------------------------------------


def color_histogram(image: np.ndarray, bins: int = _HIST_BINS) -> np.ndarray:
    """Normalised joint RGB histogram, shape (bins**3,), sums to 1."""
    q = (image.reshape(-1, 3).astype(np.int32) * bins) // 256  # (N, 3) bin per channel
    idx = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    hist = np.bincount(idx, minlength=bins**3).astype(np.float64)
    return hist / max(1.0, hist.sum())


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance in [0, 1] between two normalised histograms."""
    return float(0.5 * np.abs(a - b).sum())


def thumbnail(image: np.ndarray, side: int = _THUMB_SIDE) -> np.ndarray:
    """Grey float32 thumbnail in [0, 1] whose longer side is ``side`` (box filter)."""
    img = Image.fromarray(image).convert("L")
    w, h = img.size
    s = side / max(w, h)
    img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def frame_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """1 - mean |a - b| of two thumbnails from ``thumbnail`` (1.0 = identical)."""
    if a.shape != b.shape:
        return 0.0
    return float(1.0 - np.abs(a - b).mean())


def dominant_colors(image: np.ndarray, n: int = 3, min_share: float = 0.05) -> list[str]:
    """Up to ``n`` dominant colours as "#rrggbb", most common first.

    Pixels are quantised to 8 levels per channel; each of the most populated bins covering at least
    ``min_share`` of the frame reports the mean colour of its own pixels (not the bin centre).
    """
    px = image.reshape(-1, 3)
    if px.shape[0] > 4096:  # a regular subsample is enough for shares of >= 5 %
        px = px[:: px.shape[0] // 4096]
    q = (px.astype(np.int32) * _HIST_BINS) // 256
    idx = (q[:, 0] * _HIST_BINS + q[:, 1]) * _HIST_BINS + q[:, 2]
    counts = np.bincount(idx, minlength=_HIST_BINS**3)
    out: list[str] = []
    for b in np.argsort(-counts, kind="stable")[:n]:
        if counts[b] < min_share * px.shape[0]:
            break
        mean = px[idx == b].mean(axis=0)
        out.append("#{:02x}{:02x}{:02x}".format(*(round(c) for c in mean)))
    return out


_NAMED = {
    "black": (20, 20, 20),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "red": (200, 40, 40),
    "orange": (240, 130, 30),
    "yellow": (235, 205, 40),
    "green": (50, 150, 70),
    "teal": (30, 150, 150),
    "blue": (40, 90, 200),
    "purple": (130, 60, 170),
    "pink": (235, 120, 170),
    "brown": (130, 80, 40),
}


def color_name(hex_color: str) -> str:
    """Nearest basic colour name for "#rrggbb" (for human-readable observations)."""
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
    return min(_NAMED, key=lambda k: float(((np.array(_NAMED[k]) - rgb) ** 2).sum()))


# ------------------------------------------------------------------------------------------------
# OCR describer
# ------------------------------------------------------------------------------------------------


class OCRFrameDescriber:
    """RapidOCR text lines (reading order) + dominant colours."""

    name = "rapidocr-onnxruntime+colors"

    def __init__(self, min_score: float = 0.5, n_colors: int = 3) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.min_score = min_score
        self.n_colors = n_colors
        self._engine = RapidOCR()

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
            )
        # RapidOCR treats ndarrays as OpenCV BGR.
        result, _ = self._engine(np.ascontiguousarray(image[..., ::-1]))
        lines = []
        for box, text, score in result or []:
            if float(score) < self.min_score or not str(text).strip():
                continue
            pts = np.asarray(box, dtype=np.float64)  # (4, 2) corner points x, y
            lines.append((float(pts[:, 1].min()), float(pts[:, 0].min()), str(text), float(score)))
        # Reading order: rows top to bottom (row height ~ half a text line), then left to right.
        lines.sort(key=lambda x: (round(x[0] / 16), x[1]))
        ocr: list[dict[str, Any]] = [
            {"text": t.strip(), "score": round(s, 3)} for _, _, t, s in lines
        ]
        return {
            "ocr": ocr,
            "ocr_text": " ".join(str(o["text"]) for o in ocr),
            "colors": dominant_colors(image, self.n_colors),
        }


_DESCRIBERS: dict[tuple[float, int], OCRFrameDescriber] = {}
_DESCRIBERS_LOCK = threading.Lock()


def get_ocr_describer(min_score: float = 0.5, n_colors: int = 3) -> OCRFrameDescriber:
    """One OCR engine per process (loading the ONNX sessions takes ~1 s)."""
    key = (min_score, n_colors)
    with _DESCRIBERS_LOCK:
        if key not in _DESCRIBERS:
            _DESCRIBERS[key] = OCRFrameDescriber(min_score, n_colors)
        return _DESCRIBERS[key]


# ------------------------------------------------------------------------------------------------
# The 1 fps pass
# ------------------------------------------------------------------------------------------------


def describe_frames(
    frames: Iterable[SampledFrame],
    describer: FrameDescriber | Callable[[np.ndarray], dict[str, Any]],
    shot_threshold: float = 0.4,
    similarity_threshold: float = 0.98,
) -> list[dict[str, Any]]:
    """Describe sampled frames with shot-change flags and similarity reuse.

    Returns items ``{"index", "t", "pts_time", "ocr_text", "ocr", "colors", "shot_change",
    "reused_from"}``; ``reused_from`` is the index of the described frame whose description was
    copied (None when this frame was described). A shot change always forces a fresh description.
    """
    describe = describer.describe if isinstance(describer, FrameDescriber) else describer
    items: list[dict[str, Any]] = []
    prev_hist: np.ndarray | None = None
    anchor: tuple[int, np.ndarray, dict[str, Any]] | None = None  # last described frame
    for f in frames:
        hist = color_histogram(f.image)
        shot = prev_hist is not None and histogram_distance(prev_hist, hist) >= shot_threshold
        prev_hist = hist
        thumb = thumbnail(f.image)
        reused: int | None = None
        if (
            anchor is not None
            and not shot
            and frame_similarity(anchor[1], thumb) >= similarity_threshold
        ):
            reused, desc = anchor[0], anchor[2]
        else:
            desc = describe(f.image)
            anchor = (f.index, thumb, desc)
        item = {
            "index": f.index,
            "t": round(f.t, 3),
            "pts_time": round(f.pts_time, 3),
            "ocr_text": desc.get("ocr_text", ""),
            "ocr": [dict(o) for o in desc.get("ocr", [])],
            "colors": list(desc.get("colors", [])),
            "shot_change": bool(shot),
            "reused_from": reused,
        }
        if "caption" in desc:  # VLM describers
            item["caption"] = str(desc["caption"])
        items.append(item)
    return items
