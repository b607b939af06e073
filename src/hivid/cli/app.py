"""`hivid`: one subcommand per pipeline stage. Thin: parse, call the library, print.

Every stage command exits 0 only on success; a failure prints one line `hivid <cmd>: error: ...`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hivid import __version__, layout
from hivid.cli.common import PATH, echo_json, fail, guard, params_option, progress, project_root
from hivid.cli.config_check import config_group
from hivid.cli.evaluate import evaluate as evaluate_group
from hivid.cli.store import store_group

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "0"))

if TYPE_CHECKING:
    from hivid.records import AnnotateReport, IngestResult, TrainStageResult


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hivid")
def main() -> None:
    """HiVid Ops: raw product videos -> annotated, quality-gated data -> a trained narrator.

    Stages (in pipeline order): ingest, annotate, validate, build-dataset, warm-start,
    train --stage 1, train --stage 2, evaluate model, register. `hivid nightly` runs them all as a
    Prefect flow.
    """


@main.command("demo-data")
@click.option("--out", type=PATH, default=layout.DATA, show_default=True)
@click.option("--videos", type=int, default=None, help="Number of videos (default: params demo).")
@click.option("--seed", type=int, default=None, help="Seed (default: params demo).")
@click.option(
    "--faults",
    is_flag=True,
    help="Also write bad input (zero-byte, truncated, 8K frame, bad metadata, ...) that ingest "
    "must quarantine; never part of the pinned default corpus.",
)
@params_option
def demo_data(out: Path, videos: int | None, seed: int | None, faults: bool, params: Path) -> None:
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
        with progress("demo-data") as bar:
            ids = generate_demo_corpus(out, cfg, progress=lambda i, n: bar(f"video {i}", i, n))
        click.echo(f"wrote {len(ids)} videos to {out}/ (seed {cfg.seed})")
        if faults:
            from hivid.data.faults import write_faults

            written = write_faults(out, cfg.seed)
            click.echo(f"wrote {len(written)} fault files to {out}/videos/ (fault_*, x..*)")

    guard("demo-data", go)


@main.command()
@click.argument("source", required=False)
@click.option(
    "--push/--no-push",
    default=True,
    show_default=True,
    help="After taking something new: `dvc push data.dvc` (always `dvc add data`).",
)
@click.option("--demo", is_flag=True, help="Generate the demo corpus when data/ is missing.")
@params_option
def intake(source: str | None, push: bool, demo: bool, params: Path) -> None:
    """Take new or changed videos from a landing zone (s3://bucket/prefix or a folder) into data/.

    SOURCE defaults to intake.source in params.yaml. Each object is downloaded into a staging
    folder, verified (sha256, the S3 checksum / ETag, a PyAV probe) and moved into data/
    atomically; a ledger (data/intake/ledger.jsonl) records key, ETag and sha256. Bad objects are
    listed in outputs/intake/quarantine.jsonl with the reason (the landing zone is only read).
    Something new: `dvc add data` + `dvc push`; commit the new data.dvc. Credentials come from the
    environment, intake.profile or intake.credentials_file, never from params.yaml.
    """
    from hivid.pipeline import run_intake

    def go() -> dict:
        with progress("intake") as bar:
            return run_intake(
                project_root(), params, source, demo=demo, push=push, log=click.echo, progress=bar
            )

    r = guard("intake", go)
    if r["changed"]:
        click.echo(
            f"intake: {len(r['taken'])} file(s) taken ({len(r['new_videos'])} video(s): "
            f"{', '.join(r['new_videos'][:10])}{' ...' if len(r['new_videos']) > 10 else ''}), "
            f"{r['unchanged']} unchanged, {len(r['quarantined'])} quarantined; "
            f"data.dvc md5 {r['data_md5']}: commit data.dvc to name this data version"
        )
    else:
        click.echo(
            f"intake: nothing new ({r['unchanged']} unchanged, {len(r['quarantined'])} "
            "quarantined); data/ and data.dvc unchanged"
        )
    for q in r["quarantined"]:
        click.echo(f"  quarantined: {q['reason']}")


@main.command()
@click.option("--data", type=PATH, default=layout.DATA, show_default=True)
@click.option("--out", type=PATH, default=layout.INGEST, show_default=True)
@params_option
def ingest(data: Path, out: Path, params: Path) -> None:
    """Probe every video (PyAV), hash it, write manifest.jsonl; bad files -> quarantine.jsonl."""
    from hivid.stages import run_ingest

    def go() -> IngestResult:
        with progress("ingest") as bar:
            return run_ingest(project_root(), params, data, out, bar)

    s = guard("ingest", go)
    click.echo(f"ingest: {s['videos']} videos in manifest, {s['quarantined']} quarantined")
    for q in s["quarantine"]:
        click.echo(f"  quarantined: {q['reason']}")
    if s.get("batch_failures"):
        click.echo("hivid ingest: error: " + "; ".join(s["batch_failures"]), err=True)
        sys.exit(2)


@main.command()
@click.option("--data", type=PATH, default=layout.DATA, show_default=True)
@click.option("--manifest", type=PATH, default=layout.MANIFEST, show_default=True)
@click.option("--out", type=PATH, default=layout.ANNOTATIONS, show_default=True)
@params_option
def annotate(data: Path, manifest: Path, out: Path, params: Path) -> None:
    """ASR (whisperx / faster-whisper) + 1 fps frames + OCR + coarse TCoT and chapters."""
    from hivid.stages import run_annotate

    def go() -> AnnotateReport:
        with progress("annotate") as bar:
            return run_annotate(project_root(), params, data, manifest, out, bar)

    r = guard("annotate", go)
    click.echo(
        f"annotate: {len(r['annotated'])} annotated, {len(r['cached'])} cached, "
        f"{len(r['quarantined'])} quarantined"
    )
    for q in r["quarantined"]:
        click.echo(f"  quarantined: {q['reason']}")


@main.command()
@click.option("--manifest", type=PATH, default=layout.MANIFEST, show_default=True)
@click.option("--annotations", type=PATH, default=layout.ANNOTATIONS, show_default=True)
@click.option("--out", type=PATH, default=layout.QUALITY, show_default=True)
@params_option
def validate(manifest: Path, annotations: Path, out: Path, params: Path) -> None:
    """Great Expectations quality gate; exits non-zero when the batch fails."""
    from hivid.stages import run_validate

    r = guard("validate", lambda: run_validate(project_root(), params, manifest, annotations, out))
    click.echo(
        f"validate: {len(r['passed'])} passed, {len(r['quarantined'])} quarantined, "
        f"result {r['result_id'][:12]}; report (offline): {out / 'report.html'}, "
        f"GX data docs: {out / 'data_docs' / 'index.html'}"
    )
    for q in r["quarantined"]:
        click.echo(f"  quarantined: {q['video_id']}: {'; '.join(q['reasons'])}")
    click.echo(f"quarantine report (all stages): {r['quarantine_report']}")
    if not r["success"]:
        click.echo(
            "hivid validate: error: quality gate failed: " + "; ".join(r["batch_failures"]),
            err=True,
        )
        sys.exit(2)


@main.command("build-dataset")
@click.option("--data", type=PATH, default=layout.DATA, show_default=True)
@click.option("--manifest", type=PATH, default=layout.MANIFEST, show_default=True)
@click.option("--annotations", type=PATH, default=layout.ANNOTATIONS, show_default=True)
@click.option("--quality", type=PATH, default=layout.QUALITY, show_default=True)
@click.option("--out", type=PATH, default=layout.DATASET, show_default=True)
@click.option(
    "--frame-cache",
    type=PATH,
    default=None,
    help="Keep sampled frames here between builds (unchanged videos are not decoded again).",
)
@params_option
def build_dataset(
    data: Path,
    manifest: Path,
    annotations: Path,
    quality: Path,
    out: Path,
    frame_cache: Path | None,
    params: Path,
) -> None:
    """Split by video and write interleaving-ready samples (frames + ASR + targets)."""
    from hivid.stages import run_build_dataset

    def go() -> dict:
        with progress("build-dataset") as bar:
            return run_build_dataset(
                project_root(), params, data, manifest, annotations, quality, out, bar, frame_cache
            )

    s = guard("build-dataset", go)
    fc = s.get("frame_cache")
    cached = f", frame cache {fc['hits']} hits / {fc['misses']} misses" if fc else ""
    click.echo(
        f"build-dataset: {s['videos']} videos, splits {s['splits']}, {s['frames']} frames{cached}"
    )


@main.command("warm-start")
@click.option("--dataset", type=PATH, default=layout.DATASET, show_default=True)
@click.option("--out", type=PATH, default=layout.WARM_START, show_default=True)
@params_option
def warm_start(dataset: Path, out: Path, params: Path) -> None:
    """Plan incremental training: continue the champion (fewer steps) or retrain in full."""
    from hivid.stages import run_warm_start

    p = guard("warm-start", lambda: run_warm_start(project_root(), params, dataset, out))
    steps = ", ".join(f"{k} {v} steps" for k, v in p["steps"].items())
    click.echo(f"warm-start: {p['mode']} ({steps}): {p['reason']}")


@main.command()
@click.option("--stage", type=click.Choice(["1", "2"]), required=True)
@click.option("--dataset", type=PATH, default=layout.DATASET, show_default=True)
@click.option("--out", type=PATH, default=None, help="Default: outputs/ckpt/stage<N>.")
@click.option("--init", "init_dir", type=PATH, default=None, help="Stage-1 model dir (stage 2).")
@click.option(
    "--warm-start",
    "warm_dir",
    type=PATH,
    default=None,
    help="The warm-start plan dir (`hivid warm-start`): its steps, and the champion to continue.",
)
@params_option
def train(
    stage: str,
    dataset: Path,
    out: Path | None,
    init_dir: Path | None,
    warm_dir: Path | None,
    params: Path,
) -> None:
    """Lightning training: stage 1 without the compressor; stage 2 compressor only."""
    from hivid.preconditions import check_train

    n = int(stage)
    out = out or layout.ckpt(n)
    if n == 2 and init_dir is None:
        init_dir = layout.model_dir(1)
    guard("train", lambda: check_train(n, dataset, init_dir, warm_dir))  # fast, before imports

    def go() -> TrainStageResult:
        from hivid.stages import run_train

        return run_train(project_root(), params, n, dataset, out, init_dir, warm_dir)

    r = guard("train", go)
    m = r["metrics"]
    click.echo(
        f"train stage {n}: {int(m.get('steps', 0))} steps, "
        f"train_loss {m.get('train_loss', float('nan')):.4f}, "
        f"trainable {int(m.get('trainable_params', 0))}/{int(m.get('total_params', 0))} params; "
        f"run {r['run_id']}"
    )


@main.command()
@click.argument("video", type=PATH)
@click.option(
    "--model",
    "model_ref",
    default="models:/hivid-narrator@champion",
    show_default=True,
    help="models:/ URI, a saved narrator dir or a stage output dir (e.g. outputs/ckpt/stage2).",
)
@click.option("--out", type=PATH, default=None, help="Default: outputs/narrate/<video stem>.")
@click.option("--max-new-tokens", type=int, default=None, help="Default: evaluate.max_new_tokens.")
@click.option(
    "--metadata",
    type=PATH,
    default=None,
    help="The product's metadata JSON (as in data/metadata/): the ASR is corrected and filtered "
    "against it as the annotate stage does for the training data.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Exit 0 even when no chapters are produced (default: exit 2, after writing the outputs).",
)
@params_option
def narrate(
    video: Path,
    model_ref: str,
    out: Path | None,
    max_new_tokens: int | None,
    metadata: Path | None,
    allow_empty: bool,
    params: Path,
) -> None:
    """ASR + frames + the narrator on VIDEO -> chapters.json, chapters.vtt (WebVTT), tcot.txt.

    Chapters and TCoT are checked against the video's duration (clipped or rejected, counted).
    No chapters (or an audio-only file, which is only transcribed) prints a warning and exits 2
    unless --allow-empty."""
    from hivid.narrate import narrate_video
    from hivid.preconditions import check_narrate

    guard("narrate", lambda: check_narrate(video, model_ref))  # fast, before the model loads
    out = out or layout.NARRATE / video.stem
    with progress("narrate") as cb:
        r = guard(
            "narrate",
            lambda: narrate_video(
                video, model_ref, out, params, project_root(), max_new_tokens, cb, metadata
            ),
        )
    checks = r["checks"]["chapters"]
    duration = f"{r['duration']:.2f} s" if r.get("duration") is not None else "unknown duration"
    click.echo(
        f"narrate {video.name} ({duration}): {len(r['chapters'])} chapters -> {out}"
        + (
            f" ({checks['clipped']} clipped, {checks['rejected']} rejected to fit the video)"
            if checks["clipped"] or checks["rejected"]
            else ""
        )
    )
    corr = r["correction"]
    if corr is not None:
        click.echo(
            f"  ASR checked against {corr['metadata']}: {corr['lexicon_changes']} words corrected, "
            f"{corr['dropped']} of {corr['kept'] + corr['dropped']} sentences left out"
        )
    elif r["asr_note"]:
        click.echo(f"hivid narrate: note: {r['asr_note']}", err=True)
    for w in r["warnings"]:
        click.echo(f"hivid narrate: warning: {w}", err=True)
    if not r["chapters"] and not allow_empty:
        sys.exit(2)


@main.command()
@click.option("--stage2", type=PATH, default=layout.ckpt(2), show_default=True)
@params_option
def register(stage2: Path, params: Path) -> None:
    """Register the stage-2 model in MLflow (`hivid-narrator`) and set the `challenger` alias."""
    from hivid.stages import run_register
    from hivid.tracking.runs import PARENT_ENV

    pipeline = os.environ.get(PARENT_ENV) or None  # `hivid register` inside a pipeline run
    r = guard("register", lambda: run_register(project_root(), params, stage2, None, pipeline))
    click.echo(
        f"registered {r['name']} version {r['version']} as @{r['alias']} (run {r['run_id']})"
    )
    if r.get("warning"):
        click.echo(f"hivid register: warning: {r['warning']}", err=True)


@main.command()
@click.option("--version", default=None, help="Model version (default: the challenger).")
@params_option
def promote(version: str | None, params: Path) -> None:
    """Promotion gate: make the challenger `champion` if it passed every gate and beats the
    champion on the gate metric by the configured margin."""
    from hivid.stages import run_promote
    from hivid.tracking.runs import PARENT_ENV

    pipeline = os.environ.get(PARENT_ENV) or None  # `hivid promote` inside a pipeline run
    r = guard("promote", lambda: run_promote(project_root(), params, version, pipeline))
    click.echo(r["text"])


@main.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--allow-unverified",
    is_flag=True,
    help="Exit 0 when links are UNVERIFIED or DIRTY (a MISMATCH still exits 1).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.5),
    default=None,
    help="Seconds per network request (MLflow, S3) [default: MLFLOW_HTTP_REQUEST_TIMEOUT or 10].",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0, max=10),
    default=None,
    help="Retries per request [default: MLFLOW_HTTP_REQUEST_MAX_RETRIES or 2].",
)
def lineage(
    model: str,
    as_json: bool,
    allow_unverified: bool,
    timeout: float | None,
    retries: int | None,
) -> None:
    """Trace MODEL (models:/hivid-narrator@champion, models:/hivid-narrator/<version> or a run id)
    back to its raw videos, verifying each link. Exit 0 only when every link is VERIFIED, 1 on any
    MISMATCH, 3 on any UNVERIFIED or DIRTY link or an unreachable server (0 with
    --allow-unverified, except the unreachable server)."""
    from hivid.tracking.audit import EXIT_UNVERIFIED, LineageUnavailable, trace
    from hivid.tracking.dvcobjects import NetworkLimits

    # MLflow's client reads its HTTP limits from the environment only (defaults: 120 s, 7
    # retries with backoff: minutes against a down server); this process bounds them.
    timeout = timeout or float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 10)
    retries = (
        retries
        if retries is not None
        else int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 2)
    )
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(timeout)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(retries)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("AWS_MAX_ATTEMPTS", str(retries + 1))  # MLflow's own S3 client
    limits = NetworkLimits(
        connect_timeout_s=min(timeout, 5.0), read_timeout_s=timeout, attempts=retries + 1
    )
    try:
        result = trace(project_root(), model, limits)
    except LineageUnavailable as exc:
        click.echo(f"hivid lineage: error: {exc}", err=True)
        sys.exit(EXIT_UNVERIFIED)
    except Exception as exc:
        if os.environ.get("HIVID_DEBUG"):
            raise
        fail("lineage", exc)
        return
    code = result.exit_code(allow_unverified)
    if as_json:
        echo_json(result.to_dict(allow_unverified))
    else:
        click.echo(f"lineage of {model}: {result.status}")
        for link in result.links:
            click.echo(f"  [{link.status:<10}] {link.name}: {link.reason}")
    if code == EXIT_UNVERIFIED:
        bad = [x.name for x in result.links if x.status in ("UNVERIFIED", "DIRTY")]
        click.echo(
            f"hivid lineage: {len(bad)} link(s) not verified: {', '.join(bad[:6])} "
            "(--allow-unverified to accept)",
            err=True,
        )
    sys.exit(code)


@main.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--out", type=PATH, default=Path("compare.html"), show_default=True)
@click.option("--log-to", default=None, help="Also log the report to this MLflow run id.")
def compare(refs: tuple[str, ...], out: Path, log_to: str | None) -> None:
    """Compare two or more runs or models (models:/name/<version>, @alias, run ids) in one HTML
    report: params (differences first), metric deltas, per-video table, chapter timelines, gates."""
    from hivid.tracking.compare import write_report

    s = guard("compare", lambda: write_report(project_root(), list(refs), out, log_to))
    click.echo(
        f"wrote {out}: {len(s['subjects'])} subjects, {len(s['params_differing'])} params differ"
    )


@main.command("checkout-data")
@click.argument("model")
def checkout_data(model: str) -> None:
    """Restore data/ (and data.dvc) to exactly the version MODEL was trained on."""
    from hivid.tracking.audit import checkout_data as restore

    r = guard("checkout-data", lambda: restore(project_root(), model))
    click.echo(f"data/ restored to {r['md5']} ({r['data.dvc']} updated)")


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
    # Prefect waits 20 s for its ephemeral server; a fresh install's first start (bytecode not yet
    # compiled, database migrations) took longer on 2 cores and the demo failed with "Timed out
    # while attempting to connect to ephemeral Prefect API server". A user's setting wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    try:
        from flows.nightly import nightly as flow  # orchestration layer lives outside src/
    except ImportError as exc:
        fail("nightly", ImportError(f"{root}/flows/nightly.py cannot be imported: {exc}"))
    try:
        summary = flow(repo=str(root), demo=demo)
    except Exception as exc:
        fail("nightly", exc)
    # The flow already logged the full summary; end with the one line a script can grep.
    click.echo(f"hivid nightly: {summary['status']} (pipeline run {summary.get('run_id')})")


main.add_command(evaluate_group)
main.add_command(store_group)
main.add_command(config_group)


if __name__ == "__main__":  # pragma: no cover
    main()
