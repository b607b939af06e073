"""``annotate_batch``: a manifest through the annotate sub-steps into ``<out_dir>/<video_id>.json``.

Videos whose ``cache_key`` is unchanged are served from their previous record without being
opened; the others run in-process or fanned out (``executors``), and a video that fails is
quarantined (one row naming the file and the reason) while the batch goes on. The record schema is
documented in ``steps``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hivid.annotate.config import STEPS, AnnotateConfig
from hivid.annotate.executors import fan_out, one_line, quarantine_row, read_previous, run_entry
from hivid.annotate.keys import cache_key, model_identities, step_keys
from hivid.annotate.resources import Models
from hivid.annotate.steps import round3
from hivid.io import write_json


@dataclass
class AnnotateSummary:
    """What a batch did: ids annotated now, ids served from cache, quarantined rows, timings."""

    annotated: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    step_cache_hits: dict[str, int] = field(default_factory=dict)
    """Per sub-step: videos whose sub-step output was reused (fully cached videos included)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Corpus-level counts (segments kept/dropped, corrections, chapters, LLM errors)."""
    models: dict[str, Any] = field(default_factory=dict)
    prompts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotated": self.annotated,
            "cached": self.cached,
            "quarantined": self.quarantined,
            "timings": self.timings,
            "step_cache_hits": self.step_cache_hits,
            "metrics": self.metrics,
            "models": self.models,
            "prompts": self.prompts,
        }


def annotate_batch(
    entries: list[dict[str, Any]],
    data_root: Path,
    out_dir: Path,
    cfg: AnnotateConfig,
    progress: Callable[[str, int, int], None] | None = None,
    models: Models | None = None,
) -> AnnotateSummary:
    """Annotate manifest rows into ``out_dir/<video_id>.json``; see the module docstring."""
    t0 = time.perf_counter()
    summary = AnnotateSummary()
    out_dir.mkdir(parents=True, exist_ok=True)
    # Resolve (and, for whisper-base, assemble) the models once here, before any worker starts.
    ids = model_identities(cfg)
    summary.prompts = dict(ids["prompts"])
    summary.models = {
        "asr": cfg.asr_model,
        "asr_sha256": ids["asr"] if ids["asr"] != cfg.asr_model else None,
        "asr_backend": cfg.asr_backend,
        "describer": cfg.describer_cfg.label(),
        "embedder": cfg.embedder,
        "embedder_sha256": ids["embedder"] if ids["embedder"] != cfg.embedder else None,
        "llm": cfg.llm.identity(),
    }
    hits = dict.fromkeys(STEPS, 0)
    records: list[dict[str, Any]] = []
    todo: list[dict[str, Any]] = []
    for e in entries:
        vid = str(e["video_id"])
        old = read_previous(out_dir, vid)
        keys = step_keys(str(e["sha256"]), dict(e.get("metadata") or {}), cfg, ids)
        if old is not None and old.get("cache_key") == cache_key(keys):
            summary.cached.append(vid)
            records.append(old)
            for s in STEPS:
                hits[s] += 1
        else:
            todo.append(e)
    total, done = len(entries), len(summary.cached)
    if progress is not None and done:
        progress("cached", done, total)
    per_video: dict[str, float] = {}
    step_time = dict.fromkeys(STEPS, 0.0)

    def finish(kind: str, payload: dict[str, Any]) -> None:
        nonlocal done
        done += 1
        vid = str(payload["video_id"])
        if kind == "ok":
            write_json(out_dir / f"{vid}.json", payload, indent=1)
            summary.annotated.append(vid)
            records.append(payload)
            per_video[vid] = payload["timings"]["total_s"]
            for s in STEPS:
                step_time[s] += payload["timings"][f"{s}_s"]
                hits[s] += s in payload.get("cached_steps", [])
        else:
            summary.quarantined.append(payload)
        if progress is not None:
            progress(vid, done, total)

    local = models or Models(cfg)
    if todo and cfg.parallel_cfg.workers == 1:
        for e in todo:
            finish(*run_entry(e, data_root, out_dir, cfg, local, ids))
    elif todo:
        for e, res in fan_out(todo, data_root, out_dir, cfg, ids):
            if isinstance(res, BaseException):
                path = data_root / str(e.get("path", ""))
                reason = f"{path}: worker process failed ({one_line(res)})"
                res = ("quarantine", quarantine_row(e, reason))
            finish(*res)
    summary.annotated.sort()
    summary.step_cache_hits = hits
    summary.metrics = corpus_metrics(records)
    times = list(per_video.values())
    # Flat floats (the stage logs each as an MLflow metric); per-video times are in the records.
    summary.timings = {
        "total_s": round3(time.perf_counter() - t0),
        "model_load_s": round3(local.load_s),
        "videos_s": round3(sum(times)),
        "per_video_mean_s": round3(sum(times) / len(times)) if times else 0.0,
        "per_video_max_s": round3(max(times)) if times else 0.0,
        **{f"{s}_s": round3(v) for s, v in step_time.items()},
    }
    return summary


def corpus_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """Counts over the batch's records (annotated now or cached)."""
    m = {
        "segments": 0.0,
        "segments_kept": 0.0,
        "segments_dropped": 0.0,
        "lexicon_corrections": 0.0,
        "llm_corrections": 0.0,
        "llm_errors": 0.0,
        "chapters": 0.0,
        "tcot_items": 0.0,
        "topic_shifts": 0.0,
        "frames": 0.0,
        "frames_described": 0.0,
        "vision_only": 0.0,
        "video_seconds": 0.0,
    }
    for r in records:
        segs = r.get("asr", {}).get("segments", [])
        corr = r.get("correction", {})
        m["segments"] += len(segs)
        m["segments_kept"] += sum(1 for s in segs if s.get("kept", True))
        m["segments_dropped"] += sum(1 for s in segs if not s.get("kept", True))
        m["lexicon_corrections"] += float(corr.get("lexicon_changes", 0))
        m["llm_corrections"] += float(corr.get("llm_changes", 0))
        m["llm_errors"] += float(corr.get("llm_errors", 0))
        m["chapters"] += len(r.get("chapters", []))
        m["tcot_items"] += len(r.get("tcot", []))
        m["topic_shifts"] += len(r.get("topic_shifts", []))
        m["frames"] += len(r.get("frames", {}).get("items", []))
        m["frames_described"] += float(r.get("frames", {}).get("described", 0))
        m["vision_only"] += 0.0 if r.get("asr", {}).get("audio", True) else 1.0
        m["video_seconds"] += float(r.get("duration", 0.0))
    return m
