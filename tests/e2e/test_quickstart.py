"""The quickstart runs on a machine with no data: the built-in model's cost cells run, the
trained models' cells are skipped with a note saying how to get LFW and the models (not an
error)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.e2e.conftest import ROOT, facebench


def test_quickstart_without_data(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-such-dir"
    env = {"FACEBENCH_DATA": str(nowhere), "FACEBENCH_MODELS": str(nowhere),
           "FACEBENCH_CACHE": str(tmp_path / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{tmp_path}/history.db"}
    out = tmp_path / "out"
    res = facebench("run", "suites/quickstart.yaml", "--out", str(out), "--no-progress", env=env)
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    trained = {f"{m}@cpu-ort@{p}" for m in ("mobilefacenet", "sface")
               for p in ("lfw", "efficiency")}
    built_in = {"mobilefacenet-random@cpu-torch@engines", "mobilefacenet-random@cpu-ort@engines"}
    assert set(cells) == trained | built_in
    for cid in trained:  # skipped, each saying how to get what is missing
        assert cells[cid]["status"] == "skipped"
        reason = cells[cid]["reason"]
        if cid.endswith("@lfw"):
            assert "FACEBENCH_DATA" in reason and "vis-www.cs.umass.edu/lfw" in reason
        else:
            assert str(nowhere) in reason and "the suite file's comments" in reason
    header = (ROOT / "suites" / "quickstart.yaml").read_text()
    assert "FACEBENCH_MODELS" in header and "vis-www.cs.umass.edu/lfw" in header
    for cid in built_in:
        c = cells[cid]
        assert c["status"] == "ok", c.get("error")
        assert c["metrics"]["params"] == 1_003_136
        assert c["metrics"]["latency.b1.p50_ms"] > 0 and c["metrics"]["latency.b8.p50_ms"] > 0
        assert c["details"]["threads"]
        assert "interleave" not in c["details"]  # one model per device: no interleaved pass
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.cell_id) == set(cells)
    html = (out / "report.html").read_text()
    assert "mobilefacenet@cpu-ort@lfw" in html and "skipped" in html.lower()
    assert "skipped" in res.stderr


def test_dry_run_lists_cells_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = facebench("run", "suites/quickstart.yaml", "--dry-run", "--out", str(out))
    assert "mobilefacenet-random@cpu-torch@engines" in res.stderr
    assert not out.exists()
