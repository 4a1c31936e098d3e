"""Latency probe, as defined in ``shared/docs/metrics.md``.

- Cold start (model/session creation + first inference) is measured separately
  (:func:`measure_cold_start`).
- Then ``warmup`` untimed runs, then timed runs until BOTH ``min_iters`` runs and
  ``min_seconds`` seconds are done (``max_seconds``, if given, caps the loop and wins).
- Each run is timed with ``time.perf_counter_ns`` around a synchronous call (plus ``sync()`` when
  given). With ``cuda_events=True`` each sample is the elapsed time between two
  ``torch.cuda.Event`` s recorded around the call, read after ``Event.synchronize()``.
- Statistics (:func:`summarize`): mean; std = sample standard deviation (ddof = 1, as
  pytest-benchmark and ``statistics.stdev``; ``None`` with one sample); min/max; percentiles by
  numpy's ``'linear'`` method (Hyndman & Fan type 7: rank ``p/100 * (n - 1)`` interpolated between
  neighbouring order statistics); throughput = batch × runs / wall time of the timed loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

PERCENTILE_METHOD = "linear"
PERCENTILES = (50, 90, 95, 99)
T = TypeVar("T")


@dataclass(frozen=True)
class LatencyStats:
    """Summary of a timed loop; times in milliseconds, throughput in items (images) per second."""

    samples_ns: tuple[int, ...] = field(repr=False)
    batch: int
    wall_s: float
    mean_ms: float
    std_ms: float | None
    min_ms: float
    max_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    samples: int
    throughput: float
    warmup: int = 0
    timer: str = "perf_counter_ns"
    capped: bool = False

    @property
    def samples_ms(self) -> list[float]:
        return [s / 1e6 for s in self.samples_ns]

    def metrics(self, batch_key: int | None = None) -> dict[str, float | int | None]:
        """The ``latency.b{B}.*`` and ``throughput.b{B}`` metrics of docs/results.md."""
        b = self.batch if batch_key is None else batch_key
        out: dict[str, float | int | None] = {
            f"latency.b{b}.{k}": getattr(self, k)
            for k in ("mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms")
        }
        out[f"latency.b{b}.samples"] = self.samples
        out[f"throughput.b{b}"] = self.throughput
        return out


def summarize(
    samples_ns: Any,
    *,
    batch: int = 1,
    wall_s: float | None = None,
    warmup: int = 0,
    timer: str = "perf_counter_ns",
    capped: bool = False,
) -> LatencyStats:
    """Statistics of per-run durations in nanoseconds (see module docstring for definitions).

    ``wall_s`` defaults to the sum of the samples (then throughput = batch / mean).
    """
    ns = np.asarray(samples_ns, dtype=np.int64)
    if ns.ndim != 1 or ns.size == 0:
        raise ValueError("need a non-empty 1-D sequence of durations")
    ms = ns.astype(np.float64) / 1e6
    wall = float(ns.sum()) / 1e9 if wall_s is None else float(wall_s)
    pct = np.percentile(ms, PERCENTILES, method=PERCENTILE_METHOD)
    return LatencyStats(
        samples_ns=tuple(int(v) for v in ns),
        batch=batch,
        wall_s=wall,
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else None,
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        p50_ms=float(pct[0]),
        p90_ms=float(pct[1]),
        p95_ms=float(pct[2]),
        p99_ms=float(pct[3]),
        samples=int(ms.size),
        throughput=batch * ms.size / wall if wall > 0 else float("inf"),
        warmup=warmup,
        timer=timer,
        capped=capped,
    )


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 10,
    min_iters: int = 50,
    min_seconds: float = 2.0,
    max_seconds: float | None = None,
    sync: Callable[[], Any] | None = None,
    batch: int = 1,
    cuda_events: bool = False,
    quiet: Callable[[], AbstractContextManager[Any]] | None = None,
) -> LatencyStats:
    """Time ``fn`` (one inference of ``batch`` items) per ``shared/docs/metrics.md``.

    ``sync`` is called after each run, inside the timed region (e.g. ``torch.cuda.synchronize``).
    ``cuda_events=True`` takes each sample from CUDA events instead of the host clock.
    ``quiet()`` is a context entered after the warm-up around the timed loop only (e.g.
    :meth:`facebench.probes.memory.RssSampler.paused`).
    """
    if min_iters < 1 or warmup < 0 or min_seconds < 0:
        raise ValueError("need min_iters >= 1, warmup >= 0, min_seconds >= 0")
    for _ in range(warmup):
        fn()
        if sync is not None:
            sync()
    with (quiet or nullcontext)():
        if cuda_events:
            return _measure_cuda(fn, warmup, min_iters, min_seconds, max_seconds, sync, batch)
        return _timed_loop(fn, warmup, min_iters, min_seconds, max_seconds, sync, batch)


def _timed_loop(
    fn: Callable[[], Any],
    warmup: int,
    min_iters: int,
    min_seconds: float,
    max_seconds: float | None,
    sync: Callable[[], Any] | None,
    batch: int,
) -> LatencyStats:
    clock = time.perf_counter_ns
    samples: list[int] = []
    start = clock()
    min_end = start + int(min_seconds * 1e9)
    max_end = None if max_seconds is None else start + int(max_seconds * 1e9)
    capped = False
    while True:
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        t1 = clock()
        samples.append(t1 - t0)
        if len(samples) >= min_iters and t1 >= min_end:
            break
        if max_end is not None and t1 >= max_end:
            capped = True
            break
    return summarize(
        samples, batch=batch, wall_s=(t1 - start) / 1e9, warmup=warmup, capped=capped
    )


def _measure_cuda(
    fn: Callable[[], Any],
    warmup: int,
    min_iters: int,
    min_seconds: float,
    max_seconds: float | None,
    sync: Callable[[], Any] | None,
    batch: int,
) -> LatencyStats:
    import torch

    torch.cuda.synchronize()
    clock = time.perf_counter_ns
    samples: list[int] = []
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start = clock()
    min_end = start + int(min_seconds * 1e9)
    max_end = None if max_seconds is None else start + int(max_seconds * 1e9)
    capped = False
    while True:
        begin.record()
        fn()
        end.record()
        end.synchronize()
        if sync is not None:
            sync()
        t1 = clock()
        samples.append(round(begin.elapsed_time(end) * 1e6))
        if len(samples) >= min_iters and t1 >= min_end:
            break
        if max_end is not None and t1 >= max_end:
            capped = True
            break
    return summarize(
        samples, batch=batch, wall_s=(t1 - start) / 1e9, warmup=warmup,
        timer="cuda_events", capped=capped,
    )


@dataclass(frozen=True)
class ColdStart:
    """Creation and first-inference times of a fresh engine, in milliseconds."""

    create_ms: float
    first_inference_ms: float

    @property
    def total_ms(self) -> float:
        """``cold_start_ms``: creation + first inference."""
        return self.create_ms + self.first_inference_ms


def measure_cold_start(
    create_fn: Callable[[], T],
    first_input: Any,
    *,
    sync: Callable[[], Any] | None = None,
) -> tuple[T, ColdStart]:
    """Create an engine and run its first inference (``engine.infer(first_input)``), timing each.

    In-process: library imports done before the call are not counted (import them first so that
    every cell pays the same).
    """
    clock = time.perf_counter_ns
    t0 = clock()
    engine = create_fn()
    t1 = clock()
    engine.infer(first_input)  # type: ignore[attr-defined]
    if sync is not None:
        sync()
    t2 = clock()
    return engine, ColdStart(create_ms=(t1 - t0) / 1e6, first_inference_ms=(t2 - t1) / 1e6)
