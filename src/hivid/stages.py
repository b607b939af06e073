"""One function per pipeline stage: load its config, run the pure library code, track it in MLflow.

The CLI commands call these; `dvc.yaml` calls the CLI; the Prefect flow calls `dvc repro` on a
stage (or these functions), so there is exactly one implementation of each stage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import mlflow
import pandas as pd

from hivid import layout
from hivid.config import load_model_config, load_section
from hivid.configbase import to_dict
from hivid.io import read_json, write_json, write_jsonl
from hivid.preconditions import check_evaluate, check_train
from hivid.records import (
    AnnotateReport,
    EvaluateReport,
    IngestResult,
    PromoteResult,
    RegisterResult,
    TrainStageResult,
    ValidateReport,
)
from hivid.tracking.lineage import data_md5, out_md5
from hivid.tracking.runs import log_artifacts_if_exist, log_dataset, stage_run

if TYPE_CHECKING:
    from hivid.training.warmstart import ParentRecord, WarmStartPlan

Progress = Callable[[str, int, int], None] | None


class StageFailed(RuntimeError):
    """A stage cannot produce its output (the message says which input and why)."""


def _lock_md5(root: Path, path: Path) -> str | None:
    """The dvc.lock md5 of a stage output directory (None outside the project or not locked)."""
    full = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not full.is_relative_to(root.resolve()):
        return None
    return out_md5(root, full.relative_to(root.resolve()).as_posix())


def _quarantine_metrics(rows: list[dict[str, Any]], total: int) -> dict[str, float]:
    return {"quarantined": float(len(rows)), "quarantine_share": len(rows) / max(1, total)}


def run_ingest(
    root: Path, params: Path, data: Path, out: Path, progress: Progress = None
) -> IngestResult:
    from hivid.data.ingest import IngestConfig, ingest, previous_manifest, write_ingest_outputs

    cfg: IngestConfig = load_section(params, "ingest")
    if not (data / "videos").is_dir():
        raise StageFailed(
            f"{data / 'videos'}: no videos/ directory in the data root "
            "(run `hivid demo-data` or `dvc pull data.dvc`)"
        )
    previous = previous_manifest(root, out)  # duplicates keep the copy it already listed
    with stage_run(root, "ingest", {"ingest": to_dict(cfg)}):
        summary = ingest(data, cfg, progress, previous)
        write_ingest_outputs(summary, out)
        total = len(summary.manifest) + len(summary.quarantined)
        mlflow.log_metrics(
            {
                "videos": float(len(summary.manifest)),
                **_quarantine_metrics(summary.quarantined, total),
            }
        )
        if summary.manifest:
            df = pd.DataFrame(
                [{k: v for k, v in r.items() if k != "metadata"} for r in summary.manifest]
            )
            log_dataset(df, "raw-videos", data, data_md5(root), context="ingest")
        failures = summary.batch_failures(cfg)
        mlflow.log_metric("batch_failures", float(len(failures)))
        log_artifacts_if_exist(out, "ingest")
    return cast(IngestResult, {**summary.to_dict(), "batch_failures": failures})


def run_annotate(
    root: Path, params: Path, data: Path, manifest_path: Path, out: Path, progress: Progress = None
) -> AnnotateReport:
    from hivid.annotate.accuracy import evaluate_batch
    from hivid.annotate.batch import annotate_batch
    from hivid.annotate.config import AnnotateConfig
    from hivid.annotate.prompts import prompt_hashes
    from hivid.data.ingest import read_manifest

    cfg: AnnotateConfig = load_section(params, "annotate")
    manifest = read_manifest(manifest_path)
    prompts = {f"prompt.{n}.sha256": h for n, h in prompt_hashes().items()}
    with stage_run(root, "annotate", {"annotate": to_dict(cfg), **prompts}, tags=prompts):
        log_dataset(
            pd.DataFrame([{k: v for k, v in r.items() if k != "metadata"} for r in manifest]),
            "manifest",
            manifest_path,
            _lock_md5(root, manifest_path.parent),
            context="annotate",
        )
        summary = annotate_batch(manifest, data, out, cfg, progress)
        # WER before/after correction, chapter F1, ... where ground truth exists (demo corpus).
        quality = evaluate_batch(out, summary.annotated + summary.cached, data)
        report = {
            "annotated": summary.annotated,
            "cached": summary.cached,
            "quarantined": summary.quarantined,
            "timings": summary.timings,
            "step_cache_hits": summary.step_cache_hits,
            "metrics": summary.metrics,
            "models": summary.models,
            "quality": quality,
        }
        write_jsonl(out.parent / "annotate_quarantine.jsonl", summary.quarantined)
        write_json(out.parent / "annotate_summary.json", report)
        mlflow.log_metrics(
            {
                "annotated": float(len(summary.annotated)),
                "cached": float(len(summary.cached)),
                **_quarantine_metrics(summary.quarantined, len(manifest)),
                **{
                    f"time_{k}": float(v)
                    for k, v in summary.timings.items()
                    if isinstance(v, int | float)
                },
                **{f"cache_hits_{k}": float(v) for k, v in summary.step_cache_hits.items()},
                **summary.metrics,
                **{f"gt_{k}": v for k, v in quality.items()},
            }
        )
        mlflow.set_tags({f"model.{k}": str(v) for k, v in summary.models.items()})
        mlflow.log_dict(report, "annotate/summary.json")
        log_artifacts_if_exist(out, "annotate/annotations")
    return cast(AnnotateReport, report)


def _log_inputs(
    root: Path,
    manifest_path: Path,
    ann_dir: Path,
    annotations: dict[str, dict[str, Any]],
    context: str,
) -> None:
    """Log the manifest and the annotations as this run's input datasets (digest = DVC md5)."""
    from hivid.data.ingest import read_manifest

    manifest = read_manifest(manifest_path)
    log_dataset(
        pd.DataFrame([{k: v for k, v in r.items() if k != "metadata"} for r in manifest]),
        "manifest",
        manifest_path,
        _lock_md5(root, manifest_path.parent),
        context,
    )
    rows = [
        {
            "video_id": vid,
            "asr_segments": len(a.get("asr", {}).get("segments", [])),
            "frames": len(a.get("frames", {}).get("items", [])),
            "chapters": len(a.get("chapters", [])),
        }
        for vid, a in sorted(annotations.items())
    ]
    if rows:
        log_dataset(pd.DataFrame(rows), "annotations", ann_dir, _lock_md5(root, ann_dir), context)


