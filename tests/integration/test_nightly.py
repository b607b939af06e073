"""End to end: the real nightly flow on 2 demo videos with tiny configs."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from hivid.pipeline import STAGES

from .conftest import hivid

pytestmark = pytest.mark.slow


def test_nightly_flow_end_to_end(nightly_run: tuple[Path, dict]) -> None:
    workspace, result = nightly_run
    assert result["status"] == "succeeded", result
    assert set(result["stages"]) == set(STAGES)
    assert all(v == "ran" for v in result["stages"].values()), result["stages"]

    # dvc.lock records every stage, and the workspace matches it
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(STAGES)
    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=workspace,
        capture_output=True,
        text=True,
    )
    assert status.returncode == 0 and status.stdout.strip() in ("{}", ""), status.stdout
    outs = {o["path"]: o["md5"] for st in lock.values() for o in st.get("outs", [])}

    data_md5 = yaml.safe_load((workspace / "data.dvc").read_text())["outs"][0]["md5"]
    # the runs name the code revision the nightly started from; the nightly then committed the
    # dvc.lock it wrote on top of it (HEAD)
    assert result["git"]["committed"], result["git"]
    head = subprocess.run(
        ["git", "rev-parse", "HEAD~1"], cwd=workspace, capture_output=True, text=True
    ).stdout.strip()

    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlruns' / 'mlflow.db'}")
    client = MlflowClient()
    parent = client.get_run(result["run_id"])
    assert parent.data.tags["dvc.data.md5"] == data_md5
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    by_stage = {r.data.tags["hivid.stage"]: r for r in children}
    assert set(by_stage) == set(STAGES)
    for stage, r in by_stage.items():
        assert r.info.status == "FINISHED", stage
        assert r.data.tags["git.commit"] == head, stage
        assert r.data.tags["git.dirty"] == "false", stage  # its own dvc.lock rewrites are not dirt
        assert r.data.tags["dvc.data.md5"] == data_md5, stage
        assert r.data.tags["parent.run"] == parent.info.run_id
    # each stage's upstream hashes are exactly what dvc.lock says the upstream produced
    assert by_stage["annotate"].data.tags["dvc.lock.ingest.md5"] == outs["outputs/ingest"]
    assert by_stage["build_dataset"].data.tags["dvc.lock.validate.md5"] == outs["outputs/quality"]
    assert (
        by_stage["train_stage1"].data.tags["dvc.lock.build_dataset.md5"] == outs["outputs/dataset"]
    )
    assert (
        by_stage["train_stage2"].data.tags["dvc.lock.train_stage1.md5"]
        == outs["outputs/ckpt/stage1"]
    )
    assert (
        by_stage["evaluate"].data.tags["dvc.lock.train_stage2.md5"] == outs["outputs/ckpt/stage2"]
    )
    # each stage names the run that produced its inputs: the chain lineage walks
    chain = ["ingest", "annotate", "validate", "build_dataset", "train_stage1", "train_stage2"]
    for up, down in itertools.pairwise(chain):
        assert by_stage[down].data.tags[f"upstream.{up}.run"] == by_stage[up].info.run_id, down
    # the quality-gate result travels with the training runs
    gate_tag = by_stage["validate"].data.tags["gx.result"]
    assert gate_tag.endswith(":success")
    assert by_stage["train_stage1"].data.tags["gx.result"] == gate_tag

    # input datasets carry DVC md5 digests
    def digests(stage: str) -> set[str]:
        return {d.dataset.digest for d in by_stage[stage].inputs.dataset_inputs}

    assert data_md5 in digests("ingest")
    assert outs["outputs/ingest"] in digests("annotate")
    assert {outs["outputs/ingest"], outs["outputs/annotations"]} <= digests("validate")
    assert outs["outputs/annotations"] in digests("build_dataset")
    assert outs["outputs/dataset"] in digests("train_stage1")
    assert outs["outputs/dataset"] in digests("evaluate")
    # metrics logged
    assert "F1" in by_stage["evaluate"].data.metrics

    # the registry: hivid-narrator@challenger is the stage-2 run's model
    mv = client.get_model_version_by_alias("hivid-narrator", "challenger")
    assert str(mv.version) == result["model"]["version"]
    assert mv.run_id == by_stage["train_stage2"].info.run_id
    assert mv.tags["dvc.data.md5"] == data_md5
    assert mv.tags["gx.result"] == gate_tag

    # the DVC remote received the data and the outputs
    assert any((workspace / "dvcstore").rglob("*"))
    assert "registered model: hivid-narrator" in result["text"]


def test_gate_failure_stops_before_training(prefect_harness: None, tmp_path: Path) -> None:
    from flows.nightly import nightly

    from .conftest import TINY_PARAMS, make_workspace

    # An impossible chapter-count requirement fails every video -> batch failure at `validate`.
    params = {**TINY_PARAMS, "quality": {"max_quarantine_share": 0.0, "min_chapters": 50}}
    ws = make_workspace(tmp_path, params, videos=1)
    with pytest.raises(Exception, match="validate"):
        nightly(repo=str(ws), demo=False, register_version=False, push_data=False)
    assert not (ws / "outputs" / "dataset").exists()
    assert not (ws / "outputs" / "ckpt").exists()


def test_lineage_is_verified_and_tamper_drill(nightly_run: tuple[Path, dict]) -> None:
    ws, result = nightly_run
    # provenance: the nightly committed what it wrote on its branch, the checkout is clean, the
    # runs saw the checkout as it was before the run (clean), and the version names the commit
    git = ["git", "-C", str(ws)]
    assert (
        subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    )
    assert result["git"]["committed"] and "dvc.lock" in result["git"]["files"], result["git"]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.strip() == result["git"]["revision"]
    mv = MlflowClient().get_model_version("hivid-narrator", result["model"]["version"])
    assert mv.tags["git.revision"] == result["git"]["revision"]
    assert mv.tags["git.branch"] == result["git"]["branch"].strip()
    assert mv.tags["git.branch"].startswith("nightly/")
    assert mv.tags["git.dirty"] == "false" and "model.files.sha256" in mv.tags
    # first version of a fresh registry: promoted (gate passed, no champion yet)
    assert result["promotion"]["promoted"], result["promotion"]
    for ref in ("models:/hivid-narrator@champion", "models:/hivid-narrator@challenger"):
        out = hivid(ws, "lineage", ref, "--json")
        assert out.returncode == 0, out.stdout + out.stderr
        report = json.loads(out.stdout)
        statuses = {link["name"]: link["status"] for link in report["links"]}
        assert set(statuses.values()) == {"VERIFIED"}, statuses
        for name in (
            "model version",
            "train_stage1 run",
            "quality gate",
            "ingest run",
            "data.dvc md5",
            "git commit",
        ):
            assert name in statuses
        assert sum(1 for n in statuses if n.startswith("raw video")) == 2

    # tamper drill: change one raw video after training
    video = sorted((ws / "data" / "videos").glob("*.mp4"))[0]
    original = video.read_bytes()
    video.unlink()  # DVC may have linked the workspace file to the cache: replace, never edit
    video.write_bytes(original[:-10] + b"tampered!!")
    out = hivid(ws, "lineage", "models:/hivid-narrator@champion", "--json")
    assert out.returncode == 1
    links = json.loads(out.stdout)["links"]
    bad = [link["name"] for link in links if link["status"] == "MISMATCH"]
    assert bad == [f"raw video {video.stem}"], bad

    # the auditor restores exactly the training data
    out = hivid(ws, "checkout-data", "models:/hivid-narrator@champion")
    assert out.returncode == 0, out.stderr
    assert video.read_bytes() == original
    assert hivid(ws, "lineage", "models:/hivid-narrator@champion").returncode == 0


def test_compare_report(nightly_run: tuple[Path, dict]) -> None:
    ws, result = nightly_run
    out = ws / "report.html"
    proc = hivid(
        ws, "compare", "models:/hivid-narrator@champion", result["run_id"], "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    for section in ("Metrics", "Quality gate", "Parameters that differ", "Per-video F1"):
        assert section in page
    assert page.count("data:image/png;base64,") == 1  # 1 test video -> 1 timeline
    assert "train_stage1: train.max_steps" in page


def test_lineage_stays_verified_after_moving_the_checkout(
    nightly_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow records absolute artifact URIs: a moved checkout heals them on its next command,
    and every lineage link verifies as before (issue 16)."""
    ws, _ = nightly_run
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # as a fresh shell after the move
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    ref = "models:/hivid-narrator@champion"

    def statuses(root: Path) -> tuple[dict[str, str], str]:
        out = hivid(root, "lineage", ref, "--json")
        links = json.loads(out.stdout)["links"]
        return {link["name"]: link["status"] for link in links}, out.stderr

    before, _ = statuses(ws)
    moved = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(ws, moved)
    away = ws.with_name(ws.name + ".away")
    ws.rename(away)  # the old location is gone: a move, not a copy
    try:
        after, stderr = statuses(moved)
    finally:
        away.rename(ws)
    assert after == before, (before, after)
    for name in ("model version", "quality gate", "train_stage1 run", "data.dvc md5"):
        assert after[name] == "VERIFIED", after
    assert "the MLflow store moved" in stderr, stderr


