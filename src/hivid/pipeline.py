"""Pipeline-level library code the nightly flow orchestrates (no Prefect here).

- ``STAGES``: the dvc.yaml stages in order;
- ``ensure_data``: make ``data/`` match ``data.dvc`` (DVC pull, or the deterministic demo corpus);
- ``run_intake``: take new landing-zone objects into ``data/`` and pin them (``dvc add`` + push);
- ``repro_stage``: ``dvc repro --single-item <stage>`` in a subprocess, child of the pipeline run;
- ``pipeline_run``: the MLflow parent run every stage run nests under;
- ``summary_text``: what a person reads at the end of the main job.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow

from hivid import layout
from hivid.io import read_json
from hivid.tracking.gitrev import GitState
from hivid.tracking.lineage import RUN_RECORD, data_md5, lineage_tags, stage_outs
from hivid.tracking.runs import PARENT_ENV, configure, tracking_uri

if TYPE_CHECKING:
    from hivid.tracking.stale import StaleRun

STAGES: tuple[str, ...] = (
    "ingest",
    "annotate",
    "validate",
    "build_dataset",
    "warm_start",
    "train_stage1",
    "train_stage2",
    "evaluate",
)


class PipelineError(RuntimeError):
    """A pipeline step failed; the message names the step and the reason."""


def _path_with_venv() -> str:
    """PATH with this interpreter's bin dir first, so `hivid` in dvc.yaml is the same install."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def _dvc(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PATH": _path_with_venv()},
    )


