"""Interleaved latency: the rotation order, the per-round ratios, and the median's
order-statistic confidence interval (checked against scipy's binomial distribution and a
brute-force coverage count)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from facebench.probes.interleave import (
    MIN_ROUNDS,
    Timed,
    interleaved_p50,
    median_ci_ranks,
    relative_latency,
)


@pytest.mark.parametrize("n", [1, 5, 6, 7, 9, 12, 20, 31])
def test_median_ci_ranks_match_the_binomial(n: int) -> None:
    got = median_ci_ranks(n, 0.95)
    # from the definition with scipy: the largest k with 1 - 2 P(Bin(n, 1/2) <= k - 1) >= 0.95
    ks = [k for k in range(1, n // 2 + 1) if 1 - 2 * stats.binom.cdf(k - 1, n, 0.5) >= 0.95]
    if not ks:
        assert got is None
        return
    k = max(ks)
    assert got is not None
    assert got[:2] == (k, n - k + 1)
    assert got[2] == pytest.approx(1 - 2 * stats.binom.cdf(k - 1, n, 0.5))


def test_six_rounds_is_the_fewest_with_a_95_percent_interval() -> None:
    assert median_ci_ranks(MIN_ROUNDS - 1) is None
    assert median_ci_ranks(MIN_ROUNDS) == (1, 6, pytest.approx(1 - 2 / 64))


def test_coverage_by_brute_force() -> None:
    """Over all 2⁷ sign patterns of 7 rounds around the true median, the (1, 7) interval misses
    it only when every round falls on one side: coverage 1 − 2/128, as reported."""
    n = 7
    lo, hi, coverage = median_ci_ranks(n)
    covered = 0
    for signs in itertools.product((-1.0, 1.0), repeat=n):
        x = np.sort(np.array(signs) * np.arange(1, n + 1))
        covered += x[lo - 1] <= 0 <= x[hi - 1]
    assert covered / 2**n == pytest.approx(coverage)


def test_relative_latency_from_a_hand_checked_table() -> None:
    # rounds × [reference, model]: the model is 2×, 3×, 2.5×, 2×, 4×, 2.2× the reference
    ref = [10.0, 20.0, 8.0, 5.0, 10.0, 10.0]
    model = [20.0, 60.0, 20.0, 10.0, 40.0, 22.0]
    rel = relative_latency(np.column_stack([ref, model]).tolist())
    assert rel[0].ratio == 1.0 and rel[0].ci_low == 1.0 and rel[0].ci_high == 1.0
    assert rel[1].ratios == (2.0, 3.0, 2.5, 2.0, 4.0, 2.2)
    assert rel[1].ratio == pytest.approx((2.2 + 2.5) / 2)  # median of 2, 2, 2.2, 2.5, 3, 4
    assert (rel[1].ci_low, rel[1].ci_high) == (2.0, 4.0)  # ranks 1 and 6 of 6
    assert rel[1].coverage == pytest.approx(0.96875)


def test_relative_latency_cancels_a_load_shared_by_a_round() -> None:
    """A slowdown that hits every model in a round alike (a busy machine) changes the raw p50s
    but not the ratios; that is what interleaving buys."""
    base = np.array([[3.0, 6.0, 12.0]] * 8)
    slowdown = np.array([1.0, 1.8, 1.0, 2.5, 1.3, 1.0, 1.6, 1.1])[:, None]
    quiet, busy = relative_latency(base), relative_latency(base * slowdown)
    assert [r.ratio for r in busy] == pytest.approx([r.ratio for r in quiet]) == [1, 2, 4]


def test_relative_latency_refuses_nonpositive_or_ragged() -> None:
    with pytest.raises(ValueError, match="positive"):
        relative_latency([[1.0, 0.0]] * 6)
    with pytest.raises(ValueError):
        relative_latency([])


def test_rounds_alternate_models_in_order() -> None:
    """A B C A B C …: every model's block (warm-up and timed calls) runs before the next
    model's, and every round runs the models in the same order."""
    calls: list[str] = []

    def model(name: str) -> Timed:
        return Timed(lambda: calls.append(name), None, 1)

    table = interleaved_p50([model("A"), model("B"), model("C")], 3, warmup=1, min_iters=2,
                            min_seconds=0)
    assert len(table) == 3 and all(len(row) == 3 and min(row) > 0 for row in table)
    blocks = [k for k, _ in itertools.groupby(calls)]
    assert blocks == ["A", "B", "C"] * 3
    assert calls.count("A") == 3 * (1 + 2)  # per round: 1 warm-up + 2 timed
