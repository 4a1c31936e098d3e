"""The flagship suite: the trained MobileFaceNet, SFace int8 and the zoo's SE-LResNet100E-IR side
by side on CPU, exact parameter counts in the results (SFace's int8 weights included), accuracy
cells of weightless zoo models skipped with a note, and the paper table in both reports."""

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
              "--only", "sface-int8@cpu-ort@efficiency",
              "--only", "se_lresnet100e_ir@cpu-ort@lfw-retinaface", env=env)
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    mfn = cells["mobilefacenet@cpu-ort@efficiency"]
    irse = cells["se_lresnet100e_ir@cpu-ort@efficiency-large"]
    sface = cells["sface-int8@cpu-ort@efficiency"]
    for c in (mfn, irse, sface):
        assert c["status"] == "ok", c.get("error")
    assert mfn["metrics"]["params"] == 989_952  # the shared ONNX (BN folded into its convs)
    assert sface["metrics"]["params_quantized"] == 9_607_744
    assert sface["details"]["dequantized_at_run_time"] == 29
    assert irse["metrics"]["params"] == 65_502_016
    assert irse["metrics"]["gmac"] == pytest.approx(12.10, rel=0.01)
    # the big model costs more: compare within this one run, never absolute times
    assert irse["metrics"]["latency.b1.p50_ms"] > mfn["metrics"]["latency.b1.p50_ms"]
    lfw = cells["se_lresnet100e_ir@cpu-ort@lfw-retinaface"]
    assert lfw["status"] == "skipped" and "no trained weights" in lfw["reason"]
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (html, md):
        assert "mobilefacenet" in text and "se_lresnet100e_ir" in text
        assert "65,502,016" in text or "65.50" in text
        assert "Paper table" in text and "WebFace42M" in text