def load_annotations(ann_dir: Path) -> dict[str, dict[str, Any]]:
    """Records by video id; an unreadable file becomes ``{UNREADABLE: reason}`` (the gate then
    quarantines that video) instead of failing the whole stage."""
    from hivid.quality.tables import UNREADABLE

    # dotfiles (the `.hivid_run.json` lineage record, tmp files of atomic writes) are not records
    files = sorted(p for p in ann_dir.glob("*.json") if not p.name.startswith("."))
    out: dict[str, dict[str, Any]] = {}
    for p in files:
        try:
            out[p.stem] = read_json(p)
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError included
            out[p.stem] = {UNREADABLE: f"{p.name}: {str(exc).splitlines()[0][:200]}"}
    return out


def run_validate(
    root: Path, params: Path, manifest_path: Path, ann_dir: Path, out: Path
) -> ValidateReport:
    from hivid.data.ingest import read_manifest
    from hivid.quality.gate import run_gate
    from hivid.quality.quarantine import collect, write_report
    from hivid.quality.suites import QualityConfig

    cfg: QualityConfig = load_section(params, "quality")
    manifest = read_manifest(manifest_path)
    annotations = load_annotations(ann_dir)
    with stage_run(root, "validate", {"quality": to_dict(cfg)}) as run:
        _log_inputs(root, manifest_path, ann_dir, annotations, "validation")
        result = run_gate(manifest, annotations, cfg, out)
        mlflow.set_tags(
            {"gx.result": f"{result.result_id}:{'success' if result.success else 'failure'}"}
        )
        mlflow.log_metrics(
            {
                "passed": float(len(result.passed)),
                **_quarantine_metrics(result.quarantined, len(annotations)),
                "batch_failures": float(len(result.batch_failures)),
                "success": float(result.success),
            }
        )
        log_artifacts_if_exist(out, "quality")
        qdir = out.parent / "quarantine"
        q = write_report(
            collect(
                manifest_path.parent / "quarantine.jsonl",
                ann_dir.parent / "annotate_quarantine.jsonl",
                out / "quarantine.jsonl",
            ),
            qdir,
        )
        mlflow.log_metric("quarantined_all_stages", float(q["total"]))
        log_artifacts_if_exist(qdir, "quarantine")
        report = {
            "success": result.success,
            "result_id": result.result_id,
            "passed": result.passed,
            "quarantined": result.quarantined,
            "batch_failures": result.batch_failures,
            "run_id": run.info.run_id,
            "quarantine_report": str(qdir / "report.md"),
        }
    return cast(ValidateReport, report)


