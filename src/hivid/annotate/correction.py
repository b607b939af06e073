"""ASR relevance filter and metadata-aware correction (paper §3.1.1).

Relevance: each ASR sentence gets a 0-5 score; sentences below the threshold (default 4) are kept
in the record but marked ``kept: false`` and left out of chapters and TCoT.

- with an LLM: the few-shot ``relevance`` prompt, the first digit of the answer;
- always available: the same prompt's few-shot exemplars scored by sentence-embedding nearest
  neighbours (similarity-weighted mean of the top-3 exemplar scores), raised to 5 when the
  sentence names a metadata term (brand, product name, attribute value, price) and to at least 4
  when it names the product's category.

Correction, in two passes:

1. lexicon (always): multi-word metadata terms (brand + name, colour + name, title, category,
   attribute values) and single-word terms (brand, name words) replace near-miss spans of the
   transcript. Stop words are never replaced. A span of the same word count matches when every
   word pair is close in spelling or sound (``phonetic_key``), allowing one far word in a 3+ word
   term when the term's word there is a proper noun (capitalised in the metadata);
   a span one word longer or shorter matches only when its letters are nearly equal ("back pack"
   -> "backpack"). A single word is replaced by a single-word term only when it is spelled
   almost the same, or, for a capitalised word and a capitalised term (a misheard proper noun),
   when it sounds the same or shares the first letter and most of the spelling. Exact
   mentions lock their span first, so a correct colour is never "corrected" into the brand.
2. LLM (when configured): the ``correct`` prompt with the metadata as JSON; the answer is
   accepted only when it stays close to the lexicon-corrected text (word edit ratio <=
   ``llm_max_edit_ratio``), drops no word and adds only words of metadata terms, so a small
   model cannot rewrite or shorten the sentence.

Every segment records ``text_raw`` (ASR), ``text`` (corrected), ``relevance``, ``kept`` and
``corrections`` ([{"from", "to", "source"}]).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from hivid.annotate.embeddings import Embedder
from hivid.annotate.llm import LLM, LLMError
from hivid.annotate.prompts import prompt_text, render
from hivid.annotate.textmetrics import edit_distance, phonetic_key, similarity

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "on",
        "in",
        "at",
        "to",
        "for",
        "from",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "be",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "my",
        "your",
        "our",
        "their",
        "his",
        "her",
        "you",
        "we",
        "they",
        "i",
        "me",
        "he",
        "she",
        "so",
        "as",
        "by",
        "up",
        "out",
        "now",
        "just",
    ]
)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True)
class Term:
    """A metadata phrase spelled correctly, as a tuple of words."""

    words: tuple[str, ...]
    kind: str

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _words(text: str) -> tuple[str, ...]:
    return tuple(m.group() for m in _WORD.finditer(text))


def _has_digit(words: tuple[str, ...]) -> bool:
    return any(any(c.isdigit() for c in w) for w in words)


def metadata_terms(metadata: dict[str, Any]) -> list[Term]:
    """Terms named by the product metadata (see the module docstring), longest first."""
    out: dict[tuple[str, ...], Term] = {}

    def add(text: Any, kind: str) -> None:
        if not isinstance(text, str):
            return
        words = _words(text)
        if words and not _has_digit(words) and words not in out:
            out[words] = Term(words, kind)

    brand = metadata.get("brand") if isinstance(metadata.get("brand"), str) else None
    raw_attrs = metadata.get("attributes")
    attrs: dict[str, Any] = raw_attrs if isinstance(raw_attrs, dict) else {}
    values = [str(v) for v in attrs.values() if isinstance(v, str | int | float)]
    name = metadata.get("name") if isinstance(metadata.get("name"), str) else None
    title = metadata.get("title") if isinstance(metadata.get("title"), str) else None
    if name is None and title:
        rest = title
        if brand and rest.lower().startswith(brand.lower()):
            rest = rest[len(brand) :]
        for v in sorted(values, key=len, reverse=True):
            if rest.lower().rstrip().endswith(v.lower()):
                rest = rest.rstrip()[: -len(v)]
        name = rest.strip() or None
    colour = attrs.get("color") or attrs.get("colour")
    if brand and name:
        add(f"{brand} {name}", "brand+name")
    if isinstance(colour, str) and name:
        add(f"{colour} {name}", "color+name")
    add(title, "title")
    add(name, "name")
    add(brand, "brand")
    add(metadata.get("category"), "category")
    for v in values:
        add(v, "attribute")
    for w in _words(name or ""):
        if len(w) >= 4:
            add(w, "name-word")
    return sorted(out.values(), key=lambda t: (-len(t.words), t.text))


def _word_close(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return a == b or similarity(a, b) >= 0.5 or phonetic_key(a) == phonetic_key(b)


def _match_score(span: list[str], term: Term) -> float | None:
    """Similarity in (0, 1] when ``span`` is a near miss of ``term`` (None otherwise)."""
    term_low = {t.lower() for t in term.words}
    if any(w.lower() in STOP_WORDS and w.lower() not in term_low for w in span):
        return None  # stop words are never replaced or swallowed
    a = "".join(span).lower()
    b = "".join(term.words).lower()
    s_chars = similarity(a, b)
    n, k = len(term.words), len(span)
    if k != n:  # split or merged words: the letters must be nearly equal
        return s_chars - 0.05 * abs(k - n) if s_chars >= 0.8 else None
    if n == 1:
        (w,) = span
        if len(b) < 4:
            return None
        if s_chars >= 0.8:
            return s_chars
        proper = w[:1].isupper() and term.words[0][:1].isupper()  # a misheard proper noun
        if proper and phonetic_key(w) == phonetic_key(b) and s_chars >= 0.5:
            return 0.5 + s_chars / 4
        if proper and s_chars >= 0.6 and w[:1].lower() == b[:1]:
            return s_chars / 2
        return None
    far = [t for w, t in zip(span, term.words, strict=True) if not _word_close(w, t)]
    if len(far) > (1 if n >= 3 else 0) or any(not t[:1].isupper() for t in far):
        return None  # one far word at most, and only a proper noun (brand, name) of the term
    if not any(w.lower() == t.lower() for w, t in zip(span, term.words, strict=True)):
        return None  # at least one word must anchor the match exactly
    s_sound = similarity(phonetic_key(a), phonetic_key(b))
    score = max(s_chars, (s_chars + s_sound) / 2)
    return score if score >= 0.6 else None


def lexicon_correct(text: str, terms: list[Term]) -> tuple[str, list[dict[str, str]]]:
    """(corrected text, [{"from", "to", "source": "lexicon"}]) for one sentence."""
    toks = list(_WORD.finditer(text))
    words = [m.group() for m in toks]
    # (score, term words, start, end, term); an exact mention (case-insensitive) scores 2.
    cands: list[tuple[float, int, int, int, Term]] = []
    for term in terms:
        n = len(term.words)
        low = [w.lower() for w in term.words]
        for k in {max(1, n - 1), n, n + 1, n + 2}:
            for i in range(len(words) - k + 1):
                span = words[i : i + k]
                if k == n and [w.lower() for w in span] == low:
                    cands.append((2.0, n, i, i + k, term))
                    continue
                score = _match_score(span, term)
                if score is not None:
                    cands.append((score, n, i, i + k, term))
    # Longer terms first (a brand + name beats its name alone), then the closer match.
    taken = [False] * len(words)
    edits: list[tuple[int, int, Term, bool]] = []
    for score, _n, i, j, term in sorted(cands, key=lambda c: (-c[1], -c[0], c[2])):
        if any(taken[i:j]):
            continue
        taken[i:j] = [True] * (j - i)
        if words[i:j] != list(term.words):
            edits.append((i, j, term, score < 2.0))
    changes: list[dict[str, str]] = []
    out = text
    for i, j, term, fuzzy in sorted(edits, key=lambda e: -e[0]):
        a, b = toks[i].start(), toks[j - 1].end()
        if fuzzy:  # casing-only fixes of exact mentions are not corrections
            changes.append({"from": text[a:b], "to": term.text, "source": "lexicon"})
        out = out[:a] + term.text + out[b:]
    changes.reverse()
    return out, changes


# ------------------------------------------------------------------------------------------------
# Relevance
# ------------------------------------------------------------------------------------------------

_EXEMPLAR = re.compile(r'Sentence: "(.*)"\nScore: (\d)')


def relevance_exemplars() -> list[tuple[str, int]]:
    """The (sentence, score) few-shot pairs of the ``relevance`` prompt."""
    return [(m.group(1), int(m.group(2))) for m in _EXEMPLAR.finditer(prompt_text("relevance"))]


def metadata_json(metadata: dict[str, Any]) -> str:
    """The metadata fields the prompts use, as compact JSON."""
    keep = ("title", "brand", "category", "name", "attributes", "price")
    return json.dumps({k: metadata[k] for k in keep if k in metadata}, ensure_ascii=False)


def _price_words(metadata: dict[str, Any]) -> set[str]:
    price = metadata.get("price")
    amount = price.get("amount") if isinstance(price, dict) else price
    if isinstance(amount, int | float):
        return {f"{amount:g}", f"{amount:.2f}"}
    return set()


def names_term(text: str, terms: list[Term], metadata: dict[str, Any]) -> bool:
    """True when ``text`` mentions a metadata term or the price (case-insensitive)."""
    low = f" {' '.join(_words(text)).lower()} "
    if any(f" {t.text.lower()} " in low for t in terms if t.kind != "category"):
        return True
    return bool(
        _price_words(metadata) & {w.lstrip("$") for w in re.findall(r"\$?\d+(?:\.\d+)?", text)}
    )


class EmbeddingRelevance:
    """Few-shot exemplar nearest neighbours in sentence-embedding space (see module docstring)."""

    name = "exemplar-knn"

    def __init__(self, embedder: Embedder, k: int = 3) -> None:
        self.embedder = embedder
        self.k = k
        pairs = relevance_exemplars()
        self.scores = np.array([s for _, s in pairs], dtype=np.float64)  # (E,)
        self.vectors = embedder.embed([t for t, _ in pairs])  # (E, D)

    def score(self, texts: list[str], terms: list[Term], metadata: dict[str, Any]) -> list[int]:
        if not texts:
            return []
        sims = embedder_sims(self.embedder.embed(texts), self.vectors)  # (N, E)
        out = []
        categories = [t.text.lower() for t in terms if t.kind == "category"]
        for text, row in zip(texts, sims, strict=True):
            if names_term(text, terms, metadata):
                out.append(5)
                continue
            top = np.argsort(-row)[: self.k]
            w = np.clip(row[top], 1e-3, None)
            score = round(float((w * self.scores[top]).sum() / w.sum()))
            low = f" {' '.join(_words(text)).lower()} "
            if any(f" {c} " in low for c in categories):
                score = max(score, 4)  # talks about the product's category
            out.append(score)
        return out


def embedder_sims(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities (N, M) of normalised rows."""
    return np.asarray(a @ b.T, dtype=np.float64)


