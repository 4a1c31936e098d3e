"""Interleaved latency: several models timed in alternating rounds, each relative to the first.

A busy machine slows every model timed while it is busy; timed one after the other, two models
see different interference and their ratio moves with it. Timed in rounds A B C A B C …, each
round's models see nearly the same machine, so the per-round ratio p50(model) / p50(first model)
keeps its value when the raw milliseconds do not.

- :func:`interleaved_p50`: ``rounds`` rounds; in each, every runner in turn gets ``warmup``
  untimed calls and a timed block (:func:`facebench.probes.latency.measure_latency`); the
  block's p50 in ms is that round's value.
- :func:`relative_latency`: per round, p50(model) / p50(reference); the median over rounds and
  a distribution-free confidence interval for that median from order statistics
  (:func:`median_ci_ranks`: the binomial interval, coverage ≥ ``confidence``, exact coverage
  recorded).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from facebench.probes.latency import measure_latency

#: Fewest rounds with a 95 % order-statistic interval for the median (coverage 1 − 2/2⁶).
MIN_ROUNDS = 6
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Timed:
    """One model in the rotation: its call, its sync (or None) and its batch size."""

    fn: Callable[[], Any]
    sync: Callable[[], Any] | None
    batch: int


def interleaved_p50(
    runners: Sequence[Timed],
    rounds: int,
    *,
    warmup: int = 2,
    min_iters: int = 5,
    min_seconds: float = 0.1,
    quiet: Callable[[], AbstractContextManager[Any]] | None = None,
    on_round: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """p50 (ms) of each runner in each round: ``out[round][runner]``, runners timed in order."""
    if rounds < 1 or not runners:
        raise ValueError("need at least one round and one runner")
    out: list[list[float]] = []
    for r in range(rounds):
        out.append([measure_latency(t.fn, warmup=warmup, min_iters=min_iters,
                                    min_seconds=min_seconds, sync=t.sync, batch=t.batch,
                                    quiet=quiet).p50_ms
                    for t in runners])
        if on_round is not None:
            on_round(r + 1)
    return out


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float] | None:
    """1-based ranks ``(lo, hi)`` of the order statistics bounding the median with coverage at
    least ``confidence`` (the narrowest symmetric binomial interval), and that exact coverage
    ``1 − 2·P(Bin(n, ½) < lo)``; None when ``n`` is too small for any."""
    best = None
    below = 0.0  # P(Bin(n, 1/2) < k)
    for k in range(1, n // 2 + 1):
        below += math.comb(n, k - 1) / 2**n
        coverage = 1.0 - 2.0 * below
        if coverage < confidence:
            break
        best = (k, n - k + 1, coverage)
    return best


@dataclass(frozen=True)
class Relative:
    """One model's latency relative to the reference over interleaved rounds."""

    ratio: float  # median over rounds of p50(model) / p50(reference)
    ci_low: float | None
    ci_high: float | None
    coverage: float | None  # exact coverage of [ci_low, ci_high]
    ratios: tuple[float, ...]  # per round

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratios": list(self.ratios)}


def relative_latency(p50_ms: Sequence[Sequence[float]], reference: int = 0,
                     confidence: float = CONFIDENCE) -> list[Relative]:
    """Each runner's :class:`Relative` to runner ``reference`` from ``p50_ms[round][runner]``
    (the reference's own ratios are all 1)."""
    table = np.asarray(p50_ms, dtype=np.float64)
    if table.ndim != 2 or table.size == 0 or not (table > 0).all():
        raise ValueError("need a rounds × runners table of positive p50s")
    ranks = median_ci_ranks(table.shape[0], confidence)
    out = []
    for j in range(table.shape[1]):
        ratios = table[:, j] / table[:, reference]
        ordered = np.sort(ratios)
        lo = hi = cov = None
        if ranks is not None:
            lo, hi, cov = float(ordered[ranks[0] - 1]), float(ordered[ranks[1] - 1]), ranks[2]
        out.append(Relative(float(np.median(ratios)), lo, hi, cov,
                            tuple(float(v) for v in ratios)))
    return out
