"""The robustness section's numbers against independent computations (numpy's trapezoid rule,
scipy's ranks, a loop over the levels), and its rendering: one row per model per corruption,
the summary table, rank changes against clean, the paper table's robustness column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import rankdata

from facebench.report.render import render_report
from facebench.report.robustness import (
    first_below,
    model_robustness,
    ranks,
    relative_robustness,
    robustness,
)

LEVELS = {"resolution": ["resolution-32", "resolution-16", "resolution-8"],
          "jpeg": ["jpeg-20", "jpeg-10"]}
#: model → (base protocol, clean accuracy, accuracies per level name)
ACC = {"mfn": ("lfw-retinaface", 0.990, {"resolution-32": 0.985, "resolution-16": 0.93,
                                         "resolution-8": 0.71, "jpeg-20": 0.988,
                                         "jpeg-10": 0.97}),
       "sface": ("lfw-yunet", 0.993, {"resolution-32": 0.990, "resolution-16": 0.89,
                                      "resolution-8": 0.62, "jpeg-20": 0.991,
                                      "jpeg-10": 0.975})}
FLOOR = 0.9


def cell(model: str, protocol: str, acc: float, degrade: dict[str, Any] | None) -> dict:
    details: dict[str, Any] = {}
    if degrade is not None:
        details["degrade"] = degrade
    return {"id": f"{model}@cpu@{protocol}", "model": model, "device": "cpu",
            "protocol": protocol, "kind": "verification", "status": "ok",
            "metrics": {"accuracy": acc, "accuracy_ci_low": acc - 0.01,
                        "accuracy_ci_high": min(acc + 0.01, 1.0), "tar@far=1e-1": acc,
                        "tar@far=1e-2": acc - 0.05, "fta_pairs": 3, "pairs": 6000},
            "details": details, "artifacts": {}}


def results(paper: bool = False) -> dict[str, Any]:
    cells = []
    for model, (base, clean, accs) in ACC.items():
        cells.append(cell(model, base, clean, None))
        for corr, names in LEVELS.items():
            for name in names:
                d = {"name": corr, "level": name.split("-")[1], "level_name": name,
                     "base": base, "accuracy_floor": FLOOR, "stage": "source",
                     "sides": "probe"}
                cells.append(cell(model, f"{base}+{name}", accs[name], d))
    report = {"paper_table": {}} if paper else {}
    return {"cells": cells, "suite": {"name": "rob", "report": report, "protocols": [
        {"id": base, "kind": "verification"} for base, _, _ in ACC.values()]},
        "run": {"id": "r1"}, "environment": {}}


def test_relative_robustness_is_the_normalised_trapezoid_area() -> None:
    for _model, (_, clean, accs) in ACC.items():
        for names in LEVELS.values():
            ys = [clean, *(accs[n] for n in names)]
            want = np.trapezoid(ys, dx=1.0) / (len(names) * clean)
            assert relative_robustness(clean, [accs[n] for n in names]) == pytest.approx(want)
    assert relative_robustness(0.99, [0.99, 0.99]) == pytest.approx(1.0)
    assert relative_robustness(0.99, [0.99, None]) is None


def test_first_level_below_the_floor_by_a_loop() -> None:
    for _model, (_, clean, accs) in ACC.items():
        for names in LEVELS.values():
            want = None
            for n in names:
                if accs[n] < FLOOR:
                    want = n
                    break
            assert first_below(clean, names, [accs[n] for n in names], FLOOR) == want
    assert first_below(0.85, ["a"], [0.8], FLOOR) == "clean"


def test_ranks_match_scipy_min_ranks() -> None:
    values = {"a": 0.9, "b": 0.95, "c": 0.9, "d": 0.7}
    want = rankdata([-v for v in values.values()], method="min")
    assert [ranks(values)[k] for k in values] == list(want)


def test_lines_pair_each_model_with_its_own_clean_protocol() -> None:
    data = robustness(results())
    assert data is not None and data.floor == FLOOR
    assert [c.name for c in data.corruptions] == ["resolution", "jpeg"]
    by = {ln.model: ln for ln in data.lines}
    assert by["mfn"].clean["protocol"] == "lfw-retinaface"
    assert by["sface"].clean["protocol"] == "lfw-yunet"
    rr = model_robustness(results())
    for model, (_, clean, accs) in ACC.items():
        per = [np.trapezoid([clean, *(accs[n] for n in names)]) / (len(names) * clean)
               for names in LEVELS.values()]
        assert rr[model] == pytest.approx(np.mean(per))
    assert robustness({"cells": [cell("m", "p", 0.9, None)]}) is None


def test_rendered_section(tmp_path: Path) -> None:
    render_report(results(paper=True), tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    section = md.split("## Robustness", 1)[1].split("\n## ", 1)[0]
    rr = model_robustness(results())
    assert "| mfn (lfw-retinaface · cpu) | 99.00 | " in section
    assert f"{rr['mfn']:.3f}" in section and f"{rr['sface']:.3f}" in section
    # first level below 90 %: mfn at 8 px, sface already at 16 px
    assert "| resolution-8 |" in section.split("mfn (lfw-retinaface · cpu) | 99.00")[1] \
        .split("\n")[0]
    assert "| resolution-16 |" in section.split("sface (lfw-yunet · cpu) | 99.30")[1] \
        .split("\n")[0]
    rows = {ln.split("|")[1].strip(): ln for ln in section.splitlines()
            if ln.startswith("| ") and ("differs" in ln or "same" in ln)}
    # clean: sface first; at 16 px and 8 px mfn overtakes it
    assert "**differs**" in rows["resolution-16"] and "**differs**" in rows["resolution-8"]
    assert "same" in rows["resolution-32"] and "same" in rows["jpeg-10"]
    assert section.count("| mfn (lfw-retinaface · cpu) |") == 3  # summary + 2 corruptions
    paper = md.split("## Paper table", 1)[1].split("\n## ", 1)[0]
    assert "Relative robustness" in paper and f"{rr['mfn']:.3f}" in paper