def run_build_dataset(
    root: Path,
    params: Path,
    data: Path,
    manifest_path: Path,
    ann_dir: Path,
    quality_dir: Path,
    out: Path,
    progress: Progress = None,
    frame_cache: Path | None = None,
) -> dict[str, Any]:
    """``frame_cache``: directory of sampled frames kept between builds (None: decode all); its
    hit/miss counts go to the returned summary and MLflow, never into ``out``."""
    from hivid.data.ingest import read_manifest
    from hivid.dataset.build import DatasetConfig, build_dataset

    cfg: DatasetConfig = load_section(params, "dataset")
    gate = read_json(quality_dir / "gate.json")
    if not gate.get("success"):
        raise StageFailed(
            f"{quality_dir / 'gate.json'}: the quality gate failed "
            f"({'; '.join(gate.get('batch_failures') or ['see report'])}); refusing to build"
        )
    with stage_run(
        root,
        "build_dataset",
        {"dataset": to_dict(cfg)},
        tags={"gx.result": f"{gate.get('result_id')}:success"},
    ):
        annotations = load_annotations(ann_dir)
        _log_inputs(root, manifest_path, ann_dir, annotations, "dataset-build")
        manifest = read_manifest(manifest_path)
        summary = build_dataset(
            manifest, annotations, list(gate["passed"]), data, out, cfg, progress, frame_cache
        )
        mlflow.log_metrics({f"split_{k}": float(v) for k, v in summary["splits"].items()})
        fc = summary.get("frame_cache") or {}
        mlflow.log_metrics({f"frame_cache_{k}": float(v) for k, v in fc.items()})
        mlflow.log_metric("frames", float(summary["frames"]))
        log_artifacts_if_exist(out / "splits.json", "dataset")
        log_artifacts_if_exist(out / "summary.json", "dataset")
        ids = {r["video_id"] for r in manifest}
        usable = [v for v in gate["passed"] if v in ids and v in annotations]
        _split_gate(params, read_json(out / "splits.json"), usable, cfg, out / "quality")
    return summary


def _split_gate(
    params: Path, splits: dict[str, Any], videos: list[str], cfg: Any, out: Path
) -> None:
    """GX split gate (leakage, loss, sizes): tag ``gx.splits``, log it, stop on failure."""
    from hivid.quality.gate import run_splits_gate

    g = run_splits_gate(
        splits,
        videos,
        cfg.val_fraction,
        cfg.test_fraction,
        load_section(params, "quality"),
        out,
        method=cfg.split_method,
    )
    mlflow.set_tag("gx.splits", f"{g.result_id}:{'success' if g.success else 'failure'}")
    log_artifacts_if_exist(out, "dataset/quality")
    if not g.success:
        raise StageFailed(f"split gate failed: {'; '.join(g.batch_failures)}")


