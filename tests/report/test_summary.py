"""Best model per metric, the accuracy-vs-latency Pareto front, the busy-machine warning."""

from __future__ import annotations

from typing import Any

import pytest

from facebench.report.summary import best_per_metric, busy_warning, pareto_points


def test_best_per_metric_follows_metric_direction(results: dict[str, Any]) -> None:
    ver = [c for c in results["cells"] if c["protocol"] == "lfw" and c["status"] == "ok"]
    bests = {b.metric: b for b in best_per_metric(results, "lfw")}
    top_acc = max(c["metrics"]["accuracy"] for c in ver)
    assert bests["accuracy"].value == top_acc
    assert all(c["metrics"]["accuracy"] == top_acc for c in bests["accuracy"].cells)
    eers = [c["metrics"]["eer"] for c in ver if c["metrics"]["eer"] is not None]
    assert bests["eer"].value == min(eers)  # lower is better; null (all-FtA) ignored
    # LFW's 3000 impostor pairs cannot support FAR = 1e-3: no "best" there
    assert "tar@far=1e-2" in bests and "tar@far=1e-3" not in bests
    speed = {b.metric: b for b in best_per_metric(results, "speed")}
    eff = [c for c in results["cells"] if c["protocol"] == "speed" and c["status"] == "ok"]
    assert speed["latency.p50_ms"].value == min(c["metrics"]["latency.p50_ms"] for c in eff)


def test_pareto_front_has_no_dominated_point(results: dict[str, Any]) -> None:
    points = pareto_points(results, "lfw")
    models = {c["model"] for c in results["cells"] if c["kind"] == "efficiency"
              and c["status"] == "ok"}
    assert {p.model for p in points} == models
    front = [p for p in points if p.on_front]
    assert front
    for p in front:
        assert not any(q.accuracy >= p.accuracy and q.latency_ms <= p.latency_ms
                       and (q.accuracy, q.latency_ms) != (p.accuracy, p.latency_ms)
                       for q in points)
    for p in points:
        for label in p.dominated_by:
            q = next(x for x in points if x.label == label)
            assert q.accuracy >= p.accuracy and q.latency_ms <= p.latency_ms


def _eff(busy: bool | None) -> dict[str, Any]:
    return {"id": "m@cpu@speed", "kind": "efficiency", "status": "ok", "metrics": {},
            "details": {"busy": busy}}


@pytest.mark.parametrize(("env", "cells", "busy"), [
    ({"busy": False, "load_avg": [9.0, 9, 9]}, [_eff(False)], False),  # the runner's flag wins
    ({"busy": True, "busy_rule": "1-min load of other work > 0.5 × cores used"}, [], True),
    ({"logical_cores": 2, "load_avg_before": [1.6, 1, 1], "load_avg_after": [1.5, 1, 1]}, [],
     True),
    # the load after the run includes the run itself: not on its own a sign of a busy machine
    ({"logical_cores": 2, "load_avg_before": [0.1, 0, 0], "load_avg_after": [3.5, 1, 1]}, [],
     False),
    ({"busy": False}, [_eff(True)], True),
    ({}, [], False),
])
def test_busy_warning(env: dict[str, Any], cells: list[dict[str, Any]], busy: bool) -> None:
    warning = busy_warning({"environment": env, "cells": cells})
    assert (warning is not None) == busy
    if cells and cells[0]["details"]["busy"]:
        assert "while measuring m@cpu@speed" in warning


def test_pareto_point_takes_the_accuracy_of_its_own_precision() -> None:
    """An int8 latency is never paired with an fp32 cell's accuracy: with no int8 verification
    cell of the model in the group, the int8 efficiency cell is not a point (the paper run's
    exhaustive group drew mobilefacenet int8 at the fp32 cell's accuracy)."""
    def cell(device: str, protocol: str, kind: str, **metrics: float) -> dict[str, Any]:
        return {"id": f"m@{device}@{protocol}", "model": "m", "device": device,
                "protocol": protocol, "kind": kind, "status": "ok", "metrics": metrics}

    results = {"suite": {"devices": [{"id": "cpu"}, {"id": "cpu-int8", "precision": "int8"}]},
               "cells": [cell("cpu", "all", "verification", accuracy=0.99),
                         cell("cpu", "eff", "efficiency", **{"latency.p50_ms": 3.0}),
                         cell("cpu-int8", "eff", "efficiency", **{"latency.p50_ms": 1.0})]}
    points = pareto_points(results, "all")
    assert [(p.device, p.accuracy) for p in points] == [("cpu", 0.99)]
    results["cells"].append(cell("cpu-int8", "all", "verification", accuracy=0.98))
    got = {p.device: p.accuracy for p in pareto_points(results, "all")}
    assert got == {"cpu": 0.99, "cpu-int8": 0.98}
