"""Gates across two machines compare normalised latency (latency × speed index / reference) and
say so; on one machine, or under ``on_fingerprint_mismatch: fail``, they compare raw ms.

The current run is a REAL efficiency cell of the shared MobileFaceNet; the baseline is the same
cell as a machine twice as fast would have measured it: every latency halved and its speed index
doubled, so its normalised latency is the current one's (hand-checked transformation)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest

from facebench.engines import EngineConfig, ModelSource
from facebench.gates.evaluate import evaluate_gates, normalised_cell
from facebench.gates.spec import Gate
from facebench.probes.efficiency import normalised_metrics, run_efficiency
from facebench.probes.peaks import PeakCache, measure_peak


def _results(cell: dict[str, Any], fingerprint: str, run_id: str) -> dict[str, Any]:
    return {"run": {"id": run_id}, "environment": {"fingerprint": fingerprint, "busy": False},
            "cells": [cell]}


@pytest.fixture(scope="module")
def current(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = PeakCache(tmp_path_factory.mktemp("peaks") / "peaks.json",
                      functools.partial(measure_peak, n=256, windows=2, window_s=0.05))
    out = run_efficiency(ModelSource(kind="onnx", path=models_dir / "mobilefacenet_128d.onnx"),
                         EngineConfig(engine="onnxruntime", intra_op_threads=1),
                         batch_sizes=(1,), warmup=2, min_iters=40, min_seconds=0.1, peaks=cache)
    return {"id": "mfn@cpu@speed", "model": "mfn", "device": "cpu", "protocol": "speed",
            "kind": "efficiency", "status": "ok", **out}


def faster_machine(cell: dict[str, Any], factor: float) -> dict[str, Any]:
    """``cell`` as a machine ``factor`` × faster measures it: latencies ÷ factor, speed index ×
    factor (so the normalised latencies stay)."""
    out = copy.deepcopy(cell)
    m, d = out["metrics"], out["details"]
    for name in list(m):
        if name.startswith("latency.") and name.endswith("_ms") and "_norm_" not in name:
            m[name] = m[name] / factor
    for lat in d["latency"].values():
        lat["samples_ms"] = [x / factor for x in lat["samples_ms"]]
    d["speed_index"] = {**d["speed_index"], "value": d["speed_index"]["value"] * factor}
    m.update(normalised_metrics(m, d["speed_index"]["value"]))
    return out


def test_normalised_cell_scales_value_and_samples(current: dict[str, Any]) -> None:
    norm = normalised_cell(current, "latency.p50_ms")
    assert norm is not None
    index = current["details"]["speed_index"]["value"]
    assert norm["metrics"]["latency.p50_ms"] == current["metrics"]["latency.p50_norm_ms"]
    raw = current["details"]["latency"]["1"]["samples_ms"]
    assert norm["details"]["latency"]["1"]["samples_ms"] == pytest.approx(
        [x * index / 100.0 for x in raw])
    assert normalised_cell(current, "gflops_per_s") is None  # not a latency
    bare = copy.deepcopy(current)
    del bare["details"]["speed_index"]
    assert normalised_cell(bare, "latency.p50_ms") is None


def test_other_machine_compares_normalised_and_says_so(current: dict[str, Any]) -> None:
    base = faster_machine(current, 2.0)
    assert base["metrics"]["latency.p50_norm_ms"] == pytest.approx(
        current["metrics"]["latency.p50_norm_ms"])
    gate = Gate(metric="latency.p50_ms", max_regression=0.10)
    [raw] = evaluate_gates(_results(current, "aaa", "cur"), [gate],
                           _results(base, "aaa", "base"))
    assert raw.status == "fail"  # same fingerprint: raw ms, 2× slower
    [norm] = evaluate_gates(_results(current, "aaa", "cur"), [gate],
                            _results(base, "bbb", "base"))
    assert norm.status == "pass", norm.message
    assert "compared normalised latency" in norm.message and "latency.p50_norm_ms" in norm.message
    assert norm.value == pytest.approx(current["metrics"]["latency.p50_norm_ms"])
    assert norm.baseline == pytest.approx(base["metrics"]["latency.p50_norm_ms"])
    assert any("fingerprints differ" in w for w in norm.warnings)


def test_normalised_regression_still_fails(current: dict[str, Any]) -> None:
    # the baseline machine is 2× faster but its model ran 6× faster: 3× slower normalised
    base = faster_machine(current, 2.0)
    for name in ("latency.p50_ms", "latency.b1.p50_ms"):
        base["metrics"][name] /= 3.0
    base["details"]["latency"]["1"]["samples_ms"] = [
        x / 3.0 for x in base["details"]["latency"]["1"]["samples_ms"]]
    base["metrics"].update(normalised_metrics(base["metrics"],
                                              base["details"]["speed_index"]["value"]))
    gate = Gate(metric="latency.p50_ms", max_regression=0.10)
    [out] = evaluate_gates(_results(current, "aaa", "cur"), [gate], _results(base, "bbb", "b"))
    assert out.status == "fail" and "compared normalised latency" in out.message, out.message


def test_fail_policy_keeps_failing_on_another_machine(current: dict[str, Any]) -> None:
    base = faster_machine(current, 2.0)
    gate = Gate(metric="latency.p50_ms", max_regression=0.10, on_fingerprint_mismatch="fail")
    [out] = evaluate_gates(_results(current, "aaa", "cur"), [gate], _results(base, "bbb", "b"))
    assert out.status == "fail" and "another machine" in out.message
    assert "normalised" not in out.message