def _eval_gate(params: Path, out: Path) -> None:
    """GX gate of the evaluation inputs: tag ``gx.eval``; stop when the ground truth is invalid
    (predictions that fail are recorded: scoring them is the evaluator's job)."""
    from hivid.quality.gate import run_eval_gate

    g = run_eval_gate(
        read_json(out / "gt.json"),
        read_json(out / "predictions.json"),
        load_section(params, "quality"),
        out / "quality",
    )
    mlflow.set_tag("gx.eval", f"{g.result_id}:{'success' if g.success else 'failure'}")
    bad_gt = [f for f in g.batch_failures if "eval_gt:" in f]
    if bad_gt:
        raise StageFailed(f"evaluation ground truth failed its gate: {'; '.join(bad_gt)}")


def _dataset_frame(dataset_dir: Path, split: str) -> pd.DataFrame:
    from hivid.io import read_jsonl

    path = dataset_dir / f"{split}.jsonl"
    rows = read_jsonl(path) if path.exists() else []
    return pd.DataFrame(
        [
            {
                "video_id": r["video_id"],
                "duration": r["duration"],
                "frames": len(r["frame_times"]),
                "asr_sentences": len(r["asr"]),
                "chapters": len(r["chapters"]),
            }
            for r in rows
        ]
        or [{"video_id": "", "duration": 0.0, "frames": 0, "asr_sentences": 0, "chapters": 0}]
    )


def _gate_tag(root: Path) -> dict[str, str]:
    """``gx.result`` (annotation gate) and ``gx.splits`` (split gate) for later stages' runs."""
    tags = {}
    for tag, rel in (("gx.result", layout.QUALITY_GATE), ("gx.splits", layout.SPLITS_GATE)):
        gate_path = root / rel
        if gate_path.exists():
            gate = read_json(gate_path)
            ok = "success" if gate.get("success") else "failure"
            tags[tag] = f"{gate.get('result_id')}:{ok}"
    return tags


def _champion_record(
    params: Path, alias: str, tmp: Path
) -> tuple[ParentRecord | None, Path | None, str]:
    """(record, narrator dir, note) of the registry's @alias model, downloaded into ``tmp`` with
    its checkpoint hash recomputed; (None, None, reason) when there is none or it does not
    verify."""
    from hivid.tracking.hashing import sha256_dir
    from hivid.tracking.registry import RegistryConfig
    from hivid.training.warmstart import RECORD_FILE, parent_record

    reg: RegistryConfig = load_section(params, "registry")
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(reg.model_name, alias)
    except mlflow.exceptions.MlflowException:
        return None, None, f"no {reg.model_name}@{alias} in the registry"
    ref = f"{reg.model_name}/{mv.version}"
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{ref}", dst_path=str(tmp)))
    configs = sorted(local.glob("artifacts/*/narrator_config.json"))
    if not configs:
        return None, None, f"{ref}: no narrator directory in its artifacts"
    model_dir = configs[0].parent
    actual, expected = sha256_dir(model_dir), (mv.tags or {}).get("model.sha256")
    if actual != expected:  # never build on a checkpoint that is not the one registered
        return (
            None,
            None,
            f"WARNING {ref}: checkpoint sha256 {actual[:12]} != registered {expected}",
        )
    record_path = model_dir / RECORD_FILE
    if not record_path.is_file():
        return None, None, f"{ref} has no {RECORD_FILE} (trained before incremental training)"
    return parent_record(ref, actual, read_json(record_path)), model_dir, ""


