"""A pct_of_peak above 100 % is a measurement error: the report (HTML and Markdown) and
results.csv say so and never print the number; measured peaks and normalised latency show."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from facebench.environment import cpu_peak_gflops
from facebench.probes.peaks import environment_block, percent_of_peak
from facebench.report import render_report
from facebench.report.figures import history_figure
from facebench.report.summary import history_series
from facebench.results import metric_flag, write_results

from .builders import build_results

#: The old failure of issue 25: FaceNet int8 at 397.8 GOP/s over a 128 GFLOP/s fp32 formula
#: peak read at the base clock; and FaceNet fp32 at 153.1 GFLOP/s over the same.
NOMINAL = cpu_peak_gflops(cores=2, flags={"avx2", "fma"}, mhz=2000.0)
OLD_INT8 = 100 * 397.8 / NOMINAL["gflops"]  # type: ignore[index]
OLD_FP32 = 153.1


@pytest.fixture(scope="module")
def flagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    results = build_results(seed=3)
    eff = [c for c in results["cells"] if c["kind"] == "efficiency" and c["status"] == "ok"]
    # an older record: the percentage itself stored (310.8 %)
    eff[0]["metrics"]["pct_of_peak"] = OLD_INT8
    # a new record: flagged when measured, the value null and the reason kept
    _, why = percent_of_peak(OLD_FP32, NOMINAL["gflops"])  # type: ignore[index]
    eff[1]["metrics"]["pct_of_peak"] = None
    eff[1]["details"]["metric_errors"] = {"pct_of_peak": why}
    # a correct one, shown
    eff[2]["metrics"]["pct_of_peak"] = 42.25
    for c in eff:
        m = c["metrics"]
        m["latency.b1.p50_norm_ms"] = m["latency.b1.p50_ms"] * 50.0 / 100.0
        c["details"]["speed_index"] = {"value": 50.0, "reference": 100.0}
    peak = {"engine": "onnxruntime", "device": "cpu", "precision": "int8", "threads": 2,
            "gflops": 265.25, "unit": "GOP/s", "method": "best of 4 windows of ≥ 0.25 s of a "
            "1024×1024×1024 GEMM (2n³ ops per call): onnxruntime MatMulInteger (u8s8)"}
    results["environment"].update(environment_block({"onnxruntime/cpu/int8/2t": peak},
                                                    NOMINAL))
    out = tmp_path_factory.mktemp("flagged")
    write_results(out, results)
    render_report(results, out)
    return results, out


def test_old_value_is_above_100() -> None:
    assert f"{OLD_INT8:.1f}" == "310.8"


def test_report_flags_instead_of_printing(flagged: tuple[dict, Path]) -> None:
    _, out = flagged
    for name in ("report.md", "report.html"):
        text = re.sub(r"<svg.*?</svg>", "", (out / name).read_text(encoding="utf-8"),
                      flags=re.S)  # figures' coordinates are not values
        assert "310.8" not in text and "119.6" not in text, name
        assert text.count("measurement error") >= 2, name
        assert "42.2" in text or "42.3" in text, name  # a correct value still shows


def test_report_shows_measured_peaks_and_nominal_bound(flagged: tuple[dict, Path]) -> None:
    _, out = flagged
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "Measured peak onnxruntime/cpu/int8/2t" in text
    assert "265.2 GOP/s" in text and "MatMulInteger (u8s8)" in text
    assert "Nominal peak" in text and "never divided by" in text


def test_report_shows_normalised_latency_beside_ms(flagged: tuple[dict, Path]) -> None:
    results, out = flagged
    text = (out / "report.md").read_text(encoding="utf-8")
    c = next(c for c in results["cells"] if c["kind"] == "efficiency" and c["status"] == "ok")
    norm = c["metrics"]["latency.b1.p50_norm_ms"]
    assert re.search(r"norm\. [0-9.]+", text)
    assert "speed index (50.0 GFLOP/s" in text
    assert norm == pytest.approx(c["metrics"]["latency.b1.p50_ms"] / 2)


def test_csv_flags_instead_of_printing(flagged: tuple[dict, Path]) -> None:
    results, out = flagged
    with open(out / "results.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "pct_of_peak"]
    flags = [r for r in rows if r["flag"]]
    assert len(flags) == 2
    assert all(r["value"] == "" and r["flag"].startswith("measurement error") for r in flags)
    shown = [r for r in rows if r["value"]]
    assert [float(r["value"]) for r in shown] == [42.25]
    assert all(not r["flag"] for r in rows if r["metric"] != "pct_of_peak")
    cells = {c["id"]: c for c in results["cells"]}
    assert all(metric_flag(cells[r["cell_id"]], "pct_of_peak") == r["flag"] for r in flags)


def _with_norm(results: dict, index: float) -> dict:
    for c in results["cells"]:
        if c["kind"] == "efficiency" and c["status"] == "ok":
            m = c["metrics"]
            m["latency.p50_norm_ms"] = m["latency.p50_ms"] * index / 100.0
    return results


def test_history_across_machines_plots_normalised_latency() -> None:
    old, new = _with_norm(build_results(seed=1), 50.0), _with_norm(build_results(seed=2), 80.0)
    kinds = {c["id"]: c["kind"] for c in new["cells"]}
    same = history_figure(history_series([old], new), kinds, "history")
    assert same.svg and "different machines" not in same.caption
    old["environment"] = {**old["environment"], "fingerprint": "another-machine"}
    series = history_series([old], new)
    assert [p["fingerprint"] for p in series] == ["another-machine",
                                                 new["environment"]["fingerprint"]]
    fig = history_figure(series, kinds, "history")
    assert fig.svg and "different machines" in fig.caption and "normalised" in fig.caption
    assert "normalised latency p50" in fig.svg
