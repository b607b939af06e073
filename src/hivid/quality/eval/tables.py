"""Tables of the evaluation-inputs gate: ground-truth and predicted events (ActivityNet format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from hivid.quality.columns import (
    BOOL,
    FLOAT,
    INT,
    OBJ,
    _frame,
    _list_at,
    _pair,
    _stripped,
    num,
    text,
)

EVAL_GT_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "duration": FLOAT,
    "pos": INT,
    "start": FLOAT,
    "end": FLOAT,
    "sentence": OBJ,
    "n_timestamps": INT,
    "n_sentences": INT,
    "overrun": FLOAT,
    "shape_error": OBJ,
}
"""One row per ground-truth event of an ActivityNet-format ``gt.json`` (``{vid: {"duration",
"timestamps": [[s, e]], "sentences"}}``); a video without events gets one row with ``pos`` 0
and ``shape_error`` set."""

EVAL_PRED_COLUMNS: dict[str, str] = {
    "row": INT,
    "video_id": OBJ,
    "pos": INT,
    "start": FLOAT,
    "end": FLOAT,
    "sentence": OBJ,
    "in_gt": BOOL,
    "shape_error": OBJ,
}
"""One row per predicted event of ``predictions.json`` (``{"results": {vid: [{"timestamp":
[s, e], "sentence"}]}}``)."""


def eval_gt_table(gt: Mapping[str, Any]) -> pd.DataFrame:
    """One row per ground-truth event (ActivityNet Captions format)."""
    rows = []
    for vid in sorted(gt, key=str):
        g = gt[vid]
        g = g if isinstance(g, Mapping) else {}
        duration = num(g.get("duration"))
        ts: list[Any] = _list_at(g, "timestamps")
        sents: list[Any] = _list_at(g, "sentences")
        base = {
            "video_id": str(vid),
            "duration": duration,
            "n_timestamps": len(ts),
            "n_sentences": len(sents),
        }
        if not ts:
            rows.append({**base, "pos": 0, "shape_error": "no ground-truth events (timestamps)"})
            continue
        for i, t in enumerate(ts):
            start, end, err = _pair(t)
            rows.append(
                {
                    **base,
                    "pos": i + 1,
                    "start": start,
                    "end": end,
                    "sentence": _stripped(text(sents[i])) if i < len(sents) else None,
                    "overrun": end - duration,
                    "shape_error": err,
                }
            )
    return _frame(rows, EVAL_GT_COLUMNS)


def eval_pred_table(results: Mapping[str, Any], gt: Mapping[str, Any]) -> pd.DataFrame:
    """One row per predicted event (``results`` is the ``results`` object of predictions.json)."""
    rows = []
    for vid in sorted(results, key=str):
        preds = results[vid]
        for i, p in enumerate(preds if isinstance(preds, list) else [preds]):
            p = p if isinstance(p, Mapping) else {}
            start, end, err = _pair(p.get("timestamp"))
            rows.append(
                {
                    "video_id": str(vid),
                    "pos": i + 1,
                    "start": start,
                    "end": end,
                    "sentence": text(p.get("sentence")),
                    "in_gt": vid in gt,
                    "shape_error": err,
                }
            )
    return _frame(rows, EVAL_PRED_COLUMNS)
