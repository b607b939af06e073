"""`hivid compare`: a self-contained HTML report a reviewer reads without MLflow open.

For two or more runs or models: parameters side by side (with an only-differences view), metrics
with deltas against the first, the per-video metric table, chapter timelines (ground truth vs each
run's predictions) for sample videos as pictures, and each run's quality-gate summary.
"""

from __future__ import annotations

import base64
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
    """One compared thing: its label and the runs of the pipeline execution that produced it."""

    label: str
    runs: dict[str, Run] = field(default_factory=dict)

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


def load_subject(client: MlflowClient, ref: str) -> Subject:
    """Resolve a models:/ URI or run id (stage run or pipeline run) to its pipeline's runs."""
    mv, run_id = resolve_model(ref)
    run = client.get_run(run_id)
    label = f"{mv.name} v{mv.version}" if mv is not None else ref[:12]
    parent = run.data.tags.get("parent.run") or (
        run_id if run.data.tags.get("hivid.kind") == "pipeline" else None
    )
    runs = _pipeline_children(client, parent) if parent else {}
    stage = run.data.tags.get("hivid.stage")
    if stage:
        runs.setdefault(stage, run)
    if mv is not None and (mv.tags or {}).get("eval.run") and "evaluate" not in runs:
        runs["evaluate"] = client.get_run(mv.tags["eval.run"])
    return Subject(label, runs)


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


def _timeline_png(vid: str, gt: dict[str, Any], preds: list[tuple[str, list[Any]]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("ground truth", [(s, e) for s, e in gt["timestamps"]])]
    rows += [(label, [tuple(p["timestamp"]) for p in items]) for label, items in preds]
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.5 * len(rows)))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for y, (_, spans) in enumerate(rows):
        for i, (s, e) in enumerate(spans):
            ax.broken_barh([(s, max(e - s, 0.05))], (y - 0.35, 0.7), color=colors[i % len(colors)])
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(gt.get("duration") or 0, *(e for _, sp in rows for _, e in sp), 1))
    ax.set_title(f"chapters of {vid}")
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
    gt = _artifact_json(subjects[0].eval_run, "eval/gt.json") or {}
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
