"""Annotation quality against ground truth (the demo corpus writes ``ground_truth/<id>.json``).

- WER (English) / CER (Chinese) of the raw ASR and of the corrected text against the reference
  sentences, both through the same normaliser (``textmetrics``), summed over the corpus;
- chapter-boundary F1 at a tolerance (default ±2 s): inner boundaries (not 0 and the end),
  matched one to one, closest first;
- product-text recall: over described frames, the share in which the frame description (OCR text
  and any VLM caption) contains the product name and the price;
- script-label accuracy: each reference chapter against the predicted chapter overlapping it most.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hivid.annotate.correction import metadata_terms
from hivid.annotate.textmetrics import cer, wer
from hivid.io import read_json


def boundary_f1(pred: list[float], ref: list[float], tol: float = 2.0) -> tuple[int, int, int]:
    """(matched, predicted, reference) boundaries; a pair matches within ``tol`` seconds."""
    pairs = sorted((abs(p - r), i, j) for i, p in enumerate(pred) for j, r in enumerate(ref))
    used_p: set[int] = set()
    used_r: set[int] = set()
    for d, i, j in pairs:
        if d <= tol and i not in used_p and j not in used_r:
            used_p.add(i)
            used_r.add(j)
    return len(used_p), len(pred), len(ref)


def inner_bounds(chapters: list[dict[str, Any]]) -> list[float]:
    return [float(c["start"]) for c in chapters[1:]]


def _f1(tp: int, n_pred: int, n_ref: int) -> float:
    if n_pred == 0 and n_ref == 0:
        return 1.0
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_ref if n_ref else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def product_name(metadata: dict[str, Any]) -> str | None:
    for t in metadata_terms(metadata):
        if t.kind == "name":
            return t.text
    title = metadata.get("title")
    return str(title) if title else None


def price_text(metadata: dict[str, Any]) -> str | None:
    price = metadata.get("price")
    amount = price.get("amount") if isinstance(price, dict) else price
    return f"{amount:.2f}" if isinstance(amount, int | float) else None


def evaluate_records(
    records: dict[str, dict[str, Any]],
    ground_truth_dir: Path,
    metadata_dir: Path | None = None,
    tol: float = 2.0,
) -> dict[str, float]:
    """Corpus metrics over the records that have a ground-truth file (empty dict when none)."""
    acc = {k: 0 for k in ("w_raw", "w_cor", "w_n", "c_raw", "c_cor", "c_n", "tp", "np", "nr")}
    hits = frames = label_ok = label_n = videos = 0
    for vid, rec in sorted(records.items()):
        gt_path = ground_truth_dir / f"{vid}.json"
        if not gt_path.is_file():
            continue
        gt = read_json(gt_path)
        videos += 1
        segs = rec.get("asr", {}).get("segments", [])
        ref = " ".join(str(s["text"]) for s in gt.get("sentences", []))
        raw = " ".join(str(s.get("text_raw", s["text"])) for s in segs)
        cor = " ".join(str(s["text"]) for s in segs)
        lang = str(gt.get("language") or rec.get("asr", {}).get("language") or "en")
        if lang.startswith("zh"):
            (e0, n), (e1, _) = cer(ref, raw), cer(ref, cor)
            acc["c_raw"], acc["c_cor"], acc["c_n"] = (
                acc["c_raw"] + e0,
                acc["c_cor"] + e1,
                acc["c_n"] + n,
            )
        else:
            (e0, n), (e1, _) = wer(ref, raw), wer(ref, cor)
            acc["w_raw"], acc["w_cor"], acc["w_n"] = (
                acc["w_raw"] + e0,
                acc["w_cor"] + e1,
                acc["w_n"] + n,
            )
        tp, n_pred, n_ref = boundary_f1(
            inner_bounds(rec.get("chapters", [])), inner_bounds(gt.get("chapters", [])), tol
        )
        acc["tp"], acc["np"], acc["nr"] = acc["tp"] + tp, acc["np"] + n_pred, acc["nr"] + n_ref
        for g in gt.get("chapters", []):
            if "label" not in g:
                continue
            best = max(
                rec.get("chapters", []),
                key=lambda c: min(float(c["end"]), g["end"]) - max(float(c["start"]), g["start"]),
                default=None,
            )
            label_n += 1
            label_ok += best is not None and best.get("script_label") == g["label"]
        meta_path = metadata_dir / f"{vid}.json" if metadata_dir else None
        if meta_path is not None and meta_path.is_file():
            meta = read_json(meta_path)
            wanted = [x for x in (product_name(meta), price_text(meta)) if x]
            for f in rec.get("frames", {}).get("items", []):
                if f.get("reused_from") is not None:
                    continue
                text = _squash(f"{f.get('ocr_text', '')} {f.get('caption', '')}")
                frames += len(wanted)
                hits += sum(_squash(w) in text for w in wanted)
    if not videos:
        return {}
    out: dict[str, float] = {"videos": float(videos)}
    if acc["w_n"]:
        out["wer_raw"] = acc["w_raw"] / acc["w_n"]
        out["wer_corrected"] = acc["w_cor"] / acc["w_n"]
    if acc["c_n"]:
        out["cer_raw"] = acc["c_raw"] / acc["c_n"]
        out["cer_corrected"] = acc["c_cor"] / acc["c_n"]
    out["chapter_f1"] = _f1(acc["tp"], acc["np"], acc["nr"])
    out["chapter_precision"] = acc["tp"] / acc["np"] if acc["np"] else 0.0
    out["chapter_recall"] = acc["tp"] / acc["nr"] if acc["nr"] else 0.0
    if label_n:
        out["script_label_accuracy"] = label_ok / label_n
    if frames:
        out["product_text_recall"] = hits / frames
    return out


def evaluate_dir(
    annotations_dir: Path, ground_truth_dir: Path, metadata_dir: Path | None = None
) -> dict[str, float]:
    """``evaluate_records`` over ``annotations_dir/*.json``."""
    records = {p.stem: read_json(p) for p in sorted(annotations_dir.glob("*.json"))}
    return evaluate_records(records, ground_truth_dir, metadata_dir)


def evaluate_batch(
    annotations_dir: Path, video_ids: list[str], data_root: Path
) -> dict[str, float]:
    """Metrics for ``video_ids`` where ``data_root/ground_truth/<id>.json`` exists (else {})."""
    gt_dir = data_root / "ground_truth"
    if not gt_dir.is_dir():
        return {}
    records = {}
    for vid in video_ids:
        path = annotations_dir / f"{vid}.json"
        if path.is_file() and (gt_dir / f"{vid}.json").is_file():
            records[vid] = read_json(path)
    return evaluate_records(records, gt_dir, data_root / "metadata")
