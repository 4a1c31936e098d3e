"""Gates on a real ``facebench run`` (the runner's own results.json, history and --gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from facebench.gates import gate_command


def _suite_with(out: Path, tmp: Path, gates: list[Any]) -> Path:
    """A copy of the real results.json whose suite section carries other gates."""
    data = json.loads((out / "results.json").read_text())
    data["suite"]["gates"] = gates
    path = tmp / "results.json"
    path.write_text(json.dumps(data))
    return path


def test_run_gate_fails_with_exit_1(real_run: dict[str, Any]) -> None:
    assert real_run["rc"] == 1, real_run["stderr"][-2000:]
    out = real_run["stdout"]
    results = json.loads((real_run["out"] / "results.json").read_text())
    params = results["cells"][0]["metrics"]["params"]
    assert "PASS  gates[0] params <= 2e+06" in out or "PASS  gates[0] params <= 2000000" in out
    assert (
        f"FAIL  gates[2] params <= 500000 [{results['cells'][0]['id']}]: params = {params}" in out
    )
    # first run on main: nothing to compare against, the relative gate skips loudly
    assert "SKIP  gates[3] latency.p50_ms <= baseline + 10%" in out
    assert "no earlier run of suite 'gate-smoke'" in real_run["stderr"]


def test_gate_command_on_real_results(real_run: dict[str, Any], tmp_path: Path) -> None:
    ok = _suite_with(
        real_run["out"], tmp_path, ["params <= 2e6", "efficiency.latency.p90_ms < 1e4"]
    )
    assert gate_command(ok, record=False) == 0
    junit = tmp_path / "junit.xml"
    bad = _suite_with(real_run["out"], tmp_path, ["latency.p50_ms <= 0.001"])
    assert gate_command(bad, junit=junit, record=False) == 1
    results = json.loads(bad.read_text())
    value = results["cells"][0]["metrics"]["latency.p50_ms"]
    [failure] = ElementTree.parse(junit).getroot().iter("failure")
    assert failure.get("message") == (
        f"latency.p50_ms = {value:.6g} violates <= 0.001 on {results['cells'][0]['id']}"
    )
    # identical samples under another run id (a rerun) pass; the run itself is refused
    same = _suite_with(real_run["out"], tmp_path, ["latency.p50_ms <= baseline + 10%"])
    assert gate_command(same, str(real_run["out"]), record=False) == 2
    rerun = json.loads((real_run["out"] / "results.json").read_text())
    rerun["run"]["id"] += "-rerun"
    (tmp_path / "rerun.json").write_text(json.dumps(rerun))
    assert gate_command(same, str(tmp_path / "rerun.json"), record=False) == 0


def test_real_run_recorded_and_resolved_in_another_process(real_run: dict[str, Any]) -> None:
    results = json.loads((real_run["out"] / "results.json").read_text())
    branch = results["run"]["git"]["branch"]
    ref = f"latest:{branch}" if branch else "latest"
    code = (
        "import sys; from facebench.history import HistoryStore; "
        "print(HistoryStore(sys.argv[1]).resolve(sys.argv[2])['run']['id'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, real_run["history"], ref],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert proc.stdout.strip() == results["run"]["id"]
