"""The noise rules of facebench.report.compare, one by one."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from facebench.report.compare import compare, compare_cells, direction


def _cell(cid: str, metrics: dict[str, Any], details: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    return {"id": cid, "status": "ok", "metrics": metrics, "details": details or {}}


def _one(cur: dict[str, Any], base: dict[str, Any], metric: str):  # noqa: ANN202
    return next(d for d in compare_cells(cur, base) if d.metric == metric)


def test_ci_rule_uses_the_current_interval() -> None:
    cur = _cell("a", {"accuracy": 0.98, "accuracy_ci_low": 0.975, "accuracy_ci_high": 0.985})
    inside = _one(cur, _cell("a", {"accuracy": 0.978}), "accuracy")
    outside = _one(cur, _cell("a", {"accuracy": 0.97}), "accuracy")
    assert inside.significant is False and outside.significant is True
    assert outside.better is True and "CI" in outside.method


def test_fold_std_rule_for_accuracy() -> None:
    folds = {"folds": [{"fold": k} for k in range(10)]}
    base = _cell("a", {"accuracy": 0.980, "accuracy_std": 0.006}, folds)
    se2 = 2 * np.hypot(0.006 / np.sqrt(10), 0.006 / np.sqrt(10))
    small = _cell("a", {"accuracy": 0.980 + 0.9 * se2, "accuracy_std": 0.006}, folds)
    large = _cell("a", {"accuracy": 0.980 - 1.1 * se2, "accuracy_std": 0.006}, folds)
    assert _one(small, base, "accuracy").significant is False
    d = _one(large, base, "accuracy")
    assert d.significant is True and d.better is False


def test_binomial_rule_needs_the_pair_counts() -> None:
    counts = {"tp": 2900, "fn": 100, "tn": 2950, "fp": 50}
    cur = _cell("a", {"recall": 2900 / 3000, **counts})
    base = _cell("a", {"recall": 2800 / 3000, **counts})
    assert _one(cur, base, "recall").significant is True
    close = _cell("a", {"recall": 2895 / 3000, **counts})
    assert _one(close, cur, "recall").significant is False
    no_counts = _one(_cell("a", {"recall": 0.9}), _cell("a", {"recall": 0.8}), "recall")
    assert no_counts.significant is None and no_counts.method == "noise unknown"


def test_latency_uses_mann_whitney_and_a_5_percent_floor() -> None:
    rng = np.random.default_rng(0)
    draws = rng.gamma(20, 0.05, 2000)

    def cell(scale: float, part: int = 0) -> dict[str, Any]:
        samples = (draws[part * 1000:(part + 1) * 1000] * scale).tolist()
        return _cell("m", {"latency.p50_ms": float(np.median(samples)),
                           "latency.b1.p50_ms": float(np.median(samples)),
                           "latency.b1.std_ms": float(np.std(samples))},
                     {"latency": {"1": {"samples_ms": samples}}})

    base = cell(1.0)
    slower = _one(cell(1.3), base, "latency.p50_ms")
    assert slower.significant is True and slower.better is False
    assert "Mann–Whitney" in slower.method
    same = _one(cell(1.0, part=1), base, "latency.b1.p50_ms")  # new draws, same distribution
    assert same.significant is False
    tiny = _one(cell(1.03), base, "latency.b1.p50_ms")  # a real shift, but under 5 %
    assert tiny.significant is False and "p = " in tiny.method
    assert _one(cell(1.3), base, "latency.b1.std_ms").significant is None


def test_deterministic_metrics_and_undefined_values() -> None:
    base = _cell("m", {"params": 1000, "precision": None, "f1": None, "cold_start_ms": 10.0})
    cur = _cell("m", {"params": 1001, "precision": 0.5, "f1": None, "cold_start_ms": 12.0})
    deltas = {d.metric: d for d in compare_cells(cur, base)}
    assert deltas["params"].significant is True and deltas["params"].better is False
    assert deltas["precision"].significant is True and deltas["precision"].diff is None
    assert deltas["f1"].significant is None and deltas["f1"].method == "both undefined"
    assert deltas["cold_start_ms"].significant is None


def test_matching_by_cell_id(results: dict[str, Any]) -> None:
    base = copy.deepcopy(results)
    base["cells"] = base["cells"][1:] + [dict(base["cells"][0], id="gone@cpu@lfw")]
    cmp = compare(results, base)
    assert cmp.added == [results["cells"][0]["id"]]
    assert cmp.removed == ["gone@cpu@lfw"]
    assert cmp.same_machine is True
    assert all(d.diff == 0 and not d.significant for d in cmp.deltas if d.diff is not None)
    not_ok = {c["id"] for c in results["cells"][1:] if c["status"] != "ok"}
    assert set(cmp.not_comparable) == not_ok


def test_direction() -> None:
    assert direction("accuracy") == 1 and direction("tar@far=1e-3") == 1
    assert direction("eer") == -1 and direction("latency.b4.p99_ms") == -1
    assert direction("throughput.b4") == 1 and direction("memory.peak_rss_bytes") == -1
    assert direction("eer_threshold") == 0 and direction("latency.b1.std_ms") == 0