def data_status(root: Path) -> dict[str, Any]:
    """``dvc status data.dvc`` as JSON ({} when data/ matches data.dvc)."""
    proc = _dvc(root, "status", "data.dvc", "--json")
    if proc.returncode != 0:
        raise PipelineError(f"dvc status data.dvc failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout or "{}")


def pin_data(root: Path, push: bool, log: Callable[[str], None] = print) -> str:
    """``dvc add data`` (a new data.dvc) and, with ``push``, ``dvc push data.dvc``; the md5."""
    proc = _dvc(root, "add", "data")
    if proc.returncode != 0:
        raise PipelineError(f"dvc add data failed: {proc.stderr.strip()[-500:]}")
    if push:
        proc = _dvc(root, "push", "data.dvc")
        if proc.returncode != 0:
            err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise PipelineError(f"dvc push data.dvc failed: {err[-1][-300:] if err else '?'}")
    md5 = data_md5(root) or "?"
    log(f"data pinned: data.dvc md5 {md5}{' (pushed)' if push else ''}")
    return md5


def ensure_data(root: Path, demo: bool, log: Callable[[str], None] = print) -> str:
    """Make ``data/`` exist and match ``data.dvc``; returns how (present | pulled | generated)."""
    data = root / "data"
    pinned = data_md5(root)
    how = "present"
    if not (data / "videos").is_dir():
        proc = _dvc(root, "pull", "data.dvc") if pinned else None
        if proc is not None and proc.returncode == 0 and (data / "videos").is_dir():
            how = "pulled"
        elif demo:
            from hivid.config import load_section
            from hivid.data.demo import DemoConfig, generate_demo_corpus

            cfg: DemoConfig = load_section(root / "params.yaml", "demo")
            log(
                "data/ missing and not in the DVC remote: "
                f"generating the demo corpus ({cfg.videos} videos)"
            )
            generate_demo_corpus(data, cfg)
            how = "generated"
        else:
            raise PipelineError(f"{data}: no data (dvc pull failed and --no-demo was given)")
    if not pinned:
        pin_data(root, push=False, log=log)
        log("data.dvc created: commit it to pin this data version")
        return how
    status = data_status(root)
    if status and how == "generated":
        # A fresh clone's DVC cache is empty, so `dvc status` reports the regenerated corpus as
        # "not in cache" even when it is byte-identical; `dvc add` caches it, and only a changed
        # md5 means a different codec build produced other bytes (re-pinned loudly, never used
        # unpinned).
        pin_data(root, push=False, log=lambda _: None)
        if data_md5(root) == pinned:
            log("the regenerated demo corpus matches data.dvc byte for byte (now in the DVC cache)")
            return "generated"
        log(
            "WARNING: the regenerated demo corpus differs from the one pinned in data.dvc "
            "(different FFmpeg/espeak build?); re-pinned with `dvc add data` - commit data.dvc"
        )
        return "generated (re-pinned)"
    if status:
        raise PipelineError(
            f"{data}: differs from the version pinned in data.dvc ({json.dumps(status)[:300]}); "
            "run `dvc add data` and commit data.dvc to train on new data"
        )
    return how


def run_intake(
    root: Path,
    params: Path,
    source: str | None = None,
    demo: bool = False,
    push: bool = True,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Take the landing zone's new or changed objects into ``data/`` and pin the new version.

    ``data/`` must match ``data.dvc`` first (pulled, or the demo corpus when ``demo``), so only
    intake's own changes get pinned; then `hivid.data.intake.intake`; then, when data changed,
    ``dvc add data`` + ``dvc push data.dvc`` (committing data.dvc to git is the caller's). An
    interrupted earlier run (commit cut short, or pin/push failed) is completed first. Returns the
    intake summary plus ``changed`` (a new data version) and ``data_md5``."""
    from hivid.config import load_section
    from hivid.data.intake import (
        IntakeConfig,
        clear_pin_pending,
        intake,
        pin_pending,
        write_reports,
    )

    cfg: IntakeConfig = load_section(params, "intake")
    state = root / cfg.state_dir
    pending = pin_pending(state)
    if not pending:
        ensure_data(root, demo, log)
    result = intake(source or cfg.source, root / "data", cfg, root, log, progress)
    changed = result.changed or pending
    if changed:
        pin_data(root, push=push, log=log)
        clear_pin_pending(state)
    write_reports(result, state)
    _merge_quarantine_report(root, state / "quarantine.jsonl")
    out = result.to_dict()
    out.update(changed=changed, data_md5=data_md5(root))
    return out


def _merge_quarantine_report(root: Path, intake_rows: Path) -> None:
    """Refresh ``outputs/quarantine/`` with intake's rows (validate refreshes it too; a nightly
    with nothing new runs no validate, and a bad object must still show in the report)."""
    from hivid.quality.quarantine import collect, write_report

    rows = collect(
        root / layout.INGEST_QUARANTINE,
        root / layout.ANNOTATE_QUARANTINE,
        root / layout.QUALITY_QUARANTINE,
        intake_rows=intake_rows,
    )
    write_report(rows, root / layout.QUARANTINE)


def pipeline_up_to_date(root: Path) -> bool:
    """True when `dvc status` finds every stage and data.dvc unchanged (one cheap check that lets
    an unchanged nightly skip seven `dvc repro` subprocesses)."""
    proc = _dvc(root, "status", "--json")
    return proc.returncode == 0 and json.loads(proc.stdout or "{}") == {}


def recorded_runs_missing(root: Path, stage: str) -> list[str]:
    """Run ids that ``stage``'s outputs name (``.hivid_run.json``) but the tracking store lacks:
    DVC restored the outputs from its cache, made against another (or a wiped) MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root))
    missing = []
    for out in stage_outs(root, stage):
        record = root / out / RUN_RECORD
        if record.is_file():
            run_id = read_json(record)["run_id"]
            try:
                client.get_run(run_id)
            except mlflow.exceptions.MlflowException:
                missing.append(run_id)
    return missing


def repro_stage(
    root: Path,
    stage: str,
    parent_run_id: str | None,
    log: Callable[[str], None] = print,
    git: GitState | None = None,
) -> str:
    """Reproduce one dvc.yaml stage; returns 'ran' or 'skipped' (DVC found it up to date).

    ``git``: the checkout's state measured when the pipeline started (``git_state``); the stage
    run records it instead of measuring a checkout its own pipeline has been rewriting.
    A stage DVC restores from its cache, whose recorded MLflow run this store does not have, is
    run again (forced), so that lineage never points at a run nobody can open."""
    extra = git.env() if git is not None else {}
    how = _repro(root, stage, parent_run_id, log, force=False, extra_env=extra)
    if how == "skipped":
        missing = recorded_runs_missing(root, stage)
        if missing:
            log(f"{stage}: outputs name MLflow run(s) {missing} this store lacks: running again")
            how = _repro(root, stage, parent_run_id, log, force=True, extra_env=extra)
    return how


