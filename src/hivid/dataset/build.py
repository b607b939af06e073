"""The `build_dataset` stage: split videos (never clips) and write training samples.

Output directory::

    splits.json            {"train": [...], "val": [...], "test": [...], "seed", "split_method"}
    train.jsonl / val.jsonl / test.jsonl   one JSON object per video (format below)
    frames/<video_id>.npy  uint8 (N, H, W, 3): frames sampled at ``fps``, resized to ``frame_size``
    summary.json

Row format: ``{"video_id", "sha256", "duration", "frame_times", "frames",
"asr": [{start, end, text}], "tcot": [...], "chapters": [...], "metadata",
"ground_truth": path relative to the data root or null}``; ``sha256`` is the raw video's content
hash from the ingest manifest (null when the manifest row has none): warm-start training reads it
to tell new and changed videos from the ones the previous model saw.
Targets (TCoT, chapters): with ``targets: annotation`` the annotation stage's, the pseudo-labels
the paper's pipeline builds. With ``targets: ground_truth`` a video that has reference chapters
(``data/ground_truth/<id>.json``, human labels) is trained on those instead, and every other video
on its pseudo-labels; ``target_source`` in each row says which (``ground_truth``/``annotation``).
Splits are by video, so no test video's reference chapters are ever a training target; the TCoT
always comes from the annotation. A reference file that cannot be used (unreadable, no chapters,
a chapter without a numeric start < end or a title) falls back to the pseudo-labels and is named,
with the reason, in the summary's ``target_errors``.

Splits (``split_videos``): ``split_method: stable`` (default) puts each video by its own salted
hash, so adding or removing other videos never moves it (what warm-start training from the last
model needs: no video it trained on can later land in val/test); ``exact`` cuts the hash order at
round(n x fraction), exact sizes, but a new video can shift existing ones across a cut.

Frames: with a ``frame_cache`` directory (``hivid.dataset.frame_cache``) a video whose frames were
sampled before with the same settings is not decoded again; the dataset files are byte-identical
either way, and the hit/miss counts are in the returned summary only (not in ``summary.json``, so
a warm build does not change the DVC-tracked dataset).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from hivid.configbase import require
from hivid.dataset.frame_cache import FrameCache, cache_key, sampler_fingerprint
from hivid.io import write_bytes_atomic, write_json, write_jsonl

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("stable", "exact")
TARGETS = ("annotation", "ground_truth")


@dataclass
class DatasetConfig:
    """Knobs of the build_dataset stage (params.yaml section ``dataset``)."""

    val_fraction: float = 0.125
    """Share of videos in the validation split (at least one video once there are 3 or more)."""
    test_fraction: float = 0.25
    """Share of videos in the test split (at least one video once there are 2 or more)."""
    seed: int = 0
    """Salt of the per-video hash that orders videos into splits (changing it reshuffles)."""
    split_method: Literal["stable", "exact"] = "stable"
    """``stable``: each video's split comes from its own salted hash u in [0, 1) (test below
    test_fraction, val below test_fraction + val_fraction, else train), so adding or removing other
    videos never moves it; sizes are binomial around n x fraction. ``exact``: sizes are
    round(n x fraction) cut from the hash order, but adding videos can move existing ones across a
    cut. Both keep the at-least-one rules of tiny corpora (the only case where ``stable`` moves a
    video; see ``split_videos``)."""
    fps: float = 1.0
    """Frames per second sampled for the model's visual input."""
    frame_size: int = 32
    """Frames are stored square at this many pixels (the vision encoder resizes again)."""
    max_frames: int = 64
    """At most this many frames per video are stored (evenly subsampled beyond that)."""
    targets: Literal["annotation", "ground_truth"] = "annotation"
    """What a video is trained on: ``annotation``, the annotation's pseudo-labels; ``ground_truth``,
    its reference chapters (``data/ground_truth/<id>.json``) when it has usable ones, else the
    pseudo-labels (module docstring)."""

    def __post_init__(self) -> None:
        require(0 <= self.val_fraction < 1, "dataset.val_fraction must be in [0, 1)")
        require(0 <= self.test_fraction < 1, "dataset.test_fraction must be in [0, 1)")
        require(
            self.val_fraction + self.test_fraction < 1,
            "dataset: val_fraction + test_fraction must be < 1",
        )
        require(
            self.split_method in SPLIT_METHODS,
            f"dataset.split_method must be one of {', '.join(SPLIT_METHODS)}, "
            f"not {self.split_method!r}",
        )
        require(self.fps > 0, "dataset.fps must be > 0")
        require(8 <= self.frame_size <= 1024, "dataset.frame_size must be in [8, 1024]")
        require(self.max_frames >= 1, "dataset.max_frames must be >= 1")
        require(
            self.targets in TARGETS,
            f"dataset.targets must be one of {', '.join(TARGETS)}, not {self.targets!r}",
        )


