"""What each stage needs before it starts, checked before anything heavy is imported.

A stage whose inputs are missing must fail in well under a second, name the stage (or command)
that produces the missing input, and leave nothing behind: no MLflow run, no output directory.
The CLI calls these before importing the stage (which pulls in MLflow, torch, transformers); the
stage functions call them again before opening their run, so library callers get the same
behaviour. Only ``pathlib`` and the stdlib here.
"""

from __future__ import annotations

from pathlib import Path

NARRATOR_CONFIG = "narrator_config.json"
"""The file every saved narrator directory holds (``hivid.models.narrator.CONFIG_FILE``)."""


class MissingInputError(RuntimeError):
    """A stage input does not exist (the message names it and the stage that produces it)."""


def _need_file(path: Path, what: str, make: str) -> None:
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "not found"
        raise MissingInputError(f"{path}: {what} {state} (run `{make}` first)")


def _need_model_dir(path: Path, what: str, make: str) -> None:
    if not path.is_dir():
        raise MissingInputError(f"{path}: no {what} (run `{make}` first)")
    if not (path / NARRATOR_CONFIG).is_file():
        raise MissingInputError(
            f"{path}: not a saved narrator directory, {NARRATOR_CONFIG} missing "
            f"(run `{make}` first)"
        )


def check_train(
    stage: int, dataset_dir: Path, init_dir: Path | None, warm_dir: Path | None
) -> None:
    """`hivid train --stage N`: the dataset, stage 2's stage-1 model, the warm-start plan."""
    if stage == 2 and init_dir is not None:
        _need_model_dir(Path(init_dir), "stage-1 model", "hivid train --stage 1")
    _need_file(Path(dataset_dir) / "train.jsonl", "the train split", "hivid build-dataset")
    if warm_dir is not None:
        _need_file(Path(warm_dir) / "plan.json", "the warm-start plan", "hivid warm-start")


def check_evaluate(model_dir: Path, dataset_dir: Path, data: Path, split: str) -> None:
    """`hivid evaluate model`: a trained stage-2 narrator, the split to score, the raw data."""
    _need_model_dir(Path(model_dir), "trained model", "hivid train --stage 2")
    _need_file(Path(dataset_dir) / f"{split}.jsonl", f"the {split} split", "hivid build-dataset")
    if not Path(data).is_dir():
        raise MissingInputError(f"{data}: no data directory (run `hivid demo-data` or `dvc pull`)")


def check_narrate(video: Path, model_ref: str) -> None:
    """`hivid narrate VIDEO`: the video, and a local model directory when one is named (a
    ``models:/`` URI is resolved against the registry later)."""
    video = Path(video)
    if not video.exists():
        raise MissingInputError(f"{video}: no such video file")
    if not video.is_file():
        raise MissingInputError(f"{video}: not a regular file")
    if model_ref.startswith("models:/"):
        return
    local = Path(model_ref)
    if (local / "model" / NARRATOR_CONFIG).is_file() or (local / NARRATOR_CONFIG).is_file():
        return
    raise MissingInputError(
        f"{local}: no saved narrator here (run `hivid train --stage 2`, or pass "
        "--model models:/hivid-narrator@champion)"
    )


def evaluate_split(params: Path) -> str:
    """``evaluate.split`` from the params file without importing the config classes ('test' when
    the file or the key is absent; the full validation happens when the stage loads it)."""
    if not Path(params).is_file():
        return "test"
    import yaml

    try:
        doc = yaml.safe_load(Path(params).read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return "test"
    section = doc.get("evaluate") if isinstance(doc, dict) else None
    split = section.get("split", "test") if isinstance(section, dict) else "test"
    return split if isinstance(split, str) else "test"
