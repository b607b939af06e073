"""`hivid lineage` link by link: one tamper per kind of evidence, each flagging exactly its link.

A module-scoped project holds a complete, real chain: a git + DVC repository whose data (two raw
videos + metadata) and stage outputs (the ingest manifest, the quality gate) are in the DVC cache
and a local-directory remote, an embedded MLflow store with one run per stage linked by the
``upstream.<stage>.run`` tags the stages set, a warm-start parent version and the version under
audit, both logged with the real `log_narrator_model` and registered with `register_version`,
and the nightly's own commit of ``dvc.lock`` (`commit_pipeline_state`) named by the version. The
stage runs are written here (not trained: the audit reads tags, artifacts and DVC objects only).
Each tamper is undone after its test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from hivid.tracking.audit import EXIT_MISMATCH, EXIT_UNVERIFIED, Lineage, trace
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


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    tmp = tmp_path_factory.mktemp("audit")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "HIVID_PARENT_RUN_ID")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'proj' / 'mlruns' / 'mlflow.db'}"
    os.environ.pop("HIVID_PARENT_RUN_ID", None)
    try:
        yield build_chain(tmp / "proj")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


def test_untampered_chain_is_verified_link_by_link(chain: Chain) -> None:
    lineage = chain.trace()
    got = statuses(lineage)
    assert list(got) == ALL_LINKS
    assert set(got.values()) == {"VERIFIED"}, {x.name: x.reason for x in lineage.links}
    assert lineage.exit_code() == 0 and lineage.verified
    links = {x.name: x for x in lineage.links}
    assert "revision" in links["git commit"].detail
    assert "nightly/nightly-test" in links["git commit"].reason
    assert "continued hivid-narrator/1" in links["warm start"].reason
    # the wrapper files, not only the checkpoint folder, are pinned at registration
    mv = MlflowClient().get_model_version("hivid-narrator", "2")
    files = json.loads(mv.tags["model.files.manifest"])
    assert {"MLmodel", "python_model.pkl", "requirements.txt"} <= set(files), files
    assert not any(k.startswith("artifacts/") for k in files)


def test_checkpoint_file_changed_in_the_registry(chain: Chain) -> None:
    with replaced([model_file("2", "artifacts/*/model.safetensors")], flip):
        assert_only(chain.trace(), "model version")


def test_pyfunc_wrapper_file_changed_in_the_registry(chain: Chain) -> None:
    with replaced([model_file("2", "python_model.pkl")], flip):
        lineage = chain.trace()
    assert_only(lineage, "model files")
    assert "python_model.pkl" in next(x for x in lineage.links if x.name == "model files").reason


def test_mlmodel_removed_from_the_registry(chain: Chain) -> None:
    path = model_file("2", "requirements.txt")
    saved = path.read_bytes()
    path.unlink()
    try:
        assert_only(chain.trace(), "model files")
    finally:
        path.write_bytes(saved)


@pytest.mark.parametrize("video", ["v0", "v1"])
def test_raw_video_object_changed(chain: Chain, video: str) -> None:
    md5 = chain.md5[f"data/videos/{video}.mp4"]
    with replaced(chain.objects(md5), flip):
        assert_only(chain.trace(), f"raw video {video}")


def test_raw_video_object_missing_everywhere(chain: Chain) -> None:
    md5 = chain.md5["data/videos/v1.mp4"]
    with replaced(chain.objects(md5), b""):
        for p in chain.objects(md5):
            p.unlink()
        assert_only(chain.trace(), "raw video v1")


def test_data_object_changed(chain: Chain) -> None:
    md5 = chain.md5["data/metadata/v0.json"]
    with replaced(chain.objects(md5), b'{"brand": "forged"}'):
        assert_only(chain.trace(), "data.dvc md5")


def test_data_listing_damaged(chain: Chain) -> None:
    with replaced(chain.objects(chain.md5["data"]), b"[not json"):
        lineage = chain.trace()
    got = statuses(lineage)
    assert got["data.dvc md5"] == "MISMATCH"
    assert lineage.exit_code() == EXIT_MISMATCH


@pytest.mark.parametrize(
    "content",
    [
        b'{"result_id": "res-1", "success": true, "passed": ["v0"], "quarantined": []}',
        b'{"result_id": "res-1", "success": false}',
        b'{"result_id": ',
    ],
    ids=["edited", "failed", "unparsable"],
)
def test_gate_artifact_damaged(chain: Chain, content: bytes) -> None:
    with replaced([artifact_file(chain.runs["validate"], "quality/gate.json")], content):
        assert_only(chain.trace(), "quality gate")


def test_gate_artifact_missing(chain: Chain) -> None:
    path = artifact_file(chain.runs["validate"], "quality/gate.json")
    with replaced([path], b""):
        path.unlink()
        assert_only(chain.trace(), "quality gate")


@pytest.mark.parametrize(
    "content",
    [b"{not json\n", None],
    ids=["unparsable", "edited"],
)
def test_manifest_artifact_damaged(chain: Chain, content: bytes | None) -> None:
    path = artifact_file(chain.runs["ingest"], "ingest/manifest.jsonl")

    def edit(old: bytes) -> bytes:
        if content is not None:
            return content
        rows = [json.loads(x) for x in old.decode().splitlines()]
        rows[0]["sha256"] = "0" * 64
        return "".join(json.dumps(r) + "\n" for r in rows).encode()

    with replaced([path], edit):
        assert_only(chain.trace(), "ingest manifest")


def test_git_commit_unknown(chain: Chain) -> None:
    with run_tag(chain.runs["annotate"], "git.commit", "0123456789" * 4):
        assert_only(chain.trace(), "git commit")


def test_git_revision_that_changes_code(chain: Chain) -> None:
    client = MlflowClient()
    old = client.get_model_version("hivid-narrator", "2").tags["git.revision"]
    (chain.root / "extra.py").write_text("x = 1\n")
    run(["git", "add", "extra.py"], chain.root)
    run([*GIT, "commit", "-qm", "code"], chain.root)
    sha = run(["git", "rev-parse", "HEAD"], chain.root)
    client.set_model_version_tag("hivid-narrator", "2", "git.revision", sha)
    try:
        lineage = chain.trace()
    finally:
        client.set_model_version_tag("hivid-narrator", "2", "git.revision", old)
        run(["git", "reset", "-q", "--hard", old], chain.root)
    assert_only(lineage, "git commit")
    assert "extra.py" in next(x for x in lineage.links if x.name == "git commit").reason


def test_dirty_run_says_dirty_and_exits_3(chain: Chain) -> None:
    with (
        run_tag(chain.runs["annotate"], "git.dirty", "true"),
        run_tag(chain.runs["annotate"], "git.dirty_paths", "params.yaml"),
    ):
        lineage = chain.trace()
    assert_only(lineage, "git commit", "DIRTY")
    assert "params.yaml" in next(x for x in lineage.links if x.name == "git commit").reason
    assert lineage.exit_code() == EXIT_UNVERIFIED and lineage.exit_code(allow_unverified=True) == 0
    assert lineage.to_dict()["status"] == "DIRTY" and lineage.to_dict()["exit_code"] == 3


def test_warm_start_parent_checkpoint_changed(chain: Chain) -> None:
    with replaced([model_file("1", "artifacts/*/model.safetensors")], flip):
        lineage = chain.trace()
    assert_only(lineage, "warm start")
    assert (
        "parent hivid-narrator/1" in next(x for x in lineage.links if x.name == "warm start").reason
    )


def test_warm_start_parent_registered_with_another_hash(chain: Chain) -> None:
    client = MlflowClient()
    old = client.get_model_version("hivid-narrator", "1").tags["model.sha256"]
    client.set_model_version_tag("hivid-narrator", "1", "model.sha256", "0" * 64)
    try:
        assert_only(chain.trace(), "warm start")
    finally:
        client.set_model_version_tag("hivid-narrator", "1", "model.sha256", old)


def test_unverified_link_exits_3(chain: Chain) -> None:
    client = MlflowClient()
    old = client.get_model_version("hivid-narrator", "2").tags["model.files.sha256"]
    client.delete_model_version_tag("hivid-narrator", "2", "model.files.sha256")
    try:
        lineage = chain.trace()
    finally:
        client.set_model_version_tag("hivid-narrator", "2", "model.files.sha256", old)
    assert_only(lineage, "model files", "UNVERIFIED")
    assert lineage.exit_code() == EXIT_UNVERIFIED and lineage.ok


def test_clean_checkout_without_cache_verifies_from_the_remote(
    chain: Chain, tmp_path: Path
) -> None:
    """An auditor's fresh clone: no DVC cache, no data/; objects come from the remote."""
    clone = tmp_path / "auditor"
    run(["git", "clone", "-q", str(chain.root), str(clone)], tmp_path)
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "data").exists()
    lineage = trace(clone, MODEL)
    assert set(statuses(lineage).values()) == {"VERIFIED"}, {
        x.name: x.reason for x in lineage.links
    }
    video = next(x for x in lineage.links if x.name == "raw video v0")
    assert video.detail["source"] == "remote local"


