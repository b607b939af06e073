"""COCO caption metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D equal to pycocoevalcap 1.2.

BLEU, ROUGE-L and CIDEr-D are our own implementations of pycocoevalcap's definitions, quirks
included (they decide the numbers):

- BLEU: corpus BLEU with the *closest* reference length, ``tiny = 1e-15`` / ``small = 1e-9``
  smoothing of every n-gram precision and the brevity penalty ``exp(1 - 1/ratio)``;
- ROUGE-L: tokens from ``split(" ")`` (an empty caption is one empty token), the best precision
  and the best recall over references combined with beta = 1.2, averaged over segments;
- CIDEr-D: document frequencies from the references of the scored corpus (``log(#segments)`` as
  the idf numerator), clipped tf-idf products, Gaussian length penalty sigma = 6 on the number of
  *bigrams* (``len(ngram) - 1 == 1`` in the reference), mean over n = 1..4, times 10.

Inputs are tokenized strings (see :mod:`hivid.evaluation.tokenize`): ``refs[i]`` the references and
``cands[i]`` the candidate of segment ``i``.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hivid.evaluation.meteor import Meteor

NGRAMS = 4
SIGMA = 6.0
BETA = 1.2


@functools.lru_cache(maxsize=1 << 16)
def ngram_counts(sentence: str, n: int = NGRAMS) -> Counter[tuple[str, ...]]:
    """1..n-gram counts of a whitespace-tokenized sentence (cached: callers must not mutate)."""
    words = sentence.split()
    c: Counter[tuple[str, ...]] = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            c[tuple(words[i : i + k])] += 1
    return c


def bleu(refs: Sequence[Sequence[str]], cands: Sequence[str], n: int = NGRAMS) -> list[float]:
    """Corpus BLEU-1..n exactly as pycocoevalcap's ``Bleu(n)`` (option ``closest``)."""
    tiny, small = 1e-15, 1e-9
    guess, correct = [0] * n, [0] * n
    testlen_total, reflen_total = 0, 0
    for rs, cand in zip(refs, cands, strict=True):
        maxcounts: dict[tuple[str, ...], int] = {}
        reflens = []
        for r in rs:
            reflens.append(len(r.split()))
            for g, c in ngram_counts(r, n).items():
                if c > maxcounts.get(g, 0):
                    maxcounts[g] = c
        counts = ngram_counts(cand, n)
        testlen = len(cand.split())
        testlen_total += testlen
        reflen_total += min((abs(r - testlen), r) for r in reflens)[1]
        for k in range(n):
            guess[k] += max(0, testlen - k)
        for g, c in counts.items():
            correct[len(g) - 1] += min(maxcounts.get(g, 0), c)
    out, b = [], 1.0
    for k in range(n):
        b *= float(correct[k] + tiny) / (guess[k] + small)
        out.append(b ** (1.0 / (k + 1)))
    ratio = (testlen_total + tiny) / (reflen_total + small)
    if ratio < 1:
        out = [x * math.exp(1 - 1 / ratio) for x in out]
    return out


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_segment(refs: Sequence[str], cand: str, beta: float = BETA) -> float:
    tc = cand.split(" ")
    prec, rec = [], []
    for r in refs:
        tr = r.split(" ")
        lcs = _lcs(tr, tc)
        prec.append(lcs / float(len(tc)))
        rec.append(lcs / float(len(tr)))
    p, r_ = max(prec), max(rec)
    if p != 0 and r_ != 0:
        return ((1 + beta**2) * p * r_) / float(r_ + beta**2 * p)
    return 0.0


def rouge_l(refs: Sequence[Sequence[str]], cands: Sequence[str]) -> float:
    """Mean segment ROUGE-L (pycocoevalcap ``Rouge``)."""
    scores = [rouge_l_segment(r, c) for r, c in zip(refs, cands, strict=True)]
    return sum(scores) / len(scores)


