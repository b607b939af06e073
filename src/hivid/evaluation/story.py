"""VideoNarrator's reference-free narration metrics (synchronized-video-storytelling §3.3, A.2).

- **Word length accuracy**: share of clips whose narration length lies in ``[5t - 3, 5t + 3]``
  for a clip of ``t`` seconds (words for English, characters for Chinese). The paper's definition;
  the official code instead uses ``len(gt) ± 3`` characters (not what this computes).
- **InfoSim** = ½ · mean over sentences s of ( max_k cos(f_k, f_s) + mean over words w of s of
  max_k cos(f_k, f_w) ), f_k the embeddings of the video's knowledge points.
- **InfoDiverse** = |{k : max over sentences and their words of cos(f_k, f) > 0.9}| / duration.
- **Intra-story repetition** (Yao et al., 2019): per story, for every sentence after the first the
  share of its trigrams already seen earlier in the story; averaged over sentences, then stories.
- **Title BERTScore**: each GT chapter title against the title of the predicted chapter that
  overlaps it most (tIoU); a GT chapter nothing overlaps scores 0.
- **EMScore** needs an image-text model (Chinese-CLIP in the paper); none is packaged offline, so
  it is reported as not computed unless one is configured.

Embeddings come from :class:`hivid.evaluation.bertscore.TextEncoder` (MiniLM by default: numbers
are comparable run to run, not to the paper's, and every output names the backbone).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hivid.evaluation.soda import tiou_matrix
from hivid.evaluation.tokenize import has_cjk

INFO_THRESHOLD = 0.9
WORDS_PER_SECOND = 5.0
MARGIN = 3.0


def narration_length(text: str) -> int:
    """Words for English, characters (punctuation and spaces excluded) when the text has CJK."""
    if has_cjk(text):
        return sum(
            1 for c in text if not c.isspace() and not unicodedata.category(c).startswith("P")
        )
    return len(text.split())


def word_length_accuracy(clips: Sequence[tuple[float, str]]) -> float:
    """Share of (duration_s, narration) clips whose length lies in [5t - 3, 5t + 3]."""
    if not clips:
        return 0.0
    ok = 0
    for t, text in clips:
        n = narration_length(text)
        ok += WORDS_PER_SECOND * t - MARGIN <= n <= WORDS_PER_SECOND * t + MARGIN
    return ok / len(clips)


def intra_story_repetition(
    stories: Sequence[Sequence[str]], tokenize: Callable[[str], str]
) -> float:
    """Mean trigram repetition inside stories (lower is better), on ``tokenize``d sentences."""
    per_story = []
    for story in stories:
        seen: set[tuple[str, ...]] = set()
        rates = []
        for i, sentence in enumerate(story):
            toks = tokenize(sentence).split()
            tri = [tuple(toks[k : k + 3]) for k in range(len(toks) - 2)]
            if i > 0 and tri:
                rates.append(sum(1 for g in tri if g in seen) / len(tri))
            seen.update(tri)
        if rates:
            per_story.append(sum(rates) / len(rates))
    return sum(per_story) / len(per_story) if per_story else 0.0


def info_scores(
    encoder: Any,
    sentences: Sequence[str],
    knowledge: Sequence[str],
    duration: float,
    tokenize: Callable[[str], str],
    threshold: float = INFO_THRESHOLD,
) -> dict[str, float]:
    """InfoSim and InfoDiverse of one video's narration against its knowledge points."""
    if not sentences or not knowledge:
        return {"InfoSim": 0.0, "InfoDiverse": 0.0}
    words = [tokenize(s).split() for s in sentences]
    flat = [w for ws in words for w in ws]
    fk = encoder.sentence_embeddings(list(knowledge)).numpy()  # (K, D)
    fs = encoder.sentence_embeddings(list(sentences)).numpy()  # (S, D)
    fw = encoder.sentence_embeddings(flat).numpy() if flat else np.zeros((0, fk.shape[1]))
    sim_s = fs @ fk.T  # (S, K)
    sim_w = fw @ fk.T  # (W, K)
    per_sentence, k = [], 0
    hit = sim_s.max(axis=0)  # (K,) best over sentences
    for i, ws in enumerate(words):
        sw = sim_w[k : k + len(ws)]  # (w_i, K)
        k += len(ws)
        word_term = float(sw.max(axis=1).mean()) if len(ws) else 0.0
        per_sentence.append(0.5 * (float(sim_s[i].max()) + word_term))
        if len(ws):
            hit = np.maximum(hit, sw.max(axis=0))
    return {
        "InfoSim": float(np.mean(per_sentence)),
        "InfoDiverse": float((hit > threshold).sum()) / duration if duration > 0 else 0.0,
    }


def title_pairs(
    gt_chapters: Sequence[Mapping[str, Any]], pred_chapters: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str | None]]:
    """(GT title, best-overlapping predicted title or None) for every GT chapter."""
    if not gt_chapters:
        return []
    if not pred_chapters:
        return [(str(g["title"]), None) for g in gt_chapters]
    g = np.asarray([[c["start"], c["end"]] for c in gt_chapters], dtype=float)
    p = np.asarray([[c["start"], c["end"]] for c in pred_chapters], dtype=float)
    iou = tiou_matrix(g, p)  # (G, P)
    out: list[tuple[str, str | None]] = []
    for i, c in enumerate(gt_chapters):
        j = int(iou[i].argmax())
        out.append((str(c["title"]), str(pred_chapters[j]["title"]) if iou[i, j] > 0 else None))
    return out


def title_bertscore(encoder: Any, pairs: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """Mean BERTScore F of matched titles (unmatched GT chapters count as 0)."""
    from hivid.evaluation.bertscore import bertscore

    matched = [(g, p) for g, p in pairs if p is not None]
    r = bertscore(encoder, [p for _, p in matched], [g for g, _ in matched])
    total = sum(x[2] for x in r["per_pair"])
    return {
        "TitleBERTScore_F": total / len(pairs) if pairs else 0.0,
        "titles": len(pairs),
        "titles_matched": len(matched),
        **encoder.identity(),
    }


def emscore_status(image_text_model: str | None) -> str:
    if not image_text_model:
        return "not computed: no image-text model configured (EMScore needs e.g. Chinese-CLIP)"
    return f"not computed: EMScore with {image_text_model} is not implemented yet"
