"""The ``validate`` stage's quality gate: run the GX suites, quarantine videos, judge the batch.

``run_gate`` builds the tables (``hivid.quality.tables``), validates each against its suite
(``hivid.quality.suites``) in an in-memory GX context, and writes under ``out_dir``::

    results/<suite>.json   the GX validation result (result_format COMPLETE; unexpected rows are
                           listed by ``row`` and ``video_id``)
    tables/<table>.csv     the validated tables (``row`` is the index the results refer to)
    data_docs/index.html   the GX Data Docs site (suites and validation results; its pages load
                           CSS/JS from CDNs, so they are blank offline)
    report.html            the same results as one self-contained page, readable offline
                           (``hivid.quality.report``)
    quarantine.jsonl       {"video_id", "stage": "validate", "reasons": [...]} per failing video
    passed.json            ids of the videos that passed, sorted
    gate.json              the GateResult (success, result_id, passed, quarantined, ...)

Every failed expectation is mapped back to the videos whose rows failed it, and explained in one
line: ``<video_id>: <table>: <reason>``. The batch fails (``success`` false; ``enforce`` raises
``GateFailed``) on a failed batch check (duplicate ids or content hashes, no annotation records),
when more than ``max_quarantine_share`` of the videos are quarantined, or when fewer than
``min_videos`` pass.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hivid.io import write_json, write_jsonl
from hivid.quality.report import write_report
from hivid.quality.suites import Check, QualityConfig, Suite, build_suites
from hivid.quality.tables import build_tables

SITE_NAME = "hivid"
INDEX_COLUMNS = ["row", "video_id"]
"""Columns GX reports for each unexpected row: ``row`` locates it in the table, ``video_id``
makes the stored result readable on its own."""


@dataclass
class GateResult:
    """Outcome of the gate (also written to ``out_dir/gate.json``)."""

    success: bool
    """False when the batch must not go on to training."""
    result_id: str
    """sha256 over the validation outcomes (same inputs and suites -> same id)."""
    passed: list[str]
    quarantined: list[dict[str, Any]]
    """``{"video_id", "stage": "validate", "reasons": [...]}`` per quarantined video."""
    batch_failures: list[str]
    results_dir: Path
    data_docs_dir: Path
    statistics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "result_id": self.result_id,
            "passed": self.passed,
            "quarantined": self.quarantined,
            "batch_failures": self.batch_failures,
            "results_dir": str(self.results_dir),
            "data_docs_dir": str(self.data_docs_dir),
            "statistics": self.statistics,
        }


class GateFailed(Exception):
    """The batch failed the quality gate; ``result`` holds the full GateResult."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        failures = "; ".join(result.batch_failures) or "unknown batch failure"
        super().__init__(
            f"quality gate failed ({len(result.passed)} passed, "
            f"{len(result.quarantined)} quarantined): {failures}"
        )


