"""Log the narrator as an MLflow model and register it (`hivid-narrator`, alias `challenger`).

The logged model is a pyfunc whose artifact is the saved narrator directory (config, safetensors,
tokenizer): `mlflow.pyfunc.load_model("models:/hivid-narrator@challenger")` gives a predictor, and
`mlflow.artifacts.download_artifacts(...)` gives the plain directory for `load_narrator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.tracking import MlflowClient

import hivid
from hivid.configbase import require
from hivid.tracking.promotion import PromotionConfig


@dataclass
class RegistryConfig:
    """Model registry settings (params.yaml section ``registry``)."""

    model_name: str = "hivid-narrator"
    """Registered model name every nightly version is filed under."""
    alias: str = "challenger"
    """Alias the newest version receives (promotion to `champion` is a separate gate)."""
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    """When the challenger becomes champion (hivid.tracking.promotion)."""

    def __post_init__(self) -> None:
        require(bool(self.model_name.strip()), "registry.model_name must not be empty")
        require(self.alias not in ("", "latest"), "registry.alias must be a name other than latest")


class NarratorPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined,misc]
    """pyfunc wrapper: input rows are dataset rows (see hivid.dataset.build) + `dataset_dir`."""

    def load_context(self, context: Any) -> None:
        from hivid.models.narrator import load_narrator

        self.model, self.tokenizer = load_narrator(Path(context.artifacts["model_dir"]))
        self.model.eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> list[str]:
        from hivid.training.generate import generate_chapters

        max_new = int((params or {}).get("max_new_tokens", 160))
        texts = []
        for row in model_input.to_dict(orient="records"):
            text, _ = generate_chapters(
                self.model, self.tokenizer, row, Path(row["dataset_dir"]), max_new_tokens=max_new
            )
            texts.append(text)
        return texts


def log_narrator_model(model_dir: Path) -> dict[str, str]:
    """Log ``model_dir`` as the active run's model; returns {"model_uri", "model_id", "run_id"}."""
    import torch
    import transformers

    from hivid.tracking.hashing import sha256_dir

    # Recorded so `hivid lineage` can recompute the checkpoint hash from the registry's copy.
    mlflow.set_tag("model.sha256", sha256_dir(model_dir))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=NarratorPyfunc(),
        artifacts={"model_dir": str(model_dir)},
        # Explicit requirements: inference would import-scan the whole environment (slow).
        pip_requirements=[
            f"hivid=={hivid.__version__}",
            f"torch=={torch.__version__.split('+')[0]}",
            f"transformers=={transformers.__version__}",
        ],
    )
    run = mlflow.active_run()
    return {
        "model_uri": info.model_uri,
        "model_id": str(getattr(info, "model_id", "") or ""),
        "run_id": run.info.run_id if run else "",
    }


def model_files_tags(model_uri: str) -> dict[str, str]:
    """Hash every file of the logged MLflow model at ``model_uri`` as the registry will serve it
    (``model.files.sha256`` + manifest: MLmodel, pyfunc wrapper, environment files; the
    checkpoint folder is ``model.sha256``), so `hivid lineage` can check the whole directory."""
    import tempfile

    from hivid.tracking.audit import model_file_tags

    with tempfile.TemporaryDirectory(prefix="hivid-register-") as tmp:
        local = mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp)
        return model_file_tags(Path(local))


def register_version(
    model_uri: str,
    run_id: str,
    cfg: RegistryConfig,
    tags: dict[str, str] | None = None,
) -> str:
    """Register (or reuse, when this run's model is already registered) and move the alias.

    A new version is tagged with ``tags`` (lineage), ``source.run`` and the hashes of every file
    of its model directory (``model_files_tags``)."""
    client = MlflowClient()
    name = cfg.model_name
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(
            name,
            description="HiVid-Narrator: hierarchical video narrator (TCoT + chapters), "
            "trained nightly by HiVid Ops. Every version carries its lineage tags.",
        )
    existing = [v for v in client.search_model_versions(f"name='{name}'") if v.run_id == run_id]
    if existing:
        version = str(max(int(v.version) for v in existing))
    else:
        files = model_files_tags(model_uri)
        mv = mlflow.register_model(
            model_uri, name, tags={"source.run": run_id, **(tags or {}), **files}
        )
        version = str(mv.version)
    client.set_registered_model_alias(name, cfg.alias, version)
    return version
