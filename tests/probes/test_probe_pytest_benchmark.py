"""results.json → pytest-benchmark JSON, checked against pytest-benchmark itself."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facebench.probes.pytest_benchmark import benchmark_stats, to_pytest_benchmark_json

pb_stats = pytest.importorskip("pytest_benchmark.stats")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 57, 200])
def test_stats_equal_pytest_benchmark(n: int) -> None:
    data = list(np.random.default_rng(n).lognormal(-5, 0.3, n))
    ref = pb_stats.Stats()
    for v in data:
        ref.update(v)
    ours = benchmark_stats(data)
    # Tukey fences by definition: the extreme data inside [q1 - 1.5 iqr, q3 + 1.5 iqr].
    lo, hi = ours["q1"] - 1.5 * ours["iqr"], ours["q3"] + 1.5 * ours["iqr"]
    assert ours["ld15iqr"] == min(v for v in data if v >= lo)
    assert ours["hd15iqr"] == max(v for v in data if v <= hi)
    for field in pb_stats.Stats.fields:
        want = getattr(ref, field)
        if field == "hd15iqr" and want > hi:
            continue  # older pytest-benchmark returned the first datum ABOVE the fence
        if isinstance(want, float):
            assert ours[field] == pytest.approx(want, rel=1e-12, abs=1e-15), field
        else:
            assert ours[field] == want, field
    assert ours["data"] == data and ours["iterations"] == 1


def _results(samples: dict[str, list[float]]) -> dict:
    cells = [{
        "id": f"mobilefacenet@cpu-ort{suffix}@eff", "model": "mobilefacenet",
        "device": f"cpu-ort{suffix}", "protocol": "eff", "kind": "efficiency", "status": "ok",
        "metrics": {"throughput.b1": 1000 / float(np.mean(ms))},
        "details": {"engine": "onnxruntime", "threads": {"intra_op": 1, "inter_op": None},
                    "latency": {"1": {"samples_ms": ms, "warmup": 10}},
                    "latency_definition": {"min_iters": 50, "min_seconds": 2.0,
                                           "max_seconds": None, "warmup": 10}},
    } for suffix, ms in samples.items()]
    cells.append({"id": "x@cpu@lfw", "kind": "verification", "status": "ok", "details": {}})
    cells.append({"id": "y@gpu@eff", "kind": "efficiency", "status": "skipped", "details": {}})
    return {
        "run": {"id": "r1", "started": "2026-11-28T01:02:03+00:00",
                "finished": "2026-11-28T01:03:03+00:00",
                "git": {"commit": "abc123", "branch": "main", "dirty": False}},
        "environment": {"cpu_model": "Test CPU", "logical_cores": 2, "os": "Linux-6.1-x86_64",
                        "python": "3.11.7", "cpu_flags": ["avx2"], "fingerprint": "f" * 64},
        "cells": cells,
    }


@pytest.mark.skipif(shutil.which("pytest-benchmark") is None and
                    not (Path(sys.executable).parent / "pytest-benchmark").exists(),
                    reason="pytest-benchmark CLI not installed")
def test_compare_loads_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    samples = {"": list(rng.normal(4.0, 0.2, 60)), "-2t": list(rng.normal(2.5, 0.2, 55))}
    doc = to_pytest_benchmark_json(_results(samples))
    assert [b["name"] for b in doc["benchmarks"]] == [
        "mobilefacenet@cpu-ort@eff[b1]", "mobilefacenet@cpu-ort-2t@eff[b1]"]
    assert doc["commit_info"]["id"] == "abc123"
    path = tmp_path / "0001_facebench.json"
    path.write_text(json.dumps(doc))
    exe = shutil.which("pytest-benchmark") or str(Path(sys.executable).parent / "pytest-benchmark")
    out_csv = tmp_path / "cmp"
    proc = subprocess.run([exe, "compare", str(path), f"--csv={out_csv}",
                           "--columns=min,max,mean,stddev,median,iqr,ops,rounds"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert "mobilefacenet@cpu-ort-2t@eff[b1]" in proc.stdout
    rows = list(csv.reader(out_csv.with_suffix(".csv").open()))
    header, body = rows[0], {r[0]: r for r in rows[1:]}
    for suffix, ms in samples.items():
        row = body[f"facebench::mobilefacenet@cpu-ort{suffix}@eff[b1]"]
        got = dict(zip(header, row, strict=True))
        s = np.asarray(ms) / 1e3
        assert float(got["min"]) == pytest.approx(s.min())
        assert float(got["mean"]) == pytest.approx(s.mean())
        assert float(got["median"]) == pytest.approx(np.median(s))
        assert float(got["stddev"]) == pytest.approx(s.std(ddof=1))
        assert float(got["ops"]) == pytest.approx(1 / s.mean())
        assert int(got["rounds"]) == len(ms)
