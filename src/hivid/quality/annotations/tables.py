"""Flat pandas tables built from the manifest and the annotation records (input of the GX suites).

One row per manifest row / ASR segment / 1 fps frame / TCoT item / chapter, plus one row per
annotated video (``videos``) holding the per-video aggregates (frame count, chapter coverage,
structural problems) that a column expectation can then check. Every table has a fixed column set
and dtype (see ``*_COLUMNS``), also when it is empty, so a suite never fails on a missing column.

Values are coerced defensively: a time that is not a real number (a string, ``None``, a bool)
becomes NaN, text that is not a string becomes ``None``; the suites then report them as missing.
Rows keep ``video_id`` and the video ``duration`` (from the manifest, the probed truth) so a failed
row maps back to its video, and ``row`` (the positional index) so a GX unexpected-index entry maps
back to the full row. ``pos`` is the 1-based position of the item inside its video.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pandas as pd

from hivid.quality.columns import (
    BOOL,
    FLOAT,
    INT,
    OBJ,
    _chars,
    _frame,
    _list_at,
    _nonfinite,
    _prev,
    _stripped,
    _words,
    json_type,
    num,
    text,
)

MANIFEST_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "sha256": OBJ,
    "duration": FLOAT,
    "fps": FLOAT,
    "width": FLOAT,
    "height": FLOAT,
    "size_bytes": FLOAT,
    "n_video_frames": FLOAT,
    "has_audio_type": OBJ,
    "meta_brand": OBJ,
    "meta_brand_type": OBJ,
    "meta_category": OBJ,
    "meta_category_type": OBJ,
    "meta_title_type": OBJ,
    "meta_attributes_type": OBJ,
    "meta_price_amount": FLOAT,
    "meta_price_amount_type": OBJ,
    "meta_currency": OBJ,
    "nonfinite": OBJ,
}
"""``*_type`` columns hold the JSON type name of a metadata value ("str", "number", "object",
"missing", ...) so "present and typed" becomes a value-set expectation with per-row failures."""

SEGMENT_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "pos": INT,
    "start": FLOAT,
    "end": FLOAT,
    "text": OBJ,
    "prev_start": FLOAT,
    "overrun": FLOAT,
    "relevance": FLOAT,
    "relevance_type": OBJ,
}
"""``overrun`` = end - duration (> tolerance: the segment ends after the video);
``prev_start`` = start of the previous segment of the same video (NaN for the first);
``relevance`` = the 0-5 relevance score of the ASR filter (NaN when absent or not a number;
``relevance_type`` tells which)."""

FRAME_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "pos": INT,
    "t": FLOAT,
    "prev_t": FLOAT,
    "overrun": FLOAT,
    "ocr_text_type": OBJ,
}
"""``overrun`` = t - duration; ``prev_t`` = timestamp of the previous frame (NaN for the first)."""

TCOT_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "pos": INT,
    "start": FLOAT,
    "end": FLOAT,
    "observation": OBJ,
    "prev_start": FLOAT,
    "overrun": FLOAT,
}

CHAPTER_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "pos": INT,
    "start": FLOAT,
    "end": FLOAT,
    "title": OBJ,
    "summary": OBJ,
    "prev_start": FLOAT,
    "prev_end": FLOAT,
    "gap_to_prev": FLOAT,
    "overrun": FLOAT,
    "title_words": FLOAT,
    "title_chars": FLOAT,
    "summary_chars": FLOAT,
    "label": OBJ,
    "label_type": OBJ,
}
"""``gap_to_prev`` = start - previous chapter's end (< 0: overlap, > 0: a hole; NaN for the first
chapter); ``title_words``/``title_chars``/``summary_chars`` are measured on stripped text (NaN
when the text is missing); ``label`` = the script label (``label`` or ``script_label``; None when
absent)."""

VIDEO_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "has_manifest_row": BOOL,
    "structure_error": OBJ,
    "schema_version": OBJ,
    "sha256_matches": BOOL,
    "duration_delta": FLOAT,
    "frames_fps": FLOAT,
    "n_segments": INT,
    "n_frames": INT,
    "expected_frames": FLOAT,
    "frame_count_error": FLOAT,
    "n_tcot": INT,
    "n_chapters": INT,
    "chapter_coverage": FLOAT,
    "nonfinite": OBJ,
}
"""Per annotated video: ``structure_error`` (None when the record has the expected shape),
``duration_delta`` = |record duration - manifest duration|, ``expected_frames`` =
floor(duration x frame_fps), ``frame_count_error`` = n_frames - expected_frames,
``chapter_coverage`` = length of the union of chapter spans inside [0, duration] / duration,
``nonfinite`` = where the record holds NaN or +-inf (None when nowhere)."""

BATCH_TABLES: dict[str, dict[str, str]] = {
    "manifest": MANIFEST_COLUMNS,
    "videos": VIDEO_COLUMNS,
    "asr_segments": SEGMENT_COLUMNS,
    "frames": FRAME_COLUMNS,
    "tcot": TCOT_COLUMNS,
    "chapters": CHAPTER_COLUMNS,
}
"""The tables ``build_tables`` makes for one annotation batch (the ``validate`` stage)."""


def manifest_table(manifest: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per manifest row (metadata flattened into typed ``meta_*`` columns)."""
    rows = []
    for m in manifest:
        meta = m.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        price = meta.get("price")
        price = price if isinstance(price, Mapping) else {}
        rows.append(
            {
                "video_id": text(m.get("video_id")),
                "sha256": text(m.get("sha256")),
                "duration": num(m.get("duration")),
                "fps": num(m.get("fps")),
                "width": num(m.get("width")),
                "height": num(m.get("height")),
                "size_bytes": num(m.get("size_bytes")),
                "n_video_frames": num(m.get("n_video_frames")),
                "has_audio_type": json_type(m.get("has_audio"), "has_audio" in m),
                "meta_brand": _stripped(text(meta.get("brand"))),
                "meta_brand_type": json_type(meta.get("brand"), "brand" in meta),
                "meta_category": _stripped(text(meta.get("category"))),
                "meta_category_type": json_type(meta.get("category"), "category" in meta),
                "meta_title_type": json_type(meta.get("title"), "title" in meta),
                "meta_attributes_type": json_type(meta.get("attributes"), "attributes" in meta),
                "meta_price_amount": num(price.get("amount")),
                "meta_price_amount_type": json_type(price.get("amount"), "amount" in price),
                "meta_currency": text(price.get("currency")),
                "nonfinite": _nonfinite(m),
            }
        )
    return _frame(rows, MANIFEST_COLUMNS)


