"""VLM frame describers behind the ``FrameDescriber`` Protocol (paper §3.1.2).

No VLM ships as a registry package (offline-models.md), so these run where a checkpoint or a
server is reachable; the offline default stays ``OCRFrameDescriber``. Both keep the OCR lines and
colours of the offline describer (chapter titles and the product-text recall use them) and add a
``caption`` from the model, prompted with ``prompts/frame_describe.txt``.

- ``TransformersVLMDescriber``: a transformers ``image-text-to-text`` pipeline over a hub id or a
  local checkpoint (``vlm_model``), chat-formatted input (image + prompt), greedy decoding.
- ``EndpointVLMDescriber``: OpenAI-compatible chat completions with the frame as a base64 JPEG
  ``image_url`` (Qwen-VL behind vLLM, a hosted VLM), with the same timeout/retry/backoff and
  API-key handling as ``EndpointLLM``.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Any

import numpy as np
from PIL import Image

from hivid.annotate.config import DescriberConfig
from hivid.annotate.frames import FrameDescriber, get_ocr_describer
from hivid.annotate.llm import AnnotateLLMConfig, EndpointLLM
from hivid.annotate.prompts import prompt_text


def _check(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")


class TransformersVLMDescriber:
    """OCR + colours + a caption from a transformers image-text-to-text checkpoint."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        max_new_tokens: int = 96,
        ocr_min_score: float = 0.5,
        n_colors: int = 3,
    ) -> None:
        from transformers import pipeline

        self.name = f"vlm:{model}"
        self.max_new_tokens = max_new_tokens
        self._ocr = get_ocr_describer(ocr_min_score, n_colors)
        self._pipe: Any = pipeline("image-text-to-text", model=model, device=device)
        self._lock = threading.Lock()

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        _check(image)
        out = self._ocr.describe(image)
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": Image.fromarray(image)},
                    {"type": "text", "text": prompt_text("frame_describe").strip()},
                ],
            }
        ]
        with self._lock:
            res = self._pipe(
                text=messages,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                return_full_text=False,
            )
        gen = res[0]["generated_text"] if res else ""
        if isinstance(gen, list):  # chat output: the assistant turn
            gen = gen[-1].get("content", "") if gen else ""
        return {**out, "caption": " ".join(str(gen).split())}


class EndpointVLMDescriber:
    """OCR + colours + a caption from an OpenAI-compatible vision endpoint."""

    def __init__(
        self,
        llm_cfg: AnnotateLLMConfig,
        ocr_min_score: float = 0.5,
        n_colors: int = 3,
        transport: Any = None,
    ) -> None:
        self.name = f"vlm-endpoint:{llm_cfg.model}"
        self.max_new_tokens = llm_cfg.max_new_tokens
        self._ocr = get_ocr_describer(ocr_min_score, n_colors)
        self._client = EndpointLLM(llm_cfg, transport=transport)

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        _check(image)
        out = self._ocr.describe(image)
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=90)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": prompt_text("frame_describe").strip()},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
        caption = self._client.chat(messages, self.max_new_tokens)
        return {**out, "caption": " ".join(caption.split())}


def make_vlm_describer(cfg: DescriberConfig) -> FrameDescriber:
    """The VLM describer that ``cfg.kind`` names."""
    assert cfg.vlm_model is not None  # AnnotateConfig validates this
    if cfg.kind == "vlm-endpoint":
        llm_cfg = AnnotateLLMConfig(
            backend="endpoint",
            model=cfg.vlm_model,
            base_url=cfg.vlm_base_url,
            api_key_env=cfg.vlm_api_key_env,
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            backoff_s=cfg.backoff_s,
            max_new_tokens=cfg.vlm_max_new_tokens,
        )
        return EndpointVLMDescriber(llm_cfg, cfg.ocr_min_score, cfg.n_colors)
    return TransformersVLMDescriber(
        cfg.vlm_model, cfg.device, cfg.vlm_max_new_tokens, cfg.ocr_min_score, cfg.n_colors
    )
