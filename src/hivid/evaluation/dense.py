"""The dense-captioning evaluator (ActivityNet Captions format) and SODA_c, as one pass.

``dense_scores`` equals, on English input, PDVC's ``densevid_eval3/evaluate2018.py -v`` (Bleu_1..4,
METEOR, ROUGE_L, CIDEr, Precision, Recall averaged over tIoU {0.3, 0.5, 0.7, 0.9}) plus the
papers' F1 = 2PR/(P+R) of the averaged P and R, and fujiso/SODA v1.1 ``-s c -m Meteor``.

Language metrics (per tIoU t): every (prediction, GT event) pair with tIoU >= t is a segment
(many-to-many); a prediction that overlaps nothing is paired with ``GARBAGE``. Each video's
segments are scored as their own small corpus (CIDEr-D document frequencies from that video alone,
METEOR the jar's aggregate over the video's segments); per-video scores are averaged over all GT
videos (a video without predictions scores 0), then over the thresholds. Predictions beyond the
first ``max_proposals`` of a video are dropped; ``duration`` is never used.

Localization semantics follow the reference evaluator (see shared/design/evaluation-notes.md):

- tIoU = intersection / (min(hull, len1 + len2) + 1e-8); the 1e-8 decides exact-threshold ties;
- per video and tIoU threshold t: a GT event is recalled / a prediction is precise when some pair
  has tIoU **> t** (strict); recall = hit GT / #GT, precision = hit predictions / #predictions;
- every GT video counts; a GT video with no (or an empty list of) predictions scores 0 — the
  reference code crashes on an empty list, we define it as 0 and warn;
- P and R are averaged over videos, then over thresholds; F1 = 2PR / (P + R) of those averages.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hivid.evaluation.coco import bleu, cider_d, rouge_l_segment
from hivid.evaluation.meteor import Meteor, Pair
from hivid.evaluation.soda import tiou_matrix, video_soda

TIOUS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
GARBAGE = "abc123!@#"
"""Reference a prediction that overlaps no GT event is scored against (evaluate2018.py)."""
LANG_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


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
    warn: bool = True,
) -> dict[str, Any]:
    """Precision / Recall / F1 averaged over ``tious`` plus per-video and per-threshold numbers.

    ``ground_truth``: ``{vid: {"timestamps": [[s, e], ...], ...}}`` (ActivityNet GT format);
    ``results``: ``{vid: [{"timestamp": [s, e], "sentence": ...}, ...]}``.
    """
    missing = [v for v in ground_truth if not results.get(v)]
    if missing and warn:
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


# --------------------------------------------------------------------------------------------
# Input checks: the reference evaluators' behaviour, made explicit with a warning each
# --------------------------------------------------------------------------------------------


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def check_inputs(
    gt: Mapping[str, Any],
    pred: Mapping[str, Any],
    max_proposals: int = 1000,
    where: str = "",
    all_gt_ids: set[str] | None = None,
    pred_where: str = "",
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], list[str]]:
    """Validate ActivityNet GT + prediction objects; returns (gt, results, warnings).

    Malformed input is a ``ValueError`` naming the file part and video; questionable but valid
    input is kept exactly as the reference code treats it and reported in ``warnings``.
    """
    w: list[str] = []
    if not isinstance(gt, Mapping) or not gt:
        raise ValueError(f"{where}ground truth must be a non-empty object {{video_id: {{...}}}}")
    missing_fields = [k for k in ("results", "version", "external_data") if k not in pred]
    if "results" in missing_fields or not isinstance(pred.get("results"), Mapping):
        raise ValueError(f"{pred_where}predictions need a 'results' object {{video_id: [...]}}")
    if missing_fields:
        w.append(f"prediction file lacks {missing_fields} (the reference evaluator rejects it)")
    clean_gt: dict[str, Any] = {}
    n_rev_gt = 0
    for vid, g in gt.items():
        ts, ss = g.get("timestamps") if isinstance(g, Mapping) else None, None
        if isinstance(g, Mapping):
            ss = g.get("sentences")
        if not isinstance(ts, list) or not isinstance(ss, list) or len(ts) != len(ss) or not ts:
            raise ValueError(
                f"{where}ground truth {vid!r}: needs equally long non-empty 'timestamps' and "
                "'sentences' lists"
            )
        for t in ts:
            if not (isinstance(t, list | tuple) and len(t) == 2 and all(_is_num(x) for x in t)):
                raise ValueError(f"{where}ground truth {vid!r}: bad timestamp {t!r}")
            n_rev_gt += t[0] > t[1]
        if not all(isinstance(x, str) for x in ss):
            raise ValueError(f"{where}ground truth {vid!r}: sentences must be strings")
        clean_gt[vid] = {"duration": g.get("duration"), "timestamps": ts, "sentences": ss}
    results: dict[str, list[dict[str, Any]]] = {}
    n_rev = n_beyond = n_dup = n_cut = 0
    for vid, items in pred["results"].items():
        if not isinstance(items, list):
            raise ValueError(f"{pred_where}predictions {vid!r}: expected a list of segments")
        seen: set[tuple[float, float, str]] = set()
        for it in items:
            t = it.get("timestamp") if isinstance(it, Mapping) else None
            if not (isinstance(t, list | tuple) and len(t) == 2 and all(_is_num(x) for x in t)):
                raise ValueError(f"{pred_where}predictions {vid!r}: bad timestamp in {it!r}")
            if not isinstance(it.get("sentence"), str):
                raise ValueError(f"{pred_where}predictions {vid!r}: 'sentence' must be a string")
            n_rev += t[0] > t[1]
            dur = clean_gt.get(vid, {}).get("duration")
            n_beyond += _is_num(dur) and (max(t) > dur or min(t) < 0)
            key = (float(t[0]), float(t[1]), it["sentence"])
            n_dup += key in seen
            seen.add(key)
        n_cut += max(0, len(items) - max_proposals)
        results[vid] = list(items)
    missing = sorted(set(clean_gt) - set(results))
    empty = sorted(v for v in clean_gt if v in results and not results[v])
    unknown = sorted(set(results) - (all_gt_ids if all_gt_ids is not None else set(clean_gt)))

    def some(xs: list[str]) -> str:
        return ", ".join(xs[:5]) + (" ..." if len(xs) > 5 else "")

    if missing:
        w.append(
            f"{len(missing)} GT video(s) missing from the predictions ({some(missing)}): they "
            "score 0 in the dense-captioning metrics and are left out of SODA_c (as the references)"
        )
    if empty:
        w.append(
            f"{len(empty)} video(s) with an empty prediction list ({some(empty)}): scored 0 "
            "everywhere (the reference precision code crashes or reuses a stale count here)"
        )
    if unknown:
        w.append(f"{len(unknown)} predicted video id(s) not in the GT are ignored: {some(unknown)}")
    if n_rev or n_rev_gt:
        w.append(
            f"{n_rev} predicted and {n_rev_gt} GT segment(s) have start > end: kept as given "
            "(the reference tIoU then never counts them as overlapping)"
        )
    if n_beyond:
        w.append(
            f"{n_beyond} predicted segment(s) lie outside [0, duration]: not clipped (the "
            "reference never reads the duration)"
        )
    if n_dup:
        w.append(f"{n_dup} duplicate predicted segment(s): each is counted, as in the reference")
    if n_cut:
        w.append(f"{n_cut} prediction(s) beyond the first {max_proposals} per video are dropped")
    return clean_gt, results, w


# --------------------------------------------------------------------------------------------
# The evaluation
# --------------------------------------------------------------------------------------------


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if len(xs) else 0.0


def dense_scores(
    ground_truth: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    prediction: Mapping[str, Any],
    tokenizer: Any,
    meteor: Meteor,
    tious: Sequence[float] = TIOUS,
    max_proposals: int = 1000,
    soda: bool = True,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every dense-captioning metric of one GT / prediction pair; see the module docstring.

    ``prediction`` is the whole prediction file object (``{"version", "results", ...}``).
    ``names``: the GT file names then the prediction file name (for error messages).
    ``ground_truth`` is one GT object or several (ActivityNet's val_1 + val_2): then captions
    pair with the events of every file, Precision and Recall take the best file per video
    (separately), and SODA_c is the mean over files (as PDVC's ``eval_soda``).
    Returns the averaged metrics plus ``per_threshold``, ``per_video`` and ``warnings``.
    """
    files = [ground_truth] if isinstance(ground_truth, Mapping) else list(ground_truth)
    if not files:
        raise ValueError("no ground-truth file given")
    ids = {v for f in files if isinstance(f, Mapping) for v in f}
    gt_names = list(names[:-1]) if names else [f"GT file {k + 1}" for k in range(len(files))]
    pred_where = f"{names[-1]}: " if names else ""
    checked = [
        check_inputs(f, prediction, max_proposals, f"{gt_names[k]}: ", ids, pred_where)
        for k, f in enumerate(files)
    ]
    gts = [c[0] for c in checked]
    results = checked[0][1]
    warns = list(dict.fromkeys(w for c in checked for w in c[2]))
    for line in warns:
        warnings.warn(line, stacklevel=2)
    gt: dict[str, Any] = {}  # every GT video (union of the files, first file's order)
    for g in gts:
        gt.update({v: x for v, x in g.items() if v not in gt})
    cut = {v: results[v][:max_proposals] for v in gt if v in results}
    tokenizer.prepare(
        [GARBAGE]
        + [s for g in gts for x in g.values() for s in x["sentences"]]
        + [p["sentence"] for v in gt if v in results for p in results[v]]
    )
    garbage = tokenizer(GARBAGE)
    gt_toks = [{v: [tokenizer(s) for s in x["sentences"]] for v, x in g.items()} for g in gts]
    ious = [
        {
            v: tiou_matrix(
                np.asarray(g[v]["timestamps"], dtype=float).reshape(-1, 2),
                np.asarray([p["timestamp"] for p in cut[v]], dtype=float).reshape(-1, 2),
            )
            for v in cut
            if v in g
        }
        for g in gts
    ]

    # language metrics: one corpus per (threshold, video)
    groups: list[tuple[float, str, list[Pair]]] = []
    for t in tious:
        for v in gt:
            if not cut.get(v):
                continue
            pairs: list[Pair] = []
            for j, p in enumerate(cut[v]):
                hyp = tokenizer(p["sentence"])
                hits: list[Pair] = []
                for k in range(len(gts)):
                    if v in ious[k]:
                        hit = np.nonzero(ious[k][v][:, j] >= t)[0]
                        hits += [(hyp, (gt_toks[k][v][i],)) for i in hit]
                pairs += hits or [(hyp, (garbage,))]
            groups.append((t, v, pairs))
    soda_parts = (
        [_soda_matrices(g, results, tokenizer, gt_toks[k]) for k, g in enumerate(gts)]
        if soda
        else []
    )
    # the JVM computes METEOR statistics while Python scores BLEU / ROUGE-L / CIDEr-D
    meteor.prepare_async(
        [p for g in groups for p in g[2]] + [pr for part in soda_parts for pr in part[1]]
    )
    rouge_cache: dict[Pair, float] = {}
    per_tv: dict[tuple[float, str], dict[str, float]] = {}
    for t, v, pairs in groups:
        refs = [list(r) for _, r in pairs]
        cands = [h for h, _ in pairs]
        s = dict(zip(LANG_KEYS[:4], bleu(refs, cands), strict=True))
        for pr in pairs:
            if pr not in rouge_cache:
                rouge_cache[pr] = rouge_l_segment(list(pr[1]), pr[0])
        s["ROUGE_L"] = _mean([rouge_cache[pr] for pr in pairs])
        s["CIDEr"] = cider_d(refs, cands)[0]
        per_tv[(t, v)] = s
    meteor_scores = meteor.evaluate([g[2] for g in groups]) if groups else []
    for (t, v, _), (m, _) in zip(groups, meteor_scores, strict=True):
        per_tv[(t, v)]["METEOR"] = m
    zero = dict.fromkeys(LANG_KEYS, 0.0)
    per_threshold: dict[str, dict[str, float]] = {}
    for t in tious:
        per_threshold[str(t)] = {
            k: _mean([per_tv.get((t, v), zero)[k] for v in gt]) for k in LANG_KEYS
        }

    loc = _best_file_localization(gts, gt, cut, tious, max_proposals)
    for t in tious:
        per_threshold[str(t)].update(loc["per_threshold"][str(t)])
    out: dict[str, Any] = {
        k: _mean([per_threshold[str(t)][k] for t in tious])
        for k in (*LANG_KEYS, "Precision", "Recall")
    }
    p, r = out["Precision"], out["Recall"]
    out["F1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0

    per_video: dict[str, dict[str, float]] = {}
    for v in gt:
        row = {k: _mean([per_tv.get((t, v), zero)[k] for t in tious]) for k in LANG_KEYS}
        row.update({k: loc["per_video"][v][k] for k in ("Precision", "Recall", "F1")})
        per_video[v] = row

    if soda:
        per_file = [_soda_finish(mats, prs, meteor) for mats, prs in soda_parts]
        out["SODA_c"] = _mean([_mean(list(f.values())) for f in per_file])
        for v in gt:
            fs = [f[v] for f in per_file if v in f]
            if fs:
                per_video[v]["SODA_c"] = _mean(fs)
        out["SODA_c_videos"] = len({v for f in per_file for v in f})
    out.update(per_threshold=per_threshold, per_video=per_video, warnings=warns)
    out["videos"] = len(gt)
    return out


def _best_file_localization(
    gts: Sequence[Mapping[str, Any]],
    gt: Mapping[str, Any],
    cut: Mapping[str, Sequence[Mapping[str, Any]]],
    tious: Sequence[float],
    max_proposals: int,
) -> dict[str, Any]:
    """localization_scores over several GT files: per video and threshold the best file's
    precision and (separately) the best file's recall, as evaluate2018.py."""
    locs = [
        localization_scores(g, {v: cut.get(v, []) for v in g}, tious, max_proposals, warn=False)
        for g in gts
    ]
    if len(locs) == 1:
        return locs[0]
    per_video: dict[str, dict[str, float]] = {}
    for v in gt:
        rows = [loc["per_video"][v] for loc in locs if v in loc["per_video"]]
        row: dict[str, float] = {}
        for t in tious:
            row[f"Precision@{t}"] = max(r[f"Precision@{t}"] for r in rows)
            row[f"Recall@{t}"] = max(r[f"Recall@{t}"] for r in rows)
        p = _mean([row[f"Precision@{t}"] for t in tious])
        r = _mean([row[f"Recall@{t}"] for t in tious])
        row.update(Precision=p, Recall=r, F1=2 * p * r / (p + r) if p + r > 0 else 0.0)
        per_video[v] = row
    per_threshold = {
        str(t): {
            "Precision": _mean([per_video[v][f"Precision@{t}"] for v in gt]),
            "Recall": _mean([per_video[v][f"Recall@{t}"] for v in gt]),
        }
        for t in tious
    }
    return {"per_threshold": per_threshold, "per_video": per_video}


def soda_c(
    gt: Mapping[str, Any],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    tokenizer: Any,
    meteor: Meteor,
    gt_tok: Mapping[str, list[str]] | None = None,
) -> dict[str, float]:
    """Per-video SODA_c F of the videos in both GT and predictions (see hivid.evaluation.soda)."""
    mats, pairs = _soda_matrices(gt, results, tokenizer, gt_tok)
    return _soda_finish(mats, pairs, meteor)


def _soda_matrices(
    gt: Mapping[str, Any],
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    tokenizer: Any,
    gt_tok: Mapping[str, list[str]] | None = None,
) -> tuple[dict[str, tuple[np.ndarray, list[Pair | None]]], list[Pair]]:
    """Per video: (tIoU matrix, METEOR pair per cell or None where tIoU is 0), all pairs."""
    vids = [v for v in gt if v in results]
    tokenizer.prepare(
        [s for v in vids for s in gt[v]["sentences"]]
        + [p["sentence"] for v in vids for p in results[v]]
    )
    mats: dict[str, tuple[np.ndarray, list[Pair | None]]] = {}
    all_pairs: list[Pair] = []
    for v in vids:
        preds = sorted(results[v], key=lambda p: p["timestamp"][0])  # stable, as the reference
        order = sorted(range(len(gt[v]["timestamps"])), key=lambda i: gt[v]["timestamps"][i][0])
        g_ts = np.asarray([gt[v]["timestamps"][i] for i in order], dtype=float).reshape(-1, 2)
        g_tok = [(gt_tok[v][i] if gt_tok else tokenizer(gt[v]["sentences"][i])) for i in order]
        p_ts = np.asarray([p["timestamp"] for p in preds], dtype=float).reshape(-1, 2)
        p_tok = [tokenizer(p["sentence"]) for p in preds]
        # METEOR with the GT sentence as hypothesis and the prediction as reference (as SODA).
        # W = tIoU * METEOR, so pairs that do not overlap need no METEOR score at all.
        iou = tiou_matrix(g_ts, p_ts)  # (G, P)
        pairs: list[Pair | None] = [
            (str(g_tok[i]), (str(p_tok[j]),)) if iou[i, j] > 0 else None
            for i in range(len(g_tok))
            for j in range(len(p_tok))
        ]
        mats[v] = (iou, pairs)
        all_pairs += [pr for pr in pairs if pr is not None]
    return mats, all_pairs


def _soda_finish(
    mats: Mapping[str, tuple[np.ndarray, list[Pair | None]]], all_pairs: list[Pair], meteor: Meteor
) -> dict[str, float]:
    seg = meteor.segment_scores(list(dict.fromkeys(all_pairs)))
    scores = dict(zip(dict.fromkeys(all_pairs), seg, strict=True))
    out: dict[str, float] = {}
    for v, (iou, pairs) in mats.items():
        m = np.asarray([scores[pr] if pr else 0.0 for pr in pairs], dtype=float)
        out[v] = video_soda(iou, m.reshape(iou.shape))[2]
    return out


def evaluate_files(
    gt_path: Path | Sequence[Path],
    pred_path: Path,
    tious: Sequence[float] = TIOUS,
    max_proposals: int = 1000,
    tokenizer_mode: str = "auto",
    segmenter: str = "jieba",
    meteor_memory: str = "2G",
) -> dict[str, Any]:
    """``hivid evaluate dense``: read the two files and score them with one METEOR process."""
    from hivid.evaluation.tokenize import CaptionTokenizer
    from hivid.io import read_json

    if not tious or not all(0 < t < 1 for t in tious):
        raise ValueError(f"tIoU thresholds must lie in (0, 1), got {list(tious)}")
    paths = [gt_path] if isinstance(gt_path, Path | str) else list(gt_path)
    with Meteor(meteor_memory) as meteor:  # starts loading while we read and tokenize
        pred = read_json(pred_path)
        if not isinstance(pred, Mapping):
            raise ValueError(f"{pred_path}: predictions must be a JSON object with 'results'")
        gts = [read_json(p) for p in paths]
        for p, g in zip(paths, gts, strict=True):
            if not isinstance(g, Mapping):
                raise ValueError(f"{p}: ground truth must be a JSON object")
        tok = CaptionTokenizer(mode=tokenizer_mode, segmenter=segmenter)  # type: ignore[arg-type]
        names = [str(p) for p in (*paths, pred_path)]
        out = dense_scores(gts, pred, tok, meteor, tious, max_proposals, names=names)
        out["evaluator"] = evaluator_identity(tok, meteor)
    out["definitions"] = DEFINITIONS
    return out


DEFINITIONS = {
    "SODA_c": "fujiso/SODA v1.1 -s c -m Meteor: mean per-video F over videos in both files",
    "dense": "PDVC densevid_eval3/evaluate2018.py -v, metrics averaged over the tIoUs",
    "F1": "2PR/(P+R) of the tIoU-averaged Precision and Recall",
}


def evaluator_identity(tokenizer: Any, meteor: Meteor) -> dict[str, Any]:
    """Who computed the numbers: code version, METEOR jar hash, tokenizer name + version."""
    from importlib import metadata

    try:
        version = metadata.version("hivid")
    except metadata.PackageNotFoundError:
        version = "unknown"
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return {
        "hivid": version,
        "evaluation_code_sha256": h.hexdigest(),
        **meteor.identity(),
        "tokenizer": tokenizer.identity(),
    }
