"""The `build_dataset` stage: split videos (never clips) and write training samples.

Output directory::

    splits.json            {"train": [...], "val": [...], "test": [...], "seed", "fractions"}
    train.jsonl / val.jsonl / test.jsonl   one JSON object per video (format below)
    frames/<video_id>.npy  uint8 (N, H, W, 3): frames sampled at ``fps``, resized to ``frame_size``
    summary.json

Row format: ``{"video_id", "duration", "frame_times", "frames", "asr": [{start, end, text}],
"tcot": [...], "chapters": [...], "ground_truth": path relative to the data root or null}``.
Targets (TCoT, chapters) come from the annotation stage: they are the pseudo-labels the paper's
pipeline builds; the demo corpus's ground truth is kept apart for evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hivid.configbase import require
from hivid.io import write_bytes_atomic, write_json, write_jsonl

SPLITS = ("train", "val", "test")


@dataclass
class DatasetConfig:
    """Knobs of the build_dataset stage (params.yaml section ``dataset``)."""

    val_fraction: float = 0.125
    """Share of videos in the validation split (at least one video once there are 3 or more)."""
    test_fraction: float = 0.25
    """Share of videos in the test split (at least one video once there are 2 or more)."""
    seed: int = 0
    """Salt of the per-video hash that orders videos into splits (changing it reshuffles)."""
    fps: float = 1.0
    """Frames per second sampled for the model's visual input."""
    frame_size: int = 32
    """Frames are stored square at this many pixels (the vision encoder resizes again)."""
    max_frames: int = 64
    """At most this many frames per video are stored (evenly subsampled beyond that)."""

    def __post_init__(self) -> None:
        require(0 <= self.val_fraction < 1, "dataset.val_fraction must be in [0, 1)")
        require(0 <= self.test_fraction < 1, "dataset.test_fraction must be in [0, 1)")
        require(
            self.val_fraction + self.test_fraction < 1,
            "dataset: val_fraction + test_fraction must be < 1",
        )
        require(self.fps > 0, "dataset.fps must be > 0")
        require(8 <= self.frame_size <= 1024, "dataset.frame_size must be in [8, 1024]")
        require(self.max_frames >= 1, "dataset.max_frames must be >= 1")


def split_videos(video_ids: list[str], cfg: DatasetConfig) -> dict[str, list[str]]:
    """Deterministic split by video: order by salted hash, then cut by the configured shares."""

    def key(vid: str) -> str:
        return hashlib.sha256(f"{cfg.seed}:{vid}".encode()).hexdigest()

    ordered = sorted(set(video_ids), key=key)
    n = len(ordered)
    n_test = round(n * cfg.test_fraction)
    n_val = round(n * cfg.val_fraction)
    if n >= 2 and cfg.test_fraction > 0:
        n_test = max(1, n_test)
    if n >= 3 and cfg.val_fraction > 0:
        n_val = max(1, n_val)
    n_test = min(n_test, max(0, n - 1))
    n_val = min(n_val, max(0, n - 1 - n_test))
    test = sorted(ordered[:n_test])
    val = sorted(ordered[n_test : n_test + n_val])
    train = sorted(ordered[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


def _sample_frames(path: Path, cfg: DatasetConfig) -> tuple[np.ndarray, list[float]]:
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
) -> dict[str, Any]:
    """Write the dataset for the videos that passed the quality gate; returns the summary."""
    by_id = {row["video_id"]: row for row in manifest}
    usable = [vid for vid in passed if vid in by_id and vid in annotations]
    if not usable:
        raise ValueError("build_dataset: no video passed the quality gate; nothing to train on")
    splits = split_videos(usable, cfg)
    (out_dir / "frames").mkdir(parents=True, exist_ok=True)
    rows_by_split: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    total = len(usable)
    done = 0
    for split in SPLITS:
        for vid in splits[split]:
            if progress:
                progress(vid, done, total)
            row, ann = by_id[vid], annotations[vid]
            frames, times = _sample_frames(data_root / row["path"], cfg)
            rel = f"frames/{vid}.npy"
            buf = _npy_bytes(frames)
            write_bytes_atomic(out_dir / rel, buf)
            rows_by_split[split].append(
                {
                    "video_id": vid,
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
                    "chapters": ann["chapters"],
                    "metadata": row.get("metadata", {}),
                    "ground_truth": row.get("ground_truth"),
                }
            )
            done += 1
    for split in SPLITS:
        write_jsonl(out_dir / f"{split}.jsonl", rows_by_split[split])
    summary = {
        "videos": total,
        "splits": {s: len(v) for s, v in splits.items()},
        "frames": sum(len(r["frame_times"]) for rs in rows_by_split.values() for r in rs),
        "config": {
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
            "seed": cfg.seed,
            "fps": cfg.fps,
            "frame_size": cfg.frame_size,
            "max_frames": cfg.max_frames,
        },
    }
    write_json(out_dir / "splits.json", {**splits, "seed": cfg.seed})
    write_json(out_dir / "summary.json", summary)
    if progress:
        progress("done", total, total)
    return summary


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
