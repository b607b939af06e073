"""dense.py's pure pieces worked by hand (no METEOR jar): with two ground-truth files (val_1 +
val_2 style) each video and threshold gets the best file's precision and, separately, the best
file's recall; SODA_c's GT order and pre-tokenized GT."""

from __future__ import annotations

import warnings

import pytest

from hivid.evaluation.dense import _best_file_localization, _mean

# v: file A has one event [0, 10], file B two events [0, 5], [5, 10]; the prediction is [0, 5]
# (tIoU 0.5 with A's event, 1.0 with B's first). u: in both files, no prediction for it at all.
A = {"v": {"timestamps": [[0.0, 10.0]]}, "u": {"timestamps": [[0.0, 4.0]]}}
B = {"v": {"timestamps": [[0.0, 5.0], [5.0, 10.0]]}, "u": {"timestamps": [[0.0, 4.0]]}}
GT = {"v": {}, "u": {}}
CUT = {"v": [{"timestamp": [0.0, 5.0]}, {"timestamp": [20.0, 30.0]}]}


def test_best_precision_and_best_recall_per_video() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing video is not warned about again here
        out = _best_file_localization([A, B], GT, CUT, (0.4, 0.7), max_proposals=1)
    v = out["per_video"]["v"]
    # max_proposals=1 keeps [0, 5] only: A precision 1 / recall 1 at 0.4, 0 / 0 at 0.7;
    # B precision 1 at both, recall 1/2 at both
    assert v == {
        "Precision@0.4": 1.0,
        "Recall@0.4": 1.0,
        "Precision@0.7": 1.0,
        "Recall@0.7": 0.5,
        "Precision": 1.0,
        "Recall": 0.75,
        "F1": pytest.approx(2 * 0.75 / 1.75),
    }
    assert out["per_video"]["u"] == {
        "Precision@0.4": 0.0,
        "Recall@0.4": 0.0,
        "Precision@0.7": 0.0,
        "Recall@0.7": 0.0,
        "Precision": 0.0,
        "Recall": 0.0,
        "F1": 0.0,
    }
    assert out["per_threshold"] == {
        "0.4": {"Precision": 0.5, "Recall": 0.5},
        "0.7": {"Precision": 0.5, "Recall": 0.25},
    }


def test_all_proposals_count_without_a_cap() -> None:
    out = _best_file_localization([A, B], GT, CUT, (0.4,), max_proposals=1000)
    assert out["per_video"]["v"]["Precision@0.4"] == 0.5  # [20, 30] matches nothing
    # at 0.7 only B matches [0, 5]: precision 1/2, recall 1/2 (P + R = 1 still has an F1)
    row = _best_file_localization([A, B], GT, CUT, (0.7,), 1000)["per_video"]["v"]
    assert (row["Precision"], row["Recall"], row["F1"]) == (0.5, 0.5, 0.5)
    low = {"v": [{"timestamp": [0.0, 1.0]}]}  # tIoU 0.1 / 0.2: nothing matched in either file
    row = _best_file_localization([A, B], GT, low, (0.4,), 1000)["per_video"]["v"]
    assert (row["Precision"], row["Recall"], row["F1"]) == (0.0, 0.0, 0.0)


def test_one_file_is_its_own_localization() -> None:
    out = _best_file_localization([A], GT, CUT, (0.4,), 1000)
    assert set(out) == {"Precision", "Recall", "F1", "per_threshold", "per_video"}
    assert out["per_video"]["v"]["Recall@0.4"] == 1.0


def test_mean_of_nothing_is_zero() -> None:
    assert _mean([]) == 0.0
    assert _mean([0.25, 0.75]) == 0.5


class _Words:
    """Tokenizer stand-in: lower-cases (the real one's prepare/__call__ interface)."""

    def prepare(self, sentences: list[str]) -> None:
        self.prepared = list(sentences)

    def __call__(self, s: str) -> str:
        return s.lower()


class _Exact:
    """METEOR stand-in for pure tests: 1 when hypothesis and reference are the same text."""

    def segment_scores(self, pairs: list[tuple[str, tuple[str, ...]]]) -> list[float]:
        return [1.0 if hyp == refs[0] else 0.0 for hyp, refs in pairs]


def _listed_backwards(*events: tuple[float, float, str]) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """GT with ``events`` (given in start order) listed last-first, capitalised; the prediction
    says the same words in start order."""
    gt = {
        "v": {
            "timestamps": [[s, e] for s, e, _ in reversed(events)],
            "sentences": [w.capitalize() for _, _, w in reversed(events)],
        }
    }
    pred = {"v": [{"timestamp": [s, e], "sentence": w} for s, e, w in events]}
    return gt, pred


SECOND_FIRST = ((0.0, 5.0, "first"), (5.0, 10.0, "second"))
NESTED = ((0.0, 10.0, "outer"), (2.0, 5.0, "inner"))  # [0, 10] starts first but ends last


@pytest.mark.parametrize("events", [SECOND_FIRST, NESTED], ids=["out-of-order", "nested"])
def test_soda_c_sorts_gt_events_by_their_start(
    events: tuple[tuple[float, float, str], ...],
) -> None:
    from hivid.evaluation.dense import soda_c

    gt, pred = _listed_backwards(*events)
    assert soda_c(gt, pred, _Words(), _Exact())["v"] == pytest.approx(1.0)  # type: ignore[arg-type]


def test_soda_c_uses_the_given_gt_tokens() -> None:
    from hivid.evaluation.dense import soda_c

    gt, pred = _listed_backwards(*SECOND_FIRST)
    # pre-tokenized GT (in the file's order) is used instead of tokenizing again
    tok = {"v": ["other", "first"]}
    got = soda_c(gt, pred, _Words(), _Exact(), gt_tok=tok)["v"]  # type: ignore[arg-type]
    assert got == pytest.approx(0.5)  # only "first" still matches: P = R = 1/2


def test_missing_predictions_are_warned_about_by_name() -> None:
    from hivid.evaluation.dense import localization_scores

    with pytest.warns(UserWarning) as rec:
        localization_scores(A, {"v": CUT["v"]}, (0.5,))
    (w,) = rec.list
    assert str(w.message) == "1 ground-truth video(s) have no predictions and score 0: u"


def test_default_cap_is_the_reference_1000_proposals() -> None:
    from hivid.evaluation.dense import localization_scores

    preds = [{"timestamp": [50.0, 60.0]}] * 1000 + [{"timestamp": [0.0, 10.0]}]
    out = localization_scores({"v": A["v"]}, {"v": preds}, (0.5,))
    assert out["per_video"]["v"]["Recall"] == 0.0  # the 1001st proposal is cut off
