"""Cache identity of the annotate stage: one key per sub-step, and the record's key.

``asr`` and ``frames`` hash the video content and that sub-step's config identity (and the ASR
model's); ``correction`` hashes the ASR key, the metadata, its knobs, the embedder/LLM identities
and the prompt hashes; ``chapters`` hashes the correction and frames keys, the metadata and its
knobs. ``cache_key`` hashes the four. These hashes are pinned by tests: a change here re-annotates
every video, so bump ``SCHEMA_VERSION`` when one is meant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hivid.annotate.config import STEPS, AnnotateConfig
from hivid.annotate.embeddings import resolve_embedder
from hivid.annotate.model_resolve import resolve_asr_model
from hivid.annotate.prompts import prompt_hashes

SCHEMA_VERSION = 2
"""Record schema version (``steps`` documents the record); version 1 records are re-annotated."""


def _hash(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def step_keys(
    video_sha256: str,
    metadata: dict[str, Any],
    cfg: AnnotateConfig,
    identities: dict[str, Any],
) -> dict[str, str]:
    """The four sub-step cache keys (see the module docstring).

    ``identities``: {"asr": model sha or hub id, "embedder": sha or name, "prompts": {name: sha}}.
    """
    prompts = identities.get("prompts", {})
    asr = _hash(
        {
            "v": SCHEMA_VERSION,
            "video": video_sha256,
            "cfg": cfg.step_fields("asr"),
            "model": identities.get("asr"),
        }
    )
    frames = _hash({"v": SCHEMA_VERSION, "video": video_sha256, "cfg": cfg.step_fields("frames")})
    correction = _hash(
        {
            "asr": asr,
            "metadata": metadata,
            "cfg": cfg.step_fields("correction"),
            "embedder": identities.get("embedder"),
            "prompts": [prompts.get(n) for n in ("relevance", "correct")],
        }
    )
    chapters = _hash(
        {
            "correction": correction,
            "frames": frames,
            "metadata": metadata,
            "cfg": cfg.step_fields("chapters"),
            "embedder": identities.get("embedder"),
            "prompts": [prompts.get(n) for n in ("tcot_refine", "chapter_summary", "script_label")],
        }
    )
    return {"asr": asr, "frames": frames, "correction": correction, "chapters": chapters}


def cache_key(keys: Mapping[str, str | None]) -> str:
    """The record's overall key: a hash of its four sub-step keys."""
    return _hash({"v": SCHEMA_VERSION, **{k: keys[k] for k in STEPS}})


def model_identities(cfg: AnnotateConfig) -> dict[str, Any]:
    """Model and prompt identities the cache keys depend on (assembles whisper-base once)."""
    resolved = resolve_asr_model(cfg.asr_model, cfg.model_cache_dir_path)
    emb: str | None = None
    if cfg.embedder:
        path, sha = resolve_embedder(cfg.embedder)
        emb = sha or path
    return {"asr": resolved.sha256 or resolved.path, "embedder": emb, "prompts": prompt_hashes()}
