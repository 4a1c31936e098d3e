"""McNemar's exact test against scipy's binomial test, Holm's adjustment against a hand
computation and against the step-down procedure written from its definition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from facebench.metrics.significance import holm, mcnemar, mcnemar_exact


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 3), (2, 9), (9, 2), (0, 25),
                                 (17, 40), (40, 17), (120, 151), (1000, 1100), (5000, 5001)])
def test_mcnemar_exact_is_scipys_two_sided_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_mcnemar_counts_the_discordant_pairs_of_two_decision_vectors() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(500) < 0.9, rng.random(500) < 0.8
    t = mcnemar(a, b)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    assert (t.a_only, t.b_only, t.n) == (only_a, only_b, 500)
    assert t.both + t.neither == 500 - only_a - only_b
    assert t.p_value == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-9)
    assert t.p_value < 0.01  # 90 % vs 80 % right on 500 pairs: a real difference


def test_mcnemar_refuses_counts_and_arrays_that_are_not_decisions() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="boolean"):
        mcnemar(np.array([1, 0]), np.array([True, False]))
    with pytest.raises(ValueError, match="one length"):
        mcnemar(np.array([True]), np.array([True, False]))


def test_holm_matches_a_hand_computation() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max so far 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2]
    assert holm([]) == []


def _step_down_rejects(p: list[float], alpha: float) -> set[int]:
    """Holm's procedure as written: reject the smallest p while p_(i) <= alpha / (m - i + 1)."""
    m, rejected = len(p), set()
    for i, j in enumerate(sorted(range(m), key=lambda k: p[k])):
        if p[j] > alpha / (m - i):
            break
        rejected.add(j)
    return rejected


def test_holm_adjusted_p_rejects_exactly_what_the_step_down_procedure_rejects() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        p = list(rng.random(int(rng.integers(1, 12))) ** 3)
        adjusted = holm(p)
        assert all(a >= q for a, q in zip(adjusted, p, strict=True))
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, a in enumerate(adjusted) if a <= alpha} == \
                _step_down_rejects(p, alpha)


def test_holm_refuses_numbers_that_are_not_p_values() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([float("nan")])
