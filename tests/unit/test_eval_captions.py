"""COCO caption metrics against pycocoevalcap 1.2 on the built English set (tests/data/eval)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hivid.evaluation import coco
from hivid.evaluation.java import JavaMissingError, find_java
from hivid.evaluation.tokenize import CaptionTokenizer, ptb_tokenize, remove_nonascii

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def _load() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    refs = json.loads((DATA / "captions_refs.json").read_text())
    cands = json.loads((DATA / "captions_cands.json").read_text())
    return refs, cands


@pytest.fixture(scope="module")
def tokenized() -> tuple[list[str], list[list[str]], list[str]]:
    refs, cands = _load()
    tok = CaptionTokenizer(mode="ptb")
    ids = list(refs)
    tok.prepare([s for i in ids for s in (*refs[i], *cands[i])])
    return ids, [[tok(s) for s in refs[i]] for i in ids], [tok(cands[i][0]) for i in ids]


def test_ptb_tokenization_matches_the_jar_conventions() -> None:
    out = ptb_tokenize(["A man doesn't run (fast).", "", 'Say "hi", U.S. co!', "a\rb"])
    assert out[0] == "a man does n't run -lrb- fast -rrb-"  # -lrb- survives, as in the reference
    assert out[1] == ""
    assert out[2] == "say hi u.s. co"
    assert out[3] == "a b"  # \r would have split the line in the PTB lexer
    assert remove_nonascii("café") == "caf "


def test_bleu_rouge_cider_equal_pycocoevalcap(tokenized) -> None:  # type: ignore[no-untyped-def]
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids, refs, cands = tokenized
    gts = {i: r for i, r in zip(ids, refs, strict=True)}
    res = {i: [c] for i, c in zip(ids, cands, strict=True)}
    ref_bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    ours = coco.bleu(refs, cands)
    assert ours == pytest.approx(ref_bleu, abs=1e-12)
    assert 0.3 < ours[3] < 0.9  # non-trivial
    assert coco.rouge_l(refs, cands) == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
    ref_cider, ref_seg = Cider().compute_score(gts, res)
    c, seg = coco.cider_d(refs, cands)
    assert c == pytest.approx(ref_cider, abs=1e-9)
    assert seg == pytest.approx(list(ref_seg), abs=1e-9)


def test_cider_quirks() -> None:
    # one segment: idf numerator log(1) = 0, so even a perfect caption scores 0 (as the reference)
    assert coco.cider_d([["a red cup"]], ["a red cup"])[0] == 0.0
    # every reference empty: the reference asserts; we define it as 0
    assert coco.cider_d([[""], [""]], ["a", "b"])[0] == 0.0
    # ROUGE-L of an empty caption: one empty token, no overlap
    assert coco.rouge_l_segment(["a b"], "") == 0.0


def test_java_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaMissingError, match="no Java runtime found"):
        find_java()
    monkeypatch.setenv("PATH", os.defpath)


@pytest.mark.slow
def test_full_captions_equal_pycocoevalcap() -> None:
    """All seven metrics incl. METEOR and the PTB tokenizer, pycocoevalcap run as COCOEvalCap."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs, cands = _load()
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": r} for r in v] for k, v in cands.items()})
    expected = dict(
        zip(
            ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"],
            Bleu(4).compute_score(gts, res, 0)[0],
            strict=True,
        )
    )
    expected["METEOR"] = Meteor().compute_score(gts, res)[0]
    expected["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]
    ours = coco.score_captions(refs, cands, CaptionTokenizer())
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, abs=1e-4), k
    assert ours["evaluator"]["meteor_jar_sha256"]
    assert "ptb" in ours["evaluator"]["tokenizer"]["name"]


def test_captions_equal_stored_pycocoevalcap_numbers() -> None:
    """All seven metrics (one METEOR process) vs pycocoevalcap's numbers stored by
    benchmarks/evaluation.py --write-reference (recomputed live in the slow test)."""
    refs, cands = _load()
    expected = json.loads((DATA / "reference_scores.json").read_text())["captions"]
    ours = coco.score_captions(refs, cands, CaptionTokenizer())
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k
    assert ours["evaluator"]["tokenizer"]["ptb"].startswith("stanford-corenlp-3.4.1")
