"""One quarantine report over every stage: what was set aside, where, and why.

Each stage keeps its own rows (``outputs/intake/quarantine.jsonl``: landing-zone objects not
taken into data/, ``outputs/ingest/quarantine.jsonl``,
``outputs/annotate_quarantine.jsonl``, ``outputs/quality/quarantine.jsonl``); the ``validate``
stage merges them into ``outputs/quarantine/``::

    report.jsonl   {"stage", "video_id", "path", "reasons": [...]} per quarantined file or video
    report.md      the same as a table a person reads first
    summary.json   counts per stage

Nothing is moved or deleted: raw data stays where it is (``data.dvc`` pins it); the report says
which files the pipeline did not use and what to fix.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hivid.io import write_bytes_atomic, write_json, write_jsonl


def _rows(stage: str, path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        reasons = row.get("reasons") or ([row["reason"]] if row.get("reason") else [])
        out.append(
            {
                "stage": stage,
                "video_id": row.get("video_id"),
                "path": row.get("path"),
                "reasons": [str(r) for r in reasons] or ["(no reason recorded)"],
            }
        )
    return out


def collect(
    ingest_rows: Path,
    annotate_rows: Path,
    validate_rows: Path,
    intake_rows: Path | None = None,
) -> list[dict[str, Any]]:
    """Every stage's quarantine rows, in pipeline order, in one shape (``intake_rows`` defaults
    to ``outputs/intake/quarantine.jsonl`` beside the ingest folder)."""
    if intake_rows is None:
        intake_rows = ingest_rows.parent.parent / "intake" / "quarantine.jsonl"
    return [
        *_rows("intake", intake_rows),
        *_rows("ingest", ingest_rows),
        *_rows("annotate", annotate_rows),
        *_rows("validate", validate_rows),
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Any]:
    """Write ``report.jsonl``, ``report.md`` and ``summary.json`` under ``out_dir``."""
    counts = Counter(r["stage"] for r in rows)
    # intake is listed only when the nightly has a landing zone that set something aside
    by_stage = {s: counts.get(s, 0) for s in STAGES if s != "intake" or counts.get(s)}
    summary: dict[str, Any] = {"total": len(rows), "by_stage": by_stage}
    write_jsonl(out_dir / "report.jsonl", rows)
    write_json(out_dir / "summary.json", summary)
    lines = [
        "# Quarantine report",
        "",
        f"{len(rows)} quarantined: " + ", ".join(f"{n} at {s}" for s, n in by_stage.items()),
        "",
        "| stage | video | file | reasons |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['stage']} | {_cell(str(r['video_id'] or '-'))} | {_cell(str(r['path'] or '-'))} "
            f"| {_cell('; '.join(r['reasons']))} |"
        )
    write_bytes_atomic(out_dir / "report.md", ("\n".join(lines) + "\n").encode("utf-8"))
    return summary


STAGES = ("intake", "ingest", "annotate", "validate")
