"""Content hashes of files and model directories (no MLflow, no DVC): what ingest, intake and
training record and the audit recomputes. Kept apart from `audit.py` so that the training stages'
code dependencies (dvc.yaml) do not include the auditor."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes (the content hash that keys caches and lineage)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_hashes(path: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``path``, skipping the relative paths (or
    directories) in ``exclude``."""
    out: dict[str, str] = {}
    for p in sorted(x for x in path.rglob("*") if x.is_file()):
        rel = p.relative_to(path).as_posix()
        if any(rel == e or rel.startswith(e.rstrip("/") + "/") for e in exclude):
            continue
        out[rel] = sha256_file(p)
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
