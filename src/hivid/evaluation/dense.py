"""Temporal-localization metrics of the dense-captioning evaluator (ActivityNet Captions format).

Semantics follow the reference evaluator (see shared/design/evaluation-notes.md):

- tIoU = intersection / (min(hull, len1 + len2) + 1e-8); the 1e-8 decides exact-threshold ties;
- per video and tIoU threshold t: a GT event is recalled / a prediction is precise when some pair
  has tIoU **> t** (strict); recall = hit GT / #GT, precision = hit predictions / #predictions;
- every GT video counts; a GT video with no (or an empty list of) predictions scores 0 — the
  reference code crashes on an empty list, we define it as 0 and warn;
- P and R are averaged over videos, then over thresholds; F1 = 2PR / (P + R) of those averages.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

TIOUS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)


def tiou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU of intervals ``a`` and ``b`` exactly as the reference evaluator computes it."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = min(max(a[1], b[1]) - min(a[0], b[0]), (a[1] - a[0]) + (b[1] - b[0]))
    return float(inter) / (union + 1e-8)


def video_precision_recall(
    gt: Sequence[Sequence[float]], pred: Sequence[Sequence[float]], threshold: float
) -> tuple[float, float]:
    """(precision, recall) of one video's predicted segments at one tIoU threshold."""
    if not gt:
        raise ValueError("a ground-truth video must have at least one event")
    if not pred:
        return 0.0, 0.0
    gt_hit: set[int] = set()
    pred_hit: set[int] = set()
    for gi, g in enumerate(gt):
        for pi, p in enumerate(pred):
            if tiou(p, g) > threshold:
                gt_hit.add(gi)
                pred_hit.add(pi)
    return len(pred_hit) / len(pred), len(gt_hit) / len(gt)


def localization_scores(
    ground_truth: Mapping[str, Mapping[str, Any]],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    tious: Sequence[float] = TIOUS,
    max_proposals: int = 1000,
) -> dict[str, Any]:
    """Precision / Recall / F1 averaged over ``tious`` plus per-video and per-threshold numbers.

    ``ground_truth``: ``{vid: {"timestamps": [[s, e], ...], ...}}`` (ActivityNet GT format);
    ``results``: ``{vid: [{"timestamp": [s, e], "sentence": ...}, ...]}``.
    """
    missing = [v for v in ground_truth if not results.get(v)]
    if missing:
        warnings.warn(
            f"{len(missing)} ground-truth video(s) have no predictions and score 0: "
            + ", ".join(sorted(missing)[:5]),
            stacklevel=2,
        )
    per_threshold: dict[str, dict[str, float]] = {}
    per_video: dict[str, dict[str, float]] = {v: {} for v in ground_truth}
    for t in tious:
        ps, rs = [], []
        for vid, g in ground_truth.items():
            preds = [p["timestamp"] for p in list(results.get(vid) or [])[:max_proposals]]
            p, r = video_precision_recall(g["timestamps"], preds, t)
            ps.append(p)
            rs.append(r)
            per_video[vid][f"Precision@{t}"] = p
            per_video[vid][f"Recall@{t}"] = r
        n = max(1, len(ps))
        per_threshold[str(t)] = {"Precision": sum(ps) / n, "Recall": sum(rs) / n}
    precision = sum(v["Precision"] for v in per_threshold.values()) / len(tious)
    recall = sum(v["Recall"] for v in per_threshold.values()) / len(tious)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    for scores in per_video.values():
        p = sum(scores[f"Precision@{t}"] for t in tious) / len(tious)
        r = sum(scores[f"Recall@{t}"] for t in tious) / len(tious)
        scores.update(Precision=p, Recall=r, F1=2 * p * r / (p + r) if p + r > 0 else 0.0)
    return {
        "Precision": precision,
        "Recall": recall,
        "F1": f1,
        "per_threshold": per_threshold,
        "per_video": per_video,
    }
