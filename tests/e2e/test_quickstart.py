"""The quickstart runs on a machine with no data: efficiency cells run, LFW is skipped with a
note saying how to get it (not an error)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.e2e.conftest import facebench


def test_quickstart_without_data(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-such-dir"
    env = {"FACEBENCH_DATA": str(nowhere), "FACEBENCH_MODELS": str(nowhere),
           "FACEBENCH_CACHE": str(tmp_path / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{tmp_path}/history.db"}
    out = tmp_path / "out"
    res = facebench("run", "suites/quickstart.yaml", "--out", str(out), "--no-progress", env=env)
    results = json.loads((out / "results.json").read_text())
    cells = {c["id"]: c for c in results["cells"]}
    assert set(cells) == {"mobilefacenet@cpu-torch@efficiency", "mobilefacenet@cpu-ort@efficiency",
                          "mobilefacenet-trained@cpu-ort@lfw"}
    lfw = cells["mobilefacenet-trained@cpu-ort@lfw"]
    assert lfw["status"] == "skipped"
    assert "FACEBENCH_DATA" in lfw["reason"] or "not found" in lfw["reason"]
    for cid in ("mobilefacenet@cpu-torch@efficiency", "mobilefacenet@cpu-ort@efficiency"):
        c = cells[cid]
        assert c["status"] == "ok", c.get("error")
        assert c["metrics"]["params"] == 1_003_136
        assert c["metrics"]["latency.b1.p50_ms"] > 0 and c["metrics"]["latency.b8.p50_ms"] > 0
        assert c["details"]["threads"]
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.cell_id) == set(cells)
    html = (out / "report.html").read_text()
    assert "mobilefacenet-trained@cpu-ort@lfw" in html or "skipped" in html.lower()
    assert "skipped" in res.stderr


def test_dry_run_lists_cells_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = facebench("run", "suites/quickstart.yaml", "--dry-run", "--out", str(out))
    assert "mobilefacenet@cpu-torch@efficiency" in res.stderr
    assert not out.exists()
