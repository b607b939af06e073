"""Metadata-aware correction, relevance scoring and the WER/CER text metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hivid.annotate.correction import (
    EmbeddingRelevance,
    correct_segments,
    lexicon_correct,
    metadata_terms,
    relevance_exemplars,
)
from hivid.annotate.prompts import PROMPT_NAMES, PromptError, prompt_hashes, render
from hivid.annotate.textmetrics import cer, normalize_en, phonetic_key, similarity, wer
from tests.helpers import ScriptedLLM

MUG = {
    "title": "Zenthe Morning Mug 450 ml",
    "brand": "Zenthe",
    "category": "coffee mug",
    "attributes": {"capacity": "450 ml", "color": "red", "material": "ceramic"},
    "price": {"amount": 12.0, "currency": "USD"},
}
SHAMPOO = {
    "title": "Tessel Silk Shampoo 250 ml",
    "brand": "Tessel",
    "category": "shampoo",
    "attributes": {"color": "teal", "scent": "coconut", "volume": "250 ml"},
}


def test_terms_from_metadata() -> None:
    texts = [t.text for t in metadata_terms(MUG)]
    assert texts[:3] == ["Zenthe Morning Mug", "red Morning Mug", "Morning Mug"]
    assert {"Zenthe", "ceramic", "coffee mug", "red"} <= set(texts)
    assert not any(any(c.isdigit() for c in t) for t in texts)  # "450 ml" is not fuzzy-matched


@pytest.mark.parametrize(
    ("heard", "fixed"),
    [
        # real whisper-base errors on the espeak demo narration
        ("Meet the end-mourning mug, the fix.", "Meet the Zenthe Morning Mug, the fix."),
        ("order your red-mourning mug now", "order your red Morning Mug now"),
        ("Meet the Tassel Silk Shampoo,", "Meet the Tessel Silk Shampoo,"),
        ("It doesn't matter what Tesla promised.", "It doesn't matter what Tessel promised."),
        ("order your deal Silk Shampoo now.", "order your teal Silk Shampoo now."),
    ],
)
def test_lexicon_fixes_near_misses(heard: str, fixed: str) -> None:
    terms = metadata_terms(SHAMPOO if "Silk" in heard or "Tesla" in heard else MUG)
    out, changes = lexicon_correct(heard, terms)
    assert out == fixed
    assert changes and all(c["source"] == "lexicon" for c in changes)


@pytest.mark.parametrize(
    "text",
    [
        "At 12 dollars this coffee mug is a deal you should not miss.",  # "deal" is not "teal"
        "The silk shampoo holds 250 ml.",  # "the" never becomes the brand
        "Everything about this coffee mug is made for daily use.",
        "Nothing cheap here, just honest materials from men.",  # too far from any term
    ],
)
def test_lexicon_leaves_correct_and_unrelated_words(text: str) -> None:
    terms = metadata_terms(SHAMPOO if "shampoo" in text else MUG)
    out, changes = lexicon_correct(text, terms)
    assert changes == []
    assert out.lower() == text.lower()  # only the casing of exact mentions may change


def test_exact_colour_mention_is_not_turned_into_the_brand() -> None:
    out, changes = lexicon_correct("the teal silk shampoo is light", metadata_terms(SHAMPOO))
    assert out == "the teal Silk Shampoo is light" and changes == []


def test_text_metrics() -> None:
    assert normalize_en("At $12, 450ml of ten thousand!") == [
        "at",
        "12",
        "dollars",
        "450",
        "milliliters",
        "of",
        "10000",
    ]
    assert wer("Get it for 12 dollars.", "get it for $12") == (0, 5)
    assert wer("the red mug", "the rent mug now") == (2, 3)
    assert cer("限时特价", "限时特价") == (0, 4) and cer("限时特价", "现时特价") == (1, 4)
    assert cer("一二三。", "1 2 3") == (0, 3)
    assert phonetic_key("Tessel") == phonetic_key("Tesla") == phonetic_key("Tassel")
    assert phonetic_key("deal") == phonetic_key("teal")
    assert phonetic_key("shambu") == phonetic_key("shampoo")
    assert similarity("abc", "abc") == 1.0 and similarity("", "") == 1.0


def test_prompts_are_packaged_hashed_and_rendered() -> None:
    hashes = prompt_hashes()
    assert set(hashes) == set(PROMPT_NAMES) and all(len(h) == 64 for h in hashes.values())
    text = render("correct", metadata='{"brand": "X"}', text="hello")
    assert text.endswith('Heard: "hello"\nFixed: "') and '{"brand": "X"}' in text
    with pytest.raises(PromptError, match=r"\$text"):
        render("correct", metadata="{}")
    pairs = relevance_exemplars()
    assert len(pairs) >= 6 and {s for _, s in pairs} >= {0, 1, 2, 3, 4, 5}


class BagOfWords:
    """Test fake embedder: hashed bag of words (the real MiniLM runs in the pipeline tests)."""

    name = "bow"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, sum(map(ord, w.strip(".,!?\"'"))) % 64] += 1.0
        n = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(n, 1e-9)


def seg(text: str, t: float = 0.0) -> dict[str, Any]:
    return {"start": t, "end": t + 1.0, "text": text, "words": []}


def test_correct_segments_filters_and_records_raw_and_corrected() -> None:
    segs = [seg("Meet the end-mourning mug."), seg("Mm. Uh.", 2.0)]
    res = correct_segments(
        segs,
        MUG,
        threshold=4,
        relevance=EmbeddingRelevance(BagOfWords()),
        llm=None,
        llm_relevance_on=True,
        llm_correct_on=True,
        llm_max_edit_ratio=0.5,
    )
    a, b = res.segments
    assert (
        a["text_raw"] == "Meet the end-mourning mug."
        and a["text"] == "Meet the Zenthe Morning Mug."
    )
    assert a["relevance"] == 5 and a["kept"] is True  # names a metadata term
    assert b["relevance"] <= 2 and b["kept"] is False  # nearest exemplars: noise and filler
    assert res.lexicon_changes == 1 and res.relevance_scorer == "exemplar-knn"
    assert segs[0]["text"] == "Meet the end-mourning mug."  # input untouched


def test_llm_relevance_and_guarded_correction() -> None:
    llm = ScriptedLLM(
        [
            " 5",  # relevance of segment 1
            " 1",  # relevance of segment 2
            "Meet the Zenthe Morning Mug today.",  # accepted: small edit
        ]
    )
    res = correct_segments(
        [seg("Meet the Zenthe Morning Mug to day."), seg("hold on", 2.0)],
        MUG,
        threshold=4,
        relevance=None,
        llm=llm,
        llm_relevance_on=True,
        llm_correct_on=True,
        llm_max_edit_ratio=0.5,
    )
    a, b = res.segments
    assert (a["relevance"], b["relevance"]) == (5, 1) and (a["kept"], b["kept"]) == (True, False)
    assert a["text"] == "Meet the Zenthe Morning Mug today."
    assert a["corrections"][-1]["source"] == "llm:scripted" and res.llm_changes == 1
    assert b["text"] == "hold on"  # dropped segments are not sent for correction
    assert '"brand": "Zenthe"' in llm.prompts[0] and "Score:" in llm.prompts[0]
    # A rewrite of the whole sentence is rejected.
    llm2 = ScriptedLLM(["5", "Buy shoes at the mall instead of anything else"])
    res2 = correct_segments(
        [seg("Meet the Zenthe Morning Mug.")],
        MUG,
        threshold=4,
        relevance=None,
        llm=llm2,
        llm_relevance_on=True,
        llm_correct_on=True,
        llm_max_edit_ratio=0.5,
    )
    assert res2.segments[0]["text"] == "Meet the Zenthe Morning Mug." and res2.llm_changes == 0
    # Dropping a word ("today") or adding one that no metadata term has is rejected too;
    # substitutions and the term's own words pass.
    for answer, ok in (
        ("Get the Zenthe Morning Mug for 12 dollars.", False),
        ("Get the Zenthe Morning Mug today for 12 dollars now.", False),
        ("Get the Zenthe Morning Mug today for 12 dollars!", True),
        ("Get the red Zenthe Morning Mug today for 12 dollars.", True),
    ):
        llm3 = ScriptedLLM(["5", answer])
        res3 = correct_segments(
            [seg("Get the Zenthe Morning Mug today for 12 dollars.")],
            MUG,
            threshold=4,
            relevance=None,
            llm=llm3,
            llm_relevance_on=True,
            llm_correct_on=True,
            llm_max_edit_ratio=0.5,
        )
        assert (res3.segments[0]["text"] == answer) is ok, answer


def test_every_prompt_renders() -> None:
    import re

    from hivid.annotate.prompts import prompt_text

    for name in PROMPT_NAMES:
        names = set(re.findall(r"\$([a-z_]+)", prompt_text(name)))
        assert render(name, **dict.fromkeys(names, "x")).strip()