def llm_relevance(llm: LLM, text: str, metadata: dict[str, Any]) -> int | None:
    """The LLM's 0-5 score from the ``relevance`` prompt (None when it answers no digit)."""
    answer = llm.complete(
        render("relevance", metadata=metadata_json(metadata), text=text.replace('"', "'")),
        max_new_tokens=3,
        stop=["\n"],
    )
    m = re.search(r"[0-5]", answer)
    return int(m.group()) if m else None


def llm_correct(llm: LLM, text: str, metadata: dict[str, Any], max_edit_ratio: float) -> str | None:
    """The LLM's corrected sentence, or None when it drifts too far from ``text``."""
    answer = llm.complete(
        render("correct", metadata=metadata_json(metadata), text=text.replace('"', "'")),
        max_new_tokens=max(16, 2 * len(text.split()) + 8),
        stop=['"', "\n"],
    ).strip()
    if not answer:
        return None
    a, b = _words(text.lower()), _words(answer.lower())
    if edit_distance(a, b) > max_edit_ratio * max(1, len(a)):
        return None
    allowed = {w.lower() for t in metadata_terms(metadata) for w in t.words}
    dropped, added = _indels(a, b)
    new, gone = set(b) - set(a), set(a) - set(b)
    # A correction substitutes words; it may merge ("to day" -> "today") or split words and add
    # metadata terms' words, but never drop or add other words.
    if any(not any(w in o for o in new) for w in dropped):
        return None
    if any(w not in allowed and not any(w in g for g in gone) for w in added):
        return None
    return answer


