"""A complete, real `hivid lineage` chain to audit, and the helpers to tamper with it.

``build_chain`` writes a git + DVC repository whose data (two raw videos + metadata) and stage
outputs (the ingest manifest, the quality gate) are in the DVC cache and a local-directory remote,
an embedded MLflow store with one run per stage linked by the ``upstream.<stage>.run`` tags, a
warm-start parent version and the version under audit (``MODEL``). Used by tests/unit/test_audit*.py
and benchmarks/lineage.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from hivid.tracking.audit import Lineage, trace
from hivid.tracking.dvcobjects import object_rel
from hivid.tracking.gitrev import commit_pipeline_state, git_state, revision_tags

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
DVC = [sys.executable, "-m", "dvc"]
MODEL = "models:/hivid-narrator/2"
ALL_LINKS = [
    "model version",
    "model files",
    "train_stage2 run",
    "train_stage1 run",
    "warm start",
    "build_dataset run",
    "validate run",
    "annotate run",
    "ingest run",
    "quality gate",
    "ingest manifest",
    "data.dvc md5",
    "git commit",
    "raw video v0",
    "raw video v1",
]


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc.stdout.strip()


@dataclass
class Chain:
    root: Path
    runs: dict[str, str]
    md5: dict[str, str]  # data/<relpath> and outputs/<...> -> DVC object md5
    remote: Path

    def objects(self, md5: str) -> list[Path]:
        """The copies of a DVC object: project cache and local remote."""
        return [self.root / ".dvc" / "cache" / object_rel(md5), self.remote / object_rel(md5)]

    def trace(self) -> Lineage:
        return trace(self.root, MODEL)


def fake_narrator(path: Path, seed: int) -> Path:
    """A directory shaped like a saved narrator (the audit hashes files, never loads them)."""
    path.mkdir(parents=True)
    (path / "narrator_config.json").write_text(json.dumps({"preset": "tiny", "seed": seed}))
    (path / "model.safetensors").write_bytes(os.urandom(2048))
    (path / "tokenizer.json").write_text(json.dumps({"vocab": ["a", "b", str(seed)]}))
    return path


def build_chain(
    root: Path,
    remote_url: str | None = None,
    local: dict[str, str] | None = None,
    videos: int = 2,
    video_bytes: int = 4096,
) -> Chain:
    """The chain in ``root``; DVC remote ``remote_url`` (default: a local directory) with host
    settings ``local`` (``dvc remote modify --local``: endpoint, credentials)."""
    from hivid.io import write_json
    from hivid.stages import run_register
    from hivid.tracking.registry import log_narrator_model
    from hivid.tracking.runs import configure

    root.mkdir(parents=True, exist_ok=True)
    remote = root.parent / "remote"
    run(["git", "init", "-q"], root)
    run([*DVC, "init", "-q"], root)
    run([*DVC, "config", "core.analytics", "false"], root)
    if remote_url is None:
        run([*DVC, "remote", "add", "-d", "local", str(remote)], root)
    else:
        run([*DVC, "remote", "add", "-d", "s3", remote_url], root)
        for key, value in (local or {}).items():
            run([*DVC, "remote", "modify", "--local", "s3", key, value], root)
    (root / ".gitignore").write_text("/mlruns\n/models\n")
    for i in range(videos):
        (root / "data" / "videos").mkdir(parents=True, exist_ok=True)
        (root / "data" / "metadata").mkdir(exist_ok=True)
        (root / "data" / "videos" / f"v{i}.mp4").write_bytes(os.urandom(video_bytes))
        (root / "data" / "metadata" / f"v{i}.json").write_text(json.dumps({"brand": f"b{i}"}))
    rows = []
    for i in range(videos):
        import hashlib

        sha = hashlib.sha256((root / "data" / "videos" / f"v{i}.mp4").read_bytes()).hexdigest()
        rows.append({"video_id": f"v{i}", "path": f"videos/v{i}.mp4", "sha256": sha})
    ingest_out, quality_out = root / "outputs" / "ingest", root / "outputs" / "quality"
    ingest_out.mkdir(parents=True)
    quality_out.mkdir(parents=True)
    (ingest_out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    gate = {"result_id": "res-1", "success": True, "passed": ["v0", "v1"], "quarantined": []}
    (quality_out / "gate.json").write_text(json.dumps(gate))
    run([*DVC, "add", "-q", "data", "outputs/ingest", "outputs/quality"], root)
    run(["git", "add", "-A"], root)
    run([*GIT, "commit", "-qm", "data"], root)
    run([*DVC, "push", "-q"], root)

    def dir_md5(dvc_file: str) -> str:
        import yaml

        return str(yaml.safe_load((root / dvc_file).read_text())["outs"][0]["md5"])

    md5 = {
        "data": dir_md5("data.dvc"),
        "outputs/ingest": dir_md5("outputs/ingest.dvc"),
        "outputs/quality": dir_md5("outputs/quality.dvc"),
    }
    listing = json.loads((root / ".dvc" / "cache" / object_rel(md5["data"])).read_bytes())
    md5.update({f"data/{e['relpath']}": e["md5"] for e in listing})

    configure(root)
    state = git_state(root)
    base = {**state.tags(), "dvc.data.md5": md5["data"]}
    runs: dict[str, str] = {}

    def stage(name: str, tags: dict[str, str], body: Callable[[], Any] | None = None) -> Any:
        with mlflow.start_run(run_name=name, tags={**base, "hivid.stage": name, **tags}) as r:
            out = body() if body else None
        runs[name] = r.info.run_id
        return out

    stage("ingest", {}, lambda: mlflow.log_artifact(str(ingest_out / "manifest.jsonl"), "ingest"))
    lock = {"dvc.lock.ingest.md5": md5["outputs/ingest"]}
    stage("annotate", {"upstream.ingest.run": runs["ingest"], **lock})
    gx = {"gx.result": "res-1:success"}
    stage(
        "validate",
        {"upstream.annotate.run": runs["annotate"], **lock, **gx},
        lambda: mlflow.log_artifact(str(quality_out / "gate.json"), "quality"),
    )
    lock["dvc.lock.validate.md5"] = md5["outputs/quality"]
    stage("build_dataset", {"upstream.validate.run": runs["validate"], **lock, **gx})

    def register(stage2: Path, info: dict[str, str], extra: dict[str, str] | None = None) -> str:
        write_json(stage2 / "mlflow_run.json", info)  # what train_stage2 leaves for `register`
        return str(run_register(root, root / "params.yaml", stage2, extra)["version"])

    parent_dir = fake_narrator(root / "models" / "parent" / "model", 1)
    parent = stage("parent_stage2", {}, lambda: log_narrator_model(parent_dir))
    assert register(parent_dir.parent, parent) == "1"
    parent_sha = MlflowClient().get_model_version("hivid-narrator", "1").tags["model.sha256"]
    warm = {
        "warm_start.mode": "warm",
        "warm_start.parent": "hivid-narrator/1",
        "warm_start.parent_sha256": parent_sha,
        "warm_start.chain": "1",
    }
    stage("train_stage1", {"upstream.build_dataset.run": runs["build_dataset"], **gx, **warm})
    model_dir = fake_narrator(root / "models" / "child" / "model", 2)
    child = stage(
        "train_stage2",
        {"upstream.train_stage1.run": runs["train_stage1"], **gx},
        lambda: log_narrator_model(model_dir),
    )
    # the nightly commits what the pipeline wrote, and the version names that commit
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    commit = commit_pipeline_state(root, "nightly-test")
    assert commit["committed"] and commit["branch"] == "nightly/nightly-test", commit
    assert register(model_dir.parent, child, revision_tags(commit)) == "2"
    return Chain(root, runs, md5, remote)


def statuses(lineage: Lineage) -> dict[str, str]:
    return {link.name: link.status for link in lineage.links}


def assert_only(lineage: Lineage, flagged: str, status: str = "MISMATCH") -> None:
    got = statuses(lineage)
    assert list(got) == ALL_LINKS, list(got)
    assert got[flagged] == status, (flagged, got)
    others = {k: v for k, v in got.items() if k != flagged and v != "VERIFIED"}
    assert not others, others


# ---- tampering helpers (each undone on exit) ---------------------------------------------------


@contextmanager
def replaced(paths: list[Path], data: bytes | Callable[[bytes], bytes]) -> Iterator[None]:
    """Replace files (unlinked first: DVC may have linked a cache file to the workspace)."""
    saved = {p: p.read_bytes() for p in paths}
    try:
        for p, old in saved.items():
            p.unlink()
            p.write_bytes(data(old) if callable(data) else data)
        yield
    finally:
        for p, old in saved.items():
            p.unlink(missing_ok=True)
            p.write_bytes(old)


@contextmanager
def run_tag(run_id: str, key: str, value: str) -> Iterator[None]:
    client = MlflowClient()
    old = client.get_run(run_id).data.tags.get(key)
    client.set_tag(run_id, key, value)
    try:
        yield
    finally:
        if old is None:
            client.delete_tag(run_id, key)
        else:
            client.set_tag(run_id, key, old)


@contextmanager
def revision_commit(root: Path, message: str, *paths: str) -> Iterator[str]:
    """Commit ``paths`` (already changed) and name that commit as the audited version's
    ``git.revision``; yields its sha. The tag and the repository are restored on exit."""
    client = MlflowClient()
    old = client.get_model_version("hivid-narrator", "2").tags["git.revision"]
    run(["git", "add", *paths], root)
    run([*GIT, "commit", "-qm", message], root)
    sha = run(["git", "rev-parse", "HEAD"], root)
    client.set_model_version_tag("hivid-narrator", "2", "git.revision", sha)
    try:
        yield sha
    finally:
        client.set_model_version_tag("hivid-narrator", "2", "git.revision", old)
        run(["git", "reset", "-q", "--hard", old], root)


def artifact_file(run_id: str, rel: str) -> Path:
    """The stored file of a run artifact in the embedded store (no copy)."""
    uri = MlflowClient().get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://")) / rel


def model_file(version: str, rel: str) -> Path:
    """A stored file of a registered version's logged model (``rel`` under its model dir)."""
    mv = MlflowClient().get_model_version("hivid-narrator", version)
    model = mlflow.get_logged_model(mv.source.removeprefix("models:/"))
    base = Path(model.artifact_location.removeprefix("file://"))
    found = sorted(base.glob(rel))
    assert found, f"{rel} not under {base}"
    return found[0]


def flip(data: bytes) -> bytes:
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:])


# ---- the tests -----------------------------------------------------------------------------------
