"""Topic shifts, script labels, word budgets and LLM refinement of TCoT and chapters (§3.1.3).

- Topic shifts: adjacent windows of kept ASR sentences (up to ``window`` sentences each side) are
  embedded; a gap whose window cosine similarity falls below ``threshold`` is a candidate chapter
  boundary (the coarse pass adds it when no shot-change boundary is near).
- Script labels: one of the 12 E-SyncVidStory types (synchronized-video-storytelling.txt, appendix
  A.4) per chapter. Offline: the nearest label prototype (definition + the prompt's few-shot
  exemplars) in sentence-embedding space to the chapter's narration sentences; with an LLM:
  the ``script_label`` prompt (answer validated against the 12 ids, falling back to the
  embedding label).
- Word budget: ``[5t - 3, 5t + 3]`` words for a chapter of t seconds (characters for Chinese).
- Refinement (LLM only): each TCoT observation through ``tcot_refine`` and each chapter summary
  through ``chapter_summary``; an empty answer keeps the coarse text.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from hivid.annotate.correction import metadata_json
from hivid.annotate.embeddings import Embedder
from hivid.annotate.llm import LLM, LLMError
from hivid.annotate.prompts import prompt_text, render
from hivid.labels import SCRIPT_LABELS, word_budget

LABEL_DEFINITIONS: dict[str, str] = {
    "social_proof": "Social proof / influence: to recommend a product, confidently endorse it on "
    "behalf of oneself or a group; provide evidence of positive expectations and experiences.",
    "sore_point": "Sore point: to identify the problems, needs, or challenges that people faced "
    "before using the product.",
    "call_to_action": "Call to action: to induce or encourage consumers to make a purchase with a "
    "strong guide that describes the benefits, prices, activities, bonuses.",
    "design_of_appearance": "Design of appearance: to describe the appearance of the product, its "
    "shape, size, color, pattern and notable features of the item or its packaging.",
    "ingredient_material_texture": "Ingredient / material / texture: to describe the texture, "
    "ingredients, or materials of the product.",
    "product_trial": "Product trial: to describe the process of using or experiencing the product, "
    "an immersive experience of the actual usage process.",
    "product_effect": "Product effect: to describe the function and impact of the product, and the "
    "changes or experiences users can expect after using it.",
    "specific_characteristics": "Specific characteristics: to describe special characteristics or "
    "quality of the product, including durability, water resistance, wrinkle resistance.",
    "product_security": "Product security: to display the safety certifications and tests that the "
    "product has passed.",
    "authoritative_certificate": "Authoritative certificate: to display the quality appraisal, "
    "certificate of honor or authority of the product.",
    "production_process": "Production process: to describe the factory manufacturing process for "
    "goods.",
    "others": "Others: other advantages, highlights and selling points of the product, such as the "
    "brand history.",
}
assert set(LABEL_DEFINITIONS) == set(SCRIPT_LABELS)


def topic_shifts(
    segments: list[dict[str, Any]], embedder: Embedder, threshold: float, window: int = 2
) -> list[dict[str, float]]:
    """[{"t", "similarity"}] at sentence gaps whose window similarity < ``threshold``."""
    if len(segments) < 2:
        return []
    vecs = embedder.embed([str(s["text"]) for s in segments])  # (N, D)
    out = []
    for i in range(1, len(segments)):
        before = vecs[max(0, i - window) : i].mean(axis=0)  # (D,)
        after = vecs[i : i + window].mean(axis=0)  # (D,)
        sim = float(before @ after / max(1e-9, np.linalg.norm(before) * np.linalg.norm(after)))
        if sim < threshold:
            t = (float(segments[i - 1]["end"]) + float(segments[i]["start"])) / 2
            out.append({"t": round(t, 3), "similarity": round(sim, 4)})
    return out


def is_chinese(language: str | None) -> bool:
    return bool(language) and str(language).lower().startswith("zh")


def budget(duration_s: float, language: str | None) -> dict[str, Any]:
    """{"min", "max", "unit"}: the narration length budget of a chapter."""
    lo, hi = word_budget(duration_s)
    return {"min": lo, "max": hi, "unit": "chars" if is_chinese(language) else "words"}


_LABEL_EXEMPLAR = re.compile(r'Copy: "(.*)"\nType: ([a-z_]+)')


def label_exemplars() -> list[tuple[str, str]]:
    """The (copy, label) few-shot pairs of the ``script_label`` prompt."""
    return [(m.group(1), m.group(2)) for m in _LABEL_EXEMPLAR.finditer(prompt_text("script_label"))]


class ScriptLabeler:
    """Nearest label prototype in embedding space (offline default).

    A label's prototype is the normalised mean of its definition's and its few-shot exemplars'
    embeddings (the ``script_label`` prompt's pairs); a chapter scores each label by the mean
    cosine of its sentences.
    """

    name = "prototype-nn"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.labels = list(LABEL_DEFINITIONS)
        texts = {k: [LABEL_DEFINITIONS[k]] for k in self.labels}
        for copy, label in label_exemplars():
            if label in texts:
                texts[label].append(copy)
        protos = []
        for k in self.labels:
            v = embedder.embed(texts[k]).mean(axis=0)  # (D,)
            protos.append(v / max(1e-9, float(np.linalg.norm(v))))
        self.vectors = np.stack(protos)  # (12, D)

    def label(self, chapters: list[list[str]]) -> list[tuple[str, float]]:
        """(label, mean cosine) per chapter given as its sentences; none -> ("others", 0.0)."""
        out: list[tuple[str, float]] = [("others", 0.0)] * len(chapters)
        flat = [(i, t) for i, sents in enumerate(chapters) for t in sents if t.strip()]
        if not flat:
            return out
        sims = self.embedder.embed([t for _, t in flat]) @ self.vectors.T  # (N, 12)
        for i in {i for i, _ in flat}:
            rows = sims[[k for k, (j, _) in enumerate(flat) if j == i]].mean(axis=0)  # (12,)
            j = int(np.argmax(rows))
            out[i] = (self.labels[j], round(float(rows[j]), 4))
        return out


def llm_script_label(llm: LLM, text: str, metadata: dict[str, Any]) -> str | None:
    """The LLM's label id (None when the answer names none of the 12)."""
    defs = "\n".join(f"{k}: {v}" for k, v in LABEL_DEFINITIONS.items())
    answer = llm.complete(
        render(
            "script_label",
            definitions=defs,
            metadata=metadata_json(metadata),
            text=text.replace('"', "'"),
        ),
        max_new_tokens=12,
        stop=["\n"],
    )
    m = re.search(r"[a-z_]+", answer.strip().lower().replace(" ", "_").replace("/", "_"))
    if m is None:
        return None
    for label in SCRIPT_LABELS:
        if m.group().startswith(label):
            return label
    return None


def _screen(frames: list[dict[str, Any]]) -> str:
    texts: list[str] = []
    for f in frames:
        for o in f.get("ocr", []):
            if o["text"] not in texts:
                texts.append(o["text"])
    return ", ".join(f'"{t}"' for t in texts[:6]) or "no readable text"


def refine_with_llm(
    llm: LLM,
    tcot: list[dict[str, Any]],
    chapters: list[dict[str, Any]],
    frames: list[dict[str, Any]],
    segments: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> int:
    """Refine TCoT observations and chapter summaries in place; returns the LLM errors seen."""
    from hivid.annotate.chapters import frames_in, sentences_in

    meta = metadata_json(metadata)
    errors = 0
    for item in tcot:
        s0, s1 = float(item["start"]), float(item["end"])
        speech = " ".join(str(s["text"]) for s in sentences_in(segments, s0, s1 + 1e-6, True))
        try:
            text = llm.complete(
                render(
                    "tcot_refine",
                    metadata=meta,
                    start=f"{s0:.1f}",
                    end=f"{s1:.1f}",
                    frames=_screen(frames_in(frames, s0, s1, True)),
                    speech=speech.replace('"', "'"),
                    draft=item["observation"],
                ),
                max_new_tokens=64,
                stop=["\n"],
            ).strip()
        except LLMError:
            errors += 1
            continue
        if text:
            item["observation_coarse"] = item["observation"]
            item["observation"] = text
    for i, ch in enumerate(chapters):
        s0, s1 = float(ch["start"]), float(ch["end"])
        last = i == len(chapters) - 1
        speech = " ".join(str(s["text"]) for s in sentences_in(segments, s0, s1, last))
        try:
            text = llm.complete(
                render(
                    "chapter_summary",
                    metadata=meta,
                    start=f"{s0:.1f}",
                    end=f"{s1:.1f}",
                    frames=_screen(frames_in(frames, s0, s1, last)),
                    speech=speech.replace('"', "'"),
                ),
                max_new_tokens=48,
                stop=["\n"],
            ).strip()
        except LLMError:
            errors += 1
            continue
        if text:
            ch["summary_coarse"] = ch["summary"]
            ch["summary"] = text
    return errors
