"""Hand-made manifest rows and annotation records for the quality-gate tests (valid by default;
each test breaks what it checks)."""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

from hivid.quality.gate import GateResult

DURATION = 30.0


def manifest_row(
    vid: str, duration: float = DURATION, content: str | None = None
) -> dict[str, Any]:
    return {
        "video_id": vid,
        "path": f"videos/{vid}.mp4",
        "sha256": hashlib.sha256((content or vid).encode()).hexdigest(),
        "size_bytes": 123456,
        "duration": duration,
        "fps": 25.0,
        "width": 640,
        "height": 360,
        "has_audio": True,
        "n_video_frames": int(duration * 25),
        "metadata": {
            "brand": "Acme",
            "category": "beauty",
            "title": "Acme Glow Serum 30ml",
            "attributes": {"volume": "30ml"},
            "price": {"amount": 19.99, "currency": "USD"},
        },
    }


def record(row: dict[str, Any]) -> dict[str, Any]:
    """A clean annotation record: 3 contiguous chapters, 1 fps frames, ASR and TCoT."""
    d = row["duration"]
    cuts = [0.0, d / 3, 2 * d / 3, d]
    chapters = [
        {
            "start": a,
            "end": b,
            "title": f"Part {i + 1}",
            "summary": f"What happens in part {i + 1}.",
        }
        for i, (a, b) in enumerate(itertools.pairwise(cuts))
    ]
    segments = [
        {"start": c["start"] + 0.5, "end": c["end"] - 0.5, "text": f"Sentence {i}.", "words": []}
        for i, c in enumerate(chapters)
    ]
    return {
        "schema_version": 1,
        "video_id": row["video_id"],
        "sha256": row["sha256"],
        "duration": d,
        "asr": {
            "backend": "test",
            "model": "none",
            "language": "en",
            "audio": True,
            "segments": segments,
        },
        "frames": {
            "fps": 1.0,
            "items": [
                {
                    "index": i,
                    "t": float(i),
                    "pts_time": float(i),
                    "ocr_text": "ACME",
                    "shot_change": False,
                }
                for i in range(math.floor(d))
            ],
        },
        "tcot": [
            {"start": s["start"], "end": s["end"], "observation": f"On screen: ACME. {s['text']}"}
            for s in segments
        ],
        "chapters": chapters,
    }


def batch(n: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    manifest = [manifest_row(f"v{i:02d}") for i in range(n)]
    return manifest, {m["video_id"]: record(m) for m in manifest}


def reasons(result: GateResult, vid: str) -> str:
    rows = [q for q in result.quarantined if q["video_id"] == vid]
    assert rows, f"{vid} was not quarantined: {result.quarantined}"
    return " | ".join(rows[0]["reasons"])


def short_record(row: dict[str, Any]) -> dict[str, Any]:
    """A valid annotation record for a video of any length >= 1 s: two halves as chapters."""
    d = float(row["duration"])
    cuts = [(0.0, d / 2), (d / 2, d)]
    return {
        "schema_version": 1,
        "video_id": row["video_id"],
        "sha256": row["sha256"],
        "duration": d,
        "asr": {
            "audio": True,
            "segments": [
                {"start": a + 0.1, "end": b - 0.1, "text": f"Sentence {i}."}
                for i, (a, b) in enumerate(cuts)
            ],
        },
        "frames": {
            "fps": 1.0,
            "items": [{"index": i, "t": float(i), "ocr_text": None} for i in range(math.floor(d))],
        },
        "tcot": [{"start": a, "end": b, "observation": "A bottle."} for a, b in cuts],
        "chapters": [
            {"start": a, "end": b, "title": f"Part {i + 1}", "summary": "The bottle."}
            for i, (a, b) in enumerate(cuts)
        ],
    }