def enforce(result: GateResult) -> GateResult:
    """Return ``result`` when the batch passed, else raise ``GateFailed``."""
    if not result.success:
        raise GateFailed(result)
    return result


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy: numpy scalars unwrapped, NaN/inf as strings, paths as strings."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def _context(data_docs_dir: Path) -> Any:
    """An in-memory GX context whose only Data Docs site is ``data_docs_dir``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        # The default ephemeral context also builds a throw-away site in a fresh temp dir.
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
        data_docs_sites={
            SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _validate(ctx: Any, source: Any, suite: Suite, df: pd.DataFrame) -> Any:
    """Run ``suite`` over the whole dataframe; returns the ExpectationSuiteValidationResult."""
    import great_expectations as gx

    asset = source.add_dataframe_asset(suite.table)
    batch_def = asset.add_batch_definition_whole_dataframe(f"{suite.table}-all")
    gx_suite = ctx.suites.add(suite.expectation_suite())
    vd = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate {suite.name}", data=batch_def, suite=gx_suite)
    )
    index = [c for c in INDEX_COLUMNS if c in df.columns]
    return vd.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index},
    )


def _failed_rows(result: Mapping[str, Any], df: pd.DataFrame) -> pd.DataFrame:
    """Table rows a failed expectation flagged (empty for table-level expectations)."""
    idx = [e["row"] for e in result.get("unexpected_index_list") or [] if isinstance(e, Mapping)]
    return df.loc[sorted(set(idx))] if idx else df.iloc[0:0]


@dataclass
class _Findings:
    reasons: dict[str, list[str]]
    batch_failures: list[str]
    outcome: list[Any]
    """What ``result_id`` hashes: check, success, arguments and result per expectation."""


def _explain(check: Check, rows: pd.DataFrame, observed: Any, where: str) -> str:
    try:
        return check.explain(rows, observed)
    except Exception as exc:  # a wording bug must not hide the failure itself
        return f"check {check.name} failed ({where}; explanation error: {exc})"


def _exception_message(info: Any) -> str | None:
    """First line of the error an expectation raised, else None.

    GX 1.x reports ``{"raised_exception": bool, "exception_message": ...}`` when the expectation
    itself raised, but ``{"<MetricConfigurationID ...>": {"exception_message": ...}}`` when one of
    its metrics failed (e.g. a missing column); ``success`` is simply False in both cases.
    """
    if not isinstance(info, Mapping):
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    for e in entries:
        if isinstance(e, Mapping) and (e.get("raised_exception") or "raised_exception" not in e):
            msg = str(e.get("exception_message") or "").strip()
            if msg or e.get("raised_exception"):
                return (msg or "error").splitlines()[0]
    return None


def _interpret(suite: Suite, result: dict[str, Any], df: pd.DataFrame, findings: _Findings) -> None:
    """Map each failed expectation of ``result`` to per-video reasons and batch failures."""
    for r in result["results"]:
        config = r["expectation_config"]
        name = (config.get("meta") or {}).get("check", config["type"])
        findings.outcome.append(
            [suite.name, name, r["success"], config.get("kwargs"), r.get("result")]
        )
        if r["success"]:
            continue
        check = suite.check(name)
        error = _exception_message(r.get("exception_info"))
        if error is not None:
            findings.batch_failures.append(f"{suite.table}: check {name} could not run: {error}")
            continue
        rows = _failed_rows(r.get("result") or {}, df)
        observed = (r.get("result") or {}).get("observed_value")
        if check.batch:
            findings.batch_failures.append(
                f"{suite.table}: {_explain(check, rows, observed, suite.table)}"
            )
        if rows.empty or "video_id" not in rows.columns:
            if not check.batch:
                findings.batch_failures.append(
                    f"{suite.table}: check {name} failed without naming videos"
                )
            continue
        for vid, group in rows.groupby("video_id", sort=True):
            # Batch checks (duplicates) explain all rows at once: "shared by a, b".
            reason = _explain(check, rows if check.batch else group, observed, str(vid))
            findings.reasons.setdefault(str(vid), []).append(f"{vid}: {suite.table}: {reason}")


def _result_id(outcome: list[Any]) -> str:
    blob = json.dumps(jsonable(outcome), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class _SuiteRun:
    out_dir: Path
    results_dir: Path
    docs_dir: Path
    findings: _Findings
    suite_stats: dict[str, Any]
    t_context: float
    t_validate: float
    t_docs: float


def _run_suites(
    tables: Mapping[str, pd.DataFrame], suites: list[Suite], out_dir: Path
) -> _SuiteRun:
    """Validate each suite's table in a fresh in-memory context; write results, tables, docs."""
    out_dir = Path(out_dir).resolve()  # GX stores need absolute paths
    results_dir, docs_dir, tables_dir = (out_dir / d for d in ("results", "data_docs", "tables"))
    for d in (results_dir, docs_dir, tables_dir):
        # Stale pages or results of a previous run would otherwise sit beside the new ones.
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    ctx = _context(docs_dir)  # the first call imports great_expectations (seconds)
    source = ctx.data_sources.add_pandas("hivid")
    findings = _Findings(reasons={}, batch_failures=[], outcome=[])
    suite_stats: dict[str, Any] = {}
    t_context = time.perf_counter()
    for suite in suites:
        df = tables[suite.table]
        df.to_csv(tables_dir / f"{suite.table}.csv", index=False)
        result = jsonable(_validate(ctx, source, suite, df).to_json_dict())
        write_json(results_dir / f"{suite.name}.json", result)
        _interpret(suite, result, df, findings)
        suite_stats[suite.name] = {
            "table": suite.table,
            "rows": len(df),
            "success": result["success"],
            **result["statistics"],
        }
    t_validate = time.perf_counter()
    ctx.build_data_docs(site_names=[SITE_NAME])
    return _SuiteRun(
        out_dir,
        results_dir,
        docs_dir,
        findings,
        suite_stats,
        t_context,
        t_validate,
        time.perf_counter(),
    )


