"""Dense captioning evaluator + SODA_c against the reference semantics (test_eval_reference)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hivid.evaluation.dense import check_inputs, dense_scores, evaluate_files
from hivid.evaluation.meteor import Meteor
from hivid.evaluation.soda import max_alignment, tiou_matrix, video_soda
from hivid.evaluation.tokenize import CaptionTokenizer
from tests.eval_reference import recursive_dp, ref_iou

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def _pred(results: dict) -> dict:  # type: ignore[type-arg]
    return {"version": "VERSION 1.0", "results": results, "external_data": {"used": False}}


@pytest.fixture(scope="module")
def meteor() -> Iterator[Meteor]:
    with Meteor() as m:
        yield m


def test_tiou_matrix_equals_reference_formula() -> None:
    rng = np.random.default_rng(1)
    g = np.sort(rng.uniform(0, 50, (7, 2)), axis=1)
    p = rng.uniform(0, 50, (9, 2))  # some reversed on purpose
    p[0] = g[0]  # identical segment
    m = tiou_matrix(g, p)
    for i in range(7):
        for j in range(9):
            assert m[i, j] == pytest.approx(ref_iou(p[j], g[i]), abs=1e-15)


def test_vectorised_dp_equals_recursive_reference() -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        m, n = rng.integers(1, 12, size=2)
        w = rng.random((m, n)) * (rng.random((m, n)) > 0.4)
        assert max_alignment(w) == pytest.approx(recursive_dp(w), abs=1e-12)
    # long videos: the reference's recursion would overflow; ours is a plain loop
    big = rng.random((400, 900))
    assert max_alignment(big) > 0
    assert video_soda(np.zeros((2, 0)), np.zeros((2, 0))) == (0.0, 0.0, 0.0)


def test_edge_cases_are_reported() -> None:
    gt = {
        "a": {"duration": 20, "timestamps": [[0, 10], [10, 20]], "sentences": ["x", "y"]},
        "b": {"duration": 5, "timestamps": [[0, 5]], "sentences": ["z"]},
        "c": {"duration": 5, "timestamps": [[0, 5]], "sentences": ["z"]},
    }
    results = {
        "a": [
            {"timestamp": [0, 10], "sentence": "x"},
            {"timestamp": [0, 10], "sentence": "x"},
            {"timestamp": [12, 4], "sentence": "r"},
            {"timestamp": [15, 40], "sentence": "o"},
        ],
        "c": [],
        "zzz": [{"timestamp": [0, 1], "sentence": "u"}],
    }
    _, _, w = check_inputs(gt, _pred(results), max_proposals=2)
    text = "\n".join(w)
    for needle in (
        "missing from the predictions (b)",
        "empty prediction list (c)",
        "zzz",
        "start > end",
        "outside [0, duration]",
        "duplicate",
        "first 2 per video",
    ):
        assert needle in text, needle
    with pytest.raises(ValueError, match="'a': bad timestamp"):
        check_inputs(gt, _pred({"a": [{"timestamp": [0], "sentence": "x"}]}))
    with pytest.raises(ValueError, match="'results'"):
        check_inputs(gt, {"version": 1})
    with pytest.raises(ValueError, match="equally long"):
        check_inputs({"a": {"timestamps": [[0, 1]], "sentences": []}}, _pred({}))


def test_fixture_equals_reference_numbers(meteor: Meteor) -> None:
    """The built English set (120 videos, 478 events) equals the stored reference-semantics
    numbers (benchmarks/evaluation.py --write-reference; recomputed live in the slow test)."""
    gt = json.loads((DATA / "dense_gt.json").read_text())
    pred = json.loads((DATA / "dense_pred.json").read_text())
    expected = json.loads((DATA / "reference_scores.json").read_text())["dense"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dense_scores(gt, pred, CaptionTokenizer(), meteor)
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k
    assert 0.2 < ours["SODA_c"] < 0.5 and 0.2 < ours["METEOR"] < 0.5  # non-trivial scores
    assert set(ours["per_video"]) == set(gt)
    assert ours["per_video"]["v_0007"]["METEOR"] == 0.0  # missing video: 0, still counted
    assert "SODA_c" not in ours["per_video"]["v_0007"]  # ... and dropped from SODA_c
    assert ours["per_video"]["v_0011"]["SODA_c"] == 0.0  # empty list: counted as 0


def test_chinese_scores_where_the_reference_gives_zero(meteor: Meteor) -> None:
    gt = json.loads((DATA / "zh_gt.json").read_text())
    pred = json.loads((DATA / "zh_pred.json").read_text())
    tok = CaptionTokenizer(mode="auto")
    ours = dense_scores(gt, pred, tok, meteor)
    as_reference = dense_scores(gt, pred, CaptionTokenizer(mode="ptb"), meteor)
    # the reference strips non-ASCII: every sentence is empty, nothing can match
    assert as_reference["METEOR"] == 0.0 and as_reference["SODA_c"] == 0.0
    assert as_reference["Bleu_1"] < 1e-6
    assert ours["METEOR"] > 0.3 and ours["SODA_c"] > 0.3 and ours["Bleu_4"] > 0.2
    assert tok("主播试用洗发水并展示效果。") == "主播 试用 洗发水 并 展示 效果"
    ident = tok.identity()
    assert ident["segmenter"].startswith("jieba==") and "ptb" in ident["name"]


def test_cli_dense_json(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hivid.cli import main

    gt = {
        "a": {
            "duration": 20,
            "timestamps": [[0, 10], [10, 20]],
            "sentences": ["a man opens the red box", "he pours water into a cup"],
        }
    }
    pred = _pred(
        {
            "a": [
                {"timestamp": [0, 9], "sentence": "a man opens a red box"},
                {"timestamp": [11, 20], "sentence": "he pours some water"},
            ]
        }
    )
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            "dense",
            "--gt",
            str(tmp_path / "gt.json"),
            "--pred",
            str(tmp_path / "pred.json"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    for k in (
        "SODA_c",
        "Bleu_1",
        "Bleu_2",
        "Bleu_3",
        "Bleu_4",
        "METEOR",
        "CIDEr",
        "Precision",
        "Recall",
        "F1",
    ):
        assert k in out
    # tIoU of [0, 9] vs [0, 10] is 0.9 (minus the 1e-8): not > 0.9, so 3 of 4 thresholds hit
    assert out["SODA_c"] > 0.3 and out["Precision"] == pytest.approx(0.75)
    assert out["evaluator"]["meteor_jar_sha256"]


@pytest.mark.slow
def test_fixture_equals_reference_live() -> None:
    from hivid.evaluation.dense import TIOUS
    from tests.eval_reference import reference_densevid, reference_soda_c

    gt = json.loads((DATA / "dense_gt.json").read_text())
    pred = json.loads((DATA / "dense_pred.json").read_text())
    ref = reference_densevid(gt, pred, TIOUS)
    ref["SODA_c"] = reference_soda_c(gt, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate_files(DATA / "dense_gt.json", DATA / "dense_pred.json")
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-4), k


def test_two_reference_files_equal_reference_numbers(meteor: Meteor) -> None:
    """val_1 + val_2 style: pairs from both files, best file per video for P and R (separately),
    SODA_c averaged over the files (PDVC's eval_soda)."""
    gts = [json.loads((DATA / n).read_text()) for n in ("dense_gt.json", "dense_gt2.json")]
    pred = json.loads((DATA / "dense_pred.json").read_text())
    expected = json.loads((DATA / "reference_scores.json").read_text())["dense_2ref"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dense_scores(gts, pred, CaptionTokenizer(), meteor)
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k
    assert "v_only_in_2" in ours["per_video"]  # a video of the second file only still counts
    assert not any("v_only_in_2" in w and "not in the GT" in w for w in ours["warnings"])


@pytest.mark.slow
def test_reference_code_cannot_score_chinese() -> None:
    """The reference semantics on the Chinese set: SODA_c is 0 and the dense evaluator crashes in
    CIDEr (every sentence is empty after non-ASCII removal); ours scores it (fast test above)."""
    from tests.eval_reference import reference_densevid, reference_soda_c

    gt = json.loads((DATA / "zh_gt.json").read_text())
    pred = json.loads((DATA / "zh_pred.json").read_text())
    assert reference_soda_c(gt, pred) == 0.0
    with pytest.raises(ValueError, match="empty"):
        reference_densevid(gt, pred, [0.5])
