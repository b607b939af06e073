"""Lineage facts read from git, data.dvc, dvc.yaml and dvc.lock (data, not convention).

Tags every stage run carries (ARCHITECTURE.md, rule 5):

- ``git.commit`` / ``git.dirty``: the code version, and whether tracked files differed from it
  before the pipeline started (``hivid.tracking.gitrev``: the nightly measures it once, so a
  stage never sees its own pipeline's ``dvc.lock`` rewrites as dirt);
- ``dvc.data.md5``: the md5 of ``data/`` pinned by ``data.dvc``;
- ``dvc.lock.<stage>.md5``: for each input of this stage produced by an upstream stage, that
  output's md5 as recorded in ``dvc.lock`` (so a run can be matched to exact upstream outputs);
- ``upstream.<stage>.run``: the MLflow run that produced each input (read from the
  ``.hivid_run.json`` record that every stage leaves in its output directory).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

RUN_RECORD = ".hivid_run.json"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``dvc.yaml`` (else ``start``)."""
    start = (start or Path.cwd()).resolve()
    for d in (start, *start.parents):
        if (d / "dvc.yaml").exists():
            return d
    return start


def git_commit(root: Path) -> tuple[str | None, bool]:
    """(HEAD commit sha or None, whether tracked files other than ``dvc.lock`` differ from it)."""
    from hivid.tracking.gitrev import git_state

    state = git_state(root)
    return state.commit, state.dirty


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text())


def data_md5(root: Path, dvc_file: str = "data.dvc") -> str | None:
    """md5 of the tracked data directory as pinned in ``data.dvc`` (None if not tracked)."""
    doc = _load_yaml(root / dvc_file) or {}
    outs = doc.get("outs") or []
    return outs[0].get("md5") if outs else None


def lock_outs(root: Path) -> dict[str, tuple[str, str]]:
    """``{out_path: (stage, md5)}`` for every output recorded in dvc.lock."""
    doc = _load_yaml(root / "dvc.lock") or {}
    result: dict[str, tuple[str, str]] = {}
    for stage, entry in (doc.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            if out.get("md5"):
                result[out["path"]] = (stage, out["md5"])
    return result


def stage_deps(root: Path, stage: str) -> list[str]:
    doc = _load_yaml(root / "dvc.yaml") or {}
    entry = (doc.get("stages") or {}).get(stage) or {}
    return [str(d) for d in entry.get("deps") or []]


def lineage_tags(root: Path, stage: str | None) -> dict[str, str]:
    """The lineage tags of a run of ``stage`` in project ``root``."""
    from hivid.tracking.gitrev import state_for_run

    tags: dict[str, str] = dict(state_for_run(root).tags())
    md5 = data_md5(root)
    if md5:
        tags["dvc.data.md5"] = md5
    if stage:
        tags["hivid.stage"] = stage
        outs = lock_outs(root)
        for dep in stage_deps(root, stage):
            dep = dep.rstrip("/")
            if dep in outs:
                upstream, out_md5 = outs[dep]
                tags[f"dvc.lock.{upstream}.md5"] = out_md5
            record = root / dep / RUN_RECORD
            if record.is_file():
                info = json.loads(record.read_text())
                tags[f"upstream.{info['stage']}.run"] = info["run_id"]
    return tags


def stage_outs(root: Path, stage: str) -> list[str]:
    doc = _load_yaml(root / "dvc.yaml") or {}
    entry = (doc.get("stages") or {}).get(stage) or {}
    outs = []
    for out in entry.get("outs") or []:
        outs.append(str(next(iter(out)) if isinstance(out, dict) else out))
    return outs


def record_run(root: Path, stage: str, run_id: str) -> None:
    """Leave ``.hivid_run.json`` in each output directory of ``stage``: the next stage tags it as
    ``upstream.<stage>.run``, which is how `hivid lineage` walks from a model back to the data."""
    from hivid.io import write_json

    for out in stage_outs(root, stage):
        d = root / out
        if d.is_dir():
            write_json(d / RUN_RECORD, {"stage": stage, "run_id": run_id})


def out_md5(root: Path, path: str) -> str | None:
    """md5 recorded in dvc.lock for output ``path`` (None when not recorded yet)."""
    entry = lock_outs(root).get(path.rstrip("/"))
    return entry[1] if entry else None
