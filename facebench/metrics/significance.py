"""Significance of a difference between two classifiers on the same pairs: McNemar's exact test
and Holm's step-down adjustment across a family of tests (pure numpy/scipy, no I/O).

McNemar (1947), exact form: of the pairs the two classifiers decide differently, ``b`` only
``a`` gets right and ``c`` only ``b`` does. Under H0 (equal accuracy) each discordant pair is a
fair coin, so ``b ~ Binomial(b + c, 1/2)``; the two-sided p-value sums the probabilities of the
outcomes no likelier than ``b`` (as ``scipy.stats.binomtest(b, b + c, 0.5).pvalue`` does).
With no discordant pair there is no evidence of a difference: p = 1.

Holm (1979): sort the m p-values ascending, ``p_(i) * (m - i + 1)`` (i from 1), made monotone
with a running maximum and capped at 1. Rejecting where the adjusted p < α controls the
family-wise error rate at α for any dependence between the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (only the first
    classifier right) and ``c`` (only the second right)."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    # Binomial(n, 1/2) is symmetric: the outcomes no likelier than b are k <= min(b, c) and
    # k >= max(b, c), twice the lower tail (b == c: every outcome, p = 1)
    return min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two classifiers' per-pair decisions on the same pairs:
    ``a_only`` pairs only ``a`` got right, ``b_only`` only ``b``, ``both``/``neither`` the
    concordant ones; ``p_value`` two-sided."""

    a_only: int
    b_only: int
    both: int
    neither: int
    p_value: float

    @property
    def n(self) -> int:
        return self.a_only + self.b_only + self.both + self.neither


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test from two boolean arrays (one entry per pair: decided right)."""
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b must be 1-D of one length, got {a.shape} "
                         f"and {b.shape}")
    if a.dtype != bool or b.dtype != bool:
        raise ValueError("correct_a and correct_b must be boolean arrays")
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(~a & b))
    both = int(np.count_nonzero(a & b))
    neither = a.size - a_only - b_only - both
    return McNemar(a_only, b_only, both, neither, mcnemar_exact(a_only, b_only))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be a flat sequence, got shape {p.shape}")
    if p.size and (np.isnan(p).any() or (p < 0).any() or (p > 1).any()):
        raise ValueError("p-values must be numbers in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return [float(v) for v in out]
