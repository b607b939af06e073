"""Fresh, self-contained project workspaces (git + DVC + demo corpus) for tests and benchmarks.

A workspace holds a copy of this project's pipeline definition (dvc.yaml, params.yaml with
overrides, flows/, src/ for DVC's code dependencies), its own git repository, DVC cache and local
remote, MLflow store and a deterministic demo corpus pinned by data.dvc. It runs the same code as
production: the installed `hivid` package and the real flow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd}: {proc.stderr.strip()[-500:]}")


GIT = ["git", "-c", "user.name=hivid", "-c", "user.email=hivid@localhost"]


def create_workspace(
    repo: Path, dest: Path, overrides: dict[str, Any] | None = None, videos: int = 2
) -> Path:
    """Create ``dest`` from project ``repo`` with ``videos`` demo videos; returns ``dest``."""
    dest.mkdir(parents=True)
    for name in ("dvc.yaml", "prefect.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(repo / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(repo / "flows", dest / "flows", ignore=ignore)
    shutil.copytree(repo / "src", dest / "src", ignore=ignore)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    deep_update(params, overrides or {})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (dest / "mlruns").mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], dest)
    _run([*dvc, "init", "-q"], dest)
    _run([*dvc, "config", "core.analytics", "false"], dest)
    _run([*dvc, "remote", "add", "-d", "local", str(dest / "dvcstore")], dest)
    add_demo_videos(dest, videos)
    return dest


def add_demo_videos(ws: Path, videos: int) -> None:
    """(Re)generate the first ``videos`` demo videos in ``ws/data``, pin them and commit."""
    from hivid.config import load_section
    from hivid.data.demo import DemoConfig, generate_demo_corpus

    cfg: DemoConfig = load_section(ws / "params.yaml", "demo")
    cfg.videos = videos
    generate_demo_corpus(ws / "data", cfg)
    _run([sys.executable, "-m", "dvc", "add", "-q", "data"], ws)
    _run(["git", "add", "-A"], ws)
    _run([*GIT, "commit", "-qm", f"data: {videos} demo videos"], ws)
