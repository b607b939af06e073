from __future__ import annotations

import pytest

from hivid.evaluation.dense import localization_scores, tiou, video_precision_recall


def test_tiou_matches_reference_formula() -> None:
    assert tiou([0, 10], [0, 10]) == pytest.approx(1.0)
    assert tiou([0, 10], [5, 15]) == pytest.approx(5 / 15)
    assert tiou([0, 1], [2, 3]) == 0.0
    # union is min(hull, len1 + len2): disjoint-but-touching intervals give 0, not a negative
    assert tiou([0, 2], [2, 4]) == 0.0


def test_threshold_is_strict() -> None:
    # tIoU exactly 0.5 (up to the 1e-8) does not count at t = 0.5
    p, r = video_precision_recall([[0, 10]], [[0, 5]], 0.5)
    assert (p, r) == (0.0, 0.0)
    p, r = video_precision_recall([[0, 10]], [[0, 5]], 0.3)
    assert (p, r) == (1.0, 1.0)


def test_many_to_many_and_missing_videos() -> None:
    gt = {
        "a": {"timestamps": [[0, 10], [10, 20]]},
        "b": {"timestamps": [[0, 5]]},
    }
    pred = {"a": [{"timestamp": [0, 10], "sentence": "x"}, {"timestamp": [0, 9], "sentence": "y"}]}
    with pytest.warns(UserWarning, match="no predictions"):
        s = localization_scores(gt, pred, tious=[0.5])
    # video a: both predictions hit GT 0, GT 1 missed -> P 1.0, R 0.5; video b: 0, 0
    assert s["Precision"] == pytest.approx(0.5)
    assert s["Recall"] == pytest.approx(0.25)
    assert s["F1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert s["per_video"]["b"]["F1"] == 0.0


def test_predicted_videos_outside_gt_are_ignored() -> None:
    gt = {"a": {"timestamps": [[0, 10]]}}
    pred = {
        "a": [{"timestamp": [0, 10], "sentence": "x"}],
        "zzz": [{"timestamp": [0, 1], "sentence": "y"}],
    }
    s = localization_scores(gt, pred)
    assert s["Precision"] == pytest.approx(1.0) and s["Recall"] == pytest.approx(1.0)
