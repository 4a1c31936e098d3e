"""gate_command end to end on real result files: exit codes, JUnit, Markdown, history."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from facebench.gates import Gate, evaluate_gates, gate_command, markdown_summary, write_junit


def _junit(path: Path) -> ElementTree.Element:
    return ElementTree.parse(path).getroot().find("testsuite")  # type: ignore[return-value]


def _with(results_path: Path, tmp: Path, **suite: Any) -> Path:
    """A copy of a real results.json whose suite section carries other gates."""
    data = json.loads(results_path.read_text())
    data["suite"].update(suite)
    out = tmp / "results.json"
    out.write_text(json.dumps(data))
    return out


def test_passing_gates_exit_0(full_run: Path, tmp_path: Path) -> None:
    junit, summary = tmp_path / "j.xml", tmp_path / "s.md"
    gates = [
        "lfw.accuracy >= 0.5",
        "params <= 2000000",
        "latency.p50_ms <= 1000",
        "mobilefacenet@cpu-ort@efficiency:model_size_bytes < 5e6",
    ]
    code = gate_command(full_run, None, junit, summary, record=False, extra_gates=gates)
    assert code == 0
    suite = _junit(junit)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "0", "0")
    assert summary.read_text().startswith("## facebench: ✅ gates passed (4 pass)")


def test_failing_gate_exit_1_names_metric_bound_value(
    full_run: Path, full_results: dict, tmp_path: Path
) -> None:
    junit = tmp_path / "j.xml"
    code = gate_command(
        full_run,
        None,
        junit,
        record=False,
        extra_gates=["params <= 500000", "lfw.accuracy >= 0.999", "params > 1"],
    )
    assert code == 1
    suite = _junit(junit)
    assert (suite.get("tests"), suite.get("failures")) == ("3", "2")
    msgs = [f.get("message", "") for f in suite.iter("failure")]
    params = full_results["cells"][0]["metrics"]["params"]
    assert msgs[0] == f"params = {params} violates <= 500000 on mobilefacenet@cpu-ort@efficiency"
    acc = full_results["cells"][1]["metrics"]["accuracy"]
    assert msgs[1] == f"accuracy = {acc:.6g} violates >= 0.999 on mobilefacenet@cpu-ort@lfw"
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names[0] == "gates[0] params <= 500000" and names[1] == "gates[1] lfw.accuracy >= 0.999"


def test_failed_cells(broken_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # the suite's own gates pass, but a failed cell no gate covers is a run error
    assert gate_command(broken_run, record=False) == 2
    assert "failed cells no gate covers: mobilefacenet@cpu-ort@broken" in capsys.readouterr().err
    # a gate that covers the failed cell fails with the cell's error as the reason
    junit = tmp_path / "j.xml"
    assert (
        gate_command(broken_run, junit=junit, record=False, extra_gates=["broken.accuracy >= 0.9"])
        == 1
    )
    [failure] = _junit(junit).iter("failure")
    assert "cell mobilefacenet@cpu-ort@broken failed (InvalidArgument:" in failure.get(
        "message", ""
    )


def test_errors_and_skips(full_results: dict, broken_run: Path) -> None:
    gates = [
        Gate.model_validate(g)
        for g in ("gmac <= 1", "*@cuda:latency.p50_ms <= 5", "latency.p50_ms <= baseline + 10%")
    ]
    null, nomatch, relative = evaluate_gates(full_results, gates)
    assert (null.status, null.message) == (
        "error",
        "gmac on mobilefacenet@cpu-ort@efficiency is undefined (null)",
    )
    assert nomatch.status == "error" and nomatch.cell_id is None
    assert "no cell matching *@cuda@* reports latency.p50_ms" in nomatch.message
    assert relative.status == "skip" and "no baseline" in relative.message
    # a baseline whose cell is missing → skip, not fail
    base = json.loads(broken_run.read_text())
    [o] = evaluate_gates(
        full_results, [Gate.model_validate("lfw.accuracy >= baseline - 0.01")], base
    )
    assert o.status == "skip" and "no cell mobilefacenet@cpu-ort@lfw in the baseline" in o.message


def test_usage_errors_exit_2(full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert gate_command(tmp_path / "nope", record=False) == 2
    assert "cannot read results" in capsys.readouterr().err
    bad = _with(full_run, tmp_path, gates=["lfw.accuracy >= 0.9", "accuracy >>= 1"])
    assert gate_command(bad, record=False) == 2
    err = capsys.readouterr().err
    assert "suite.gates[1]: cannot parse 'accuracy >>= 1': expected " in err
    db = f"sqlite:///{tmp_path / 'h.db'}"
    assert gate_command(full_run, "no-such-run", history_url=db, record=False) == 2
    assert "bad baseline 'no-such-run'" in capsys.readouterr().err
    assert gate_command(full_run, str(tmp_path / "missing" / "results.json"), record=False) == 2


def test_relative_gates_against_a_path_baseline(full_run: Path, tmp_path: Path) -> None:
    gates = [
        "lfw.accuracy >= baseline - 0.002",
        "params <= baseline + 0%",
        "latency.p50_ms <= baseline + 10%",
    ]
    junit = tmp_path / "j.xml"
    # identical numbers under another run id (a run is never its own baseline: exit 2)
    assert gate_command(full_run, str(full_run.parent), record=False, extra_gates=gates) == 2
    data = json.loads(full_run.read_text())
    data["run"]["id"] += "-rerun"
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "results.json").write_text(json.dumps(data))
    assert gate_command(full_run, str(tmp_path / "base"), junit, record=False,
                        extra_gates=gates) == 0
    assert _junit(junit).get("tests") == "3"


def test_history_baseline_latest_main(
    run_factory: Callable[..., Path], full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    db = f"sqlite:///{tmp_path / 'hist.db'}"
    gates = ["params <= baseline + 0%", "latency.p50_ms <= baseline + 10%"]
    summary = tmp_path / "summary.md"
    # first run on main: no earlier run, so relative gates skip with a warning; it is recorded
    assert (
        gate_command(full_run, "latest:main", summary=summary, history_url=db, extra_gates=gates)
        == 0
    )
    assert "no earlier run of suite 'ci-smoke' on branch 'main'" in capsys.readouterr().err
    # a PR run is gated against latest:main (the first run), never against itself
    pr = run_factory("pr-1", "--branch", "feature")
    assert gate_command(pr, "latest:main", summary=summary, history_url=db, extra_gates=gates) == 0
    text = summary.read_text()
    assert text.count("## facebench:") == 2 and "vs baseline full-1." in text


def test_outputs_are_pure_functions_of_outcomes(full_results: dict, tmp_path: Path) -> None:
    gates = [Gate.model_validate(g) for g in ("params <= 1", "lfw.accuracy >= 0", "gmac <= 1")]
    outcomes = evaluate_gates(full_results, gates)
    md = markdown_summary(outcomes, run_id="full-1")
    lines = md.splitlines()
    assert lines[0] == "## facebench: ❌ gates failed (1 fail, 1 error, 1 pass)"
    rows = [
        ln
        for ln in lines
        if ln.startswith("| ❌") or ln.startswith("| ⛔") or ln.startswith("| ✅")
    ]
    assert [r[:3] for r in rows] == ["| ❌", "| ⛔", "| ✅"]  # failures first
    path = write_junit(outcomes, tmp_path / "sub" / "junit.xml")
    suite = _junit(path)
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