UNREADABLE = "__unreadable__"
"""Key of the stand-in record for a file that is not valid JSON (see ``load_annotations``)."""


def structure_errors(record: Any, video_id: str) -> list[str]:
    """Shape problems of one annotation record (empty when it has the schema's containers)."""
    if not isinstance(record, Mapping):
        return [f"record is a JSON {json_type(record)}, not an object"]
    if UNREADABLE in record:
        return [f"record file cannot be read ({record[UNREADABLE]})"]
    errors = []
    rid = record.get("video_id")
    if rid != video_id:
        errors.append(f"record video_id {rid!r} does not match its name {video_id!r}")
    for path in (("asr", "segments"), ("frames", "items"), ("tcot",), ("chapters",)):
        cur: Any = record
        for i, key in enumerate(path):
            if not isinstance(cur, Mapping) or key not in cur:
                errors.append(f"'{'.'.join(path[: i + 1])}' is missing")
                break
            cur = cur[key]
        else:
            if not isinstance(cur, list):
                errors.append(f"'{'.'.join(path)}' is a JSON {json_type(cur)}, not an array")
            else:
                bad = [j for j, item in enumerate(cur) if not isinstance(item, Mapping)]
                if bad:
                    errors.append(f"'{'.'.join(path)}[{bad[0]}]' is not an object")
    return errors


