"""MLflow run context for pipeline stages: embedded default store, nesting, lineage, datasets.

Embedded default (no configuration): tracking at ``sqlite:///<root>/mlruns/mlflow.db`` with
artifacts under ``<root>/mlruns/artifacts``. ``MLFLOW_TRACKING_URI`` points it at a server instead.

A stage launched by the nightly flow runs as a child of the flow's pipeline run: the flow passes the
parent's id in ``HIVID_PARENT_RUN_ID``. Secrets are never logged: params come from typed configs,
and tags from lineage facts only.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import pandas as pd
from mlflow.tracking import MlflowClient

from hivid.configbase import flatten
from hivid.tracking.lineage import lineage_tags, record_run
from hivid.tracking.stale import owner_tags
from hivid.tracking.store import heal_moved_store

EXPERIMENT = "hivid"
PARENT_ENV = "HIVID_PARENT_RUN_ID"
EXPERIMENT_ENV = "HIVID_EXPERIMENT"


def tracking_uri(root: Path) -> str:
    """The tracking URI in force: ``MLFLOW_TRACKING_URI`` or the embedded sqlite store."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root / 'mlruns' / 'mlflow.db').resolve()}"


def is_embedded(uri: str) -> bool:
    return uri.startswith("sqlite:///") and uri.endswith("mlruns/mlflow.db")


# `mlflow.set_registry_uri` exports MLFLOW_REGISTRY_URI itself (for subprocesses): the value this
# module exported as the default, so that a later configure() of another project in the same
# process does not mistake it for a user's own registry setting.
_exported_registry: str | None = None


def configure(root: Path) -> str:
    """Point MLflow at this project's store and make sure the experiment exists; returns its id."""
    global _exported_registry
    uri = tracking_uri(root)
    if is_embedded(uri):
        (root / "mlruns" / "artifacts").mkdir(parents=True, exist_ok=True)
        heal_moved_store(uri)  # a moved checkout: rewrite the absolute artifact URIs
    mlflow.set_tracking_uri(uri)
    registry = os.environ.get("MLFLOW_REGISTRY_URI")
    if not registry or registry == _exported_registry:
        registry = _exported_registry = uri  # the registry lives beside the runs
    mlflow.set_registry_uri(registry)
    name = os.environ.get(EXPERIMENT_ENV, EXPERIMENT)
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        mlflow.set_experiment(experiment_id=exp.experiment_id)
        return str(exp.experiment_id)
    artifact_location = None
    if is_embedded(uri):
        artifact_location = (root / "mlruns" / "artifacts").resolve().as_uri()
    try:
        exp_id = client.create_experiment(name, artifact_location=artifact_location)
    except mlflow.exceptions.MlflowException:  # created concurrently by another stage
        exp_id = client.get_experiment_by_name(name).experiment_id  # type: ignore[union-attr]
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    flat = flatten(params)
    # MLflow caps a param value at 6000 chars; configs are far below, but stay defensive.
    return {k: str(v)[:6000] for k, v in flat.items()}


@contextlib.contextmanager
def stage_run(
    root: Path,
    stage: str,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Open the MLflow run of one stage, nested under the pipeline run when there is one."""
    configure(root)
    parent = os.environ.get(PARENT_ENV) or None
    all_tags = {**lineage_tags(root, stage), **owner_tags(), **(tags or {})}
    if parent:
        all_tags["parent.run"] = parent
    with mlflow.start_run(
        run_name=stage, parent_run_id=parent, nested=parent is not None, tags=all_tags
    ) as run:
        if params:
            mlflow.log_params(_params(params))
        yield run
        record_run(root, stage, run.info.run_id)


def log_dataset(
    df: pd.DataFrame,
    name: str,
    source: Path | str,
    digest: str | None,
    context: str,
) -> None:
    """Log ``df`` as an input dataset of the active run; digest = the DVC md5 of its source."""
    source_uri = Path(source).resolve().as_uri() if isinstance(source, Path) else source
    with warnings.catch_warnings():
        # schema-inference hints and source-type ambiguity notes are noise for file:// sources
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            df, source=source_uri, name=name, digest=digest
        )
        mlflow.log_input(ds, context=context)


def log_artifacts_if_exist(path: Path, artifact_path: str | None = None) -> None:
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path=artifact_path)
    elif path.is_file():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
