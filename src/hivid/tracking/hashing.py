"""Content hashes of model directories (no MLflow, no DVC): what training records and the audit
recomputes. Kept apart from `audit.py` so that the training stages' code dependencies (dvc.yaml)
do not include the auditor."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_hashes(path: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path``, skipping the relative paths (or
    directories) in ``exclude``."""
    out: dict[str, str] = {}
    for p in sorted(x for x in path.rglob("*") if x.is_file()):
        rel = p.relative_to(path).as_posix()
        if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        h = hashlib.sha256()
        with p.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        out[rel] = h.hexdigest()
    return out


def listing_sha256(hashes: dict[str, str]) -> str:
    """sha256 over (relative path, sha256 of content) of every file, sorted (``sha256_dir``)."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(rel.encode() + b"\0")
        h.update(bytes.fromhex(hashes[rel]))
    return h.hexdigest()


def sha256_dir(path: Path) -> str:
    """sha256 over (relative path, sha256 of content) of every file under ``path``, sorted."""
    return listing_sha256(file_hashes(path))
