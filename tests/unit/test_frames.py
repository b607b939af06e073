"""Frame descriptions: real OCR on a rendered frame, colours, shot changes, similarity reuse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hivid.annotate.frames import (
    FrameDescriber,
    OCRFrameDescriber,
    color_name,
    describe_frames,
    dominant_colors,
    frame_similarity,
    get_ocr_describer,
    thumbnail,
)
from hivid.data.decode import SampledFrame

RED, BLUE, WHITE = (200, 30, 40), (30, 60, 200), (255, 255, 255)


def render(
    text: str | None, bg: tuple[int, int, int], size: tuple[int, int] = (640, 360)
) -> np.ndarray:
    img = Image.new("RGB", size, bg)
    if text:
        ImageDraw.Draw(img).text((40, 150), text, fill=WHITE, font=ImageFont.load_default(size=40))
    return np.asarray(img)


def frames_of(images: list[np.ndarray]) -> list[SampledFrame]:
    return [SampledFrame(i, float(i), float(i), im) for i, im in enumerate(images)]


class CountingDescriber:
    """Test fake: records which images it was asked to describe."""

    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def describe(self, image: np.ndarray) -> dict[str, Any]:
        self.calls += 1
        return {
            "ocr": [{"text": f"call{self.calls}", "score": 1.0}],
            "ocr_text": f"call{self.calls}",
            "colors": dominant_colors(image),
        }


def test_ocr_reads_rendered_product_text() -> None:
    d = get_ocr_describer()
    assert isinstance(d, OCRFrameDescriber) and isinstance(d, FrameDescriber)
    assert get_ocr_describer() is d  # one engine per process
    out = d.describe(render("Red Shampoo 500ml $59", RED))
    squashed = out["ocr_text"].replace(" ", "")
    assert squashed == "RedShampoo500ml$59", out
    assert out["ocr"] and all(0.5 <= o["score"] <= 1.0 for o in out["ocr"])
    assert color_name(out["colors"][0]) == "red"
    assert d.describe(render(None, BLUE)) == {"ocr": [], "ocr_text": "", "colors": ["#1e3cc8"]}


def test_ocr_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        get_ocr_describer().describe(np.zeros((10, 10), np.uint8))


def test_dominant_colors_order_and_shares() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, :70] = RED
    img[:, 70:] = BLUE
    assert dominant_colors(img, n=3) == ["#c81e28", "#1e3cc8"]
    img[:2, :2] = (0, 255, 0)  # 0.04 % of the frame: below min_share
    assert dominant_colors(img, n=3) == ["#c81e28", "#1e3cc8"]
    assert [color_name(c) for c in dominant_colors(img)] == ["red", "blue"]


def test_shot_change_flags() -> None:
    d = CountingDescriber()
    items = describe_frames(
        frames_of([render(None, RED)] * 2 + [render(None, BLUE)] * 2), d, shot_threshold=0.4
    )
    assert [i["shot_change"] for i in items] == [False, False, True, False]
    assert [i["reused_from"] for i in items] == [None, 0, None, 2]
    assert d.calls == 2
    assert set(items[0]) == {
        "index",
        "t",
        "pts_time",
        "ocr_text",
        "ocr",
        "colors",
        "shot_change",
        "reused_from",
    }


def test_similarity_reuse_and_text_change_redescribes() -> None:
    a = render("Red Shampoo", RED)
    b = a.copy()
    b[40:120, 380:620] = WHITE  # a caption card appears on the same background
    assert frame_similarity(thumbnail(a), thumbnail(a)) == 1.0
    assert 0.9 < frame_similarity(thumbnail(a), thumbnail(b)) < 0.98
    # Small text edits move few pixels: at tau 0.98 they reuse the description (the documented
    # trade-off of similarity compression); tau closer to 1 catches them.
    c = render("Red Shampoo 2", RED)
    assert 0.98 < frame_similarity(thumbnail(a), thumbnail(c)) < 0.9995
    d = CountingDescriber()
    items = describe_frames(frames_of([a, a, a, b, b]), d, similarity_threshold=0.98)
    # The card changes the frame without a shot change (histograms barely move): OCR runs again.
    assert [i["shot_change"] for i in items] == [False] * 5
    assert [i["reused_from"] for i in items] == [None, 0, 0, None, 3]
    assert items[1]["ocr_text"] == "call1" and items[4]["ocr_text"] == "call2"
    # A lower tau reuses across the text change; tau = 1.0 reuses only identical frames.
    d2 = CountingDescriber()
    items = describe_frames(frames_of([a, a, b]), d2, similarity_threshold=0.5)
    assert [i["reused_from"] for i in items] == [None, 0, 0] and d2.calls == 1


def test_reuse_compares_with_last_described_frame_not_previous() -> None:
    # A slow fade: each step is tiny, but the drift from the anchor adds up and forces OCR again.
    images = [np.full((36, 64, 3), 100 + 3 * k, np.uint8) for k in range(6)]
    items = describe_frames(frames_of(images), CountingDescriber(), similarity_threshold=0.98)
    reused = [i["reused_from"] for i in items]
    assert reused[0] is None and reused[1] == 0 and None in reused[2:]