def _repro(
    root: Path,
    stage: str,
    parent_run_id: str | None,
    log: Callable[[str], None],
    force: bool,
    extra_env: dict[str, str] | None = None,
) -> str:
    env = {**(extra_env or {}), **({PARENT_ENV: parent_run_id} if parent_run_id else {})}
    env["MLFLOW_TRACKING_URI"] = tracking_uri(root)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dvc",
            "repro",
            "--single-item",
            *(["--force"] if force else []),
            stage,
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1", "PATH": _path_with_venv()},
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            lines.append(line)
            log(line)
    code = proc.wait()
    text = "\n".join(lines)
    if code != 0:
        raise PipelineError(f"stage {stage} failed (exit {code}): {failure_reason(lines)}")
    return "skipped" if "didn't change, skipping" in text or "is cached" in text else "ran"


def failure_reason(lines: list[str]) -> str:
    """The line of a failed `dvc repro` a person needs: the last error, completed when DVC split
    it (a busy-lock error names its holders on the lines after ``blocked by:``)."""
    errors = [i for i, ln in enumerate(lines) if "error" in ln.lower()]
    if not errors:
        return lines[-1] if lines else ""
    i = errors[-1]
    reason = lines[i].strip()
    if reason.rstrip().endswith(":"):
        holders = []
        for ln in lines[i + 1 :]:
            ln = ln.strip()
            if not ln.startswith("(PID"):
                break
            holders.append(ln)
        if holders:
            reason = reason.rstrip(": ") + " " + "; ".join(holders)
            if "rwlock" in "\n".join(lines[i:]):
                reason += (
                    " - another pipeline run holds it: wait for that run to finish (if no such "
                    "process is running, remove .dvc/tmp/rwlock)"
                )
    return reason


