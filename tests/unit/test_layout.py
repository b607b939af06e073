"""dvc.yaml and ``hivid.layout`` spell the same paths: every path a stage's cmd names, every out
and metrics file is one the layout module defines (a path renamed in one place only fails here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from hivid import layout

REPO = Path(__file__).resolve().parents[2]


def layout_paths() -> set[str]:
    paths = {v.as_posix() for v in vars(layout).values() if isinstance(v, Path)}
    return (
        paths
        | {layout.ckpt(n).as_posix() for n in (1, 2)}
        | {layout.model_dir(n).as_posix() for n in (1, 2)}
    )


def dvc_paths() -> set[str]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    out: set[str] = set()
    for st in stages.values():
        out |= {w for w in shlex.split(st["cmd"]) if w == "data" or w.startswith("outputs/")}
        for key in ("outs", "metrics"):
            for item in st.get(key, []):
                out.add(next(iter(item)) if isinstance(item, dict) else str(item))
    return out


def test_dvc_yaml_paths_are_layout_paths() -> None:
    missing = sorted(dvc_paths() - layout_paths())
    assert not missing, f"dvc.yaml names paths hivid.layout does not define: {missing}"


def test_layout_paths_are_relative_to_the_project_root() -> None:
    for p in layout_paths():
        assert not Path(p).is_absolute() and (p == "data" or p.startswith("outputs")), p