def _digest(video_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{video_id}".encode()).hexdigest()


def hash_unit(video_id: str, seed: int) -> float:
    """The video's salted hash as a number in [0, 1): sha256(f"{seed}:{video_id}") / 2**256."""
    return int(_digest(video_id, seed), 16) / 2**256


def split_videos(video_ids: list[str], cfg: DatasetConfig) -> dict[str, list[str]]:
    """Deterministic split by video (never by clip); each list sorted.

    Videos are ordered by their salted hash ``u = hash_unit(video, seed)``; every split is a run
    of that order (test first, then val, then train). ``exact`` takes round(n x fraction) videos
    for test and val. ``stable`` takes the videos whose own u falls below ``test_fraction`` (test)
    or below ``test_fraction + val_fraction`` (val): a video's split then depends on nothing but
    its id, the seed and the fractions.

    Tiny corpora (both methods): at least one test video once n >= 2 and test_fraction > 0, at
    least one val video once n >= 3 and val_fraction > 0, and at least one train video. A split
    that would be empty takes the video next to its boundary in hash order (e.g. the train video
    of smallest u joins an empty val). With ``stable`` this is the one case where a video's split
    depends on the others, and it only happens while some split's hash range is still empty: once
    a corpus has a video in every hash range (test, val, train for the non-zero fractions), no
    superset of it moves any of its videos.
    """
    # The hex digest orders exactly as u does (u is a monotone function of it), without ties.
    ordered = sorted(set(video_ids), key=lambda vid: _digest(vid, cfg.seed))
    n = len(ordered)
    if cfg.split_method == "stable":
        units = [hash_unit(vid, cfg.seed) for vid in ordered]
        n_test = sum(u < cfg.test_fraction for u in units)
        n_val = sum(cfg.test_fraction <= u < cfg.test_fraction + cfg.val_fraction for u in units)
    else:
        n_test = round(n * cfg.test_fraction)
        n_val = round(n * cfg.val_fraction)
    min_test = 1 if n >= 2 and cfg.test_fraction > 0 else 0
    min_val = 1 if n >= 3 and cfg.val_fraction > 0 else 0
    # Room for the other splits' minimums (train always keeps one video) before test grows.
    n_test = min(max(min_test, n_test), max(0, n - 1 - min_val))
    n_val = min(max(min_val, n_val), max(0, n - 1 - n_test))
    test = sorted(ordered[:n_test])
    val = sorted(ordered[n_test : n_test + n_val])
    train = sorted(ordered[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


def _sample_frames(path: Path, cfg: DatasetConfig) -> tuple[np.ndarray, list[float]]:
    """Frames of one video as stored (the frame cache's key fingerprints this code)."""
    from hivid.data.decode import sample_frames

    frames: list[np.ndarray] = []
    times: list[float] = []
    for fr in sample_frames(path, fps=cfg.fps, max_side=max(cfg.frame_size * 4, 64)):
        img = Image.fromarray(fr.image).resize(
            (cfg.frame_size, cfg.frame_size), Image.Resampling.BILINEAR
        )
        frames.append(np.asarray(img, dtype=np.uint8))
        times.append(round(float(fr.t), 3))
    if not frames:
        raise ValueError(f"{path}: no frames could be sampled")
    if len(frames) > cfg.max_frames:
        keep = np.linspace(0, len(frames) - 1, cfg.max_frames).round().astype(int)
        frames = [frames[i] for i in keep]
        times = [times[i] for i in keep]
    return np.stack(frames), times


def build_dataset(
    manifest: list[dict[str, Any]],
    annotations: dict[str, dict[str, Any]],
    passed: list[str],
    data_root: Path,
    out_dir: Path,
    cfg: DatasetConfig,
    progress: Callable[[str, int, int], None] | None = None,
    frame_cache: Path | None = None,
) -> dict[str, Any]:
    """Write the dataset for the videos that passed the quality gate; returns the summary.

    ``frame_cache``: directory of sampled frames kept between builds (None: decode every video).
    The returned summary then has ``frame_cache`` {hits, misses, corrupt, write_errors, pruned};
    ``summary.json`` never does (the dataset must not depend on the cache's state)."""
    by_id = {row["video_id"]: row for row in manifest}
    usable = [vid for vid in passed if vid in by_id and vid in annotations]
    if not usable:
        raise ValueError("build_dataset: no video passed the quality gate; nothing to train on")
    splits = split_videos(usable, cfg)
    cache = FrameCache(frame_cache) if frame_cache is not None else None
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    rows_by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    target_errors: dict[str, str] = {}
    total = len(usable)
    done = 0
    for split in SPLITS:
        for vid in splits[split]:
            if progress:
                progress(vid, done, total)
            row, ann = by_id[vid], annotations[vid]
            npy, times = _frames(data_root / row["path"], row.get("sha256"), cfg, cache)
            rel = f"frames/{vid}.npy"
            write_bytes_atomic(out_dir / rel, npy)
            chapters, source = ann["chapters"], "annotation"
            if cfg.targets == "ground_truth" and row.get("ground_truth"):
                try:
                    chapters, source = (
                        reference_chapters(data_root / row["ground_truth"]),
                        "ground_truth",
                    )
                except ValueError as exc:
                    target_errors[vid] = str(exc)
            rows_by_split[split].append(
                {
                    "video_id": vid,
                    "sha256": row.get("sha256"),
                    "duration": row["duration"],
                    "frame_times": times,
                    "frames": rel,
                    "asr": [
                        {"start": s["start"], "end": s["end"], "text": s["text"]}
                        for s in ann["asr"]["segments"]
                        # schema v2: sentences the relevance filter dropped are not model input
                        if s.get("kept", True)
                    ],
                    "tcot": ann["tcot"],
                    "chapters": chapters,
                    "target_source": source,
                    "metadata": row.get("metadata", {}),
                    "ground_truth": row.get("ground_truth"),
                }
            )
            done += 1
    for split in SPLITS:
        write_jsonl(out_dir / f"{split}.jsonl", rows_by_split[split])
    summary: dict[str, Any] = {
        "videos": total,
        "splits": {s: len(v) for s, v in splits.items()},
        "frames": sum(len(r["frame_times"]) for rs in rows_by_split.values() for r in rs),
        "target_sources": {
            src: sum(r["target_source"] == src for rs in rows_by_split.values() for r in rs)
            for src in TARGETS
        },
        "target_errors": dict(sorted(target_errors.items())),
        "config": {
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
            "seed": cfg.seed,
            "split_method": cfg.split_method,
            "fps": cfg.fps,
            "frame_size": cfg.frame_size,
            "max_frames": cfg.max_frames,
            "targets": cfg.targets,
        },
    }
    meta = {"seed": cfg.seed, "split_method": cfg.split_method}
    write_json(out_dir / "splits.json", {**splits, **meta})
    write_json(out_dir / "summary.json", summary)
    if cache is not None:
        summary = {**summary, "frame_cache": {**cache.stats(), "pruned": cache.prune()}}
    if progress:
        progress("done", total, total)
    return summary


def reference_chapters(path: Path) -> list[dict[str, Any]]:
    """The chapters of a reference (ground-truth) file, checked; ValueError names the file and
    the reason when they cannot be trained on."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable reference chapters ({exc})") from None
    chapters = data.get("chapters") if isinstance(data, dict) else None
    if not isinstance(chapters, list) or not chapters:
        raise ValueError(f"{path}: no chapters")
    out = []
    for i, c in enumerate(chapters):
        ok = isinstance(c, dict) and all(
            isinstance(c.get(k), int | float) and not isinstance(c.get(k), bool)
            for k in ("start", "end")
        )
        if not ok or not float(c["start"]) < float(c["end"]):
            raise ValueError(f"{path}: chapter {i} has no numeric start < end")
        if not isinstance(c.get("title"), str) or not c["title"].strip():
            raise ValueError(f"{path}: chapter {i} has no title")
        summary = c.get("summary", "")
        out.append(
            {
                "start": float(c["start"]),
                "end": float(c["end"]),
                "title": c["title"],
                "summary": summary if isinstance(summary, str) else "",
                **({"label": c["label"]} if isinstance(c.get("label"), str) else {}),
            }
        )
    return sorted(out, key=lambda c: c["start"])


def _frames(
    path: Path, video_sha256: str | None, cfg: DatasetConfig, cache: FrameCache | None
) -> tuple[bytes, list[float]]:
    """(npy bytes, frame times) of one video: from the cache when it holds them, else decoded
    (and stored). A manifest row without a content hash is always decoded."""
    key = None
    if cache is not None and video_sha256:
        key = cache_key(video_sha256, cfg.fps, cfg.frame_size, cfg.max_frames, _sampler())
        hit = cache.get(key)
        if hit is not None:
            return hit
    frames, times = _sample_frames(path, cfg)
    npy = _npy_bytes(frames)
    if cache is not None:
        if key is None:
            cache.misses += 1
        else:
            cache.put(key, npy, frames.shape, times)
    return npy, times


@functools.cache
def _sampler() -> str:
    from hivid.data import decode

    return sampler_fingerprint(_sample_frames, _npy_bytes, decode)


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
