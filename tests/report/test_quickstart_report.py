"""The quickstart's first report makes facebench's point: suites/quickstart.yaml itself, run on a
fixed 2-fold LFW subset (10 genuine + 10 impostor pairs per fold) with the shared models, gives
a Pareto figure of two trained models (accuracy vs latency, and vs the interleaved latency
ratio), checked in headless Chromium. The built-in model's ``engines`` cells are left out
(``--only``) to keep the test short."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.plan import plan
from facebench.report.figures import POINT_GID
from facebench.report.paper_view import paper_table
from facebench.report.summary import pareto_points
from facebench.runner.interleave import attach_interleaved
from facebench.suite.schema import Suite
from tests.e2e.conftest import facebench

from .test_chromium import INFO_JS, opened

TRAINED = {"mobilefacenet", "sface"}
POINTS_JS = f"""(() => Object.fromEntries([...document.querySelectorAll("figure")].map(f =>
  [f.id, [...f.querySelectorAll('g[id^="{POINT_GID}"]')].map(g => g.id)])))()"""


@pytest.fixture(scope="module")
def quickstart(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quickstart")
    lines = (shared / "data" / "lfw" / "pairs.txt").read_text().splitlines()[1:]
    body = [ln for fold in (0, 1) for ln in (*lines[fold * 600:fold * 600 + 10],
                                              *lines[fold * 600 + 300:fold * 600 + 310])]
    data = root / "lfw"
    data.mkdir()
    (data / "pairs.txt").write_text("2 10\n" + "\n".join(body) + "\n")
    (data / "images").symlink_to(shared / "data" / "lfw" / "images")
    env = {"FACEBENCH_DATA": str(data), "FACEBENCH_MODELS": str(shared / "models"),
           "FACEBENCH_CACHE": str(root / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{root}/history.db"}
    out = root / "out"
    facebench("run", "suites/quickstart.yaml", "--out", str(out), "--only", "lfw", "--only",
              "efficiency", "--no-progress", env=env)
    return out


def test_two_trained_models_on_the_front_and_ratios_recorded(quickstart: Path) -> None:
    results = json.loads((quickstart / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert all(c["status"] == "ok" for c in cells.values()), cells
    points = pareto_points(results, "lfw")
    assert {p.model for p in points} == TRAINED
    assert all(0.5 < p.accuracy <= 1 and p.latency_ms > 0 for p in points)
    # the interleaved pass: the protocol's first model is the reference
    proto = next(p for p in results["suite"]["protocols"] if p["id"] == "efficiency")
    assert proto["interleave"] is True and proto["rounds"] == 6
    ref = cells["mobilefacenet@cpu-ort@efficiency"]
    other = cells["sface@cpu-ort@efficiency"]
    for b in (1, 8):
        assert ref["metrics"][f"latency.b{b}.p50_vs_ref"] == 1.0
        row = other["details"]["interleave"]["batch"][str(b)]
        ratios = [m / r for m, r in zip(row["p50_ms"], ref["details"]["interleave"]["batch"][
            str(b)]["p50_ms"], strict=True)]
        assert row["ratios"] == pytest.approx(ratios)
        lo, mid, hi = (other["metrics"][f"latency.b{b}.p50_vs_ref{s}"]
                       for s in ("_ci_low", "", "_ci_high"))
        assert mid == pytest.approx(float(np.median(ratios)))
        assert (lo, hi) == pytest.approx((min(ratios), max(ratios)))  # 6 rounds: ranks 1, 6
    assert other["details"]["interleave"]["reference"] == "mobilefacenet@cpu-ort@efficiency"


@pytest.fixture(scope="module")
def page(quickstart: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = (quickstart / "report.html").resolve().as_uri()
    with opened(url, tmp_path_factory.mktemp("chromium-quickstart")) as p:
        return {"info": p.evaluate(INFO_JS), "points": p.evaluate(POINTS_JS)}


def test_pareto_figures_show_both_trained_models(page: dict[str, Any]) -> None:
    figures = {f["id"]: f for f in page["info"]["figures"]}
    for fid in ("fig-accuracy-latency-lfw", "fig-accuracy-relative-latency-lfw"):
        f = figures[fid]
        assert not f["skipped"] and f["size"][0] > 300 and f["size"][1] > 150, f
        drawn = {g.removeprefix(POINT_GID).split("_", 1)[0] for g in page["points"][fid]}
        assert drawn == TRAINED, (fid, page["points"][fid])


def test_a_failed_interleaved_pass_keeps_the_cells(quickstart: Path, tmp_path: Path) -> None:
    """The pass's process fails (a model file gone since the cells ran): each cell of the
    protocol says why in details.interleave, its ratios are gone, its own figures stay."""
    results = json.loads((quickstart / "results.json").read_text())
    cells = plan(Suite.model_validate(results["suite"]))
    before = {c["id"]: c["metrics"]["latency.b1.p50_ms"] for c in results["cells"]
              if c["kind"] == "efficiency"}
    for m in results["suite"]["models"]:
        if m["id"] == "sface":
            m["path"] = str(tmp_path / "gone.onnx")
    attach_interleaved(results, tmp_path, cells, tmp_path / "cache", 300)
    for c in results["cells"]:
        if c["kind"] != "efficiency":
            continue
        assert c["details"]["interleave"]["error"].startswith("RuntimeError: exit status")
        assert not [k for k in c["metrics"] if "_vs_ref" in k]
        assert c["metrics"]["latency.b1.p50_ms"] == before[c["id"]]


def test_paper_table_gives_the_interleaved_ratio(quickstart: Path) -> None:
    """With a paper table, each model's latency cell notes its interleaved ratio and CI."""
    results = json.loads((quickstart / "results.json").read_text())
    results["suite"]["report"] = {"paper_table": {"protocols": ["lfw"]}}
    table = paper_table(results)
    assert table is not None
    latency_col = [c.label for c in table["table"].columns].index("Latency b1 p50")
    notes = {row[0].text: row[latency_col].note for row in table["table"].rows}
    m = {c["model"]: c["metrics"] for c in results["cells"]
         if c["id"].endswith("@cpu-ort@efficiency")}["sface"]
    lo, ratio, hi = (m[f"latency.b1.p50_vs_ref{s}"] for s in ("_ci_low", "", "_ci_high"))
    assert notes["sface"].endswith(
        f"; {ratio:.2f}× mobilefacenet, CI [{lo:.2f}, {hi:.2f}] (interleaved)")
    assert notes["mobilefacenet"].endswith("; 1.00× mobilefacenet, CI [1.00, 1.00] (interleaved)")
