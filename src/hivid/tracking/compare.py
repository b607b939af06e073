"""`hivid compare`: a self-contained HTML report a reviewer reads without MLflow open.

For two or more runs or models: parameters side by side (with an only-differences view), metrics
with deltas against the first, the per-video metric table, chapter timelines (ground truth vs each
run's predictions) for sample videos as pictures, and each run's quality-gate summary.

Each subject stands for one trained model and is shown with *its own* runs: a model version or a
training run brings the run that trained it and the runs upstream of it (``upstream.<stage>.run``
lineage tags: stage 1, warm start, dataset, gate, annotation, ingest), never the siblings of a
later pipeline run; its metrics come from the evaluate run that scored that model (``model.run``
tag; for a registered version its ``eval.run`` when that scored it), not from whichever evaluate
run is newest. A pipeline run stands for the model its evaluate (or training) run is about.
Chapter timelines are clipped to the video's duration (and say how many spans were clipped).
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hivid.tracking.audit import resolve_model
from hivid.tracking.runs import configure


@dataclass
class Subject:
    """One compared thing: its label, the model run it stands for and that model's own runs."""

    label: str
    runs: dict[str, Run] = field(default_factory=dict)
    model_run: str | None = None
    """The training run whose model this subject is (None: the ref names no model)."""
    note: str = ""
    """Why a part is missing (e.g. no evaluation of this model)."""

    @property
    def eval_run(self) -> Run | None:
        return self.runs.get("evaluate")


def _pipeline_children(client: MlflowClient, parent_id: str) -> dict[str, Run]:
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    out: dict[str, Run] = {}
    for r in sorted(children, key=lambda r: r.info.start_time):
        stage = r.data.tags.get("hivid.stage")
        if stage:
            out[stage] = r
    return out


def _upstream(client: MlflowClient, run: Run) -> dict[str, Run]:
    """``run`` and every run upstream of it by its lineage tags, by stage."""
    out: dict[str, Run] = {}
    todo = [run]
    while todo:
        r = todo.pop()
        stage = r.data.tags.get("hivid.stage")
        if not stage or stage in out:
            continue
        out[stage] = r
        for k, v in r.data.tags.items():
            if k.startswith("upstream.") and k.endswith(".run") and v:
                up = k[len("upstream.") : -len(".run")]
                if up not in out:
                    with contextlib.suppress(mlflow.exceptions.MlflowException):
                        todo.append(client.get_run(v))
    return out


def own_evaluation(client: MlflowClient, model_run: Run) -> Run | None:
    """The newest finished evaluate run that scored ``model_run``'s model (``model.run`` tag)."""
    found = client.search_runs(
        [model_run.info.experiment_id],
        f"tags.`model.run` = '{model_run.info.run_id}' and tags.`hivid.stage` = 'evaluate' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def _model_run_of(client: MlflowClient, run: Run) -> tuple[Run | None, Run | None]:
    """(training run, evaluate run or None) that ``run`` (any stage or pipeline run) is about."""
    tags = run.data.tags
    stage = tags.get("hivid.stage")
    if stage in ("train_stage1", "train_stage2"):
        return run, None
    if stage == "evaluate":
        scored = tags.get("model.run")
        return (client.get_run(scored) if scored else None), run
    if tags.get("hivid.kind") == "pipeline":
        children = _pipeline_children(client, run.info.run_id)
        if "evaluate" in children:
            return _model_run_of(client, children["evaluate"])
        for st in ("train_stage2", "train_stage1"):
            if st in children:
                return children[st], None
    return None, None


def load_subject(client: MlflowClient, ref: str) -> Subject:
    """Resolve a models:/ URI or run id (training, evaluate, other stage or pipeline run) to the
    model it stands for, that model's own upstream runs and its own evaluation."""
    from hivid.tracking.promotion import eval_run_of

    mv, run_id = resolve_model(ref)
    run = client.get_run(run_id)
    stage = run.data.tags.get("hivid.stage") or run.data.tags.get("hivid.kind") or "run"
    label = f"{mv.name} v{mv.version}" if mv is not None else f"{stage} {run_id[:8]}"
    model_run, evaluation = (run, None) if mv is not None else _model_run_of(client, run)
    if mv is not None:
        evaluation, _ = eval_run_of(client, mv)
    if model_run is None:  # a run of another stage: its own chain, nothing to evaluate
        return Subject(label, _upstream(client, run), None, "not a model: no evaluation")
    runs = _upstream(client, model_run)
    if evaluation is None:
        evaluation = own_evaluation(client, model_run)
    note = ""
    if evaluation is not None:
        runs["evaluate"] = evaluation
    else:
        note = f"no evaluate run scored the model of run {model_run.info.run_id}"
    return Subject(label, runs, model_run.info.run_id, note)


def _params(s: Subject) -> dict[str, str]:
    out: dict[str, str] = {}
    for stage, r in s.runs.items():
        for k, v in r.data.params.items():
            out[f"{stage}: {k}"] = v
    return out


def _artifact_json(run: Run | None, path: str) -> Any | None:
    if run is None:
        return None
    try:
        local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=path)
    except Exception:
        return None
    return json.loads(Path(local).read_text())


