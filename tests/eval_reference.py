"""Reference-semantics dense evaluators, written plainly on top of pycocoevalcap's own scorers.

This is the yardstick for ``hivid.evaluation.dense`` in the tests and in benchmarks/evaluation.py
(its self-checks: tests/unit/test_eval_reference.py):
the control flow of PDVC's ``densevid_eval3/evaluate2018.py -v`` and of fujiso/SODA v1.1
``soda.py -s c -m Meteor`` restated without cleverness (a PTBTokenizer JVM per scorer and tIoU, the
Meteor wrapper's one-line-at-a-time protocol, the recursive SODA dynamic programme), so that
equal numbers mean equal semantics. Differences, all on input the references cannot handle: an
empty prediction list scores 0 in precision (the reference crashes or reuses a stale count).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

GARBAGE = "abc123!@#"


def ref_remove_nonascii(text: str) -> str:
    return "".join(c if ord(c) < 128 else " " for c in text)


def ref_iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0, min(b[1], a[1]) - max(b[0], a[0]))
    union = min(max(b[1], a[1]) - min(b[0], a[0]), b[1] - b[0] + a[1] - a[0])
    return float(inter) / (union + 1e-8)


def _quiet(fn: Any, *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def reference_densevid(
    gt_files: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    pred: Mapping[str, Any],
    tious: Sequence[float],
    ppv: int = 1000,
) -> dict[str, float]:
    """evaluate2018.py semantics (one or more GT files): language metrics and P/R over tious."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    files = [gt_files] if isinstance(gt_files, Mapping) else list(gt_files)
    vids: list[str] = []
    for f in files:
        vids += [v for v in f if v not in vids]
    prediction = {v: items[:ppv] for v, items in pred["results"].items()}
    tokenizer = PTBTokenizer()
    scorers: list[tuple[Any, Any]] = [
        (Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
        (Meteor(), "METEOR"),
        (Rouge(), "ROUGE_L"),
        (Cider(), "CIDEr"),
    ]
    collected: dict[str, list[float]] = {}
    for t in tious:
        cur_res: dict[int, list[dict[str, str]]] = {}
        cur_gts: dict[int, list[dict[str, str]]] = {}
        vid2capid: dict[str, list[int]] = {}
        idx = 0
        for vid in vids:
            vid2capid[vid] = []
            for p in prediction.get(vid, []):
                added = False
                for gt in files:
                    if vid not in gt:
                        continue
                    for ci, ts in enumerate(gt[vid]["timestamps"]):
                        if ref_iou(p["timestamp"], ts) >= t:
                            cur_res[idx] = [{"caption": ref_remove_nonascii(p["sentence"])}]
                            cur_gts[idx] = [
                                {"caption": ref_remove_nonascii(gt[vid]["sentences"][ci])}
                            ]
                            vid2capid[vid].append(idx)
                            idx += 1
                            added = True
                if not added:
                    cur_res[idx] = [{"caption": ref_remove_nonascii(p["sentence"])}]
                    cur_gts[idx] = [{"caption": GARBAGE}]
                    vid2capid[vid].append(idx)
                    idx += 1
        for scorer, method in scorers:
            tok_res = tokenizer.tokenize(cur_res)  # a JVM per scorer and threshold, as there
            tok_gts = tokenizer.tokenize(cur_gts)
            per_video = []
            for vid in vids:
                res = {i: tok_res[i] for i in vid2capid[vid]}
                gts = {i: tok_gts[i] for i in vid2capid[vid]}
                if not res:
                    per_video.append([0.0] * 4 if isinstance(method, list) else 0.0)
                else:
                    per_video.append(_quiet(scorer.compute_score, gts, res)[0])
            if isinstance(method, list):
                means = np.mean(per_video, axis=0)
                for k, m in enumerate(method):
                    collected.setdefault(m, []).append(float(means[k]))
            else:
                collected.setdefault(method, []).append(float(np.mean(per_video)))
    for t in tious:
        precision, recall = [], []
        for vid in vids:
            best_p, best_r = 0.0, 0.0
            for gt in files:
                if vid not in gt:
                    continue
                covered_ref: set[int] = set()
                covered_pred: set[int] = set()
                preds = prediction.get(vid, [])
                for pi, p in enumerate(preds):
                    for ri, ts in enumerate(gt[vid]["timestamps"]):
                        if ref_iou(p["timestamp"], ts) > t:
                            covered_ref.add(ri)
                            covered_pred.add(pi)
                best_p = max(best_p, len(covered_pred) / len(preds) if preds else 0.0)
                best_r = max(best_r, len(covered_ref) / len(gt[vid]["timestamps"]))
            precision.append(best_p)
            recall.append(best_r)
        collected.setdefault("Precision", []).append(sum(precision) / len(precision))
        collected.setdefault("Recall", []).append(sum(recall) / len(recall))
    out = {k: float(np.mean(v)) for k, v in collected.items()}
    p, r = out["Precision"], out["Recall"]
    out["F1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


def recursive_dp(scores: np.ndarray) -> float:
    """The SODA recurrence with memoised recursion, as the reference solves it."""
    m, n = scores.shape
    dp = -np.ones((m, n))

    def tr(i: int, j: int) -> float:
        if dp[i, j] >= 0:
            return float(dp[i, j])
        up = tr(i - 1, j) if i > 0 else -1.0
        left = tr(i, j - 1) if j > 0 else -1.0
        diag = (tr(i - 1, j - 1) if i > 0 and j > 0 else 0.0) + scores[i, j]
        dp[i, j] = max(up, left, diag)
        return float(dp[i, j])

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * (m + n) + 100))
    return tr(m - 1, n - 1)