def _indels(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(words deleted from ``a``, words inserted into ``b``) on a minimal edit alignment."""
    n, m = len(a), len(b)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            )
    dropped: list[str] = []
    added: list[str] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            dropped.append(a[i - 1])
            i -= 1
        else:
            added.append(b[j - 1])
            j -= 1
    return dropped, added


@dataclass
class CorrectionResult:
    segments: list[dict[str, Any]]
    relevance_scorer: str
    lexicon_changes: int
    llm_changes: int
    llm_errors: int


def correct_segments(
    segments: list[dict[str, Any]],
    metadata: dict[str, Any],
    *,
    lexicon: bool = True,
    threshold: int,
    relevance: EmbeddingRelevance | None,
    llm: LLM | None,
    llm_relevance_on: bool,
    llm_correct_on: bool,
    llm_max_edit_ratio: float,
) -> CorrectionResult:
    """Score, filter and correct ASR sentences (new dicts; the input is not modified)."""
    terms = metadata_terms(metadata)
    out: list[dict[str, Any]] = []
    lex_n = llm_n = llm_err = 0
    raw = [str(s.get("text_raw", s["text"])) for s in segments]
    fixed: list[tuple[str, list[dict[str, str]]]] = [
        lexicon_correct(t, terms) if lexicon else (t, []) for t in raw
    ]
    scorer = "none"
    scores: list[int | None] = [None] * len(segments)
    if llm is not None and llm_relevance_on:
        scorer = f"llm:{llm.name}"
        for i, (t, _) in enumerate(fixed):
            try:
                scores[i] = llm_relevance(llm, t, metadata)
            except LLMError:
                llm_err += 1
    if relevance is not None and any(s is None for s in scores):
        scorer = relevance.name if scorer == "none" else f"{scorer}+{relevance.name}"
        todo = [i for i, s in enumerate(scores) if s is None]
        for i, s in zip(
            todo, relevance.score([fixed[i][0] for i in todo], terms, metadata), strict=True
        ):
            scores[i] = s
    for seg, text_raw, (text, changes), score in zip(segments, raw, fixed, scores, strict=True):
        lex_n += len(changes)
        kept = score is None or score >= threshold
        if kept and llm is not None and llm_correct_on:
            try:
                better = llm_correct(llm, text, metadata, llm_max_edit_ratio)
            except LLMError:
                better, llm_err = None, llm_err + 1
            if better is not None and better != text:
                changes = [*changes, {"from": text, "to": better, "source": f"llm:{llm.name}"}]
                text, llm_n = better, llm_n + 1
        new = dict(seg)
        new.update(
            {
                "text_raw": text_raw,
                "text": text,
                "relevance": score,
                "kept": kept,
                "corrections": changes,
            }
        )
        out.append(new)
    return CorrectionResult(out, scorer, lex_n, llm_n, llm_err)
