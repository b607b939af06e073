"""Deterministic coarse chapters and Temporal Chain-of-Thought (no LLM).

The paper's coarse pass (ARC-Hunyuan-Video) yields an initial TCoT and rough chapters that a later
LLM pass refines. Offline we build the same structures from the signals we have:

- boundaries at shot changes between 1 fps frames (plus topic shifts of the narration, measured
  with sentence embeddings in ``storyline.topic_shifts``, where no shot change is near). A change
  seen at frame t happened somewhere in (t_prev, t]; when an ASR sentence gap falls in that
  interval the boundary snaps to the middle of the gap (narration and cuts usually agree),
  otherwise to the interval's midpoint;
- chapters shorter than ``min_chapter_s`` merge into their shorter neighbour;
- title: the chapter's most characteristic on-screen text line (confidence-weighted frame
  support, down-weighted when other chapters show it too), else its first spoken words;
- summary: its ASR sentences joined and truncated;
- TCoT: one observation per ASR sentence (clipped to its chapter), or one per chapter without
  speech, pairing what is on screen (OCR text, colours) with what is said.

Chapters are contiguous and cover [0, duration] exactly; times are rounded to 3 decimals.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

from hivid.annotate.frames import color_name

TITLE_WORDS = 6
"""Words of speech used as a title when a chapter shows no text."""


def _r(x: float) -> float:
    return round(float(x), 3)


def refine_boundary(t_prev: float, t: float, segments: list[dict[str, Any]]) -> float:
    """Boundary time for a shot change detected at frame time ``t`` (previous frame ``t_prev``)."""
    gaps = []
    for a, b in itertools.pairwise(segments):
        mid = (float(a["end"]) + float(b["start"])) / 2
        if t_prev < mid <= t:
            gaps.append((float(b["start"]) - float(a["end"]), mid))
    if gaps:
        return max(gaps)[1]  # the widest pause in the interval
    return (t_prev + t) / 2


def chapter_bounds(
    frames: list[dict[str, Any]],
    segments: list[dict[str, Any]],
    duration: float,
    min_chapter_s: float,
    extra_cuts: list[float] | None = None,
) -> list[tuple[float, float]]:
    """Contiguous (start, end) spans covering [0, duration], cut at shot changes.

    ``extra_cuts`` (topic shifts) are added where no shot-change cut lies within
    ``min_chapter_s``.
    """
    if duration <= 0:
        return [(0.0, 0.0)]
    cuts: list[float] = []
    for prev, cur in itertools.pairwise(frames):
        if cur.get("shot_change"):
            c = refine_boundary(float(prev["t"]), float(cur["t"]), segments)
            if 0.0 < c < duration and (not cuts or c > cuts[-1]):
                cuts.append(c)
    shot_cuts = list(cuts)
    for c in extra_cuts or []:
        if 0.0 < c < duration and all(abs(c - x) >= min_chapter_s for x in shot_cuts):
            cuts.append(c)
    cuts.sort()
    edges = [0.0, *cuts, float(duration)]
    spans = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    return merge_short(spans, min_chapter_s)


def merge_short(spans: list[tuple[float, float]], min_len: float) -> list[tuple[float, float]]:
    """Merge spans shorter than ``min_len`` into their shorter neighbour until none is left."""
    spans = list(spans)
    while len(spans) > 1:
        lengths = [b - a for a, b in spans]
        i = min(range(len(spans)), key=lambda k: lengths[k])
        if lengths[i] >= min_len:
            break
        if i == 0:
            j = 1
        elif i == len(spans) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] <= lengths[i + 1] else i + 1
        lo, hi = min(i, j), max(i, j)
        spans[lo : hi + 1] = [(spans[lo][0], spans[hi][1])]
    return spans


def _in_span(t: float, start: float, end: float, last: bool) -> bool:
    return start <= t < end or (last and t == end)


def sentences_in(
    segments: list[dict[str, Any]], start: float, end: float, last: bool
) -> list[dict[str, Any]]:
    """Sentences whose midpoint lies in the span (each sentence belongs to one chapter)."""
    return [
        s for s in segments if _in_span((float(s["start"]) + float(s["end"])) / 2, start, end, last)
    ]


def frames_in(
    frames: list[dict[str, Any]], start: float, end: float, last: bool = False
) -> list[dict[str, Any]]:
    inside = [f for f in frames if _in_span(float(f["t"]), start, end, last)]
    if inside or not frames:
        return inside
    mid = (start + end) / 2  # a span shorter than the frame spacing: take the nearest frame
    return [min(frames, key=lambda f: abs(float(f["t"]) - mid))]


def line_support(frames: list[dict[str, Any]]) -> dict[str, float]:
    """Summed OCR confidence of each distinct line over the frames."""
    support: dict[str, float] = defaultdict(float)
    for f in frames:
        for text, score in {o["text"]: o["score"] for o in f.get("ocr", [])}.items():
            support[text] += float(score)
    return support


def best_text_line(
    frames: list[dict[str, Any]], doc_freq: dict[str, int] | None = None, n_chapters: int = 1
) -> str | None:
    """The chapter's most characteristic OCR line, or None when it shows no text.

    Support (summed confidence) is weighted by log(1 + n_chapters / chapters showing the line), so
    text shown throughout the video (brand, price) loses to text specific to this chapter; longer
    lines win ties.
    """
    support = line_support(frames)
    if not support:
        return None
    df = doc_freq or {}

    def weight(k: str) -> float:
        return support[k] * math.log(1.0 + n_chapters / max(1, df.get(k, 1)))

    return max(support, key=lambda k: (round(weight(k), 6), len(k), k))


def truncate(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut at a word boundary when there is one, with "…"."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if text[max_chars - 1] != " " and " " in cut[max_chars // 2 :]:
        cut = cut[: cut.rfind(" ")]  # do not end on a partial word
    return cut.rstrip(" ,;:") + "…"


def _first_words(text: str, n: int = TITLE_WORDS) -> str:
    words = text.split()
    if len(words) > 1:
        return " ".join(words[:n]).rstrip(".,!?;:")
    return text[: n * 3].rstrip(".,!?;:。，！？")  # unspaced scripts (zh): characters


def screen_phrase(frames: list[dict[str, Any]]) -> str:
    """'text "A", "B"; colours red, white' (or 'no readable text; ...') for the frames."""
    texts: list[str] = []
    for f in frames:
        for o in f.get("ocr", []):
            if o["text"] not in texts:
                texts.append(o["text"])
    colours: list[str] = []
    for f in frames:
        for c in f.get("colors", []):
            name = color_name(c)
            if name not in colours:
                colours.append(name)
    parts = ["text " + ", ".join(f'"{t}"' for t in texts[:4]) if texts else "no readable text"]
    if colours:
        parts.append("colours " + ", ".join(colours[:3]))
    return "; ".join(parts)


def observation(frames: list[dict[str, Any]], speech: str | None) -> str:
    screen = screen_phrase(frames)
    parts = [f"On screen: {screen}."]
    if speech:
        parts.append(f'Narration: "{speech}"')
    return " ".join(parts)


def build_chapters(
    frames: list[dict[str, Any]],
    segments: list[dict[str, Any]],
    duration: float,
    min_chapter_s: float = 4.0,
    max_summary_chars: int = 300,
    extra_cuts: list[float] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tcot, chapters) for one video; see the module docstring."""
    spans = chapter_bounds(frames, segments, duration, min_chapter_s, extra_cuts)
    chapter_frames = [
        frames_in(frames, a, b, i == len(spans) - 1) for i, (a, b) in enumerate(spans)
    ]
    doc_freq: dict[str, int] = defaultdict(int)
    for fr in chapter_frames:
        for text in line_support(fr):
            doc_freq[text] += 1
    chapters: list[dict[str, Any]] = []
    tcot: list[dict[str, Any]] = []
    for i, (start, end) in enumerate(spans):
        last = i == len(spans) - 1
        fr = chapter_frames[i]
        sents = sentences_in(segments, start, end, last)
        speech = " ".join(str(s["text"]).strip() for s in sents).strip()
        title = best_text_line(fr, doc_freq, len(spans)) or (
            _first_words(speech) if speech else f"Chapter {i + 1}"
        )
        summary = truncate(speech, max_summary_chars) if speech else observation(fr, None)
        chapters.append({"start": _r(start), "end": _r(end), "title": title, "summary": summary})
        if not sents:
            tcot.append({"start": _r(start), "end": _r(end), "observation": observation(fr, None)})
            continue
        for s in sents:
            s0, s1 = max(start, float(s["start"])), min(end, float(s["end"]))
            if s1 < s0:
                s1 = s0
            tcot.append(
                {
                    "start": _r(s0),
                    "end": _r(s1),
                    "observation": observation(frames_in(frames, s0, s1, last), s["text"]),
                }
            )
    return tcot, chapters
