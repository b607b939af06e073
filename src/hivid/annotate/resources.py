"""The models of one annotate process, each built on first use (a reused sub-step never loads its
model), and the describer factory."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hivid.annotate.asr import ASRBackend, make_asr_backend
from hivid.annotate.config import AnnotateConfig, DescriberConfig
from hivid.annotate.correction import EmbeddingRelevance
from hivid.annotate.embeddings import Embedder, get_embedder
from hivid.annotate.frames import FrameDescriber, get_ocr_describer
from hivid.annotate.llm import LLM, make_llm
from hivid.annotate.storyline import ScriptLabeler


class Models:
    """The models of one process, each built on first use; tests pass fakes as overrides."""

    def __init__(
        self,
        cfg: AnnotateConfig,
        asr: ASRBackend | None = None,
        describer: FrameDescriber | None = None,
        embedder: Embedder | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.cfg = cfg
        self._asr, self._describer, self._embedder, self._llm = asr, describer, embedder, llm
        self._relevance: EmbeddingRelevance | None = None
        self._labeler: ScriptLabeler | None = None
        self.load_s = 0.0

    def _timed(self, build: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return build()
        finally:
            self.load_s += time.perf_counter() - t

    @property
    def asr_loaded(self) -> ASRBackend | None:
        """The ASR backend if one was built or passed (a silent video loads none)."""
        return self._asr

    @property
    def asr(self) -> ASRBackend:
        if self._asr is None:
            asr_cfg = self.cfg.asr_cfg
            self._asr = self._timed(lambda: make_asr_backend(asr_cfg))
        return self._asr

    @property
    def describer(self) -> FrameDescriber:
        if self._describer is None:
            describer_cfg = self.cfg.describer_cfg
            self._describer = self._timed(lambda: make_describer(describer_cfg))
        return self._describer

    @property
    def embedder(self) -> Embedder | None:
        if self._embedder is None and self.cfg.embedder:
            name = self.cfg.embedder
            self._embedder = self._timed(lambda: get_embedder(name, self.cfg.device))
        return self._embedder

    @property
    def llm(self) -> LLM | None:
        if self._llm is None and self.cfg.llm_on:
            self._llm = self._timed(lambda: make_llm(self.cfg.llm, self.cfg.model_cache_dir_path))
        return self._llm

    @property
    def relevance(self) -> EmbeddingRelevance | None:
        if self._relevance is None and self.embedder is not None:
            emb = self.embedder
            self._relevance = self._timed(lambda: EmbeddingRelevance(emb))
        return self._relevance

    @property
    def labeler(self) -> ScriptLabeler | None:
        if self._labeler is None and self.embedder is not None:
            emb = self.embedder
            self._labeler = self._timed(lambda: ScriptLabeler(emb))
        return self._labeler


def make_describer(cfg: DescriberConfig) -> FrameDescriber:
    """The configured frame describer (OCR + colours offline; a VLM by config)."""
    if cfg.kind == "ocr":
        return get_ocr_describer(cfg.ocr_min_score, cfg.n_colors)
    from hivid.annotate.vlm import make_vlm_describer

    return make_vlm_describer(cfg)
