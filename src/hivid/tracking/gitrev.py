"""Git provenance: the code revision a run came from, and the nightly's own commit of what it wrote.

Two facts, kept apart:

- **the state before the run** (``git_state``): HEAD and whether tracked files differed from it.
  The nightly measures it once, before anything runs, and hands it to every stage subprocess in
  ``HIVID_GIT_STATE`` (``GitState.env``), so a stage launched by ``dvc repro`` never sees its own
  pipeline's rewrites (``dvc.lock``, a ``data.dvc`` re-pinned by intake) as dirt. Without that
  variable (``dvc repro`` or ``hivid <stage>`` by hand) the stage measures it itself. ``dvc.lock``
  never counts as dirt: it is the pipeline's own record of what it produced (rewritten by every
  ``dvc repro``, committed by the nightly), not code or configuration the run reads.
- **the nightly's commit** (``commit_pipeline_state``): what the pipeline changed in git
  (``dvc.lock``, ``data.dvc``) committed on a ``nightly/<stamp>`` branch (the checkout stays on
  it, so ``git status`` is clean afterwards). The registered model version names that commit
  (``git.revision``) and branch (``git.branch``): ``git checkout <git.revision>`` then
  ``dvc checkout`` gives an auditor exactly what the model was trained and tagged from.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATE_ENV = "HIVID_GIT_STATE"
PIPELINE_FILES = ("dvc.lock",)
"""Tracked files the pipeline itself rewrites while it runs (never dirt)."""
COMMITTED_FILES = ("dvc.lock", "data.dvc")
"""What a nightly changes in git and commits itself."""
GIT_TIMEOUT_S = 60


class GitError(RuntimeError):
    """A git command failed (the message names it and git's reason)."""


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=GIT_TIMEOUT_S
    )
    if check and proc.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()[-300:]}")
    return proc


@dataclass(frozen=True)
class GitState:
    """HEAD and the uncommitted tracked changes of a checkout at one moment."""

    commit: str | None
    dirty_paths: tuple[str, ...] = ()

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_paths)

    def tags(self) -> dict[str, str]:
        """The run tags ``git.commit``, ``git.dirty`` (+ ``git.dirty_paths`` when dirty)."""
        if not self.commit:
            return {}
        tags = {"git.commit": self.commit, "git.dirty": str(self.dirty).lower()}
        if self.dirty:
            tags["git.dirty_paths"] = ", ".join(self.dirty_paths)[:500]
        return tags

    def env(self) -> dict[str, str]:
        """The environment that hands this state to a stage subprocess."""
        return {STATE_ENV: json.dumps({"commit": self.commit, "dirty": list(self.dirty_paths)})}


def _changed_paths(root: Path, *pathspec: str) -> list[str]:
    """Tracked paths that differ from HEAD (staged or not), relative to the repository root."""
    out = _git(
        root, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--", *pathspec
    ).stdout
    paths = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        if entry[0] in "RC":  # a rename/copy is followed by its source path
            next(entries, None)
        paths.append(entry[3:])
    return paths


def git_state(root: Path, ignore: tuple[str, ...] = PIPELINE_FILES) -> GitState:
    """HEAD of ``root`` and its tracked changes except ``ignore`` (no git: commit None)."""
    try:
        head = _git(root, "rev-parse", "HEAD").stdout.strip()
        prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    except (GitError, FileNotFoundError, subprocess.TimeoutExpired):
        return GitState(None)
    skip = {prefix + p for p in ignore}
    dirty = tuple(p for p in _changed_paths(root) if p not in skip)
    return GitState(head, dirty)


def state_for_run(root: Path) -> GitState:
    """The state a stage run records: the one its pipeline measured before it started
    (``HIVID_GIT_STATE``) while HEAD is still that commit, else measured now."""
    raw = os.environ.get(STATE_ENV)
    if raw:
        try:
            doc = json.loads(raw)
            recorded = GitState(doc["commit"], tuple(doc.get("dirty") or ()))
        except (ValueError, KeyError, TypeError):
            recorded = None
        if recorded is not None and recorded.commit:
            head = _git(root, "rev-parse", "HEAD", check=False).stdout.strip()
            if head == recorded.commit:
                return recorded
    return git_state(root)