def run_warm_start(root: Path, params: Path, dataset_dir: Path, out: Path) -> dict[str, Any]:
    """The warm_start stage: plan warm or full training, and when warm put the champion's
    narrator in ``out/model`` (a DVC-cached output: the exact weights training starts from).

    It reads the registry, which DVC does not track: it reruns only when the dataset, the model
    config or the ``warm_start`` / ``train_stage*`` params change, and its output records which
    champion it found (``plan.json``), so `dvc repro` elsewhere never silently swaps the parent.
    """
    import shutil
    import tempfile

    from hivid.training.warmstart import (
        MODEL_DIR,
        PLAN_FILE,
        WarmStartConfig,
        model_config_sha256,
        plan_warm_start,
        split_videos_with_hashes,
    )

    cfg: WarmStartConfig = load_section(params, "warm_start")
    max_steps: dict[str, int] = {
        f"stage{i}": load_section(params, f"train_stage{i}").max_steps for i in (1, 2)
    }
    train = split_videos_with_hashes(dataset_dir, "train")
    model_hash = model_config_sha256(load_model_config(params))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with stage_run(root, "warm_start", {"warm_start": to_dict(cfg)}) as run:
        with tempfile.TemporaryDirectory() as tmp:
            parent, champion_dir, note = None, None, ""
            if cfg.enabled:
                parent, champion_dir, note = _champion_record(params, cfg.alias, Path(tmp))
            plan = plan_warm_start(cfg, train, model_hash, max_steps, parent)
            if parent is None and note:
                plan.reason = note
            if plan.mode == "warm" and champion_dir is not None:
                shutil.copytree(champion_dir, out / MODEL_DIR)
        write_json(out / PLAN_FILE, plan.to_dict())
        mlflow.log_dict(plan.to_dict(), "warm_start/plan.json")
        mlflow.set_tags(_warm_tags(plan))
        mlflow.log_metrics(
            {"new_fraction": plan.new_fraction, "new_videos": float(len(plan.new_videos))}
        )
        write_json(out / layout.MLFLOW_RUN, {"run_id": run.info.run_id})
    return plan.to_dict()


def _warm_tags(plan: WarmStartPlan) -> dict[str, str]:
    tags = {
        "warm_start.mode": plan.mode,
        "warm_start.reason": plan.reason[:500],
        "warm_start.chain": str(plan.chain),
    }
    if plan.mode == "warm":
        tags["warm_start.parent"] = plan.parent or ""
        tags["warm_start.parent_sha256"] = plan.parent_sha256 or ""
    return tags


