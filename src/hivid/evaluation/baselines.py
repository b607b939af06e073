"""Baselines the evaluate stage scores beside the model, on the same videos with the same evaluator.

A trained narrator is only worth promoting when it does better than what needs no training:

- ``trivial``: one chapter per detected shot (cuts at the annotation's shot changes, halfway
  between the frame before and the frame that changed, no merging, no speech), every chapter
  titled with the OCR'd product name: the on-screen text line closest to the product name in the
  metadata (difflib ratio), or without metadata the line shown most over the video;
- ``teacher``: the annotation pipeline's own chapters (the pseudo-labels the model is trained on:
  shot changes plus topic shifts, OCR titles, ASR summaries).

Both are built from the annotation record (``outputs/annotations/<video_id>.json``, schema in
``hivid.annotate.steps``); the promotion gate refuses a version that does not beat ``trivial``
by ``registry.promotion.baseline_margin`` (``hivid.tracking.promotion``).
"""

from __future__ import annotations

import difflib
import itertools
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

BASELINES: tuple[str, ...] = ("trivial", "teacher")
"""Baseline names; metrics are logged as ``baseline_<name>.<metric>``."""

DEFINITIONS = {
    "trivial": "one chapter per detected shot (annotation shot changes), titled with the OCR'd "
    "product name (the on-screen line closest to the metadata name), no summary",
    "teacher": "the annotation pipeline's chapters (shot changes + topic shifts, OCR titles, ASR "
    "summaries): the model's training targets",
}


def metric_key(baseline: str, metric: str) -> str:
    """``baseline_trivial.SODA_c``: how a baseline's metric is named in metrics.json and MLflow."""
    return f"baseline_{baseline}.{metric}"


def shot_spans(frames: list[dict[str, Any]], duration: float) -> list[tuple[float, float]]:
    """Contiguous spans covering [0, duration], one per shot of the 1 fps frames."""
    if duration <= 0:
        return []
    items = sorted(frames, key=lambda f: float(f["t"]))
    cuts: list[float] = []
    for prev, cur in itertools.pairwise(items):
        if cur.get("shot_change"):
            c = round((float(prev["t"]) + float(cur["t"])) / 2, 3)
            if 0.0 < c < duration and (not cuts or c > cuts[-1]):
                cuts.append(c)
    edges = [0.0, *cuts, round(float(duration), 3)]
    return list(itertools.pairwise(edges))


def _lines(frames: list[dict[str, Any]]) -> dict[str, float]:
    support: dict[str, float] = defaultdict(float)
    for f in frames:
        for o in f.get("ocr") or []:
            text = " ".join(str(o.get("text", "")).split())
            if text:
                support[text] += float(o.get("score", 1.0))
    return support


def product_name_line(frames: list[dict[str, Any]], metadata: Mapping[str, Any]) -> str:
    """The OCR'd product name: the on-screen line most like the metadata's product name."""
    support = _lines(frames)
    ref = str(metadata.get("name") or metadata.get("title") or "")
    if not support:
        return ref.strip() or "Product"
    if ref.strip():
        r = ref.lower()

        def similarity(line: str) -> float:
            return difflib.SequenceMatcher(None, line.lower(), r).ratio()

        return max(support, key=lambda k: (round(similarity(k), 6), support[k], k))
    return max(support, key=lambda k: (support[k], len(k), k))


def trivial_chapters(
    record: Mapping[str, Any], duration: float, metadata: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The trivial baseline's chapters for one annotated video."""
    frames = list((record.get("frames") or {}).get("items") or [])
    title = product_name_line(frames, metadata)
    return [
        {"start": a, "end": b, "title": title, "summary": ""}
        for a, b in shot_spans(frames, duration)
    ]


def teacher_chapters(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The annotation pipeline's chapters (start, end, title, summary) for one video."""
    return [
        {
            "start": float(c["start"]),
            "end": float(c["end"]),
            "title": str(c.get("title", "")),
            "summary": str(c.get("summary", "")),
        }
        for c in record.get("chapters") or []
    ]


def baseline_chapters(
    name: str, record: Mapping[str, Any], duration: float, metadata: Mapping[str, Any]
) -> list[dict[str, Any]]:
    if name == "trivial":
        return trivial_chapters(record, duration, metadata)
    if name == "teacher":
        return teacher_chapters(record)
    raise ValueError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
