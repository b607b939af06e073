"""SODA_c (Fujita et al., ECCV 2020; fujiso/SODA v1.1, the copy PDVC and TimeChat run).

Per video (GT events and predictions each sorted by start time, stable):

    W[i, j] = tIoU(gt_i, pred_j) * METEOR(hypothesis = gt_i sentence, reference = pred_j sentence)

(the reference passes the arguments to METEOR swapped, so the GT sentence is the hypothesis), then
the maximum-weight order-preserving one-to-one alignment

    dp[i, j] = max(dp[i-1, j], dp[i, j-1], dp[i-1, j-1] + W[i, j])

gives ``score = dp[-1, -1]``, ``P = score / #pred``, ``R = score / #gt``, ``F = 2PR / (P + R)``.
SODA_c is the mean of F over the videos that are in both files (missing videos are dropped; a video
with an empty prediction list scores 0). The reference recurses (and returns 0 on a
RecursionError for very long videos); we fill the table row by row with numpy instead.
"""

from __future__ import annotations

import numpy as np


def tiou_matrix(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(G, P) tIoU with the evaluators' formula: inter / (min(hull, len_g + len_p) + 1e-8).

    ``gt`` (G, 2) and ``pred`` (P, 2) as [start, end] rows.
    """
    gs, ge = gt[:, None, 0], gt[:, None, 1]  # (G, 1)
    ps, pe = pred[None, :, 0], pred[None, :, 1]  # (1, P)
    inter = np.maximum(0.0, np.minimum(ge, pe) - np.maximum(gs, ps))  # (G, P)
    union = np.minimum(np.maximum(ge, pe) - np.minimum(gs, ps), (ge - gs) + (pe - ps))
    return inter / (union + 1e-8)


def max_alignment(w: np.ndarray) -> float:
    """Best total weight of an order-preserving one-to-one alignment of rows to columns.

    Row ``i`` of the table is ``cur[j] = max(prev[j], cur[j-1], prev[j-1] + w[i, j])``: with
    ``a = max(prev, shift(prev) + w[i])`` the ``cur[j-1]`` term is a running maximum of ``a``.
    """
    if w.size == 0:
        return 0.0
    prev = np.zeros(w.shape[1] + 1)  # prev[0] is the virtual column -1 (0 for non-negative w)
    for row in w:  # (P,)
        a = np.maximum(prev[1:], prev[:-1] + row)
        prev = np.concatenate(([0.0], np.maximum.accumulate(a)))
    return float(prev[-1])


def video_soda(iou: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """(P, R, F) of one video from its (G, P) tIoU and METEOR matrices."""
    n_g, n_p = iou.shape
    if n_p == 0:
        return 0.0, 0.0, 0.0
    best = max_alignment(np.where(iou < 0.0, 0.0, iou) * scores)
    p, r = best / n_p, best / n_g
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)
