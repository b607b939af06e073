"""Checks on what a narrator outputs, before anything scores, writes or draws it.

A generated chapter or TCoT step is a span ``{start, end, ...}`` that must lie inside the video
(``[0, duration]``) and, for chapters, follow the previous one. ``check_spans`` repairs what can be
repaired and drops the rest, and counts both, so a model that invents times past the end is seen
in the metrics (``pred_chapters_clipped`` / ``pred_chapters_rejected``) instead of being scored,
written to a WebVTT track or drawn on a timeline as if it were right. Rules, in this order:

1. non-finite times, a start after the end, or a span starting at or after the end of the video:
   rejected (``malformed``, ``past_end``);
2. an end past the video's end is clipped to it, a negative start to 0 (``clipped``);
3. spans are put in time order (``reordered`` counts the spans that started before an earlier
   one);
4. chapters only: a start before the previous chapter's end is moved to that end (``clipped``);
   a chapter left empty by that overlapped the previous one entirely (``rejected``: ``overlap``);
5. a span of zero length after clipping is rejected (``empty``).

An unknown duration (None, 0 or not finite) skips the duration rules; the ordering rules still run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

EPS = 1e-6


@dataclass
class SpanCheck:
    """What ``check_spans`` kept, and what it changed or dropped and why."""

    kept: list[dict[str, Any]]
    """The valid spans, in time order (copies: the input is not modified)."""
    checked: int = 0
    """Spans looked at."""
    clipped: int = 0
    """Spans whose start or end was moved (into the video, or off the previous chapter)."""
    rejected: int = 0
    """Spans dropped."""
    reordered: int = 0
    """Spans that started before one listed earlier (then sorted by start)."""
    notes: list[str] = field(default_factory=list)
    """One line per change, naming the span and the reason."""

    def counts(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "kept": len(self.kept),
            "clipped": self.clipped,
            "rejected": self.rejected,
            "reordered": self.reordered,
        }


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _span(item: dict[str, Any]) -> str:
    return f"[{item.get('start')}-{item.get('end')} s]"


def check_spans(
    items: list[dict[str, Any]],
    duration: float | None,
    kind: str = "chapter",
    allow_overlap: bool = False,
) -> SpanCheck:
    """Validate ``items`` against the video's ``duration`` and their ordering (see module doc)."""
    known = duration is not None and _finite(duration) and float(duration) > 0
    end_of_video = float(duration) if known and duration is not None else math.inf
    out = SpanCheck(kept=[], checked=len(items))
    candidates: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(items):
        label = f"{kind} {i + 1} {_span(item)}"
        if not (_finite(item.get("start")) and _finite(item.get("end"))):
            out.rejected += 1
            out.notes.append(f"{label}: rejected (malformed: times not finite numbers)")
            continue
        start, end = float(item["start"]), float(item["end"])
        if end < start:
            out.rejected += 1
            out.notes.append(f"{label}: rejected (malformed: ends before it starts)")
            continue
        if start >= end_of_video:
            out.rejected += 1
            out.notes.append(
                f"{label}: rejected (past_end: starts at or after the video's end "
                f"{end_of_video:g} s)"
            )
            continue
        changed = []
        if end > end_of_video + EPS:
            changed.append(f"end clipped to the video's end {end_of_video:g} s")
            end = end_of_video
        if start < 0:
            changed.append("start clipped to 0 s")
            start = 0.0
        if changed:
            out.clipped += 1
            out.notes.append(f"{label}: " + ", ".join(changed))
        candidates.append((i, {**item, "start": round(start, 3), "end": round(end, 3)}))
    ordered = sorted(candidates, key=lambda c: (c[1]["start"], c[1]["end"], c[0]))
    starts = [c[1]["start"] for c in candidates]
    moved = sum(1 for k in range(1, len(starts)) if starts[k] < max(starts[:k]))
    if moved:
        out.reordered = moved
        out.notes.append(f"{moved} {kind}s were out of time order: sorted by start")
    prev_end = -math.inf
    for i, item in ordered:
        label = f"{kind} {i + 1} {_span(items[i])}"
        if not allow_overlap and item["start"] < prev_end - EPS:
            if item["end"] <= prev_end + EPS:
                out.rejected += 1
                out.notes.append(f"{label}: rejected (overlap: inside the previous {kind})")
                continue
            out.clipped += 1
            out.notes.append(f"{label}: start moved to the previous {kind}'s end {prev_end:g} s")
            item = {**item, "start": round(prev_end, 3)}
        if item["end"] - item["start"] <= EPS:
            out.rejected += 1
            out.notes.append(f"{label}: rejected (empty: zero length)")
            continue
        out.kept.append(item)
        prev_end = max(prev_end, float(item["end"]))
    return out
