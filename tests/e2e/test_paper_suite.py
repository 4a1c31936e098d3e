"""The paper suite: MobileFaceNet and SE-LResNet100E-IR side by side on CPU, exact parameter
counts in the results, and accuracy cells of weightless zoo models skipped with a note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import facebench

pytestmark = pytest.mark.slow


def test_paper_models_side_by_side(run_env: dict[str, str], tmp_path: Path) -> None:
    env = {**run_env, "IRSE100_WEIGHTS": "", "IRESNET100_WEIGHTS": ""}
    out = tmp_path / "paper"
    facebench("run", "suites/paper.yaml", "--out", str(out), "--no-progress",
              "--only", "mobilefacenet@cpu-ort@efficiency",
              "--only", "se_lresnet100e_ir@cpu-ort@efficiency-large",
              "--only", "se_lresnet100e_ir@cpu-ort@lfw", env=env)
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    mfn = cells["mobilefacenet@cpu-ort@efficiency"]
    irse = cells["se_lresnet100e_ir@cpu-ort@efficiency-large"]
    for c in (mfn, irse):
        assert c["status"] == "ok", c.get("error")
    assert mfn["metrics"]["params"] == 1_003_136
    assert irse["metrics"]["params"] == 65_502_016
    assert irse["metrics"]["gmac"] == pytest.approx(12.10, rel=0.01)
    # the big model costs more: compare within this one run, never absolute times
    assert irse["metrics"]["latency.b1.p50_ms"] > mfn["metrics"]["latency.b1.p50_ms"]
    lfw = cells["se_lresnet100e_ir@cpu-ort@lfw"]
    assert lfw["status"] == "skipped" and "no trained weights" in lfw["reason"]
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (html, md):
        assert "mobilefacenet" in text and "se_lresnet100e_ir" in text
        assert "65,502,016" in text or "65.50" in text
