"""Self-checks of the reference-semantics evaluators (``tests/eval_reference.py``)."""

from __future__ import annotations

import numpy as np

from tests.eval_reference import recursive_dp

# --------------------------------------------------------------------------------------------
# self-checks of the yardstick (fast)
# --------------------------------------------------------------------------------------------


def test_recursive_dp_is_a_max_weight_monotone_matching() -> None:
    import itertools

    rng = np.random.default_rng(0)
    for _ in range(30):
        m, n = rng.integers(1, 5, size=2)
        w = rng.random((m, n)) * (rng.random((m, n)) > 0.3)
        best = 0.0
        for k in range(1, min(m, n) + 1):
            for rows in itertools.combinations(range(m), k):
                for cols in itertools.combinations(range(n), k):
                    best = max(best, float(sum(w[r, c] for r, c in zip(rows, cols, strict=True))))
        assert abs(recursive_dp(w) - best) < 1e-12
