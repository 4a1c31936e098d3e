"""Export efficiency cells of a results.json as a pytest-benchmark JSON file.

One benchmark per (efficiency cell, batch size), built from ``details.latency[B].samples_ms``,
in SECONDS, with pytest-benchmark's statistics (its quartile method: Wikipedia's method 3 for an
odd count, method 2 for an even one; stddev with ddof = 1; ``ops`` = calls per second =
rounds / total). Images per second (B × ops) is in ``extra_info.throughput``. Benchmarks are
grouped by batch size, so ``pytest-benchmark compare FILE`` lines up models at the same batch.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from typing import Any

FORMAT_VERSION = "5.1.0"  # the pytest-benchmark JSON layout written here (stable since 3.x)


def _q1(data: list[float]) -> float:
    n = len(data)
    if n == 1:
        return data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.25 * data[k - 1] + 0.75 * data[k]
        return 0.75 * data[k] + 0.25 * data[k + 1]
    return statistics.median(data[: n // 2])


def _q3(data: list[float]) -> float:
    n = len(data)
    if n == 1:
        return data[0]
    if n % 2:
        k, r = n // 4, n % 4
        if r == 1:
            return 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
        return 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]
    return statistics.median(data[n // 2 :])


def benchmark_stats(seconds: list[float]) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` block (plus ``data`` and ``iterations``) for durations."""
    if not seconds:
        raise ValueError("no samples")
    data = sorted(float(s) for s in seconds)
    n = len(data)
    mean = math.fsum(data) / n
    std = statistics.stdev(data) if n > 1 else 0.0
    q1, q3 = _q1(data), _q3(data)
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    total = math.fsum(data)
    std_out = sum(1 for v in data if v < mean - std or v > mean + std)
    iqr_out = sum(1 for v in data if v < lo or v > hi)
    return {
        "min": data[0],
        "max": data[-1],
        "mean": mean,
        "stddev": std,
        "rounds": n,
        "median": statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_out,
        "stddev_outliers": std_out,
        "outliers": f"{std_out};{iqr_out}",
        "ld15iqr": data[0] if n == 1 else data[bisect_left(data, lo)],
        "hd15iqr": data[0] if n == 1 else data[bisect_right(data, hi) - 1],
        "ops": n / total if total else 0,
        "total": total,
        "data": [float(s) for s in seconds],  # in measurement order
        "iterations": 1,
    }


def _machine_info(env: dict[str, Any]) -> dict[str, Any]:
    os_name = str(env.get("os") or "")
    system = os_name.split("-", 1)[0] if os_name else ""
    return {
        "node": env.get("hostname", ""),
        "processor": env.get("cpu_model", ""),
        "machine": env.get("machine", ""),
        "python_compiler": "",
        "python_implementation": "CPython",
        "python_implementation_version": env.get("python", ""),
        "python_version": env.get("python", ""),
        "python_build": [],
        "release": os_name,
        "system": system,
        "cpu": {
            "brand_raw": env.get("cpu_model", ""),
            "count": env.get("logical_cores"),
            "flags": env.get("cpu_flags", []),
        },
        "facebench_fingerprint": env.get("fingerprint"),
    }


def _commit_info(run: dict[str, Any]) -> dict[str, Any]:
    git = run.get("git") or {}
    return {
        "id": git.get("commit") or "unversioned",
        "time": run.get("started"),
        "author_time": None,
        "dirty": bool(git.get("dirty")),
        "project": "facebench",
        "branch": git.get("branch") or "(unknown)",
    }


def to_pytest_benchmark_json(results: dict[str, Any]) -> dict[str, Any]:
    """Convert a results.json dict (docs/results.md) to pytest-benchmark's saved-run format."""
    run = results.get("run", {})
    benchmarks = []
    for cell in results.get("cells", []):
        if cell.get("kind") != "efficiency" or cell.get("status") != "ok":
            continue
        details = cell.get("details") or {}
        definition = details.get("latency_definition") or {}
        for batch, lat in sorted((details.get("latency") or {}).items(), key=lambda kv: int(kv[0])):
            samples = lat.get("samples_ms") or []
            if not samples:
                continue
            stats = benchmark_stats([ms / 1e3 for ms in samples])
            metrics = cell.get("metrics") or {}
            benchmarks.append({
                "group": f"batch {batch}",
                "name": f"{cell['id']}[b{batch}]",
                "fullname": f"facebench::{cell['id']}[b{batch}]",
                "params": {"batch": int(batch)},
                "param": str(batch),
                "extra_info": {
                    "model": cell.get("model"), "device": cell.get("device"),
                    "protocol": cell.get("protocol"), "engine": details.get("engine"),
                    "threads": details.get("threads"),
                    "throughput": metrics.get(f"throughput.b{batch}"),
                    "run_id": run.get("id"),
                },
                "options": {
                    "disable_gc": False,
                    "timer": lat.get("timer", "perf_counter_ns"),
                    "min_rounds": definition.get("min_iters"),
                    "max_time": definition.get("max_seconds"),
                    "min_time": definition.get("min_seconds"),
                    "warmup": lat.get("warmup", definition.get("warmup")),
                },
                "stats": stats,
            })
    return {
        "machine_info": _machine_info(results.get("environment", {})),
        "commit_info": _commit_info(run),
        "benchmarks": benchmarks,
        "datetime": run.get("finished") or run.get("started"),
        "version": FORMAT_VERSION,
    }
