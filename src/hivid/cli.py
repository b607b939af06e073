"""`hivid`: one subcommand per pipeline stage. Thin: parse, call the library, print.

Every stage command exits 0 only on success; a failure prints one line `hivid <cmd>: error: ...`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from hivid import __version__

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))

PATH = click.Path(path_type=Path)


def _root() -> Path:
    from hivid.tracking.lineage import find_project_root

    return find_project_root()


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar driven by (item, done, total) callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=_console(),
        transient=False,
    ) as bar:
        task = bar.add_task("", total=None)

        def update(item: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=item)

        yield update


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _fail(cmd: str, exc: BaseException) -> None:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    click.echo(f"hivid {cmd}: error: {msg}", err=True)
    sys.exit(1)


def _guard(cmd: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if os.environ.get("HIVID_DEBUG"):
            raise
        _fail(cmd, exc)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=1, sort_keys=True, default=str))


params_option = click.option(
    "--params", type=PATH, default=Path("params.yaml"), show_default=True, help="Params file."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hivid")
def main() -> None:
    """HiVid Ops: raw product videos -> annotated, quality-gated data -> a trained narrator.

    Stages (in pipeline order): ingest, annotate, validate, build-dataset, train --stage 1,
    train --stage 2, evaluate model, register. `hivid nightly` runs them all as a Prefect flow.
    """


@main.command("demo-data")
@click.option("--out", type=PATH, default=Path("data"), show_default=True)
@click.option("--videos", type=int, default=None, help="Number of videos (default: params demo).")
@click.option("--seed", type=int, default=None, help="Seed (default: params demo).")
@params_option
def demo_data(out: Path, videos: int | None, seed: int | None, params: Path) -> None:
    """Write the deterministic synthetic demo corpus (same seed -> byte-identical files)."""

    def go() -> None:
        from hivid.config import load_section
        from hivid.data.demo import DemoConfig, generate_demo_corpus

        cfg: DemoConfig = load_section(params, "demo")
        if videos is not None:
            cfg.videos = videos
        if seed is not None:
            cfg.seed = seed
        cfg.__post_init__()
        with _progress("demo-data") as bar:
            ids = generate_demo_corpus(out, cfg, progress=lambda i, n: bar(f"video {i}", i, n))
        click.echo(f"wrote {len(ids)} videos to {out}/ (seed {cfg.seed})")

    _guard("demo-data", go)


@main.command()
@click.option("--data", type=PATH, default=Path("data"), show_default=True)
@click.option("--out", type=PATH, default=Path("outputs/ingest"), show_default=True)
@params_option
def ingest(data: Path, out: Path, params: Path) -> None:
    """Probe every video (PyAV), hash it, write manifest.jsonl; bad files -> quarantine.jsonl."""
    from hivid.stages import run_ingest

    def go() -> dict:
        with _progress("ingest") as bar:
            return run_ingest(_root(), params, data, out, bar)

    s = _guard("ingest", go)
    click.echo(f"ingest: {s['videos']} videos in manifest, {s['quarantined']} quarantined")
    for q in s["quarantine"]:
        click.echo(f"  quarantined: {q['reason']}")


@main.command()
@click.option("--data", type=PATH, default=Path("data"), show_default=True)
@click.option(
    "--manifest", type=PATH, default=Path("outputs/ingest/manifest.jsonl"), show_default=True
)
@click.option("--out", type=PATH, default=Path("outputs/annotations"), show_default=True)
@params_option
def annotate(data: Path, manifest: Path, out: Path, params: Path) -> None:
    """ASR (whisperx / faster-whisper) + 1 fps frames + OCR + coarse TCoT and chapters."""
    from hivid.stages import run_annotate

    def go() -> dict:
        with _progress("annotate") as bar:
            return run_annotate(_root(), params, data, manifest, out, bar)

    r = _guard("annotate", go)
    click.echo(
        f"annotate: {len(r['annotated'])} annotated, {len(r['cached'])} cached, "
        f"{len(r['quarantined'])} quarantined"
    )
    for q in r["quarantined"]:
        click.echo(f"  quarantined: {q['reason']}")


@main.command()
@click.option(
    "--manifest", type=PATH, default=Path("outputs/ingest/manifest.jsonl"), show_default=True
)
@click.option("--annotations", type=PATH, default=Path("outputs/annotations"), show_default=True)
@click.option("--out", type=PATH, default=Path("outputs/quality"), show_default=True)
@params_option
def validate(manifest: Path, annotations: Path, out: Path, params: Path) -> None:
    """Great Expectations quality gate; exits non-zero when the batch fails."""
    from hivid.stages import run_validate

    r = _guard("validate", lambda: run_validate(_root(), params, manifest, annotations, out))
    click.echo(
        f"validate: {len(r['passed'])} passed, {len(r['quarantined'])} quarantined, "
        f"result {r['result_id'][:12]}; data docs: {out / 'data_docs' / 'index.html'}"
    )
    for q in r["quarantined"]:
        click.echo(f"  quarantined: {q['video_id']}: {'; '.join(q['reasons'])}")
    if not r["success"]:
        click.echo(
            "hivid validate: error: quality gate failed: " + "; ".join(r["batch_failures"]),
            err=True,
        )
        sys.exit(2)


@main.command("build-dataset")
@click.option("--data", type=PATH, default=Path("data"), show_default=True)
@click.option(
    "--manifest", type=PATH, default=Path("outputs/ingest/manifest.jsonl"), show_default=True
)
@click.option("--annotations", type=PATH, default=Path("outputs/annotations"), show_default=True)
@click.option("--quality", type=PATH, default=Path("outputs/quality"), show_default=True)
@click.option("--out", type=PATH, default=Path("outputs/dataset"), show_default=True)
@params_option
def build_dataset(
    data: Path, manifest: Path, annotations: Path, quality: Path, out: Path, params: Path
) -> None:
    """Split by video and write interleaving-ready samples (frames + ASR + targets)."""
    from hivid.stages import run_build_dataset

    def go() -> dict:
        with _progress("build-dataset") as bar:
            return run_build_dataset(
                _root(), params, data, manifest, annotations, quality, out, bar
            )

    s = _guard("build-dataset", go)
    click.echo(f"build-dataset: {s['videos']} videos, splits {s['splits']}, {s['frames']} frames")


@main.command()
@click.option("--stage", type=click.Choice(["1", "2"]), required=True)
@click.option("--dataset", type=PATH, default=Path("outputs/dataset"), show_default=True)
@click.option("--out", type=PATH, default=None, help="Default: outputs/ckpt/stage<N>.")
@click.option("--init", "init_dir", type=PATH, default=None, help="Stage-1 model dir (stage 2).")
@params_option
def train(stage: str, dataset: Path, out: Path | None, init_dir: Path | None, params: Path) -> None:
    """Lightning training: stage 1 without the compressor; stage 2 compressor only."""
    from hivid.stages import run_train

    n = int(stage)
    out = out or Path(f"outputs/ckpt/stage{n}")
    if n == 2 and init_dir is None:
        init_dir = Path("outputs/ckpt/stage1/model")
    r = _guard("train", lambda: run_train(_root(), params, n, dataset, out, init_dir))
    m = r["metrics"]
    click.echo(
        f"train stage {n}: {int(m.get('steps', 0))} steps, "
        f"train_loss {m.get('train_loss', float('nan')):.4f}, "
        f"trainable {int(m.get('trainable_params', 0))}/{int(m.get('total_params', 0))} params; "
        f"run {r['run_id']}"
    )


@main.group()
def evaluate() -> None:
    """Evaluation: the pipeline stage (`model`) and scorers for any predictions (`dense`)."""


@evaluate.command("model")
@click.option(
    "--model", "model_dir", type=PATH, default=Path("outputs/ckpt/stage2/model"), show_default=True
)
@click.option("--dataset", type=PATH, default=Path("outputs/dataset"), show_default=True)
@click.option("--data", type=PATH, default=Path("data"), show_default=True)
@click.option("--out", type=PATH, default=Path("outputs/eval"), show_default=True)
@click.option("--metrics", type=PATH, default=Path("outputs/eval_metrics.json"), show_default=True)
@params_option
def evaluate_model_cmd(
    model_dir: Path, dataset: Path, data: Path, out: Path, metrics: Path, params: Path
) -> None:
    """Narrate the test split with a trained model and score it against the ground truth."""
    from hivid.stages import run_evaluate

    def go() -> dict:
        with _progress("evaluate") as bar:
            return run_evaluate(_root(), params, model_dir, dataset, data, out, metrics, bar)

    r = _guard("evaluate", go)
    click.echo("evaluate: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(r["metrics"].items())))


@evaluate.command("dense")
@click.option("--gt", type=PATH, required=True, help="ActivityNet-format ground truth JSON.")
@click.option("--pred", type=PATH, required=True, help="ActivityNet-format predictions JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_dense(gt: Path, pred: Path, as_json: bool) -> None:
    """Temporal-localization Precision / Recall / F1 over tIoU {0.3, 0.5, 0.7, 0.9}."""
    from hivid.evaluation.dense import localization_scores
    from hivid.io import read_json

    def go() -> dict:
        p = read_json(pred)
        if not isinstance(p, dict) or "results" not in p:
            raise ValueError(f"{pred}: predictions need a 'results' object")
        s = localization_scores(read_json(gt), p["results"])
        return {k: s[k] for k in ("Precision", "Recall", "F1")}

    r = _guard("evaluate dense", go)
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
    else:
        for k, v in r.items():
            click.echo(f"{k:>10}: {v:.4f}")


@main.command()
@click.option("--stage2", type=PATH, default=Path("outputs/ckpt/stage2"), show_default=True)
@params_option
def register(stage2: Path, params: Path) -> None:
    """Register the stage-2 model in MLflow (`hivid-narrator`) and set the `challenger` alias."""
    from hivid.stages import run_register

    r = _guard("register", lambda: run_register(_root(), params, stage2))
    click.echo(
        f"registered {r['name']} version {r['version']} as @{r['alias']} (run {r['run_id']})"
    )


@main.command()
@click.option("--repo", type=PATH, default=Path("."), show_default=True, help="Project root.")
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="Create the demo corpus when data/ is missing.",
)
def nightly(repo: Path, demo: bool) -> None:
    """Run the nightly Prefect flow in-process (ephemeral Prefect API unless PREFECT_API_URL)."""
    root = repo.resolve()
    sys.path.insert(0, str(root))
    try:
        from flows.nightly import nightly as flow  # orchestration layer lives outside src/
    except ImportError as exc:
        _fail("nightly", ImportError(f"{root}/flows/nightly.py cannot be imported: {exc}"))
    try:
        summary = flow(repo=str(root), demo=demo)
    except Exception as exc:
        _fail("nightly", exc)
    click.echo(summary["text"])


@main.group("config")
def config_group() -> None:
    """Inspect and validate params.yaml."""


@config_group.command("check")
@params_option
def config_check(params: Path) -> None:
    """Validate every section of the params file (unknown keys and bad values fail)."""
    from hivid.config import check_all
    from hivid.configbase import to_dict

    cfgs = _guard("config check", lambda: check_all(params))
    _echo_json({k: to_dict(v) for k, v in cfgs.items()})


if __name__ == "__main__":  # pragma: no cover
    main()
