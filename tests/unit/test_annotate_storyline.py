"""Topic shifts, script labels, word budgets, LLM refinement and the ground-truth evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hivid.annotate.accuracy import boundary_f1, evaluate_records
from hivid.annotate.chapters import build_chapters, chapter_bounds
from hivid.annotate.storyline import (
    LABEL_DEFINITIONS,
    ScriptLabeler,
    budget,
    label_exemplars,
    llm_script_label,
    refine_with_llm,
    topic_shifts,
)
from hivid.io import write_json
from hivid.labels import SCRIPT_LABELS
from tests.helpers import ScriptedLLM


class TopicEmbedder:
    """Test fake: one axis per topic keyword (real MiniLM runs in the pipeline tests)."""

    name = "topics"
    TOPICS = ("mug", "price", "safe")

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.full((len(texts), len(self.TOPICS) + 1), 0.05, dtype=np.float32)
        for i, t in enumerate(texts):
            for j, k in enumerate(self.TOPICS):
                out[i, j] += t.lower().count(k)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def sent(a: float, b: float, text: str) -> dict[str, Any]:
    return {"start": a, "end": b, "text": text, "words": []}


def frame(t: int, shot: bool = False) -> dict[str, Any]:
    return {"index": t, "t": float(t), "ocr": [], "colors": [], "shot_change": shot}


def test_topic_shift_adds_a_boundary_where_no_shot_change_is_near() -> None:
    segs = [
        sent(0.5, 3.0, "This mug is a mug."),
        sent(3.5, 6.0, "The mug holds tea."),
        sent(7.0, 9.5, "The price is low, a good price."),
        sent(10.0, 12.5, "Check the price today."),
    ]
    shifts = topic_shifts(segs, TopicEmbedder(), threshold=0.5, window=1)
    assert [s["t"] for s in shifts] == [6.5]
    frames = [frame(t) for t in range(14)]
    assert chapter_bounds(frames, segs, 14.0, 2.0) == [(0.0, 14.0)]
    assert chapter_bounds(frames, segs, 14.0, 2.0, [6.5]) == [(0.0, 6.5), (6.5, 14.0)]
    # a shot change within min_chapter_s wins over the topic shift
    frames[7]["shot_change"] = True
    assert chapter_bounds(frames, segs, 14.0, 2.0, [6.5]) == [(0.0, 6.5), (6.5, 14.0)]
    frames[7]["shot_change"], frames[8]["shot_change"] = False, True
    bounds = chapter_bounds(frames, segs, 14.0, 2.0, [6.5])
    assert len(bounds) == 2 and bounds[0][1] == 7.5  # the shot cut, not 6.5
    _, chapters = build_chapters(frames, segs, 14.0, 2.0, extra_cuts=[6.5])
    assert len(chapters) == 2


def test_word_budget_words_and_chinese_chars() -> None:
    assert budget(4.0, "en") == {"min": 17, "max": 23, "unit": "words"}
    assert budget(4.0, "zh") == {"min": 17, "max": 23, "unit": "chars"}
    assert budget(0.2, None)["min"] == 0


def test_script_labels_are_the_12_types_with_exemplars() -> None:
    assert set(LABEL_DEFINITIONS) == set(SCRIPT_LABELS) and len(SCRIPT_LABELS) == 12
    ex = label_exemplars()
    assert {lab for _, lab in ex} == set(SCRIPT_LABELS)


def test_script_labeler_with_real_minilm() -> None:
    from hivid.annotate.embeddings import get_embedder

    labeler = ScriptLabeler(get_embedder())
    got = labeler.label(
        [
            ["Tap the link below and buy yours today for only 20 dollars."],
            ["Tired of a kettle that breaks after one week?"],
            [],
        ]
    )
    assert [g[0] for g in got] == ["call_to_action", "sore_point", "others"]
    assert got[2][1] == 0.0 and 0 < got[0][1] <= 1


def test_llm_script_label_is_validated() -> None:
    meta = {"brand": "Zenthe"}
    assert llm_script_label(ScriptedLLM([" call_to_action"]), "Buy now", meta) == "call_to_action"
    assert llm_script_label(ScriptedLLM([" Product Effect"]), "It works", meta) == "product_effect"
    assert llm_script_label(ScriptedLLM([" banana"]), "x", meta) is None
    llm = ScriptedLLM(["sore_point"])
    llm_script_label(llm, "x", meta)
    assert "sore_point: Sore point" in llm.prompts[0] and llm.prompts[0].endswith("Type:")


def test_refine_with_llm_keeps_coarse_text() -> None:
    tcot = [{"start": 0.0, "end": 2.0, "observation": "On screen: x."}]
    chapters = [{"start": 0.0, "end": 4.0, "title": "t", "summary": "coarse"}]
    llm = ScriptedLLM([" A red mug is shown.", ""])
    errors = refine_with_llm(llm, tcot, chapters, [frame(0), frame(1)], [sent(0, 2, "hi")], {})
    assert errors == 0
    assert tcot[0]["observation"] == "A red mug is shown."
    assert tcot[0]["observation_coarse"] == "On screen: x."
    assert chapters[0]["summary"] == "coarse" and "summary_coarse" not in chapters[0]


def test_boundary_f1_one_to_one() -> None:
    assert boundary_f1([10.0, 20.5], [10.5, 20.0], 2.0) == (2, 2, 2)
    assert boundary_f1([10.0, 11.0], [10.5], 2.0) == (1, 2, 1)
    assert boundary_f1([15.0], [10.0], 2.0) == (0, 1, 1)


def test_evaluate_records_against_ground_truth(tmp_path: Path) -> None:
    gt = {
        "language": "en",
        "sentences": [{"text": "Meet the Zenthe Morning Mug."}, {"text": "Only 12 dollars."}],
        "chapters": [
            {"start": 0.0, "end": 5.0, "label": "sore_point"},
            {"start": 5.0, "end": 9.0, "label": "call_to_action"},
        ],
    }
    write_json(tmp_path / "gt" / "v.json", gt)
    meta = {"title": "Zenthe Morning Mug red", "brand": "Zenthe", "attributes": {"color": "red"}}
    meta["price"] = {"amount": 12.0}
    write_json(tmp_path / "meta" / "v.json", meta)
    rec = {
        "asr": {
            "segments": [
                {"text_raw": "Meet the end-mourning mug.", "text": "Meet the Zenthe Morning Mug."},
                {"text_raw": "Only $12.", "text": "Only $12."},
            ]
        },
        "chapters": [
            {"start": 0.0, "end": 6.5, "script_label": "sore_point"},
            {"start": 6.5, "end": 9.0, "script_label": "product_effect"},
        ],
        "frames": {
            "items": [
                {"ocr_text": "ZENTHE Morning Mug $12.00", "reused_from": None},
                {"ocr_text": "ZENTHE", "reused_from": None},
                {"ocr_text": "", "reused_from": 0},
            ]
        },
    }
    m = evaluate_records({"v": rec, "other": rec}, tmp_path / "gt", tmp_path / "meta")
    assert m["videos"] == 1.0
    assert m["wer_raw"] == pytest.approx(2 / 8) and m["wer_corrected"] == 0.0
    assert m["chapter_f1"] == 1.0  # 6.5 is within 2 s of 5.0
    assert m["script_label_accuracy"] == 0.5
    assert m["product_text_recall"] == 0.5  # name + price in frame 0, neither in frame 1
    assert evaluate_records({"x": rec}, tmp_path / "gt") == {}


def test_mean_pooling_embedder_equals_sentence_transformers() -> None:
    """The packaged MiniLM runs without sentence-transformers, with the same vectors."""
    from sentence_transformers import SentenceTransformer

    from hivid.annotate.embeddings import MeanPoolingEmbedder, get_embedder, resolve_embedder

    emb = get_embedder()
    assert isinstance(emb, MeanPoolingEmbedder) and emb.sha256
    texts = [
        "Meet the Zenthe Morning Mug.",
        "With 450 ml of space it keeps coffee hot for hours, even on a long commute home.",
        "特价",
        "",
    ] * 10  # more than one batch of 32, mixed lengths (padding)
    ours = emb.embed(texts)
    ref = SentenceTransformer(resolve_embedder("all-MiniLM-L6-v2")[0], device="cpu").encode(
        texts, batch_size=32, normalize_embeddings=True
    )
    assert ours.shape == (40, 384) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-5
    assert emb.embed([]).shape == (0, 384)
