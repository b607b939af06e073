"""VLM frame describers: the OpenAI-compatible vision endpoint over an httpx MockTransport and the
config that selects a describer (no VLM checkpoint ships offline, see offline-models.md)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hivid.annotate.frames import FrameDescriber, describe_frames
from hivid.annotate.llm import LLMConfig, LLMError
from hivid.annotate.pipeline import AnnotateConfig
from hivid.annotate.prompts import prompt_text
from hivid.annotate.vlm import EndpointVLMDescriber
from hivid.configbase import ConfigError, from_mapping
from hivid.data.decode import SampledFrame


def product_frame() -> np.ndarray:
    img = Image.new("RGB", (320, 180), (200, 30, 40))
    ImageDraw.Draw(img).text(
        (16, 70), "Red Shampoo $12.00", fill=(255, 255, 255), font=ImageFont.load_default(size=24)
    )
    return np.asarray(img)


def test_endpoint_vlm_sends_the_frame_and_keeps_ocr() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        content = "A red shampoo bottle with the price $12.00 shown in white text."
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    cfg = LLMConfig(backend="endpoint", model="qwen-vl", max_new_tokens=40)
    d = EndpointVLMDescriber(cfg, transport=httpx.MockTransport(handler))
    assert isinstance(d, FrameDescriber) and d.name == "vlm-endpoint:qwen-vl"
    frame = product_frame()
    out = d.describe(frame)
    assert out["caption"].startswith("A red shampoo bottle")
    assert "12.00" in out["ocr_text"] and out["colors"]  # offline OCR + colours stay
    (body,) = seen
    assert body["model"] == "qwen-vl" and body["max_tokens"] == 40
    text_part, image_part = body["messages"][0]["content"]
    assert text_part["text"] == prompt_text("frame_describe").strip()
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert sent.shape == frame.shape
    # describe_frames carries the caption into the record items
    items = describe_frames([SampledFrame(0, 0.0, 0.0, frame)], d)
    assert items[0]["caption"].startswith("A red shampoo bottle")


def test_endpoint_vlm_unreachable_is_one_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    cfg = LLMConfig(backend="endpoint", model="qwen-vl", max_retries=0)
    d = EndpointVLMDescriber(cfg, transport=httpx.MockTransport(handler))
    with pytest.raises(LLMError, match="unreachable after 1 attempts"):
        d.describe(product_frame())


def test_describer_config() -> None:
    cfg = from_mapping(AnnotateConfig, {"describer": "vlm-endpoint", "vlm_model": "qwen-vl"})
    assert cfg.step_fields("frames")["vlm_model"] == "qwen-vl"
    assert cfg.step_fields("frames") != AnnotateConfig().step_fields("frames")
    with pytest.raises(ConfigError, match="needs vlm_model"):
        from_mapping(AnnotateConfig, {"describer": "vlm"})
