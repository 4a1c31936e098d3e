"""Integration: a real ``facebench run`` (tiny efficiency suite, ~10 s), then its report.

``FACEBENCH_REAL_RESULTS`` (a run folder or results.json) renders that run instead, e.g. a full
LFW run: ``FACEBENCH_REAL_RESULTS=runs/x pytest tests/report/test_real_run.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from facebench.report import render_report
from facebench.results import load_results

from .htmlscan import scan

ROOT = Path(__file__).resolve().parents[2]
SUITE = """name: report-smoke
models:
  - {id: mobilefacenet, source: zoo, arch: mobilefacenet, embedding_size: 128}
devices:
  - {id: cpu-ort, engine: onnxruntime, threads: {intra_op: 1, inter_op: 1}, batch_sizes: [1, 2]}
protocols:
  - {id: speed, kind: efficiency, warmup: 2, min_iters: 10, min_seconds: 0}
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("FACEBENCH_REAL_RESULTS")
    if given:
        path = Path(given)
        return path if path.is_dir() else path.parent
    tmp = tmp_path_factory.mktemp("real-run")
    (tmp / "suite.yaml").write_text(SUITE)
    env = {**os.environ, "FACEBENCH_HISTORY": f"sqlite:///{tmp}/history.db",
           "FACEBENCH_CACHE": os.environ.get("FACEBENCH_CACHE") or str(tmp / "cache")}
    res = subprocess.run([sys.executable, "-m", "facebench.cli", "run", str(tmp / "suite.yaml"),
                          "--out", str(tmp / "out"), "--no-progress"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"facebench run failed\n{res.stdout}\n{res.stderr}"
    return tmp / "out"


@pytest.fixture(scope="module")
def real(real_run: Path) -> dict[str, Any]:
    return load_results(real_run)


def test_runner_report_is_what_render_report_gives(real: dict[str, Any], real_run: Path,
                                                   tmp_path: Path) -> None:
    """Rendering from results.json alone reproduces the runner's report byte for byte."""
    if os.environ.get("FACEBENCH_REAL_RESULTS"):
        pytest.skip("the given run may have been rendered with a baseline or history")
    paths = render_report(real, tmp_path)
    for key, path in paths.items():
        runner = real_run / path.relative_to(tmp_path)
        assert runner.read_bytes() == path.read_bytes(), key


def test_real_results_render_every_part(real: dict[str, Any], tmp_path: Path) -> None:
    paths = render_report(real, tmp_path, baseline=real, history=[real])
    s = scan(paths["html"].read_text())
    for sec in ("summary", "verification", "efficiency", "baseline", "figures", "failures",
                "reproducibility"):
        assert s.ids.get(sec) == "section", sec
    ok = [c for c in real["cells"] if c["status"] == "ok"]
    for c in ok:
        if c["kind"] == "efficiency":
            rows = s.tables[f"cost-{c['protocol']}-{c['device']}"]
            assert c["model"] in {r[0].text.strip() for r in rows}
            assert s.svg_in["fig-latency"] == 1
        else:
            assert s.svg_in[f"fig-roc-{c['protocol']}"] == 1
    # a run against itself: every delta is zero, nothing is marked
    assert s.tables["baseline-all"] and not s.tables.get("baseline-changes")
    assert "No change is larger than its noise." in "".join(s.text)
    md = paths["md"].read_text()
    assert "## Efficiency" in md and real["run"]["id"] in md