def cider_d(refs: Sequence[Sequence[str]], cands: Sequence[str]) -> tuple[float, list[float]]:
    """(corpus, per-segment) CIDEr-D as pycocoevalcap's ``Cider`` (document frequencies from
    ``refs``; one corpus = one call)."""
    crefs = [[ngram_counts(r) for r in rs] for rs in refs]
    df: Counter[tuple[str, ...]] = Counter()
    for rs in crefs:
        df.update({g for c in rs for g in c})
    if not df:
        # the reference asserts on this (every reference empty); define it as 0
        return 0.0, [0.0] * len(cands)
    ref_len = math.log(float(len(crefs)))

    def vec(
        cnts: Counter[tuple[str, ...]],
    ) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        v: list[dict[tuple[str, ...], float]] = [{} for _ in range(NGRAMS)]
        norm = [0.0] * NGRAMS
        length = 0
        for g, tf in cnts.items():
            n = len(g) - 1
            w = float(tf) * (ref_len - math.log(max(1.0, df.get(g, 0.0))))
            v[n][g] = w
            norm[n] += w * w
            if n == 1:  # the reference counts bigrams as the "length"
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    memo: dict[int, tuple[list[dict[tuple[str, ...], float]], list[float], int]] = {}

    def vec_of(
        cnts: Counter[tuple[str, ...]],
    ) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
        # ngram_counts is cached, so equal sentences share one Counter object
        key = id(cnts)
        if key not in memo:
            memo[key] = vec(cnts)
        return memo[key]

    scores = []
    for cand, rs in zip(cands, crefs, strict=True):
        vh, nh, lh = vec_of(ngram_counts(cand))
        total = [0.0] * NGRAMS
        for r in rs:
            vr, nr, lr = vec_of(r)
            delta = float(lh - lr)
            pen = math.e ** (-(delta**2) / (2 * SIGMA**2))
            for n in range(NGRAMS):
                val = 0.0
                for g, w in vh[n].items():
                    wr = vr[n].get(g, 0.0)
                    val += min(w, wr) * wr
                if nh[n] != 0 and nr[n] != 0:
                    val /= nh[n] * nr[n]
                total[n] += val * pen
        scores.append(sum(total) / NGRAMS / len(rs) * 10.0)
    return sum(scores) / len(scores), scores


def corpus_scores(
    refs: Sequence[Sequence[str]],
    cands: Sequence[str],
    meteor: Meteor | None,
    rouge: bool = True,
) -> dict[str, float]:
    """Bleu_1..4, METEOR, ROUGE_L, CIDEr of one corpus of tokenized (refs, cand) segments."""
    if not cands:
        raise ValueError("no segments to score")
    out: dict[str, float] = {}
    pairs = [(c, tuple(r)) for r, c in zip(refs, cands, strict=True)]
    if meteor is not None:
        meteor.prepare_async(pairs)  # the JVM aligns while Python scores the rest
    for k, b in enumerate(bleu(refs, cands), 1):
        out[f"Bleu_{k}"] = b
    if rouge:
        out["ROUGE_L"] = rouge_l(refs, cands)
    out["CIDEr"] = cider_d(refs, cands)[0]
    if meteor is not None:
        out["METEOR"] = meteor.evaluate([pairs])[0][0]
    return out


def score_captions(
    refs: Mapping[str, Sequence[str]],
    cands: Mapping[str, Sequence[str]],
    tokenizer: Any,
    meteor_memory: str = "2G",
) -> dict[str, Any]:
    """``hivid evaluate captions``: ``{id: [ref, ...]}`` vs ``{id: [cand]}`` as pycocoevalcap's
    COCOEvalCap scores them (ids of ``cands`` missing from ``refs`` are an error, as there)."""
    unknown = sorted(set(cands) - set(refs))
    if unknown:
        raise ValueError(f"{len(unknown)} candidate id(s) have no references: {unknown[:5]}")
    missing = sorted(set(refs) - set(cands))
    if missing:
        raise ValueError(f"{len(missing)} reference id(s) have no candidate: {missing[:5]}")
    ids = list(refs)
    for i in ids:
        if len(cands[i]) != 1:
            raise ValueError(f"id {i!r}: exactly one candidate expected, got {len(cands[i])}")
        if not refs[i]:
            raise ValueError(f"id {i!r}: no reference sentences")
    with Meteor(meteor_memory) as meteor:  # the JVM loads while the PTB tokenizer runs
        tokenizer.prepare([s for i in ids for s in (*refs[i], *cands[i])])
        tr = [[tokenizer(s) for s in refs[i]] for i in ids]
        tc = [tokenizer(cands[i][0]) for i in ids]
        scores = corpus_scores(tr, tc, meteor)
        identity = meteor.identity()
    return {
        **scores,
        "segments": len(ids),
        "evaluator": {**identity, "tokenizer": tokenizer.identity()},
    }
