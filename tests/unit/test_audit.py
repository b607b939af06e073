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
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from hivid.tracking.audit import EXIT_MISMATCH, EXIT_UNVERIFIED, trace
from hivid.tracking.gitrev import commit_pipeline_state, git_state
from tests.audit_chain import (
    ALL_LINKS,
    DVC,
    GIT,
    MODEL,
    Chain,
    artifact_file,
    assert_only,
    build_chain,
    flip,
    model_file,
    replaced,
    revision_commit,
    run,
    run_tag,
    statuses,
)


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


def test_untampered_chain_is_verified_link_by_link(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lineage = chain.trace()
    assert list(tmp_path.iterdir()) == []  # downloads go to the audit's own scratch folder
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
        lineage = chain.trace()
    assert_only(lineage, f"raw video {video}")
    link = next(x for x in lineage.links if x.name == f"raw video {video}")
    assert link.detail["path"] == f"data/videos/{video}.mp4"  # which file, and what it should be
    assert len(link.detail["sha256"]) == 64 and link.detail["source"]


def test_raw_video_object_missing_everywhere(chain: Chain) -> None:
    md5 = chain.md5["data/videos/v1.mp4"]
    with replaced(chain.objects(md5), b""):
        for p in chain.objects(md5):
            p.unlink()
        lineage = chain.trace()
    assert_only(lineage, "raw video v1")
    link = next(x for x in lineage.links if x.name == "raw video v1")
    assert link.detail["path"] == "data/videos/v1.mp4" and len(link.detail["sha256"]) == 64


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
    (chain.root / "extra.py").write_text("x = 1\n")
    with revision_commit(chain.root, "code", "extra.py"):
        lineage = chain.trace()
    assert_only(lineage, "git commit")
    assert "extra.py" in next(x for x in lineage.links if x.name == "git commit").reason


def test_git_revision_that_pins_other_data(chain: Chain) -> None:
    """The nightly's commit may change data.dvc, but must pin the data the runs trained on."""
    dvc_file = chain.root / "data.dvc"
    saved = dvc_file.read_text()
    md5 = next(x for x in chain.trace().links if x.name == "data.dvc md5").detail["md5"]
    assert md5 in saved
    other = "0" * 32 + ".dir"
    dvc_file.write_text(saved.replace(md5, other))
    with revision_commit(chain.root, "other data", "data.dvc") as sha:
        lineage = chain.trace()
    assert_only(lineage, "git commit")
    reason = next(x for x in lineage.links if x.name == "git commit").reason
    assert reason == f"data.dvc at git.revision {sha[:12]} pins {other}, the runs {md5}"


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


def test_checkout_data_restores_the_trained_version_in_a_fresh_clone(
    chain: Chain, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`hivid checkout-data`: data.dvc pinned to the version the model was trained on and data/
    restored from the remote (no cache yet: `dvc checkout` fails, `dvc pull` restores)."""
    import yaml

    from hivid.tracking.audit import LineageError, checkout_data

    clone = tmp_path / "auditor"
    run(["git", "clone", "-q", str(chain.root), str(clone)], tmp_path)
    (clone / "data.dvc").write_text("outs:\n- md5: 0123.dir\n  path: data\n")  # another version
    capfd.readouterr()
    out = checkout_data(clone, MODEL)
    printed = capfd.readouterr()
    assert printed.out == "" and "ERROR" not in printed.err  # DVC's output kept to itself
    md5 = chain.md5["data"]
    assert out == {"md5": md5, "data.dvc": str(clone / "data.dvc")}
    assert (clone / "data.dvc").read_text() == f"outs:\n- md5: {md5}\n  hash: md5\n  path: data\n"
    assert yaml.safe_load((clone / "data.dvc").read_text())["outs"][0]["md5"] == md5
    video = clone / "data" / "videos" / "v0.mp4"
    for rel in ("videos/v0.mp4", "videos/v1.mp4", "metadata/v0.json"):
        assert (clone / "data" / rel).read_bytes() == (chain.root / "data" / rel).read_bytes()
    # the remote gone: an edited workspace copy comes back from the clone's cache
    run([*DVC, "remote", "modify", "--local", "local", "url", str(tmp_path / "gone")], clone)
    video.write_bytes(b"edited")
    capfd.readouterr()
    assert checkout_data(clone, MODEL)["md5"] == md5
    printed = capfd.readouterr()
    assert printed.out == "" and "data" not in printed.err.replace("Downloading artifacts", "")
    assert video.read_bytes() == (chain.root / "data" / "videos" / "v0.mp4").read_bytes()
    # ... and with the cache gone too, one line from DVC's error output
    shutil.rmtree(clone / ".dvc" / "cache")
    video.unlink()
    with pytest.raises(LineageError) as got:
        checkout_data(clone, MODEL)
    assert str(got.value).startswith(f"dvc could not restore data {md5}: ")
    assert "b'" not in str(got.value) and "ERROR" in str(got.value)
    with run_tag(chain.runs["ingest"], "dvc.data.md5", ""), pytest.raises(LineageError) as got:
        checkout_data(clone, MODEL)
    assert str(got.value) == f"{MODEL}: no data version recorded (no dvc.data.md5 tag)"