def reference_soda_c(
    gt_files: Mapping[str, Any] | Sequence[Mapping[str, Any]], pred: Mapping[str, Any]
) -> float:
    """PDVC's ``eval_soda``: fujiso/SODA v1.1 ``-s c -m Meteor`` run on each GT file alone (mean
    over videos of per-video F), averaged over the files."""
    files = [gt_files] if isinstance(gt_files, Mapping) else list(gt_files)
    return float(np.mean([_reference_soda_one(f, pred) for f in files]))


def _reference_soda_one(gt: Mapping[str, Any], pred: Mapping[str, Any]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    preds = {
        v: sorted(items, key=lambda x: x["timestamp"][0]) for v, items in pred["results"].items()
    }
    vids = [v for v in gt if v in preds]
    golds = {}
    for v in vids:
        pairs = sorted(
            zip(gt[v]["timestamps"], gt[v]["sentences"], strict=True), key=lambda x: x[0][0]
        )
        golds[v] = {"timestamps": [p[0] for p in pairs], "sentences": [p[1] for p in pairs]}
    tok = PTBTokenizer()
    pk = [(v, j) for v in vids for j in range(len(preds[v]))]
    gk = [(v, j) for v in vids for j in range(len(golds[v]["sentences"]))]
    tp = tok.tokenize(
        {
            k: [{"caption": ref_remove_nonascii(preds[v][j]["sentence"])}]
            for k, (v, j) in enumerate(pk)
        }
    )
    tg = tok.tokenize(
        {
            k: [{"caption": ref_remove_nonascii(golds[v]["sentences"][j])}]
            for k, (v, j) in enumerate(gk)
        }
    )
    p_sent = {v: [] for v in vids}  # type: dict[str, list[list[str]]]
    g_sent = {v: [] for v in vids}  # type: dict[str, list[list[str]]]
    for k, (v, _) in enumerate(pk):
        p_sent[v].append(tp[k])
    for k, (v, _) in enumerate(gk):
        g_sent[v].append(tg[k])
    meteor = Meteor()
    f_all = []
    for v in vids:
        if not p_sent[v]:
            f_all.append(0.0)
            continue
        iou = np.array(
            [[ref_iou(p["timestamp"], g) for p in preds[v]] for g in golds[v]["timestamps"]]
        )
        res = dict(enumerate(p_sent[v]))
        score = np.array(
            [meteor.compute_score(res, {i: g for i in range(len(p_sent[v]))})[1] for g in g_sent[v]]
        )
        iou[iou < 0.0] = 0.0
        best = recursive_dp(iou * score)
        n_g, n_p = iou.shape
        p, r = best / n_p, best / n_g
        f_all.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return float(np.mean(f_all))