def test_new_videos_warm_start_from_the_champion(nightly_run: tuple[Path, dict]) -> None:
    """Last in this module (it adds videos): the next nightly continues the champion."""
    from flows.nightly import nightly
    from hivid.workspace import add_demo_videos

    ws, first = nightly_run
    champion = first["model"]["version"]
    # 2 -> 4 videos: demo_003 joins the training split (stable per-video split), demo_002 the test
    # split; demo_000 stays in train and demo_001 moves from test to val (never into train)
    add_demo_videos(ws, 4)
    result = nightly(repo=str(ws), demo=False)
    assert result["status"] == "succeeded", result
    plan = json.loads((ws / "outputs" / "warm_start" / "plan.json").read_text())
    assert plan["mode"] == "warm", plan["reason"]
    assert plan["parent"] == f"hivid-narrator/{champion}" and plan["chain"] == 1
    assert plan["new_videos"] == ["demo_003"] and plan["gone_videos"] == []
    assert "training: warm" in result["text"]
    # the champion's weights the run started from are a DVC-tracked output
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    assert lock["warm_start"]["outs"][0]["path"] == "outputs/warm_start"
    assert (ws / "outputs" / "warm_start" / "model" / "training.json").is_file()

    out = hivid(ws, "lineage", f"models:/hivid-narrator/{result['model']['version']}", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    links = {link["name"]: link for link in json.loads(out.stdout)["links"]}
    assert {link["status"] for link in links.values()} == {"VERIFIED"}
    assert f"continued hivid-narrator/{champion}" in links["warm start"]["reason"]
    assert sum(1 for n in links if n.startswith("raw video")) == 4