def _identity(root: Path) -> list[str]:
    """``-c user.*`` for a host with no git identity configured (a fresh worker, CI)."""
    args = []
    if not _git(root, "config", "user.name", check=False).stdout.strip():
        args += ["-c", "user.name=hivid-nightly"]
    if not _git(root, "config", "user.email", check=False).stdout.strip():
        args += ["-c", "user.email=hivid-nightly@localhost"]
    return args


def commit_pipeline_state(
    root: Path,
    name: str,
    branch_prefix: str = "nightly",
    files: tuple[str, ...] = COMMITTED_FILES,
    push_remote: str | None = None,
) -> dict[str, Any]:
    """Commit what the pipeline changed among ``files`` (``dvc.lock``, ``data.dvc``; a new
    ``data.dvc`` too) on a nightly branch, and return ``{"revision", "branch", "committed",
    "files"}`` (``{}`` outside a git repository).

    The branch: the current one when it already is a nightly branch (``<prefix>`` or
    ``<prefix>/...``: a worker host that keeps committing there), else a new
    ``<prefix>/<name>`` from HEAD; the checkout is left on it, so ``git status`` is clean
    unless the checkout had other changes (those are never committed: only ``files`` are).
    Nothing changed: no commit, the revision is HEAD. ``push_remote`` pushes the branch there.
    """
    try:
        head = _git(root, "rev-parse", "HEAD").stdout.strip()
    except (GitError, FileNotFoundError):
        return {}
    present = [f for f in files if (root / f).exists()]
    changed = _changed_paths(root, *present) if present else []
    untracked = [
        f
        for f in present
        if _git(root, "ls-files", "--error-unmatch", "--", f, check=False).returncode != 0
    ]
    top = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    to_commit = sorted({p.removeprefix(top) for p in changed} | set(untracked))
    branch = _git(root, "branch", "--show-current").stdout.strip()
    if not to_commit:
        return {"revision": head, "branch": branch, "committed": False, "files": []}
    if not (branch == branch_prefix or branch.startswith(branch_prefix + "/")):
        base = f"{branch_prefix}/{name}"
        branch, n = base, 1
        while _git(root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False).stdout:
            n += 1
            branch = f"{base}-{n}"
        _git(root, "switch", "-q", "-c", branch)  # same HEAD: the working tree is kept as is
    _git(root, "add", "--", *to_commit)
    message = (
        f"{name}: {', '.join(to_commit)} written by the pipeline\n\nparent code revision {head}"
    )
    _git(root, *_identity(root), "commit", "-q", "--no-verify", "-m", message, "--", *to_commit)
    revision = _git(root, "rev-parse", "HEAD").stdout.strip()
    if push_remote:
        _git(root, "push", "-q", push_remote, f"{branch}:refs/heads/{branch}")
    return {"revision": revision, "branch": branch, "committed": True, "files": to_commit}


def revision_tags(commit: dict[str, Any]) -> dict[str, str]:
    """Model-version tags naming the nightly's commit (``git.revision``, ``git.branch``)."""
    tags = {}
    if commit.get("revision"):
        tags["git.revision"] = str(commit["revision"])
    if commit.get("branch"):
        tags["git.branch"] = str(commit["branch"])
    return tags


def show_file(root: Path, revision: str, path: str) -> str | None:
    """``path`` as committed at ``revision`` (None when absent)."""
    proc = _git(root, "show", f"{revision}:./{path}", check=False)  # ./: relative to root
    return proc.stdout if proc.returncode == 0 else None


def commit_exists(root: Path, sha: str) -> bool:
    return _git(root, "cat-file", "-e", f"{sha}^{{commit}}", check=False).returncode == 0


def changed_between(root: Path, a: str, b: str) -> list[str] | None:
    """Paths that differ between commits ``a`` and ``b``, relative to ``root`` (None when git
    cannot tell)."""
    proc = _git(root, "diff", "--name-only", "--relative", a, b, check=False)
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.splitlines() if p.strip()]