def run_train(
    root: Path,
    params: Path,
    stage: int,
    dataset_dir: Path,
    out: Path,
    init_dir: Path | None,
    warm_dir: Path | None = None,
) -> TrainStageResult:
    """One training stage. ``warm_dir`` (the warm_start stage's output) sets the steps and, when
    its plan is warm, the champion the stage continues from."""
    from hivid.training.config import TrainConfig, TrainResult, env_global_rank
    from hivid.training.warmstart import (
        MODEL_DIR,
        RECORD_FILE,
        keep_champion,
        model_config_sha256,
        read_plan,
        split_videos_with_hashes,
        training_record,
    )

    check_train(stage, dataset_dir, init_dir, warm_dir)  # before any model import or run
    cfg: TrainConfig = load_section(params, f"train_stage{stage}")
    model_cfg = load_model_config(params)
    name = f"train_stage{stage}"
    plan = read_plan(warm_dir) if warm_dir is not None else None
    warm_from = None
    if warm_dir is not None and plan is not None and plan.mode == "warm":
        warm_from = warm_dir / MODEL_DIR
    steps = plan.steps.get(f"stage{stage}", cfg.max_steps) if plan is not None else None
    kw: dict[str, Any] = {"warm_from": warm_from, "max_steps": steps}
    if warm_from is not None and plan is not None:
        kw.update(focus=plan.new_videos, focus_share=plan.new_video_share)

    def fit(logger: Any = None) -> TrainResult:
        if warm_from is not None and steps == 0:  # the champion's weights: no trainer to import
            return keep_champion(stage, warm_from, init_dir, out, model_cfg, cfg)
        from hivid.training.fit import train_stage

        n: Literal[1, 2] = 1 if stage == 1 else 2
        return train_stage(n, dataset_dir, out, model_cfg, cfg, init_dir, logger, **kw)

    if env_global_rank() != 0:
        # Multi-process DDP (torchrun, srun): the other ranks train in step with rank 0 but open
        # no MLflow run and log nothing; rank 0 owns tracking, the model dir and the records.
        r = fit()
        return {"metrics": r.metrics, "run_id": "", "stage": stage}
    ds_md5 = _lock_md5(root, dataset_dir)
    tags = {**_gate_tag(root), **(_warm_tags(plan) if plan is not None else {})}
    with stage_run(
        root, name, {"train": to_dict(cfg), "model": to_dict(model_cfg)}, tags=tags
    ) as run:
        for split, context in (("train", "training"), ("val", "validation")):
            log_dataset(
                _dataset_frame(dataset_dir, split), f"dataset-{split}", dataset_dir, ds_md5, context
            )
        if init_dir is not None:
            mlflow.set_tag("init.model_dir", str(init_dir))
            # the stage-1 record sits beside its model dir (outputs/ckpt/stage1/mlflow_run.json)
            init_run = init_dir.parent / layout.MLFLOW_RUN
            if init_run.exists():
                mlflow.set_tag("init.run", read_json(init_run)["run_id"])
        logger = None
        if steps != 0:
            from lightning.pytorch.loggers import MLFlowLogger

            logger = MLFlowLogger(
                tracking_uri=mlflow.get_tracking_uri(), run_id=run.info.run_id, log_model=False
            )
        result = fit(logger)
        # what the model was trained on, travelling with it into the registry: the next night
        # plans its warm start from the champion's copy (hivid.training.warmstart)
        train = split_videos_with_hashes(dataset_dir, "train", strict=False)
        write_json(
            result.model_dir / RECORD_FILE,
            training_record(train, model_config_sha256(model_cfg), plan),
        )
        mlflow.log_metrics({f"final_{k}": float(v) for k, v in result.metrics.items()})
        mlflow.log_text(
            "\n".join(sorted(result.trainable_parameter_names)), "trainable_parameters.txt"
        )
        info: dict[str, Any] = {"run_id": run.info.run_id, "stage": stage}
        if stage == 2:
            from hivid.tracking.registry import log_narrator_model

            info.update(log_narrator_model(result.model_dir))
        else:
            log_artifacts_if_exist(result.model_dir, "model_dir")
        write_json(out / layout.MLFLOW_RUN, info)
        write_json(out / "metrics.json", {k: float(v) for k, v in result.metrics.items()})
    return cast(TrainStageResult, {"metrics": result.metrics, **info})


def run_evaluate(
    root: Path,
    params: Path,
    model_dir: Path,
    dataset_dir: Path,
    data: Path,
    out: Path,
    metrics_path: Path | None = None,
    progress: Progress = None,
    annotations: Path | None = None,
) -> EvaluateReport:
    """``annotations``: the annotate stage's records, from which the baselines are built."""
    from hivid.evaluation.stage import EvaluateConfig, evaluate_model

    cfg: EvaluateConfig = load_section(params, "evaluate")
    check_evaluate(model_dir, dataset_dir, data, cfg.split)  # before the run opens
    tags = _gate_tag(root)
    model_run = model_dir.parent / layout.MLFLOW_RUN
    if model_run.exists():
        tags["model.run"] = read_json(model_run)["run_id"]
    with stage_run(root, "evaluate", {"evaluate": to_dict(cfg)}, tags=tags) as run:
        ds_md5 = _lock_md5(root, dataset_dir)
        log_dataset(
            _dataset_frame(dataset_dir, cfg.split),
            f"dataset-{cfg.split}",
            dataset_dir,
            ds_md5,
            "evaluation",
        )
        report = evaluate_model(model_dir, dataset_dir, data, out, cfg, progress, annotations)
        _eval_gate(params, out)
        mlflow.log_metrics({k: float(v) for k, v in report["metrics"].items()})
        mlflow.set_tags(report.get("tags", {}))  # evaluator identity (code, METEOR jar, tokenizer)
        per_video = pd.DataFrame(
            [{"video_id": v, **s} for v, s in sorted(report["per_video"].items())]
        )
        mlflow.log_table(per_video, "eval/per_video.json")
        log_artifacts_if_exist(out, "eval")
        write_json(out / layout.MLFLOW_RUN, {"run_id": run.info.run_id})
        if metrics_path is not None:  # the DVC metrics file (outside the cached out dir)
            write_json(metrics_path, report["metrics"])
    return cast(EvaluateReport, report)