def run_gate(
    manifest: list[dict[str, Any]],
    annotations: dict[str, dict[str, Any]],
    cfg: QualityConfig,
    out_dir: Path,
) -> GateResult:
    """Validate one batch (the annotated videos); see the module docstring for the outputs."""
    t0 = time.perf_counter()
    tables = build_tables(manifest, annotations, cfg.frame_fps)
    t_tables = time.perf_counter()
    run = _run_suites(tables, build_suites(cfg), Path(out_dir))
    out_dir, results_dir, docs_dir = run.out_dir, run.results_dir, run.docs_dir
    findings, suite_stats = run.findings, run.suite_stats
    t_context, t_validate, t_docs = run.t_context, run.t_validate, run.t_docs

    videos = sorted(annotations)
    quarantined = [
        {"video_id": vid, "stage": "validate", "reasons": findings.reasons[vid]}
        for vid in videos
        if vid in findings.reasons
    ]
    passed = [vid for vid in videos if vid not in findings.reasons]
    batch_failures = list(findings.batch_failures)
    share = len(quarantined) / len(videos) if videos else 0.0
    if share > cfg.max_quarantine_share:
        batch_failures.append(
            f"{len(quarantined)} of {len(videos)} videos quarantined ({share:.0%}), more than "
            f"max_quarantine_share {cfg.max_quarantine_share:.0%}"
        )
    if len(passed) < cfg.min_videos:
        batch_failures.append(
            f"{len(passed)} video(s) passed, fewer than min_videos {cfg.min_videos}"
        )

    gate = GateResult(
        success=not batch_failures,
        result_id=_result_id(findings.outcome),
        passed=passed,
        quarantined=quarantined,
        batch_failures=batch_failures,
        results_dir=results_dir,
        data_docs_dir=docs_dir,
        statistics={
            "videos": len(videos),
            "passed": len(passed),
            "quarantined": len(quarantined),
            "quarantine_share": share,
            "suites": suite_stats,
            "timings_s": {
                "tables": round(t_tables - t0, 3),
                "gx_context": round(t_context - t_tables, 3),
                "validate": round(t_validate - t_context, 3),
                "data_docs": round(t_docs - t_validate, 3),
                "total": round(time.perf_counter() - t0, 3),
            },
        },
    )
    write_jsonl(out_dir / "quarantine.jsonl", quarantined)
    write_json(out_dir / "passed.json", passed)
    write_json(out_dir / "gate.json", jsonable(gate.to_dict()))
    write_report(out_dir, jsonable(gate.to_dict()), results_dir, "HiVid quality gate (validate)")
    return gate


def _strict_gate(
    stage: str,
    tables: Mapping[str, pd.DataFrame],
    suites: list[Suite],
    items: list[str],
    out_dir: Path,
) -> GateResult:
    """A gate where every failed expectation stops the pipeline (splits, evaluation inputs):
    these inputs are not a batch of videos that may lose a few, they are one artefact."""
    t0 = time.perf_counter()
    run = _run_suites(tables, suites, out_dir)
    f = run.findings
    quarantined = [
        {"video_id": vid, "stage": stage, "reasons": f.reasons[vid]} for vid in sorted(f.reasons)
    ]
    batch_failures = list(f.batch_failures)
    batch_failures += [r for q in quarantined for r in q["reasons"]][:10]
    gate = GateResult(
        success=not batch_failures,
        result_id=_result_id(f.outcome),
        passed=[v for v in items if v not in f.reasons],
        quarantined=quarantined,
        batch_failures=batch_failures,
        results_dir=run.results_dir,
        data_docs_dir=run.docs_dir,
        statistics={
            "suites": run.suite_stats,
            "timings_s": {"total": round(time.perf_counter() - t0, 3)},
        },
    )
    write_jsonl(run.out_dir / "quarantine.jsonl", quarantined)
    write_json(run.out_dir / "gate.json", jsonable(gate.to_dict()))
    write_report(
        run.out_dir, jsonable(gate.to_dict()), run.results_dir, f"HiVid quality gate ({stage})"
    )
    return gate


def run_splits_gate(
    splits: Mapping[str, Any],
    videos: list[str],
    val_fraction: float,
    test_fraction: float,
    cfg: QualityConfig,
    out_dir: Path,
    method: str = "exact",
) -> GateResult:
    """Validate dataset splits: each of ``videos`` in exactly one split (no leakage, none lost),
    split sizes as ``val_fraction``/``test_fraction`` give them: +- ``split_size_tolerance`` for
    ``method`` ``exact``, +- max(that, ceil(3 sqrt(n f (1 - f)))) for ``stable`` (binomial)."""
    from hivid.quality.suites import split_sizes_suite, splits_suite
    from hivid.quality.tables import (
        expected_split_sizes,
        split_size_tolerances,
        split_sizes_table,
        splits_table,
    )

    n = len(set(videos))
    expected = expected_split_sizes(n, val_fraction, test_fraction)
    tolerance = split_size_tolerances(
        n, val_fraction, test_fraction, cfg.split_size_tolerance, method
    )
    tables = {
        "splits": splits_table(splits, videos),
        "split_sizes": split_sizes_table(splits, expected, tolerance),
    }
    suites = [splits_suite(cfg), split_sizes_suite(cfg, method)]
    return _strict_gate("splits", tables, suites, sorted(set(videos)), out_dir)


def run_eval_gate(
    gt: Mapping[str, Any], predictions: Mapping[str, Any], cfg: QualityConfig, out_dir: Path
) -> GateResult:
    """Validate evaluation inputs: ActivityNet ``gt.json`` and ``predictions.json`` (the whole
    file or its ``results`` object)."""
    from hivid.quality.suites import eval_gt_suite, eval_pred_suite
    from hivid.quality.tables import eval_gt_table, eval_pred_table

    results = predictions.get("results", predictions)
    results = results if isinstance(results, Mapping) else {}
    tables = {"eval_gt": eval_gt_table(gt), "eval_pred": eval_pred_table(results, gt)}
    suites = [eval_gt_suite(cfg), eval_pred_suite(cfg)]
    return _strict_gate("evaluate", tables, suites, sorted(map(str, gt)), out_dir)
