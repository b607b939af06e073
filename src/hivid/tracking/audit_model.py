"""The model end of `hivid lineage`: resolve a model reference, pin and verify a registered
model's files (checkpoint folder, MLmodel, pyfunc wrapper, ...) and a warm-start parent.

``hivid.tracking.audit`` walks the chain and re-exports these names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from hivid.tracking.audit_links import (
    FILES_MANIFEST_TAG,
    FILES_TAG,
    MODEL_META,
    LineageError,
    Link,
    _unavailable,
    is_unreachable,
)
from hivid.tracking.hashing import file_hashes, listing_sha256, sha256_dir
from hivid.tracking.runs import tracking_uri


def resolve_model(ref: str) -> tuple[Any | None, str]:
    """(model version or None, source run id) for ``models:/name@alias``, ``models:/name/N`` or a
    run id."""
    client = MlflowClient()
    if ref.startswith("models:/"):
        body = ref[len("models:/") :]
        try:
            if "@" in body:
                name, alias = body.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            else:
                name, version = body.rsplit("/", 1)
                mv = client.get_model_version(name, version)
        except (mlflow.exceptions.MlflowException, ValueError) as exc:
            if is_unreachable(exc):
                raise _unavailable(f"tracking server {tracking_uri(Path.cwd())}", exc) from None
            raise LineageError(f"{ref}: no such model version ({exc})") from None
        if not mv.run_id:
            raise LineageError(f"{ref}: model version {mv.version} has no source run")
        return mv, mv.run_id
    try:
        client.get_run(ref)
    except mlflow.exceptions.MlflowException as exc:
        if is_unreachable(exc):
            raise _unavailable("tracking server", exc) from None
        raise LineageError(f"{ref}: not a models:/ URI and not a run id") from None
    return None, ref


def checkpoint_dir(model_root: Path) -> Path | None:
    """The narrator directory inside a downloaded pyfunc model (found by its config file)."""
    configs = sorted(model_root.glob("artifacts/*/narrator_config.json"))
    return configs[0].parent if configs else None


def model_file_tags(model_root: Path) -> dict[str, str]:
    """Tags that pin every file of a logged MLflow model directory outside its checkpoint folder
    (MLmodel, the pickled pyfunc wrapper, environment files, ...): ``model.files.sha256`` and a
    ``model.files.manifest`` (JSON ``{path: sha256}``). The checkpoint folder is pinned by
    ``model.sha256``; together they cover every file."""
    ckpt = checkpoint_dir(model_root)
    skip = (MODEL_META, *([ckpt.relative_to(model_root).as_posix()] if ckpt else []))
    hashes = file_hashes(model_root, skip)
    tags = {FILES_TAG: listing_sha256(hashes)}
    manifest = json.dumps(hashes, sort_keys=True, separators=(",", ":"))
    if len(manifest) <= 4500:  # MLflow caps a tag value at 5000 characters
        tags[FILES_MANIFEST_TAG] = manifest
    return tags


def _download_model(mv: Any, dest: Path) -> tuple[Path | None, str]:
    try:
        dest.mkdir(parents=True, exist_ok=True)
        local = mlflow.artifacts.download_artifacts(
            f"models:/{mv.name}/{mv.version}", dst_path=str(dest)
        )
        return Path(local), ""
    except Exception as exc:
        if is_unreachable(exc):
            raise _unavailable(f"models:/{mv.name}/{mv.version}", exc) from None
        return None, f"model artifacts missing ({type(exc).__name__}: {str(exc)[:120]})"


def _verify_model(mv: Any, dest: Path) -> list[Link]:
    """The ``model version`` (checkpoint folder, ``model.sha256``) and ``model files`` (every
    other file of the registered MLflow model, ``model.files.sha256``) links."""
    detail = {"name": mv.name, "version": str(mv.version), "aliases": list(mv.aliases or [])}
    tags = mv.tags or {}
    local, why = _download_model(mv, dest)
    return [_checkpoint_link(tags, local, why, detail), _files_link(tags, local, why, detail)]


def _checkpoint_link(
    tags: dict[str, str], local: Path | None, why: str, detail: dict[str, Any]
) -> Link:
    expected = tags.get("model.sha256")
    if not expected:
        return Link("model version", "UNVERIFIED", "no model.sha256 tag recorded", detail)
    if local is None:
        return Link("model version", "MISMATCH", why, detail)
    ckpt = checkpoint_dir(local)
    if ckpt is None:
        return Link(
            "model version", "MISMATCH", "no narrator checkpoint in the model's artifacts", detail
        )
    actual = sha256_dir(ckpt)
    if actual != expected:
        return Link(
            "model version",
            "MISMATCH",
            f"checkpoint sha256 {actual[:12]} != {expected[:12]}",
            detail,
        )
    return Link("model version", "VERIFIED", "checkpoint sha256 recomputed and equal", detail)


def _files_link(tags: dict[str, str], local: Path | None, why: str, detail: dict[str, Any]) -> Link:
    expected = tags.get(FILES_TAG)
    if not expected:
        return Link(
            "model files",
            "UNVERIFIED",
            f"no {FILES_TAG} tag (registered before model files were hashed)",
            detail,
        )
    if local is None:
        return Link("model files", "MISMATCH", why, detail)
    actual = model_file_tags(local)
    if actual[FILES_TAG] == expected:
        n = len(json.loads(actual.get(FILES_MANIFEST_TAG, "{}")))
        return Link(
            "model files",
            "VERIFIED",
            f"{n} model files (MLmodel, pyfunc wrapper, environment) recomputed",
            detail,
        )
    try:
        recorded = json.loads(tags.get(FILES_MANIFEST_TAG, ""))
        now = json.loads(actual.get(FILES_MANIFEST_TAG, "{}"))
        differ = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    except ValueError:
        differ = ["(manifest tag unreadable)"]
    return Link(
        "model files", "MISMATCH", f"model files differ from registration: {differ[:5]}", detail
    )


def _verify_warm_start(stage1: Run, dest: Path) -> Link | None:
    """The warm-start link: the model stage 1 continued (hivid.training.warmstart), its recorded
    checkpoint hash checked against the registry and recomputed from its artifacts."""
    tags = stage1.data.tags
    mode = tags.get("warm_start.mode")
    if mode is None:  # trained before incremental training existed
        return None
    detail: dict[str, Any] = {
        k.removeprefix("warm_start."): v for k, v in tags.items() if k.startswith("warm_start.")
    }
    if "upstream.warm_start.run" in tags:
        detail["run_id"] = tags["upstream.warm_start.run"]
    if mode != "warm":
        return Link(
            "warm start", "VERIFIED", f"none: trained from scratch ({detail.get('reason')})", detail
        )
    ref, recorded = tags.get("warm_start.parent", ""), tags.get("warm_start.parent_sha256", "")
    name, _, version = ref.rpartition("/")
    try:
        parent = MlflowClient().get_model_version(name, version)
    except (mlflow.exceptions.MlflowException, ValueError) as exc:
        if is_unreachable(exc):
            raise
        return Link("warm start", "MISMATCH", f"parent {ref} is not in the registry", detail)
    detail["parent_lineage"] = f"hivid lineage models:/{ref}"
    if (parent.tags or {}).get("model.sha256") != recorded:
        return Link(
            "warm start", "MISMATCH", f"{ref} is registered with another checkpoint hash", detail
        )
    local, why = _download_model(parent, dest)
    checked = _checkpoint_link(parent.tags or {}, local, why, {})
    if checked.status != "VERIFIED":
        return Link("warm start", checked.status, f"parent {ref}: {checked.reason}", detail)
    return Link(
        "warm start",
        "VERIFIED",
        f"continued {ref} (chain {detail.get('chain')}): its checkpoint sha256 recomputed, equal",
        detail,
    )