def run_register(
    root: Path,
    params: Path,
    stage2_dir: Path,
    extra_tags: dict[str, str] | None = None,
    pipeline_run_id: str | None = None,
) -> RegisterResult:
    """Register the stage-2 model logged by `train_stage2` and point the alias at it; a new
    version carries the source run's lineage tags plus ``extra_tags`` (the nightly's
    ``git.revision`` / ``git.branch``) and ``pipeline.run`` (``pipeline_run_id``)."""
    from hivid.tracking.registry import RegistryConfig, register_version
    from hivid.tracking.runs import configure

    cfg: RegistryConfig = load_section(params, "registry")
    info_path = stage2_dir / layout.MLFLOW_RUN
    if not info_path.exists():
        raise StageFailed(f"{info_path}: no logged stage-2 model (run `hivid train --stage 2`)")
    info = read_json(info_path)
    configure(root)
    client = mlflow.MlflowClient()
    src = client.get_run(info["run_id"])
    lineage = {
        k: v
        for k, v in src.data.tags.items()
        if k.startswith(("git.", "dvc.", "gx.", "model.", "upstream."))
        or k in ("parent.run", "init.run")
    }
    eval_id, eval_note = _own_eval_run(client, root, info["run_id"])
    if eval_id:
        lineage["eval.run"] = eval_id
    if pipeline_run_id:
        lineage["pipeline.run"] = pipeline_run_id
    lineage.update(extra_tags or {})
    version = register_version(info["model_uri"], info["run_id"], cfg, lineage)
    if eval_id:
        # an evaluate-only change (same weights, new evaluation) re-uses the version: its
        # metrics are attached to it, never left orphaned
        client.set_model_version_tag(cfg.model_name, version, "eval.run", eval_id)
    out = {"name": cfg.model_name, "version": version, "alias": cfg.alias, **info}
    if eval_note:
        out["warning"] = eval_note
    return cast(RegisterResult, out)


def _own_eval_run(client: Any, root: Path, model_run: str) -> tuple[str | None, str]:
    """The evaluate run (outputs/eval) when it scored ``model_run``'s model, else (None, why)."""
    path = root / layout.EVAL / layout.MLFLOW_RUN
    if not path.exists():
        return None, f"{path}: no evaluation; the version has no metrics until one runs"
    eval_id = read_json(path)["run_id"]
    try:
        scored = client.get_run(eval_id).data.tags.get("model.run")
    except mlflow.exceptions.MlflowException:
        return None, f"evaluate run {eval_id} ({path}) is not in this tracking store"
    if scored != model_run:
        return None, (
            f"evaluate run {eval_id} scored the model of run {scored}, not {model_run}: "
            "not attached (run `hivid evaluate model` on this model)"
        )
    return eval_id, ""


def run_promote(
    root: Path, params: Path, version: str | None = None, pipeline_run_id: str | None = None
) -> PromoteResult:
    """Apply the promotion gate to ``version`` (default: the current challenger); the decision
    is also logged to the pipeline run ``pipeline_run_id`` when one is given."""
    from hivid.tracking.promotion import promote
    from hivid.tracking.registry import RegistryConfig
    from hivid.tracking.runs import configure

    cfg: RegistryConfig = load_section(params, "registry")
    configure(root)
    client = mlflow.MlflowClient()
    if version is None:
        version = str(client.get_model_version_by_alias(cfg.model_name, cfg.alias).version)
    decision = promote(root, cfg.model_name, version, cfg.promotion)
    if pipeline_run_id:
        client.log_dict(pipeline_run_id, decision.to_dict(), "promotion/decision.json")
        client.set_tag(pipeline_run_id, "promotion.decision", decision.text()[:5000])
    return cast(
        PromoteResult, {"name": cfg.model_name, **decision.to_dict(), "text": decision.text()}
    )