def clip_spans(spans: list[tuple[float, float]], duration: float | None) -> tuple[list, int]:
    """Spans drawn inside [0, duration]: clipped at the end, dropped when they start past it;
    returns (spans, how many were clipped or dropped)."""
    if not duration or duration <= 0:
        return list(spans), 0
    out, changed = [], 0
    for s, e in spans:
        s2, e2 = max(0.0, float(s)), min(float(duration), float(e))
        if (s2, e2) != (float(s), float(e)):
            changed += 1
        if e2 > s2:
            out.append((s2, e2))
    return out, changed


def _timeline_png(vid: str, gt: dict[str, Any], preds: list[tuple[str, list[Any]]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = float(gt.get("duration") or 0) or None
    rows = [("ground truth", [(s, e) for s, e in gt["timestamps"]])]
    rows += [(label, [tuple(p["timestamp"]) for p in items]) for label, items in preds]
    drawn = []
    for label, spans in rows:
        kept, changed = clip_spans(spans, duration)
        drawn.append((label + (f" ({changed} clipped)" if changed else ""), kept))
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.5 * len(drawn)))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for y, (_, spans) in enumerate(drawn):
        for i, (s, e) in enumerate(spans):
            ax.broken_barh([(s, max(e - s, 0.05))], (y - 0.35, 0.7), color=colors[i % len(colors)])
    ax.set_yticks(range(len(drawn)), [r[0] for r in drawn])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    right = duration or max([e for _, sp in drawn for _, e in sp] + [1.0])
    ax.set_xlim(0, right)
    ax.set_title(f"chapters of {vid}" + (f" ({duration:.1f} s)" if duration else ""))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list[str]], klass: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{klass}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def build_report(root: Path, refs: list[str], samples: int = 3) -> tuple[str, dict[str, Any]]:
    """HTML text and a JSON summary comparing ``refs`` (two or more)."""
    if len(refs) < 2:
        raise ValueError("compare needs two or more runs or models")
    configure(root)
    client = MlflowClient()
    subjects = [load_subject(client, r) for r in refs]
    labels = [s.label for s in subjects]
    esc = html.escape

    params = [_params(s) for s in subjects]
    keys = sorted(set().union(*params))
    prow = []
    for k in keys:
        vals = [p.get(k, "") for p in params]
        differs = len(set(vals)) > 1
        prow.append(
            [esc(k)] + [f"<b>{esc(v)}</b>" if differs else esc(v) for v in vals] + [str(differs)]
        )
    diff_rows = [r[:-1] for r in prow if r[-1] == "True"]
    all_rows = [r[:-1] for r in prow]

    metrics = [dict(s.eval_run.data.metrics) if s.eval_run else {} for s in subjects]
    mkeys = sorted(set().union(*metrics))
    mrow = []
    for k in mkeys:
        base = metrics[0].get(k)
        cells = [esc(k)]
        for i, m in enumerate(metrics):
            v = m.get(k)
            if v is None:
                cells.append("–")
            elif i == 0 or base is None:
                cells.append(f"{v:.4f}")
            else:
                cells.append(f"{v:.4f} ({v - base:+.4f})")
        mrow.append(cells)

    gates = []
    for s in subjects:
        g = _artifact_json(s.runs.get("validate"), "quality/gate.json")
        tag = s.runs["validate"].data.tags.get("gx.result", "?") if "validate" in s.runs else "?"
        if g:
            gates.append(
                [
                    esc(s.label),
                    esc(tag),
                    "passed" if g.get("success") else "FAILED",
                    str(len(g.get("passed", []))),
                    str(len(g.get("quarantined", []))),
                    esc("; ".join(g.get("batch_failures", [])) or "–"),
                ]
            )
        else:
            gates.append([esc(s.label), esc(tag), "?", "?", "?", "no gate.json artifact"])

    per_video_rows: list[list[str]] = []
    timelines: list[str] = []
    f1_by_subject: list[dict[str, str]] = []
    for s in subjects:
        table = _artifact_json(s.eval_run, "eval/per_video.json") or {}
        cols, data = table.get("columns", []), table.get("data", [])
        recs = [dict(zip(cols, r, strict=False)) for r in data]
        f1_by_subject.append(
            {str(r["video_id"]): f"{float(r['F1']):.4f}" for r in recs if "F1" in r}
        )
    gt: dict[str, Any] = {}
    for s in subjects:
        gt = _artifact_json(s.eval_run, "eval/gt.json") or {}
        if gt:
            break
    preds = [
        (_artifact_json(s.eval_run, "eval/predictions.json") or {}).get("results", {})
        for s in subjects
    ]
    for vid in sorted(gt):
        per_video_rows.append([esc(vid)] + [f.get(vid, "–") for f in f1_by_subject])
    for vid in sorted(gt)[:samples]:
        series = [(lab, p.get(vid, [])) for lab, p in zip(labels, preds, strict=False)]
        png = _timeline_png(vid, gt[vid], series)
        timelines.append(
            f'<figure><img alt="timeline {esc(vid)}" src="data:image/png;base64,{png}"></figure>'
        )

    evals = [
        [
            esc(s.label),
            esc(s.model_run or "–"),
            esc(s.eval_run.info.run_id if s.eval_run else "–"),
            esc(s.note or "–"),
        ]
        for s in subjects
    ]
    css = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
        "th{background:#f3f3f3}details{margin:1em 0}"
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>HiVid compare</title>"
        f"<style>{css}</style></head><body>",
        f"<h1>HiVid run comparison</h1><p>{' vs '.join(esc(x) for x in labels)}</p>",
        "<h2>Metrics (delta against the first)</h2>",
        _table(["metric", *labels], mrow),
        "<h2>Whose evaluation</h2>",
        _table(["subject", "model (training run)", "evaluate run", "note"], evals),
        "<h2>Quality gate</h2>",
        _table(["run", "gx.result", "gate", "passed", "quarantined", "batch failures"], gates),
        "<h2>Parameters that differ</h2>",
        _table(["param", *labels], diff_rows) if diff_rows else "<p>none</p>",
        "<details><summary>All parameters</summary>",
        _table(["param", *labels], all_rows),
        "</details>",
        "<h2>Per-video F1</h2>",
        _table(["video", *labels], per_video_rows)
        if per_video_rows
        else "<p>no per-video table</p>",
        "<h2>Chapter timelines (sample videos)</h2>",
        *timelines,
        "</body></html>",
    ]
    summary = {
        "subjects": labels,
        "metrics": dict(zip(labels, metrics, strict=False)),
        "model_runs": [s.model_run for s in subjects],
        "eval_runs": [s.eval_run.info.run_id if s.eval_run else None for s in subjects],
        "params_differing": [r[0] for r in diff_rows],
        "videos": len(per_video_rows),
        "timelines": len(timelines),
    }
    return "\n".join(parts), summary


def write_report(
    root: Path, refs: list[str], out: Path, log_to: str | None = None
) -> dict[str, Any]:
    """Write the report to ``out``; also log it to the MLflow run ``log_to`` when given."""
    from hivid.io import write_bytes_atomic

    text, summary = build_report(root, refs)
    write_bytes_atomic(out, text.encode("utf-8"))
    if log_to:
        client = MlflowClient()
        client.log_artifact(log_to, str(out), "compare")
        client.log_dict(log_to, summary, "compare/summary.json")
    return summary
