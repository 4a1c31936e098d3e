"""Latency statistics against numpy, and the timed loop's stopping rules."""

from __future__ import annotations

import statistics
import time
import types

import numpy as np
import pytest

from facebench.probes import latency
from facebench.probes.latency import measure_cold_start, measure_latency, summarize

SAMPLES_NS = [3_100_000, 2_900_000, 3_000_000, 5_000_000, 3_050_000, 2_950_000, 12_000_000,
              3_020_000, 2_990_000, 3_010_000, 3_005_000]


@pytest.mark.parametrize("samples", [SAMPLES_NS, SAMPLES_NS[:4], [7_000_000],
                                     list(np.random.default_rng(3).integers(1e5, 1e8, 997))])
def test_summarize_matches_numpy(samples: list[int]) -> None:
    ms = np.asarray(samples, dtype=np.float64) / 1e6
    st = summarize(samples, batch=4, wall_s=2.5)
    assert st.samples == len(samples)
    assert st.mean_ms == pytest.approx(ms.mean(), rel=1e-12)
    assert st.min_ms == ms.min() and st.max_ms == ms.max()
    for q in (50, 90, 95, 99):
        assert getattr(st, f"p{q}_ms") == pytest.approx(np.percentile(ms, q), rel=1e-12)
    if len(samples) > 1:
        assert st.std_ms == pytest.approx(statistics.stdev(ms.tolist()), rel=1e-9)
    else:
        assert st.std_ms is None
    assert st.throughput == pytest.approx(4 * len(samples) / 2.5)
    assert st.samples_ms == pytest.approx(ms.tolist())


def test_percentile_method_by_hand() -> None:
    """'linear': rank p/100·(n−1) interpolated: n=11 → p90 at rank 9 exactly, p95 at 9.5."""
    st = summarize(SAMPLES_NS)
    srt = sorted(s / 1e6 for s in SAMPLES_NS)
    assert st.p50_ms == srt[5]
    assert st.p90_ms == pytest.approx(srt[9])
    assert st.p95_ms == pytest.approx((srt[9] + srt[10]) / 2)
    assert st.throughput == pytest.approx(len(SAMPLES_NS) / (sum(SAMPLES_NS) / 1e9))


def test_metric_names() -> None:
    m = summarize(SAMPLES_NS, batch=8).metrics()
    assert set(m) == {f"latency.b8.{k}" for k in ("mean_ms", "std_ms", "min_ms", "p50_ms",
                                                    "p90_ms", "p95_ms", "p99_ms", "samples")
                      } | {"throughput.b8"}


class FakeClock:
    """Each call of the timed function advances time by ``step_ns``."""

    def __init__(self, step_ns: int) -> None:
        self.now, self.step, self.calls = 0, step_ns, 0

    def perf_counter_ns(self) -> int:
        return self.now

    def module(self) -> types.SimpleNamespace:
        """Stands in for the ``time`` module inside facebench.probes.latency."""
        return types.SimpleNamespace(perf_counter_ns=self.perf_counter_ns)

    def fn(self) -> None:
        self.calls += 1
        self.now += self.step


@pytest.mark.parametrize(("min_iters", "min_seconds", "expected"),
                         [(50, 0.0, 50), (50, 1.0, 100), (200, 1.0, 200), (1, 0.05, 5)])
def test_loop_needs_min_iters_and_min_seconds(
    monkeypatch: pytest.MonkeyPatch, min_iters: int, min_seconds: float, expected: int
) -> None:
    clock = FakeClock(10_000_000)  # 10 ms per run
    monkeypatch.setattr(latency, "time", clock.module())
    syncs = []
    st = measure_latency(clock.fn, warmup=7, min_iters=min_iters, min_seconds=min_seconds,
                         sync=lambda: syncs.append(1), batch=2)
    assert st.samples == expected and clock.calls == expected + 7
    assert len(syncs) == expected + 7
    assert st.wall_s == pytest.approx(expected * 0.01)
    assert st.mean_ms == pytest.approx(10.0) and st.throughput == pytest.approx(200.0)
    assert not st.capped


def test_max_seconds_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(10_000_000)
    monkeypatch.setattr(latency, "time", clock.module())
    st = measure_latency(clock.fn, warmup=0, min_iters=1000, min_seconds=0.0, max_seconds=0.3)
    assert st.samples == 30 and st.capped


def test_real_clock_loop() -> None:
    """With the real clock: both minimums hold, and each sample covers the sleep."""
    st = measure_latency(lambda: time.sleep(0.002), warmup=2, min_iters=5, min_seconds=0.05)
    assert st.samples >= 5 and st.wall_s >= 0.05
    assert st.min_ms >= 2.0
    assert st.wall_s * 1e3 >= sum(st.samples_ms)


def test_cold_start() -> None:
    class Slow:
        def __init__(self) -> None:
            time.sleep(0.02)
            self.seen = None

        def infer(self, x: np.ndarray) -> np.ndarray:
            time.sleep(0.01)
            self.seen = x
            return x

    first = np.zeros((1, 3, 4, 4), np.float32)
    engine, cold = measure_cold_start(Slow, first)
    assert engine.seen is first
    assert cold.create_ms >= 20 and cold.first_inference_ms >= 10
    assert cold.total_ms == cold.create_ms + cold.first_inference_ms
