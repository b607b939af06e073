"""Our evaluator vs the reference semantics, side by side on the same inputs in one run.

    .venv/bin/python benchmarks/evaluation.py                 # the built test sets
    .venv/bin/python benchmarks/evaluation.py --videos 1000   # a bigger generated dense set
    .venv/bin/python benchmarks/evaluation.py --write-reference \
        tests/data/eval/reference_scores.json

Dense: ``hivid.evaluation.dense.evaluate_files`` (SODA_c + densevid metrics, one METEOR process,
one PTB run) against the reference-semantics evaluators of tests/eval_reference.py
(pycocoevalcap's scorers driven as evaluate2018.py and SODA v1.1 drive them). Captions:
``score_captions`` against pycocoevalcap run as COCOEvalCap runs it. Prints every metric from both
sides, the largest difference and the wall-clock ratio. Wall times include each side's JVM
start-ups (the reference starts two METEOR JVMs and a PTB JVM per scorer and threshold).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data" / "eval"


def _table(
    title: str, ours: dict[str, float], ref: dict[str, float], t_ours: float, t_ref: float
) -> float:
    print(f"\n== {title}")
    print(f"{'metric':>10} {'reference':>12} {'ours':>12} {'|diff|':>10}")
    worst = 0.0
    for k, v in ref.items():
        d = abs(v - ours[k])
        worst = max(worst, d)
        print(f"{k:>10} {v:12.6f} {ours[k]:12.6f} {d:10.2e}")
    print(
        f"max |diff| = {worst:.2e}   reference {t_ref:.1f} s   ours {t_ours:.1f} s   "
        f"speed-up {t_ref / t_ours:.1f}x"
    )
    return worst


def dense(
    gt_paths: list[Path], pred_path: Path
) -> tuple[dict[str, float], dict[str, Any], float, float]:
    from tests.eval_reference import reference_densevid, reference_soda_c

    from hivid.evaluation.dense import TIOUS, evaluate_files

    gt = [json.loads(p.read_text()) for p in gt_paths]
    pred = json.loads(pred_path.read_text())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate_files(gt_paths, pred_path)
    t1 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        ref = reference_densevid(gt, pred, TIOUS)
        ref["SODA_c"] = reference_soda_c(gt, pred)
    t2 = time.perf_counter()
    return ref, ours, t1 - t0, t2 - t1


def captions() -> tuple[dict[str, float], dict[str, Any], float, float]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from hivid.evaluation.coco import score_captions
    from hivid.evaluation.tokenize import CaptionTokenizer

    refs = json.loads((DATA / "captions_refs.json").read_text())
    cands = json.loads((DATA / "captions_cands.json").read_text())
    t0 = time.perf_counter()
    ours = score_captions(refs, cands, CaptionTokenizer())
    t1 = time.perf_counter()
    tok = PTBTokenizer()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
        res = tok.tokenize({k: [{"caption": r} for r in v] for k, v in cands.items()})
        ref = dict(
            zip(
                ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"],
                Bleu(4).compute_score(gts, res)[0],
                strict=True,
            )
        )
        ref["METEOR"] = Meteor().compute_score(gts, res)[0]
        ref["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
        ref["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    t2 = time.perf_counter()
    return ref, ours, t1 - t0, t2 - t1


def meteor_startup() -> float:
    """Seconds from starting a METEOR 1.5 JVM to its first answer (paid once by each side)."""
    from hivid.evaluation.meteor import Meteor

    t0 = time.perf_counter()
    with Meteor() as m:
        m.prepare([("a man runs", ("a man is running",))])
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--videos", type=int, default=0, help="generate a dense set of this many videos"
    )
    ap.add_argument("--skip-captions", action="store_true")
    ap.add_argument(
        "--write-reference", type=Path, help="store the reference numbers (test golden)"
    )
    args = ap.parse_args()

    gt_path, pred_path = DATA / "dense_gt.json", DATA / "dense_pred.json"
    tmp = tempfile.TemporaryDirectory()
    if args.videos:
        sys.path.insert(0, str(DATA))
        from build_fixtures import build_dense  # type: ignore[import-not-found]

        gt, pred = build_dense(seed=1, videos=args.videos)
        gt_path, pred_path = Path(tmp.name) / "gt.json", Path(tmp.name) / "pred.json"
        gt_path.write_text(json.dumps(gt))
        pred_path.write_text(json.dumps(pred))
    gt = json.loads(gt_path.read_text())
    n_gt = sum(len(v["timestamps"]) for v in gt.values())
    n_pred = sum(len(v) for v in json.loads(pred_path.read_text())["results"].values())
    ref, ours, t_ours, t_ref = dense([gt_path], pred_path)
    worst = _table(
        f"dense ({len(gt)} videos, {n_gt} GT events, {n_pred} predictions)",
        ours,
        ref,
        t_ours,
        t_ref,
    )
    start = meteor_startup()
    print(
        f"one METEOR JVM start-up: {start:.1f} s; speed-up without it on either side: "
        f"{(t_ref - start) / max(t_ours - start, 1e-9):.1f}x"
    )
    golden: dict[str, Any] = {"dense": ref}
    if not args.videos:
        r2, o2, t2_ours, t2_ref = dense([gt_path, DATA / "dense_gt2.json"], pred_path)
        worst = max(
            worst,
            _table("dense, two reference files (val_1 + val_2 style)", o2, r2, t2_ours, t2_ref),
        )
        golden["dense_2ref"] = r2
    if not args.skip_captions:
        cref, cours, ct_ours, ct_ref = captions()
        worst = max(worst, _table("captions (400 segments)", cours, cref, ct_ours, ct_ref))
        golden["captions"] = cref
    print(f"\nevaluator: {json.dumps(ours['evaluator'], sort_keys=True)}")
    if args.write_reference:
        args.write_reference.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        print(f"reference numbers written to {args.write_reference}")
    if worst > 1e-4:
        raise SystemExit(f"MISMATCH: max |diff| {worst:.2e} > 1e-4")


if __name__ == "__main__":
    main()