@contextlib.contextmanager
def pipeline_run(
    root: Path,
    name: str,
    tags: dict[str, str] | None = None,
    on_stale: Callable[[list[StaleRun]], None] | None = None,
    log: Callable[[str], None] = print,
    git: GitState | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """The parent MLflow run of one pipeline execution (``git``: the checkout state measured at
    the start of the run).

    It first closes the runs a killed earlier execution left RUNNING (``hivid.tracking.stale``;
    ``on_stale`` receives them, e.g. to end their Prefect flow runs too)."""
    from hivid.tracking.stale import close_stale_runs, owner_tags

    configure(root)
    lineage = lineage_tags(root, None)
    if git is not None:
        lineage = {k: v for k, v in lineage.items() if not k.startswith("git.")} | git.tags()
    with mlflow.start_run(
        run_name=name,
        tags={**lineage, "hivid.kind": "pipeline", **owner_tags(), **(tags or {})},
    ) as run:
        me = run.info.run_id
        stale = close_stale_runs(mlflow.MlflowClient(), run.info.experiment_id, me, keep=(me,))
        for s in stale:
            log(f"closed stale run {s.run_id} ({s.kind} {s.name}) as KILLED: {s.why}")
        if stale:
            mlflow.set_tag("hivid.closed_stale", ",".join(s.run_id for s in stale)[:5000])
            if on_stale is not None:
                on_stale(stale)
        yield run


def summary_text(root: Path, result: dict[str, Any]) -> str:
    """A short human summary: outcome, metrics, registry version, where to look next."""
    uri = tracking_uri(root)
    lines = ["", "HiVid nightly pipeline: " + result.get("status", "?")]
    if result.get("intake"):
        it = result["intake"]
        lines.append(
            f"intake from {it['source']}: {len(it['taken'])} file(s) taken, {it['unchanged']} "
            f"unchanged, {len(it['quarantined'])} quarantined"
            + (f" -> new data version {it['data_md5']}" if it.get("changed") else "")
        )
        for q in it["quarantined"]:
            lines.append(f"  quarantined at intake: {q['reason']}")
    for stage, how in result.get("stages", {}).items():
        lines.append(f"  {stage:<14} {how}")
    quality = root / layout.QUALITY_GATE
    if quality.exists():
        g = read_json(quality)
        lines.append(
            f"quality gate: {'passed' if g.get('success') else 'FAILED'} - "
            f"{len(g.get('passed', []))} videos passed, {len(g.get('quarantined', []))} quarantined"
        )
        for q in g.get("quarantined", []):
            lines.append(f"  quarantined {q['video_id']}: {'; '.join(q['reasons'])[:200]}")
    ingest_q = root / layout.INGEST_QUARANTINE
    if ingest_q.exists():
        for line in ingest_q.read_text().splitlines():
            if line.strip():
                lines.append(f"  quarantined at ingest: {json.loads(line)['reason']}")
    report = root / layout.QUARANTINE_REPORT
    if report.exists():
        lines.append(f"quarantine report (every bad file and why): {report}")
    lines += _training_lines(root, result.get("stages", {}))
    lines += _metric_lines(root, result.get("stages", {}))
    git = result.get("git") or {}
    if git.get("committed"):
        lines.append(
            f"git: {', '.join(git['files'])} committed as {git['revision'][:12]} on branch "
            f"{git['branch']} (the checkout stays on it)"
        )
    if result.get("model"):
        mv = result["model"]
        lines.append(f"registered model: {mv['name']} version {mv['version']} (@{mv['alias']})")
        if mv.get("warning"):
            lines.append(f"  WARNING: {mv['warning']}")
    if result.get("promotion"):
        lines.append(f"promotion: {result['promotion']['text']}")
    if result.get("report"):
        lines.append(f"comparison with the champion: {result['report']}")
    lines.append(f"pipeline run: {result.get('run_id')}")
    lines.append(f"MLflow store: {uri}")
    if uri.startswith("sqlite:///"):
        lines.append(
            f"open the UI:  .venv/bin/mlflow ui --backend-store-uri {uri} "
            "--host 127.0.0.1 --port 5000"
        )
    return "\n".join(lines)


TRAIN_STAGES = ("train_stage1", "train_stage2")
SIDE_BY_SIDE = ("SODA_c", "F1", "Precision", "Recall", "CIDEr", "METEOR", "TitleBERTScore_F")
"""Metrics the summary shows for the model and each baseline in one table."""


def _ran(how: str) -> bool:
    return str(how).startswith("ran")


def _training_lines(root: Path, stages: dict[str, str]) -> list[str]:
    """What training did in *this* run: the plan when a training stage ran, else that none did
    (plan.json on disk is the last run's plan, not this one's)."""
    seen = [s for s in TRAIN_STAGES if s in stages]
    if not seen:
        return ["training: not reached in this run"] if stages else []
    if not any(_ran(stages[s]) for s in seen):
        why = ", ".join(f"{s} {stages[s]}" for s in seen)
        model_run = root / layout.ckpt(2) / layout.MLFLOW_RUN
        src = read_json(model_run).get("run_id") if model_run.exists() else None
        return [
            f"training: nothing trained in this run ({why}); the model is the one trained "
            + (f"by run {src}" if src else "before")
        ]
    plan_path = root / layout.WARM_START_PLAN
    if not plan_path.exists():
        return ["training: ran (no warm-start plan)"]
    plan = read_json(plan_path)
    steps = ", ".join(f"{k} {v} steps" for k, v in plan.get("steps", {}).items())
    return [f"training: {plan.get('mode')} ({steps}) - {plan.get('reason')}"]


def _metric_lines(root: Path, stages: dict[str, str]) -> list[str]:
    """The model's metrics beside the baselines' (same videos, same evaluator)."""
    path = root / layout.EVAL_METRICS
    if not path.exists():
        return []
    m = read_json(path)
    when = (
        "" if _ran(stages.get("evaluate", "ran")) else " (evaluate did not run: an earlier run's)"
    )
    model = {k: v for k, v in m.items() if not k.startswith("baseline_")}
    names = sorted({k.split(".", 1)[0][len("baseline_") :] for k in m if k.startswith("baseline_")})
    n = int(m.get("videos", 0))
    lines = [f"metrics (test split, {n} videos){when}:"]
    if names:
        shown = [k for k in SIDE_BY_SIDE if k in model]
        header = f"  {'':<18}{'model':>9}" + "".join(f"{b:>10}" for b in names)
        lines.append(header)
        for k in shown:
            row = f"  {k:<18}{model[k]:>9.4f}"
            for b in names:
                v = m.get(f"baseline_{b}.{k}")
                row += f"{v:>10.4f}" if isinstance(v, int | float) else f"{'-':>10}"
            lines.append(row)
        rest = {k: v for k, v in model.items() if k not in shown}
    else:
        lines.append("  (no baselines scored)")
        rest = model
    if rest:
        lines.append("  " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(rest.items())))
    return lines