def _durations(
    manifest: Iterable[Mapping[str, Any]], annotations: Mapping[str, Any]
) -> dict[str, float]:
    """Video duration per id: the manifest's probed value, else the record's own, else NaN."""
    out = {
        vid: num(rec.get("duration")) if isinstance(rec, Mapping) else math.nan
        for vid, rec in annotations.items()
    }
    for m in manifest:
        vid = m.get("video_id")
        if isinstance(vid, str) and vid in out:
            out[vid] = num(m.get("duration"))
    return out


def _items(annotations: Mapping[str, Any], *path: str) -> Iterable[tuple[str, list[Mapping]]]:
    for vid in sorted(annotations):
        rec = annotations[vid]
        items = _list_at(rec, *path) if isinstance(rec, Mapping) else []
        yield vid, [x for x in items if isinstance(x, Mapping)]


def _interval_rows(
    annotations: Mapping[str, Any],
    durations: Mapping[str, float],
    path: tuple[str, ...],
    text_col: str,
    extra: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows of the time intervals at ``path`` of each record (ASR segments, TCoT items): times,
    the previous start, the overrun past the video, the stripped ``text_col``, plus ``extra``."""
    rows = []
    for vid, items in _items(annotations, *path):
        starts = [num(x.get("start")) for x in items]
        for i, (x, prev) in enumerate(zip(items, _prev(starts), strict=True)):
            end = num(x.get("end"))
            rows.append(
                {
                    "video_id": vid,
                    "duration": durations[vid],
                    "pos": i + 1,
                    "start": starts[i],
                    "end": end,
                    text_col: _stripped(text(x.get(text_col))),
                    "prev_start": prev,
                    "overrun": end - durations[vid],
                    **(extra(x) if extra else {}),
                }
            )
    return rows


def segments_table(annotations: Mapping[str, Any], durations: Mapping[str, float]) -> pd.DataFrame:
    """One row per ASR segment."""

    def relevance(seg: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "relevance": num(seg.get("relevance")),
            "relevance_type": json_type(seg.get("relevance"), "relevance" in seg),
        }

    rows = _interval_rows(annotations, durations, ("asr", "segments"), "text", relevance)
    return _frame(rows, SEGMENT_COLUMNS)


def frames_table(annotations: Mapping[str, Any], durations: Mapping[str, float]) -> pd.DataFrame:
    """One row per sampled frame."""
    rows = []
    for vid, items in _items(annotations, "frames", "items"):
        ts = [num(f.get("t")) for f in items]
        for i, (f, prev) in enumerate(zip(items, _prev(ts), strict=True)):
            rows.append(
                {
                    "video_id": vid,
                    "duration": durations[vid],
                    "pos": i + 1,
                    "t": ts[i],
                    "prev_t": prev,
                    "overrun": ts[i] - durations[vid],
                    "ocr_text_type": json_type(f.get("ocr_text"), "ocr_text" in f),
                }
            )
    return _frame(rows, FRAME_COLUMNS)


def tcot_table(annotations: Mapping[str, Any], durations: Mapping[str, float]) -> pd.DataFrame:
    """One row per TCoT observation."""
    return _frame(_interval_rows(annotations, durations, ("tcot",), "observation"), TCOT_COLUMNS)


def chapters_table(annotations: Mapping[str, Any], durations: Mapping[str, float]) -> pd.DataFrame:
    """One row per chapter."""
    rows = []
    for vid, items in _items(annotations, "chapters"):
        starts = [num(c.get("start")) for c in items]
        ends = [num(c.get("end")) for c in items]
        for i, (c, prev_end) in enumerate(zip(items, _prev(ends), strict=True)):
            start = starts[i]
            title = _stripped(text(c.get("title")))
            label = c.get("label", c.get("script_label"))
            summary = text(c.get("summary"))
            rows.append(
                {
                    "video_id": vid,
                    "duration": durations[vid],
                    "pos": i + 1,
                    "start": start,
                    "end": ends[i],
                    "title": title,
                    "summary": summary,
                    "prev_start": starts[i - 1] if i else math.nan,
                    "prev_end": prev_end,
                    "gap_to_prev": start - prev_end,
                    "overrun": ends[i] - durations[vid],
                    "title_words": _words(title),
                    "title_chars": _chars(title),
                    "summary_chars": _chars(summary),
                    "label": text(label),
                    "label_type": json_type(label, label is not None or "label" in c),
                }
            )
    return _frame(rows, CHAPTER_COLUMNS)


def coverage(spans: Iterable[tuple[float, float]], duration: float) -> float:
    """Share of [0, duration] covered by the union of ``spans`` (NaN/empty spans ignored)."""
    if not (duration > 0 and math.isfinite(duration)):
        return math.nan
    clipped = sorted(
        (max(0.0, a), min(duration, b))
        for a, b in spans
        if math.isfinite(a) and math.isfinite(b) and min(duration, b) > max(0.0, a)
    )
    covered, reach = 0.0, 0.0
    for a, b in clipped:
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    return covered / duration


def videos_table(
    manifest: Iterable[Mapping[str, Any]],
    annotations: Mapping[str, Any],
    frame_fps: float,
) -> pd.DataFrame:
    """One row per annotated video with its aggregates (``frame_fps``: the expected sampling)."""
    by_id = {m.get("video_id"): m for m in manifest}
    durations = _durations(by_id.values(), annotations)
    rows = []
    for vid in sorted(annotations):
        rec = annotations[vid]
        rec_map: Mapping[str, Any] = rec if isinstance(rec, Mapping) else {}
        m = by_id.get(vid)
        duration = durations[vid]
        n_frames = len(_list_at(rec_map, "frames", "items"))
        expected = math.floor(duration * frame_fps) if math.isfinite(duration) else math.nan
        chapters = [c for c in _list_at(rec_map, "chapters") if isinstance(c, Mapping)]
        errors = structure_errors(rec, vid)
        rows.append(
            {
                "video_id": vid,
                "duration": duration,
                "has_manifest_row": m is not None,
                "structure_error": "; ".join(errors) if errors else None,
                "schema_version": json.dumps(rec_map.get("schema_version")),
                "sha256_matches": m is not None and rec_map.get("sha256") == m.get("sha256"),
                "duration_delta": abs(num(rec_map.get("duration")) - duration),
                "frames_fps": num(rec_map["frames"].get("fps"))
                if isinstance(rec_map.get("frames"), Mapping)
                else math.nan,
                "n_segments": len(_list_at(rec_map, "asr", "segments")),
                "n_frames": n_frames,
                "expected_frames": float(expected),
                "frame_count_error": n_frames - expected,
                "n_tcot": len(_list_at(rec_map, "tcot")),
                "n_chapters": len(chapters),
                "chapter_coverage": coverage(
                    ((num(c.get("start")), num(c.get("end"))) for c in chapters), duration
                ),
                "nonfinite": _nonfinite(rec),
            }
        )
    return _frame(rows, VIDEO_COLUMNS)


def build_tables(
    manifest: Iterable[Mapping[str, Any]], annotations: Mapping[str, Any], frame_fps: float
) -> dict[str, pd.DataFrame]:
    """Every table of ``TABLES`` for one batch.

    The batch is the set of annotated videos: manifest rows of videos without an annotation record
    (quarantined earlier, by ingest or annotate) are left out.
    """
    rows = [m for m in manifest if m.get("video_id") in annotations]
    durations = _durations(rows, annotations)
    return {
        "manifest": manifest_table(rows),
        "videos": videos_table(rows, annotations, frame_fps),
        "asr_segments": segments_table(annotations, durations),
        "frames": frames_table(annotations, durations),
        "tcot": tcot_table(annotations, durations),
        "chapters": chapters_table(annotations, durations),
    }
