"""The import-linter contract in pyproject.toml (``[tool.importlinter]``) holds for src/hivid.

CI runs only ``make test``, so the layer contract (cli -> stages -> library packages; no Prefect in
``hivid``; evaluation/quality/models never import the CLI or stage layer) is checked here with the
``lint-imports`` the project pins, as ``make lint`` runs it. The second test breaks each promise in
a copy of the tree and checks that the same command fails, naming the offending import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over ``root/src`` with ``root/pyproject.toml``'s contracts."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contract_holds() -> None:
    res = lint_imports(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout, res.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "hivid/evaluation/dense.py",
            "import hivid.stages",
            "hivid.evaluation.dense -> hivid.stages",
        ),
        ("hivid/quality/gate.py", "import prefect", "hivid.quality.gate -> prefect"),
        ("hivid/stages.py", "import hivid.cli.common", "hivid.stages -> hivid.cli.common"),
    ],
)
def test_a_forbidden_import_breaks_the_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "src" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    res = lint_imports(tmp_path)
    assert res.returncode != 0, res.stdout
    assert broken in res.stdout, res.stdout
