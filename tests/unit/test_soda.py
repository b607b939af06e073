"""SODA_c's pieces on hand-worked cases (pure numpy, no METEOR jar: fast enough for mutation)."""

from __future__ import annotations

import numpy as np
import pytest

from hivid.evaluation.dense import tiou
from hivid.evaluation.soda import max_alignment, tiou_matrix, video_soda


def test_tiou_matrix_is_the_scalar_formula_for_any_intervals() -> None:
    """Reversed and negative intervals on both sides: the only inputs where the min() with the
    summed lengths (rather than the hull) decides the union."""
    rng = np.random.default_rng(3)
    g = rng.uniform(-20, 30, (6, 2))  # unsorted rows: some reversed, some negative
    p = rng.uniform(-20, 30, (5, 2))
    m = tiou_matrix(g, p)
    assert m.shape == (6, 5)
    for i in range(6):
        for j in range(5):
            assert m[i, j] == pytest.approx(tiou(g[i], p[j]), abs=1e-12)


def test_tiou_matrix_hand_cases() -> None:
    g = np.array([[0.0, 10.0], [10.0, 20.0]])
    p = np.array([[0.0, 10.0], [5.0, 15.0], [30.0, 40.0]])
    m = tiou_matrix(g, p)
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(5 / 15)
    assert m[1, 1] == pytest.approx(5 / 15)
    assert m[1, 0] == 0.0 and m[0, 2] == 0.0 and m[1, 2] == 0.0
    # the 1e-8 in the denominator: an identical segment scores just below 1
    assert m[0, 0] < 1.0
    # a reversed GT row overlaps nothing
    r = tiou_matrix(np.array([[4.0, 2.0]]), np.array([[0.0, 6.0]]))
    assert r[0, 0] == pytest.approx(0.0)
    # negative times: GT length 6, prediction length 8, hull 10, overlap 4
    r = tiou_matrix(np.array([[-4.0, 2.0]]), np.array([[-2.0, 6.0]]))
    assert r[0, 0] == pytest.approx(4 / 10)


def test_max_alignment_hand_cases() -> None:
    assert max_alignment(np.zeros((0, 3))) == 0.0
    assert max_alignment(np.zeros((3, 0))) == 0.0
    assert max_alignment(np.array([[0.7]])) == pytest.approx(0.7)
    # order-preserving: the two 0.9s cross, so only one of them can be taken, plus the 0.5
    w = np.array([[0.1, 0.9], [0.9, 0.5]])
    assert max_alignment(w) == pytest.approx(0.9)
    w = np.array([[0.6, 0.9], [0.9, 0.5]])
    assert max_alignment(w) == pytest.approx(1.1)  # 0.6 (0, 0) + 0.5 (1, 1)
    # one-to-one: a row cannot take two columns
    assert max_alignment(np.array([[0.5, 0.5, 0.5]])) == pytest.approx(0.5)
    assert max_alignment(np.array([[0.5], [0.5], [0.5]])) == pytest.approx(0.5)
    # skipping a row or a column is allowed
    w = np.array([[0.0, 0.0, 0.8], [0.3, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert max_alignment(w) == pytest.approx(0.8)
    w = np.array([[0.2, 0.0, 0.0], [0.0, 0.0, 0.4], [0.0, 0.0, 0.0]])
    assert max_alignment(w) == pytest.approx(0.6)
    assert isinstance(max_alignment(w), float)


def test_video_soda_hand_cases() -> None:
    iou = np.array([[1.0, 0.0], [0.0, 0.5]])
    scores = np.array([[0.8, 0.9], [0.9, 0.6]])
    # alignment (0, 0) 0.8 + (1, 1) 0.3 = 1.1; P = 1.1 / 2 predictions, R = 1.1 / 2 GT events
    p, r, f = video_soda(iou, scores)
    assert (p, r) == (pytest.approx(0.55), pytest.approx(0.55))
    assert f == pytest.approx(0.55)
    # three predictions for two GT events: P divides by 3, R by 2
    iou3 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    p, r, f = video_soda(iou3, np.ones((2, 3)))
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(1.0))
    assert f == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    # negative tIoU (reversed segments) counts as no overlap, not as a penalty
    neg = np.array([[-0.5, 1.0]])
    assert video_soda(neg, np.ones((1, 2))) == (
        pytest.approx(0.5),
        pytest.approx(1.0),
        pytest.approx(2 / 3),
    )
    # a reversed pair (negative tIoU) adds nothing to the alignment, whatever its METEOR
    rev = np.array([[-0.5, 0.0], [0.0, 1.0]])
    assert video_soda(rev, np.ones((2, 2))) == (0.5, 0.5, 0.5)
    # a weak match: P + R below 1 still gives the harmonic mean, not 0
    assert video_soda(np.array([[0.5]]), np.array([[0.5]])) == (0.25, 0.25, 0.25)
    # nothing predicted, or nothing matching: zeros, never a division by zero
    assert video_soda(np.zeros((2, 0)), np.zeros((2, 0))) == (0.0, 0.0, 0.0)
    assert video_soda(np.zeros((1, 2)), np.ones((1, 2))) == (0.0, 0.0, 0.0)
