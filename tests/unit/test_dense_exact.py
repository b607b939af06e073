"""The dense-captioning evaluator's exact promises on inputs small enough to check by hand: the
tIoU formula and its strict threshold, P/R/F1 averaging, every input check's exact message, and
the pairing rules of the language metrics (scored by the real METEOR jar and COCO metrics)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from hivid.evaluation import dense
from hivid.evaluation.dense import (
    GARBAGE,
    check_inputs,
    localization_scores,
    tiou,
    video_precision_recall,
)


def pred(results: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"version": "VERSION 1.0", "results": results, "external_data": {}, **extra}


def seg(s: float, e: float, text: str = "x") -> dict[str, Any]:
    return {"timestamp": [s, e], "sentence": text}


# ---------------------------------------------------------------- tIoU, precision and recall


def test_tiou_exact_values() -> None:
    assert tiou([0, 10], [5, 15]) == 5 / (15 + 1e-8)
    assert tiou([5, 15], [0, 10]) == 5 / (15 + 1e-8)
    assert tiou([0, 10], [2, 4]) == 2 / (10 + 1e-8)  # contained: union is the hull
    assert tiou([0, 10], [0, 10]) == 10 / (10 + 1e-8)
    assert tiou([3, 3], [3, 3]) == 0.0  # empty intervals: 0 / 1e-8
    assert tiou([12, 4], [0, 20]) == 0.0  # reversed: never overlaps
    assert isinstance(tiou([0, 1], [0, 1]), float)


def test_precision_recall_counts_each_side_once() -> None:
    gt = [[0, 10], [10, 20], [40, 50]]
    preds = [[0, 10], [1, 10], [10, 20], [100, 110]]
    assert video_precision_recall(gt, preds, 0.5) == (3 / 4, 2 / 3)
    assert video_precision_recall(gt, [], 0.5) == (0.0, 0.0)
    with pytest.raises(ValueError, match=r"^a ground-truth video must have at least one event$"):
        video_precision_recall([], preds, 0.5)
    # just above / just below a threshold
    assert video_precision_recall([[0, 10]], [[0, 7]], 0.7) == (0.0, 0.0)  # 0.7 - 1e-9
    assert video_precision_recall([[0, 10]], [[0, 7.0001]], 0.7) == (1.0, 1.0)


def test_localization_scores_exact_averages() -> None:
    gt = {"a": {"timestamps": [[0, 10], [10, 20]]}, "b": {"timestamps": [[0, 4]]}}
    results = {
        "a": [seg(0, 10), seg(10, 14), seg(50, 60)],  # tIoU 1 with GT 0, 0.4 with GT 1
        "b": [seg(0, 4), seg(0, 3)],  # tIoU 1 and 0.75
    }
    s = localization_scores(gt, results, tious=[0.3, 0.5, 0.8], warn=False)
    pa = {0.3: 2 / 3, 0.5: 1 / 3, 0.8: 1 / 3}
    ra = {0.3: 1.0, 0.5: 0.5, 0.8: 0.5}
    pb = {0.3: 1.0, 0.5: 1.0, 0.8: 0.5}
    rb = {0.3: 1.0, 0.5: 1.0, 0.8: 1.0}
    for t in (0.3, 0.5, 0.8):
        assert s["per_threshold"][str(t)] == {
            "Precision": pytest.approx((pa[t] + pb[t]) / 2),
            "Recall": pytest.approx((ra[t] + rb[t]) / 2),
        }
        assert s["per_video"]["a"][f"Precision@{t}"] == pytest.approx(pa[t])
        assert s["per_video"]["b"][f"Recall@{t}"] == pytest.approx(rb[t])
    p = sum(pa[t] + pb[t] for t in pa) / 6
    r = sum(ra[t] + rb[t] for t in ra) / 6
    assert s["Precision"] == pytest.approx(p) and s["Recall"] == pytest.approx(r)
    assert s["F1"] == pytest.approx(2 * p * r / (p + r))
    va = s["per_video"]["a"]
    assert va["Precision"] == pytest.approx(4 / 9) and va["Recall"] == pytest.approx(2 / 3)
    assert va["F1"] == pytest.approx(2 * (4 / 9) * (2 / 3) / (4 / 9 + 2 / 3))
    assert set(s) == {"Precision", "Recall", "F1", "per_threshold", "per_video"}


def test_localization_scores_proposal_cap_and_zero_scores() -> None:
    gt = {"a": {"timestamps": [[0, 10]]}}
    results = {"a": [seg(50, 60), seg(0, 10)]}
    assert localization_scores(gt, results, max_proposals=1, warn=False)["F1"] == 0.0
    s = localization_scores(gt, results, max_proposals=2, warn=False)
    assert (s["Precision"], s["Recall"]) == (0.5, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        localization_scores(gt, results)  # nothing missing: no warning
        s = localization_scores(gt, {}, warn=False)
    assert (s["Precision"], s["Recall"], s["F1"]) == (0.0, 0.0, 0.0)
    assert s["per_video"]["a"]["F1"] == 0.0


def test_localization_warns_once_naming_five_missing_videos() -> None:
    gt = {v: {"timestamps": [[0, 1]]} for v in "gfedcba"}
    with pytest.warns(UserWarning) as got:
        localization_scores(gt, {"g": [seg(0, 1)], "f": []})
    assert [str(w.message) for w in got] == [
        "6 ground-truth video(s) have no predictions and score 0: a, b, c, d, e"
    ]


# ---------------------------------------------------------------- input checks


GT = {
    "a": {"duration": 20, "timestamps": [[0, 10], [10, 20]], "sentences": ["x", "y"]},
    "b": {"duration": 5, "timestamps": [[0, 5]], "sentences": ["z"]},
    "c": {"duration": 5, "timestamps": [[0, 5]], "sentences": ["z"]},
}


def test_check_inputs_returns_clean_copies_and_no_warning_for_clean_input() -> None:
    gt = {"a": {"duration": 20, "timestamps": [[0, 10]], "sentences": ["x"], "extra": 1}}
    items = [seg(0, 10), seg(10, 20)]
    clean_gt, results, w = check_inputs(gt, pred({"a": items}))
    assert clean_gt == {"a": {"duration": 20, "timestamps": [[0, 10]], "sentences": ["x"]}}
    assert results == {"a": items} and results["a"] is not items
    assert w == []
    _, _, w = check_inputs({"a": {"timestamps": [[0, 1]], "sentences": ["x"]}}, pred({"a": []}))
    assert w == [
        "1 video(s) with an empty prediction list (a): scored 0 everywhere (the reference "
        "precision code crashes or reuses a stale count here)"
    ]


def test_check_inputs_warnings_exactly() -> None:
    results = {
        "a": [seg(0, 10), seg(0, 10), seg(12, 4, "r"), seg(15, 40, "o"), seg(-1, 3, "n")],
        "c": [],
        "zzz": [seg(0, 1)],
    }
    gt = {**GT, "a": {**GT["a"], "timestamps": [[0, 10], [20, 10]]}}
    _, _, w = check_inputs(gt, {"results": results}, max_proposals=2)
    assert w == [
        "prediction file lacks ['version', 'external_data'] (the reference evaluator rejects it)",
        "1 GT video(s) missing from the predictions (b): they score 0 in the dense-captioning "
        "metrics and are left out of SODA_c (as the references)",
        "1 video(s) with an empty prediction list (c): scored 0 everywhere (the reference "
        "precision code crashes or reuses a stale count here)",
        "1 predicted video id(s) not in the GT are ignored: zzz",
        "1 predicted and 1 GT segment(s) have start > end: kept as given (the reference tIoU "
        "then never counts them as overlapping)",
        "2 predicted segment(s) lie outside [0, duration]: not clipped (the reference never "
        "reads the duration)",
        "1 duplicate predicted segment(s): each is counted, as in the reference",
        "3 prediction(s) beyond the first 2 per video are dropped",
    ]


def test_check_inputs_lists_five_ids_then_dots() -> None:
    gt = {f"v{i}": {"timestamps": [[0, 1]], "sentences": ["x"]} for i in range(7)}
    _, _, w = check_inputs(gt, pred({"v0": [seg(0, 1)]}))
    assert w[0].startswith("6 GT video(s) missing from the predictions (v1, v2, v3, v4, v5 ...)")
    _, _, w = check_inputs(gt, pred({f"v{i}": [seg(0, 1)] for i in range(2, 7)}))
    assert w[0].startswith("2 GT video(s) missing from the predictions (v0, v1): they")
    unknown = {f"u{i}": [seg(0, 1)] for i in range(5)}
    _, _, w = check_inputs(gt, pred({**{f"v{i}": [seg(0, 1)] for i in range(7)}, **unknown}))
    assert w == ["5 predicted video id(s) not in the GT are ignored: u0, u1, u2, u3, u4"]


def test_check_inputs_unknown_ids_are_judged_against_every_gt_file() -> None:
    gt = {"a": {"timestamps": [[0, 1]], "sentences": ["x"]}}
    _, _, w = check_inputs(gt, pred({"a": [seg(0, 1)], "b": [seg(0, 1)]}), all_gt_ids={"a", "b"})
    assert w == []
    _, _, w = check_inputs(gt, pred({"a": [seg(0, 1)]}), all_gt_ids=set())
    assert w == ["1 predicted video id(s) not in the GT are ignored: a"]


def test_check_inputs_duration_bounds() -> None:
    gt = {"a": {"duration": 10, "timestamps": [[0, 10]], "sentences": ["x"]}}
    inside = [seg(0, 10), seg(0, 0)]
    assert check_inputs(gt, pred({"a": inside}))[2] == []
    for bad in (seg(0, 10.5), seg(-0.5, 3)):
        assert "1 predicted segment(s) lie outside" in check_inputs(gt, pred({"a": [bad]}))[2][0]
    no_duration = {"a": {"duration": None, "timestamps": [[0, 10]], "sentences": ["x"]}}
    assert check_inputs(no_duration, pred({"a": [seg(0, 99)]}))[2] == []
    assert check_inputs(no_duration, pred({"zz": [seg(0, 99)]}))[2][1].startswith("1 predicted")


def test_check_inputs_duplicates_are_same_times_and_sentence() -> None:
    gt = {"a": {"timestamps": [[0, 10]], "sentences": ["x"]}}
    items = [seg(0, 10, "x"), seg(0, 10, "y"), seg(0.0, 10.0, "x"), seg(0, 9, "x")]
    assert check_inputs(gt, pred({"a": items}))[2] == [
        "1 duplicate predicted segment(s): each is counted, as in the reference"
    ]
    # the same segment in two videos is no duplicate
    gt2 = {**gt, "b": gt["a"]}
    assert check_inputs(gt2, pred({"a": items[:1], "b": items[:1]}))[2] == []


@pytest.mark.parametrize(
    ("gt", "prediction", "message"),
    [
        ({}, pred({}), "F: ground truth must be a non-empty object {video_id: {...}}"),
        ([1], pred({}), "F: ground truth must be a non-empty object {video_id: {...}}"),
        (GT, {"version": 1}, "P: predictions need a 'results' object {video_id: [...]}"),
        (GT, {"results": [1]}, "P: predictions need a 'results' object {video_id: [...]}"),
        (
            {"a": [1]},
            pred({}),
            "F: ground truth 'a': needs equally long non-empty 'timestamps' and 'sentences' lists",
        ),
        (
            {"a": {"timestamps": [[0, 1]], "sentences": "x"}},
            pred({}),
            "F: ground truth 'a': needs equally long non-empty 'timestamps' and 'sentences' lists",
        ),
        (
            {"a": {"timestamps": (0, 1), "sentences": ["x"]}},
            pred({}),
            "F: ground truth 'a': needs equally long non-empty 'timestamps' and 'sentences' lists",
        ),
        (
            {"a": {"timestamps": [[0, 1]], "sentences": ["x", "y"]}},
            pred({}),
            "F: ground truth 'a': needs equally long non-empty 'timestamps' and 'sentences' lists",
        ),
        (
            {"a": {"timestamps": [], "sentences": []}},
            pred({}),
            "F: ground truth 'a': needs equally long non-empty 'timestamps' and 'sentences' lists",
        ),
        (
            {"a": {"timestamps": [[0, 1, 2]], "sentences": ["x"]}},
            pred({}),
            "F: ground truth 'a': bad timestamp [0, 1, 2]",
        ),
        (
            {"a": {"timestamps": [[0, float("nan")]], "sentences": ["x"]}},
            pred({}),
            "F: ground truth 'a': bad timestamp [0, nan]",
        ),
        (
            {"a": {"timestamps": [[True, 1]], "sentences": ["x"]}},
            pred({}),
            "F: ground truth 'a': bad timestamp [True, 1]",
        ),
        (
            {"a": {"timestamps": ["01"], "sentences": ["x"]}},
            pred({}),
            "F: ground truth 'a': bad timestamp '01'",
        ),
        (
            {"a": {"timestamps": [[0, 1]], "sentences": [1]}},
            pred({}),
            "F: ground truth 'a': sentences must be strings",
        ),
        (GT, pred({"a": {}}), "P: predictions 'a': expected a list of segments"),
        (GT, pred({"a": [[0, 1]]}), "P: predictions 'a': bad timestamp in [0, 1]"),
        (
            GT,
            pred({"a": [{"timestamp": [0, "1"], "sentence": "x"}]}),
            "P: predictions 'a': bad timestamp in {'timestamp': [0, '1'], 'sentence': 'x'}",
        ),
        (
            GT,
            pred({"a": [{"timestamp": [0, float("inf")], "sentence": "x"}]}),
            "P: predictions 'a': bad timestamp in {'timestamp': [0, inf], 'sentence': 'x'}",
        ),
        (
            GT,
            pred({"a": [{"timestamp": (0, 1, 2), "sentence": "x"}]}),
            "P: predictions 'a': bad timestamp in {'timestamp': (0, 1, 2), 'sentence': 'x'}",
        ),
        (
            GT,
            pred({"a": [{"timestamp": [0, 1]}]}),
            "P: predictions 'a': 'sentence' must be a string",
        ),
    ],
)
def test_check_inputs_errors_exactly(gt: Any, prediction: Any, message: str) -> None:
    with pytest.raises(ValueError) as got:
        check_inputs(gt, prediction, where="F: ", pred_where="P: ")
    assert str(got.value) == message


def test_check_inputs_accepts_tuple_timestamps() -> None:
    gt = {"a": {"timestamps": [(0, 1)], "sentences": ["x"]}}
    items = [{"timestamp": (0.0, 1), "sentence": "x"}]
    assert check_inputs(gt, pred({"a": items}))[1] == {"a": items}


# ---------------------------------------------------------------- the language metrics' pairing


class Recorder:
    """A tokenizer that lower-cases and records what it was asked to prepare."""

    def __init__(self) -> None:
        self.prepared: list[list[str]] = []

    def prepare(self, sentences: list[str]) -> None:
        self.prepared.append(list(sentences))

    def __call__(self, s: str) -> str:
        return s.lower()


class FakeMeteor:
    """METEOR stand-in (the jar is `test_eval_dense.py`'s): a pair scores the unigram F1 of its
    hypothesis against its best reference, a group the mean of its pairs; records what
    ``prepare_async`` was handed (the pairs the JVM precomputes while Python scores the rest)."""

    def __init__(self) -> None:
        self.prepared: set[Any] = set()

    @staticmethod
    def score(pair: Any) -> float:
        hyp, refs = pair
        h = hyp.split()

        def f1(ref: str) -> float:
            r = ref.split()
            common = len(set(h) & set(r))
            return 2 * common / (len(h) + len(r)) if h and r else 0.0

        return max(f1(r) for r in refs)

    def prepare_async(self, pairs: Any) -> None:
        self.prepared |= set(pairs)

    def evaluate(self, groups: Any) -> list[tuple[float, list[float]]]:
        out = []
        for g in groups:
            assert g, "METEOR needs at least one pair per group"
            seg = [self.score(p) for p in g]
            out.append((sum(seg) / len(seg), seg))
        return out

    def segment_scores(self, pairs: Any) -> list[float]:
        return self.evaluate([list(pairs)])[0][1] if pairs else []


@pytest.fixture
def meteor() -> FakeMeteor:
    return FakeMeteor()


def test_dense_scores_pairs_and_averages(meteor: Any) -> None:
    from hivid.evaluation.coco import bleu, cider_d

    gt = {
        "a": {
            "duration": 60,
            "timestamps": [[0, 10], [10, 20]],
            "sentences": ["A red shoe on a table", "The blue shoe is shown"],
        },
        "b": {"duration": 9, "timestamps": [[0, 9]], "sentences": ["A hat"]},
    }
    preds = [
        seg(0, 10, "a red shoe on the table"),  # GT 0 at every threshold
        seg(11, 20, "the blue shoe is shown"),  # GT 1: tIoU 0.9 - 1e-9 (>= 0.5, < 0.9)
        seg(40, 50, "nothing here"),  # overlaps nothing: paired with GARBAGE
    ]
    tok = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = dense.dense_scores(gt, pred({"a": preds}), tok, meteor, tious=(0.5, 0.9))
    assert out["warnings"] == [
        "1 GT video(s) missing from the predictions (b): they score 0 in the dense-captioning "
        "metrics and are left out of SODA_c (as the references)"
    ]
    assert out["videos"] == 2 and out["SODA_c_videos"] == 1
    g0, g1 = "a red shoe on a table", "the blue shoe is shown"
    h0, h1, h2 = "a red shoe on the table", "the blue shoe is shown", "nothing here"
    pairs = {
        0.5: [(h0, (g0,)), (h1, (g1,)), (h2, (GARBAGE.lower(),))],
        0.9: [(h0, (g0,)), (h1, (GARBAGE.lower(),)), (h2, (GARBAGE.lower(),))],
    }
    # every pair scored was handed to the JVM up front, SODA's (GT as hypothesis) included
    assert {p for ps in pairs.values() for p in ps} <= meteor.prepared
    assert (g0, (h0,)) in meteor.prepared and (g1, (h1,)) in meteor.prepared
    m = {t: s for t, (s, _) in zip(pairs, meteor.evaluate(list(pairs.values())), strict=True)}
    for t, ps in pairs.items():
        refs, cands = [list(r) for _, r in ps], [h for h, _ in ps]
        want = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], bleu(refs, cands), strict=True))
        want["CIDEr"] = cider_d(refs, cands)[0]
        want["METEOR"] = m[t]
        got = out["per_threshold"][str(t)]
        for k, v in want.items():
            assert got[k] == pytest.approx(v / 2, abs=1e-9), (t, k)  # video b scores 0
    assert out["per_threshold"]["0.5"]["Recall"] == pytest.approx(1 / 2)
    assert out["per_threshold"]["0.9"]["Recall"] == pytest.approx(1 / 4)
    assert out["per_threshold"]["0.9"]["Precision"] == pytest.approx(1 / 6)
    assert out["per_video"]["b"] == {
        "Bleu_1": 0.0,
        "Bleu_2": 0.0,
        "Bleu_3": 0.0,
        "Bleu_4": 0.0,
        "METEOR": 0.0,
        "ROUGE_L": 0.0,
        "CIDEr": 0.0,
        "Precision": 0.0,
        "Recall": 0.0,
        "F1": 0.0,
    }
    va = out["per_video"]["a"]
    assert va["METEOR"] == pytest.approx((m[0.5] + m[0.9]) / 2)
    assert va["Recall"] == pytest.approx(3 / 4) and va["Precision"] == pytest.approx(1 / 2)
    assert va["F1"] == pytest.approx(2 * 0.75 * 0.5 / 1.25)
    assert 0 < va["SODA_c"] <= 1
    for k in ("Bleu_1", "METEOR", "CIDEr", "ROUGE_L", "Precision", "Recall"):
        assert out[k] == pytest.approx(
            (out["per_threshold"]["0.5"][k] + out["per_threshold"]["0.9"][k]) / 2
        ), k
    p, r = out["Precision"], out["Recall"]
    assert out["F1"] == pytest.approx(2 * p * r / (p + r))
    assert out["SODA_c"] == pytest.approx(va["SODA_c"])
    # every sentence is prepared once up front, GARBAGE first
    assert tok.prepared[0] == [
        GARBAGE,
        *gt["a"]["sentences"],
        "A hat",
        *(p["sentence"] for p in preds),
    ]


def test_dense_scores_identical_prediction_is_perfect_and_soda_optional(meteor: Any) -> None:
    gt = {"a": {"timestamps": [[0, 10]], "sentences": ["a red shoe on a wooden table"]}}
    p = pred({"a": [seg(0, 10, "a red shoe on a wooden table")]})
    out = dense.dense_scores(gt, p, Recorder(), meteor, tious=(0.5,), soda=False)
    assert "SODA_c" not in out and "SODA_c_videos" not in out
    assert out["Bleu_4"] == pytest.approx(1.0, abs=1e-6)
    assert out["Precision"] == out["Recall"] == out["F1"] == 1.0
    assert out["warnings"] == [] and out["videos"] == 1
    out = dense.dense_scores([gt], p, Recorder(), meteor, tious=(0.5,))
    assert out["SODA_c"] == pytest.approx(out["METEOR"], abs=1e-6)
    with pytest.raises(ValueError, match=r"^no ground-truth file given$"):
        dense.dense_scores([], p, Recorder(), meteor)


def test_dense_scores_names_the_files_in_errors(meteor: Any) -> None:
    gt = {"a": {"timestamps": [[0, 10]], "sentences": ["x"]}}
    with pytest.raises(ValueError, match=r"^g2\.json: ground truth 'b': bad timestamp \[0\]$"):
        dense.dense_scores(
            [gt, {"b": {"timestamps": [[0]], "sentences": ["x"]}}],
            pred({"a": [seg(0, 1)]}),
            Recorder(),
            meteor,
            names=["g1.json", "g2.json", "p.json"],
        )
    with pytest.raises(ValueError, match=r"^GT file 2: ground truth 'b'"):
        dense.dense_scores(
            [gt, {"b": {"timestamps": [[0]], "sentences": ["x"]}}],
            pred({"a": [seg(0, 1)]}),
            Recorder(),
            meteor,
        )
    with pytest.raises(ValueError, match=r"^p\.json: predictions 'a': expected a list"):
        dense.dense_scores(gt, pred({"a": 1}), Recorder(), meteor, names=["g.json", "p.json"])


def test_dense_scores_proposal_cap(meteor: Any) -> None:
    gt = {"a": {"timestamps": [[0, 10]], "sentences": ["a red shoe"]}}
    p = pred({"a": [seg(30, 40, "nothing"), seg(0, 10, "a red shoe")]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = dense.dense_scores(gt, p, Recorder(), meteor, tious=(0.5,), max_proposals=1)
    assert (cut["Precision"], cut["Recall"], cut["METEOR"]) == (0.0, 0.0, 0.0)
    full = dense.dense_scores(gt, p, Recorder(), meteor, tious=(0.5,), max_proposals=2)
    assert (full["Precision"], full["Recall"]) == (0.5, 1.0) and full["METEOR"] > 0.3


def test_two_gt_files_best_file_per_video(meteor: Any) -> None:
    g1 = {"a": {"timestamps": [[0, 10], [10, 20]], "sentences": ["red shoe", "blue shoe"]}}
    g2 = {
        "a": {"timestamps": [[0, 10]], "sentences": ["a red shoe"]},
        "b": {"timestamps": [[0, 5]], "sentences": ["a hat"]},
    }
    p = pred({"a": [seg(0, 10, "red shoe")], "b": [seg(0, 5, "a hat"), seg(10, 12, "x")]})
    out = dense.dense_scores([g1, g2], p, Recorder(), meteor, tious=(0.5,))
    # a: precision 1 in both files, recall 1/2 (file 1) or 1 (file 2): the best of each
    assert out["per_video"]["a"]["Precision"] == 1.0 and out["per_video"]["a"]["Recall"] == 1.0
    assert out["per_video"]["b"]["Precision"] == 0.5 and out["per_video"]["b"]["Recall"] == 1.0
    assert out["Precision"] == 0.75 and out["Recall"] == 1.0
    assert out["F1"] == pytest.approx(2 * 0.75 / 1.75)
    assert out["videos"] == 2 and out["SODA_c_videos"] == 2
    assert out["warnings"] == []
    per_file = [
        dense.soda_c(g1, {"a": p["results"]["a"]}, Recorder(), meteor),
        dense.soda_c(g2, p["results"], Recorder(), meteor),
    ]
    assert out["SODA_c"] == pytest.approx(
        (per_file[0]["a"] + (per_file[1]["a"] + per_file[1]["b"]) / 2) / 2
    )
    assert out["per_video"]["a"]["SODA_c"] == pytest.approx(
        (per_file[0]["a"] + per_file[1]["a"]) / 2
    )
    assert out["per_video"]["b"]["SODA_c"] == pytest.approx(per_file[1]["b"])
