"""Coarse chapters and TCoT: contiguity, boundaries at shot changes, titles and summaries."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hivid.annotate.chapters import (
    best_text_line,
    build_chapters,
    chapter_bounds,
    merge_short,
    refine_boundary,
    truncate,
)


def frame(
    t: int, text: str = "", shot: bool = False, colors: list[str] | None = None
) -> dict[str, Any]:
    ocr = [{"text": text, "score": 0.9}] if text else []
    return {
        "index": t,
        "t": float(t),
        "pts_time": float(t),
        "ocr_text": text,
        "ocr": ocr,
        "colors": colors or ["#c81e28"],
        "shot_change": shot,
        "reused_from": None,
    }


def sent(start: float, end: float, text: str) -> dict[str, Any]:
    return {"start": start, "end": end, "text": text, "words": []}


def assert_contiguous(chapters: list[dict[str, Any]], duration: float) -> None:
    assert chapters[0]["start"] == 0.0
    assert chapters[-1]["end"] == round(duration, 3)
    for a, b in itertools.pairwise(chapters):
        assert a["end"] == b["start"]
    assert all(c["start"] < c["end"] for c in chapters)


def test_chapters_at_shot_changes_with_titles_and_tcot() -> None:
    frames = [frame(t, "Red Shampoo 500ml") for t in range(6)]
    frames += [frame(t, "Only $59", shot=(t == 6), colors=["#1e3cc8"]) for t in range(6, 12)]
    segs = [
        sent(0.0, 2.0, "Meet the new red shampoo."),
        sent(2.3, 5.2, "It comes in a big bottle."),
        sent(5.8, 8.0, "Today it costs only fifty nine dollars."),
        sent(8.5, 11.5, "Order now."),
    ]
    tcot, chapters = build_chapters(frames, segs, 12.0, min_chapter_s=3.0)
    assert_contiguous(chapters, 12.0)
    # The cut seen at frame 6 snaps to the pause between sentences 2 and 3 (5.2 .. 5.8).
    assert [c["start"] for c in chapters] == [0.0, 5.5]
    assert [c["title"] for c in chapters] == ["Red Shampoo 500ml", "Only $59"]
    assert chapters[0]["summary"] == "Meet the new red shampoo. It comes in a big bottle."
    assert len(tcot) == 4 and tcot[2]["start"] == 5.8
    assert '"Only $59"' in tcot[2]["observation"] and "blue" in tcot[2]["observation"]
    assert "fifty nine dollars" in tcot[2]["observation"]


def test_vision_only_and_speech_titles() -> None:
    frames = [frame(t) for t in range(4)] + [frame(t, "Sale", shot=(t == 4)) for t in range(4, 8)]
    tcot, chapters = build_chapters(frames, [], 8.0, min_chapter_s=2.0)
    assert_contiguous(chapters, 8.0)
    assert [c["title"] for c in chapters] == ["Chapter 1", "Sale"]
    assert len(tcot) == 2 and "no readable text" in tcot[0]["observation"]
    assert tcot[1]["observation"].startswith('On screen: text "Sale"')
    _, ch = build_chapters(
        [frame(t) for t in range(5)], [sent(0.5, 3.0, "Look at this great new lamp today.")], 5.0
    )
    assert ch[0]["title"] == "Look at this great new lamp"


def test_titles_prefer_chapter_specific_text() -> None:
    def fr(t: int, lines: list[str], shot: bool = False) -> dict[str, Any]:
        f = frame(t, shot=shot)
        f["ocr"] = [{"text": x, "score": 0.95 if x == "$27.00" else 0.9} for x in lines]
        return f

    frames = [fr(t, ["TESSEL", "$27.00", "Volume:750ml"]) for t in range(5)]
    frames += [fr(t, ["TESSEL", "$27.00", "Scent:coconut"], shot=(t == 5)) for t in range(5, 10)]
    _, chapters = build_chapters(frames, [], 10.0, min_chapter_s=2.0)
    assert [c["title"] for c in chapters] == ["Volume:750ml", "Scent:coconut"]
    # Within one chapter the best-supported line wins.
    _, one = build_chapters(frames[:5], [], 5.0)
    assert one[0]["title"] == "$27.00"


def test_short_chapters_merge() -> None:
    assert merge_short([(0, 5), (5, 6), (6, 12)], 3.0) == [(0, 6), (6, 12)]
    assert merge_short([(0, 1), (1, 10)], 3.0) == [(0, 10)]
    assert merge_short([(0, 1)], 3.0) == [(0, 1)]
    frames = [frame(t, shot=t in (3, 4, 8)) for t in range(10)]
    spans = chapter_bounds(frames, [], 10.0, min_chapter_s=2.0)
    assert all(b - a >= 2.0 for a, b in spans) and spans[0][0] == 0 and spans[-1][1] == 10.0


def test_refine_boundary_and_helpers() -> None:
    segs = [sent(0, 4.1, "a."), sent(4.5, 6, "b.")]
    assert refine_boundary(4.0, 5.0, segs) == 4.3
    assert refine_boundary(1.0, 2.0, segs) == 1.5
    assert best_text_line([frame(0, "A"), frame(1, "Bee"), frame(2, "Bee")]) == "Bee"
    assert best_text_line([frame(0)]) is None
    assert truncate("one two three four five six", 14) == "one two three…"
    assert len(truncate("x" * 50, 20)) == 20


@settings(max_examples=60, deadline=None)
@given(
    shots=st.lists(st.booleans(), min_size=1, max_size=40),
    extra=st.floats(0.0, 0.99),
    min_len=st.floats(0.0, 8.0),
)
def test_chapters_always_contiguous_and_covering(
    shots: list[bool], extra: float, min_len: float
) -> None:
    duration = len(shots) - 1 + extra + 0.01
    frames = [frame(t, shot=s and t > 0) for t, s in enumerate(shots)]
    segs = [sent(t + 0.1, t + 0.8, f"s{t}.") for t in range(0, len(shots), 3)]
    tcot, chapters = build_chapters(frames, segs, duration, min_chapter_s=min_len)
    assert_contiguous(chapters, duration)
    if len(chapters) > 1:
        assert all(c["end"] - c["start"] >= min_len - 1e-3 for c in chapters)
    for item in tcot:
        assert 0.0 <= item["start"] <= item["end"] <= round(duration, 3)
