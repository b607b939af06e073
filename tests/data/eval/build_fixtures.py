"""Build the evaluation test sets in this folder (deterministic; rerun to regenerate).

English texts come from the demo corpus' script generator (``hivid.data.demo``: products, chapter
narration, titles, summaries); predictions are perturbations of them (word drops, swaps,
substitutions, truncation, shifted / merged / split / spurious segments), plus every edge case the
dense evaluators define (missing videos, empty prediction lists, reversed and beyond-duration
timestamps, duplicate segments, unknown video ids). The Chinese set is written from templates.

    .venv/bin/python tests/data/eval/build_fixtures.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hivid.data import demo

HERE = Path(__file__).parent
SUBS = {
    "the": "a",
    "a": "the",
    "is": "was",
    "presenter": "host",
    "shows": "displays",
    "explains": "describes",
    "buy": "purchase",
    "love": "like",
    "made": "built",
    "with": "using",
}
FILLER = ["really", "very", "new", "great", "nice", "and", "also", "then"]


def perturb(rng: random.Random, text: str, strength: float) -> str:
    words = text.split()
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < strength * 0.25:
            continue  # drop
        if r < strength * 0.5:
            out.append(SUBS.get(w.lower(), rng.choice(FILLER)))
            continue
        out.append(w)
        if rng.random() < strength * 0.15:
            out.append(rng.choice(FILLER))
    if len(out) > 3 and rng.random() < strength * 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    if len(out) > 6 and rng.random() < strength * 0.2:
        out = out[: rng.randint(3, len(out))]
    return " ".join(out) if out else text.split()[0]


def video_script(seed: int, i: int) -> tuple[list[dict[str, Any]], float]:
    rng = random.Random(f"hivid-eval-fixture:{seed}:{i}")
    product = demo.make_product(rng)
    fields = demo._fields(product)
    labels = demo.plan_labels(rng, rng.randint(2, 6))
    t, chapters = 0.0, []
    for label in labels:
        dur = round(rng.uniform(4.0, 20.0), 2)
        said = demo.chapter_sentences(rng, product, label, rng.randint(1, 2))
        kind = rng.random()
        if kind < 0.4:
            sentence = demo._SUMMARIES[label].format(**fields)
        elif kind < 0.7:
            sentence = " ".join(said)
        else:
            sentence = demo._TITLES[label].format(**fields) + ". " + said[0]
        chapters.append({"start": round(t, 2), "end": round(t + dur, 2), "sentence": sentence})
        t += dur
    return chapters, round(t, 2)


def build_dense(seed: int = 0, videos: int = 120) -> tuple[dict[str, Any], dict[str, Any]]:
    gt: dict[str, Any] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    for i in range(videos):
        vid = f"v_{i:04d}"
        chapters, duration = video_script(seed, i)
        gt[vid] = {
            "duration": duration,
            "timestamps": [[c["start"], c["end"]] for c in chapters],
            "sentences": [c["sentence"] for c in chapters],
        }
        rng = random.Random(f"hivid-eval-pred:{seed}:{i}")
        case = i % 20
        if case == 7:
            continue  # missing from the predictions
        if case == 11:
            results[vid] = []  # an empty prediction list
            continue
        preds = []
        strength = rng.choice([0.1, 0.3, 0.6, 1.0])
        for c in chapters:
            s, e = c["start"], c["end"]
            L = e - s
            r = rng.random()
            if r < 0.1:
                continue  # missed event
            if r < 0.2 and L > 6:  # split in two
                m = round(s + L * rng.uniform(0.3, 0.7), 2)
                preds.append([s, m, perturb(rng, c["sentence"], strength)])
                preds.append([m, e, perturb(rng, c["sentence"], strength)])
                continue
            jitter = L * rng.choice([0.0, 0.05, 0.15, 0.3, 0.5])
            ps = round(max(0.0, s + rng.uniform(-jitter, jitter)), 2)
            pe = round(e + rng.uniform(-jitter, jitter), 2)
            if pe <= ps:
                pe = round(ps + 1.0, 2)
            preds.append([ps, pe, perturb(rng, c["sentence"], strength)])
        if rng.random() < 0.3:  # spurious segment with an unrelated sentence
            other, _ = video_script(seed + 1, i)
            a = round(rng.uniform(0, duration), 2)
            preds.append([a, round(a + rng.uniform(1, 8), 2), other[0]["sentence"]])
        if case == 3 and preds:  # duplicate segment
            preds.append(list(preds[0]))
        if case == 5 and preds:  # reversed timestamps
            p = preds[-1]
            preds[-1] = [p[1], p[0], p[2]]
        if case == 9 and preds:  # beyond the duration
            p = preds[-1]
            preds[-1] = [p[0], round(duration + 12.5, 2), p[2]]
        if case == 13:  # non-ASCII in an English sentence
            preds.append([0.0, 3.0, "Café crème — the naïve “best” choice"])
        rng.shuffle(preds)  # order must not matter (SODA sorts by start)
        results[vid] = [{"timestamp": [p[0], p[1]], "sentence": p[2]} for p in preds]
    results["v_unknown_9999"] = [{"timestamp": [0, 5], "sentence": "a video not in the gt"}]
    pred = {"version": "VERSION 1.0", "results": results, "external_data": {"used": False}}
    return gt, pred


def build_second_reference(gt: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """A second annotator (ActivityNet's val_2 role): jittered boundaries, reworded sentences,
    every fifth video left out, one video only this file has."""
    out: dict[str, Any] = {}
    for i, (vid, g) in enumerate(gt.items()):
        if i % 5 == 4:
            continue
        rng = random.Random(f"hivid-eval-gt2:{seed}:{vid}")
        ts = []
        for s, e in g["timestamps"]:
            a = round(max(0.0, s + rng.uniform(-1.5, 1.5)), 2)
            ts.append([a, round(max(a + 0.5, e + rng.uniform(-1.5, 1.5)), 2)])
        sents = [perturb(rng, x, 0.3) for x in g["sentences"]]
        out[vid] = {"duration": g["duration"], "timestamps": ts, "sentences": sents}
    first = next(iter(gt.values()))
    out["v_only_in_2"] = dict(first)
    return out


def build_captions(seed: int = 0, n: int = 400) -> tuple[dict[str, Any], dict[str, Any]]:
    refs: dict[str, list[str]] = {}
    cands: dict[str, list[str]] = {}
    for i in range(n):
        chapters, _ = video_script(seed + 7, i)
        c = chapters[i % len(chapters)]
        rng = random.Random(f"hivid-eval-cap:{seed}:{i}")
        base = c["sentence"]
        refs[str(i)] = [base] + [perturb(rng, base, 0.2) for _ in range(rng.randint(0, 3))]
        strength = rng.choice([0.0, 0.2, 0.5, 0.9])
        cands[str(i)] = [perturb(rng, base, strength) if strength else base]
    return refs, cands


ZH_PRODUCTS = [("洗发水", "清爽"), ("保温杯", "不锈钢"), ("耳机", "降噪"), ("面霜", "保湿")]
ZH_TEMPLATES = [
    "主播介绍了{p}的{a}设计",
    "这款{p}采用{a}材质，使用起来非常方便",
    "主播试用{p}并展示效果",
    "现在下单购买{p}只要五十九元",
]


def build_chinese(seed: int = 0, videos: int = 12) -> tuple[dict[str, Any], dict[str, Any]]:
    gt: dict[str, Any] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    for i in range(videos):
        rng = random.Random(f"hivid-eval-zh:{seed}:{i}")
        p, a = ZH_PRODUCTS[i % len(ZH_PRODUCTS)]
        n = rng.randint(2, 4)
        t, ts, ss, preds = 0.0, [], [], []
        for j in range(n):
            d = round(rng.uniform(5, 15), 2)
            s = ZH_TEMPLATES[(i + j) % len(ZH_TEMPLATES)].format(p=p, a=a)
            ts.append([round(t, 2), round(t + d, 2)])
            ss.append(s)
            cut = list(s)
            if rng.random() < 0.5 and len(cut) > 6:
                del cut[rng.randrange(2, len(cut) - 2)]
            preds.append(
                {
                    "timestamp": [round(t + rng.uniform(-1, 1) if j else t, 2), round(t + d, 2)],
                    "sentence": "".join(cut) + "。",
                }
            )
            t += d
        gt[f"zh_{i:03d}"] = {"duration": round(t, 2), "timestamps": ts, "sentences": ss}
        results[f"zh_{i:03d}"] = preds
    return gt, {"version": "VERSION 1.0", "results": results, "external_data": {"used": False}}


def _write(name: str, data: Any) -> None:
    (HERE / name).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    gt, pred = build_dense()
    _write("dense_gt.json", gt)
    _write("dense_pred.json", pred)
    _write("dense_gt2.json", build_second_reference(gt))
    refs, cands = build_captions()
    _write("captions_refs.json", refs)
    _write("captions_cands.json", cands)
    zgt, zpred = build_chinese()
    _write("zh_gt.json", zgt)
    _write("zh_pred.json", zpred)
    n_gt = sum(len(v["timestamps"]) for v in gt.values())
    n_pred = sum(len(v) for v in pred["results"].values())
    print(f"dense: {len(gt)} videos, {n_gt} GT events, {n_pred} predictions; captions: {len(refs)}")


if __name__ == "__main__":
    main()
