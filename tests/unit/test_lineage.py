from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hivid.tracking.lineage import data_md5, find_project_root, lineage_tags, out_md5


def _project(tmp_path: Path) -> Path:
    (tmp_path / "data.dvc").write_text(
        yaml.safe_dump({"outs": [{"md5": "abc123.dir", "path": "data"}]})
    )
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump(
            {
                "stages": {
                    "ingest": {"cmd": "x", "deps": ["data"], "outs": ["outputs/ingest"]},
                    "annotate": {
                        "cmd": "y",
                        "deps": ["data", "outputs/ingest", "src/hivid/annotate"],
                        "outs": ["outputs/annotations"],
                    },
                }
            }
        )
    )
    (tmp_path / "dvc.lock").write_text(
        yaml.safe_dump(
            {
                "schema": "2.0",
                "stages": {
                    "ingest": {
                        "cmd": "x",
                        "deps": [{"path": "data", "md5": "abc123.dir"}],
                        "outs": [{"path": "outputs/ingest", "md5": "ing456.dir"}],
                    }
                },
            }
        )
    )
    return tmp_path


def test_tags_name_upstream_outputs_from_dvc_lock(tmp_path: Path) -> None:
    root = _project(tmp_path)
    tags = lineage_tags(root, "annotate")
    assert tags["dvc.data.md5"] == "abc123.dir"
    assert tags["dvc.lock.ingest.md5"] == "ing456.dir"
    assert tags["hivid.stage"] == "annotate"
    assert "git.commit" not in tags  # not a git repo: no made-up commit
    assert data_md5(root) == "abc123.dir"
    assert out_md5(root, "outputs/ingest/") == "ing456.dir"
    assert out_md5(root, "outputs/nothing") is None


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    root = _project(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=root, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()
    tags = lineage_tags(root, "ingest")
    assert tags["git.commit"] == head and tags["git.dirty"] == "false"
    (root / "dvc.yaml").write_text((root / "dvc.yaml").read_text() + "\n# edit\n")
    assert lineage_tags(root, "ingest")["git.dirty"] == "true"


def test_find_project_root_walks_up(tmp_path: Path) -> None:
    root = _project(tmp_path)
    sub = root / "a" / "b"
    sub.mkdir(parents=True)
    assert find_project_root(sub) == root.resolve()


def test_outputs_naming_runs_the_store_lacks_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the flow checks after DVC restores a stage from its cache (then it reruns it)."""
    import mlflow

    from hivid.io import write_json
    from hivid.pipeline import recorded_runs_missing
    from hivid.tracking.lineage import RUN_RECORD
    from hivid.tracking.runs import configure

    (tmp_path / "mlruns").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    stage = {"cmd": "true", "outs": ["outputs/a", {"outputs/b": {"persist": True}}]}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"s": stage}}))
    configure(tmp_path)  # this store and its experiment (an earlier test may have set another)
    with mlflow.start_run() as run:
        pass
    for out, run_id in (("a", run.info.run_id), ("b", "f" * 32)):
        (tmp_path / "outputs" / out).mkdir(parents=True)
        write_json(tmp_path / "outputs" / out / RUN_RECORD, {"stage": "s", "run_id": run_id})
    assert recorded_runs_missing(tmp_path, "s") == ["f" * 32]