def test_cli_exit_codes_and_json(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from hivid.cli import main

    monkeypatch.chdir(chain.root)
    ok = CliRunner().invoke(main, ["lineage", MODEL, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["status"] == "VERIFIED"
    md5 = chain.md5["data/videos/v0.mp4"]
    with replaced(chain.objects(md5), flip):
        bad = CliRunner().invoke(main, ["lineage", MODEL, "--json"])
    assert bad.exit_code == 1 and json.loads(bad.stdout)["exit_code"] == 1
    with run_tag(chain.runs["ingest"], "git.dirty", "true"):
        dirty = CliRunner().invoke(main, ["lineage", MODEL])
        allowed = CliRunner().invoke(main, ["lineage", MODEL, "--allow-unverified"])
    assert dirty.exit_code == 3 and "[DIRTY     ] git commit" in dirty.output
    assert allowed.exit_code == 0


def test_git_dirty_is_measured_once_before_the_pipeline(tmp_path: Path) -> None:
    """A stage handed the pipeline's start state does not see the pipeline's own rewrites."""
    from hivid.tracking.gitrev import STATE_ENV, state_for_run

    run(["git", "init", "-q"], tmp_path)
    (tmp_path / "params.yaml").write_text("a: 1\n")
    (tmp_path / "data.dvc").write_text("outs: []\n")
    (tmp_path / "dvc.lock").write_text("x\n")
    run(["git", "add", "-A"], tmp_path)
    run([*GIT, "commit", "-qm", "x"], tmp_path)
    start = git_state(tmp_path)
    assert not start.dirty
    (tmp_path / "dvc.lock").write_text("rewritten by dvc repro\n")
    (tmp_path / "data.dvc").write_text("outs: [{md5: new}]\n")  # re-pinned by intake
    assert git_state(tmp_path).dirty_paths == ("data.dvc",)  # dvc.lock is never dirt
    os.environ[STATE_ENV] = start.env()[STATE_ENV]
    try:
        assert state_for_run(tmp_path).tags()["git.dirty"] == "false"
    finally:
        del os.environ[STATE_ENV]
    assert state_for_run(tmp_path).tags()["git.dirty"] == "true"
    # the nightly commits both files on its branch and leaves a clean checkout
    out = commit_pipeline_state(tmp_path, "n1")
    assert out["committed"] and out["branch"] == "nightly/n1"
    assert sorted(out["files"]) == ["data.dvc", "dvc.lock"]
    assert run(["git", "status", "--porcelain"], tmp_path) == ""
    assert run(["git", "branch", "--show-current"], tmp_path) == "nightly/n1"
    # a user's own edit is never committed by the nightly, and stays dirt
    (tmp_path / "params.yaml").write_text("a: 2\n")
    (tmp_path / "dvc.lock").write_text("again\n")
    again = commit_pipeline_state(tmp_path, "n2")
    assert again["branch"] == "nightly/n1" and again["files"] == ["dvc.lock"]
    assert run(["git", "status", "--porcelain"], tmp_path) == "M params.yaml"
    assert git_state(tmp_path).dirty_paths == ("params.yaml",)
    assert commit_pipeline_state(tmp_path, "n3")["committed"] is False
    shutil.rmtree(tmp_path / ".git")
    assert commit_pipeline_state(tmp_path, "n4") == {}
