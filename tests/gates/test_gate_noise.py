"""Noise-aware latency gates on REAL fresh timing runs (MobileFaceNet, ORT, batch 1).

Each run is a fresh process timing 150 calls (~1 s). Identical back-to-back runs must never
fail a 10 % gate on this shared, noisy machine; a genuine slowdown (each call embeds three
images: 3× the work) must fail both the p50 and the p90 gate.

Why 3× and not 2×: another process on a 2-core box preempts a call for about one time slice,
which roughly doubles it. When that hits more than 10 % of the *baseline's* calls, its p90 lands
near 2× its median, and a 2× slowdown of the current run is then honestly inconclusive at p90
(seen in CI: p90 ratio 1.39, 98 % CI [1.14, 1.93] against a busy-raised 25 % threshold → pass).
Under a reproduction (3 bursty CPU hogs during the baseline) the p90 gate missed a 2× slowdown
in 2 of 6 pairs and a 3× one in 0 of 10, including baselines whose p90 was 2.1× their median.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest

from facebench.gates import Gate, compare_samples, evaluate_gates, gate_command
from facebench.gates.stats import bootstrap_ratio

GATES = [
    Gate.model_validate("latency.p50_ms <= baseline + 10%"),
    Gate.model_validate("latency.p90_ms <= baseline + 10%"),
]
REPEATS = 5


def _load(p: Path) -> dict[str, Any]:
    return json.loads(p.read_text())


def _samples(r: dict[str, Any]) -> list[float]:
    return r["cells"][0]["details"]["latency"]["1"]["samples_ms"]


@pytest.fixture(scope="module")
def identical_pairs(run_factory: Callable[..., Path]) -> list[tuple[dict, dict]]:
    """REPEATS pairs of identical runs, each pair back to back."""
    return [
        (_load(run_factory(f"same-a{i}")), _load(run_factory(f"same-b{i}"))) for i in range(REPEATS)
    ]


@pytest.fixture(scope="module")
def slow_pair(run_factory: Callable[..., Path]) -> tuple[Path, Path]:
    """A baseline and a run whose every call does three times the work (a 3-crop TTA slipped in)."""
    return run_factory("slow-base"), run_factory("slow-cur", "--work", "3")


def test_identical_runs_never_fail_a_10pct_gate(identical_pairs: list[tuple[dict, dict]]) -> None:
    for i, (base, cur) in enumerate(identical_pairs):
        outcomes = evaluate_gates(cur, GATES, base)
        for o in outcomes:
            s = o.stats
            assert s is not None, o.message  # compared sample distributions, not points
            print(
                f"identical #{i} {o.metric}: {o.status}: ratio {s['ratio']:.3f} "
                f"CI [{s['ci_low']:.3f}, {s['ci_high']:.3f}] p={s['p_value']:.2g} "
                f"p_any={s['p_any']:.2g} min ratio {s['floor_ratio']:.3f} "
                f"threshold {s['threshold']:.0%} {o.warnings}"
            )
        assert [o.status for o in outcomes] == ["pass", "pass"], [o.message for o in outcomes]


def test_genuine_slowdown_fails(slow_pair: tuple[Path, Path], tmp_path: Path) -> None:
    base_p, cur_p = slow_pair
    base, cur = _load(base_p), _load(cur_p)
    outcomes = evaluate_gates(cur, GATES, base)
    for o in outcomes:
        print(f"slowdown {o.metric}: {o.status}: {o.message}")
    assert [o.status for o in outcomes] == ["fail", "fail"]
    assert all(o.stats and o.stats["floor_ratio"] > 1.3 for o in outcomes)  # a ≥ 30 % slowdown
    junit = tmp_path / "junit.xml"
    code = gate_command(
        cur_p,
        str(base_p),
        junit=junit,
        record=False,
        extra_gates=["latency.p50_ms <= baseline + 10%"],
    )
    assert code == 1
    [failure] = ElementTree.parse(junit).getroot().iter("failure")
    msg = failure.get("message", "")
    assert msg.startswith("latency.p50_ms = ") and "regressed beyond <=" in msg, msg


def test_tail_only_noise_is_absorbed_by_mann_whitney(slow_pair: tuple[Path, Path]) -> None:
    """Bootstrap CI alone can exceed the bound on a noisy tail; the rank test must agree too."""
    base = _samples(_load(slow_pair[0]))
    cmp = compare_samples(base, base, 0.10, statistic="p90")
    assert not cmp.regressed and cmp.p_value > 0.5 and cmp.ratio == pytest.approx(1.0)


def test_bootstrap_is_seeded(slow_pair: tuple[Path, Path]) -> None:
    base, cur = (_samples(_load(p)) for p in slow_pair)
    a = bootstrap_ratio(np.asarray(base), np.asarray(cur), "p50", 500, seed=7)
    b = bootstrap_ratio(np.asarray(base), np.asarray(cur), "p50", 500, seed=7)
    assert np.array_equal(a, b)
    assert compare_samples(base, cur, 0.1) == compare_samples(base, cur, 0.1)


def test_higher_is_better_direction(slow_pair: tuple[Path, Path]) -> None:
    """Per-call throughput (1000 / ms) of the slow run regressed; the fast one did not."""
    base, cur = (1000.0 / np.asarray(_samples(_load(p))) for p in slow_pair)
    assert compare_samples(base, cur, 0.10, direction="higher").regressed
    assert not compare_samples(cur, base, 0.10, direction="higher").regressed


@pytest.fixture(scope="module")
def other_machine(run_factory: Callable[..., Path]) -> dict:
    """A real run whose fingerprint says it ran on another machine."""
    return _load(run_factory("other-machine", "--machine-salt", "other"))


def test_fingerprint_mismatch_warns_by_default(
    identical_pairs: list[tuple[dict, dict]], other_machine: dict
) -> None:
    base = identical_pairs[0][0]
    [o] = evaluate_gates(other_machine, GATES[:1], base)
    assert o.stats is not None and any("another machine" in w for w in o.warnings)
    assert o.status in ("pass", "fail") and "another machine" not in o.message


def test_fingerprint_mismatch_fails_when_configured(
    identical_pairs: list[tuple[dict, dict]], other_machine: dict, tmp_path: Path
) -> None:
    base = identical_pairs[0][0]
    per_gate = Gate(metric="latency.p50_ms", max_regression=0.1, on_fingerprint_mismatch="fail")
    [o] = evaluate_gates(other_machine, [per_gate], base)
    assert o.status == "fail" and "another machine" in o.message
    [o] = evaluate_gates(other_machine, GATES[:1], base, on_fingerprint_mismatch="fail")
    assert o.status == "fail"
    # per-gate "warn" overrides a global "fail"
    lenient = Gate(metric="latency.p50_ms", max_regression=10.0, on_fingerprint_mismatch="warn")
    [o] = evaluate_gates(other_machine, [lenient], base, on_fingerprint_mismatch="fail")
    assert o.status == "pass" and o.warnings
    # machine-independent metrics are compared across machines without complaint
    [o] = evaluate_gates(
        other_machine,
        [Gate.model_validate("params <= baseline + 0%")],
        base,
        on_fingerprint_mismatch="fail",
    )
    assert o.status == "pass" and not o.warnings
    # and through the CLI glue, the summary carries the warning
    other_p, base_p = tmp_path / "other.json", tmp_path / "base.json"
    other_p.write_text(json.dumps(other_machine))
    base_p.write_text(json.dumps(base))
    summary = tmp_path / "summary.md"
    code = gate_command(
        other_p,
        str(base_p),
        summary=summary,
        record=False,
        extra_gates=["latency.p50_ms <= baseline + 1000%"],
    )
    assert code == 0 and "another machine" in summary.read_text()
    code = gate_command(
        other_p,
        str(base_p),
        record=False,
        on_fingerprint_mismatch="fail",
        extra_gates=["latency.p50_ms <= baseline + 1000%"],
    )
    assert code == 1
