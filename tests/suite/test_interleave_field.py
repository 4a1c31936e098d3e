"""``interleave`` and ``rounds`` of an efficiency protocol: declared, validated (one line naming
the field for a bad value, exit 2 on the CLI), recorded in the suite dump, and outside a cell's
spec hash (the interleaved pass runs after the cells)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facebench.plan import plan
from facebench.suite import SuiteError
from facebench.suite.load import parse_suite

BASE = """
name: t
models:
  - {id: a, source: onnx, path: model.onnx}
  - {id: b, source: onnx, path: model.onnx}
devices:
  - {id: cpu-ort, engine: onnxruntime}
protocols:
  - id: eff
    kind: efficiency
"""


@pytest.fixture()
def where(tmp_path: Path) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"x")
    return tmp_path


def test_defaults_and_dump(where: Path) -> None:
    suite = parse_suite(BASE, where / "s.yaml", {})
    proto = suite.protocols[0]
    assert (proto.interleave, proto.rounds) == (False, 6)
    on = parse_suite(BASE + "    interleave: true\n    rounds: 9\n", where / "s.yaml", {})
    dump = on.model_dump(mode="json")["protocols"][0]
    assert (dump["interleave"], dump["rounds"]) == (True, 9)
    # the cells' work is the same: toggling the pass does not rerun them under --resume
    assert [c.spec_sha256 for c in plan(suite)] == [c.spec_sha256 for c in plan(on)]


@pytest.mark.parametrize(("line", "expected"), [
    ("interleave: maybe", "protocols[0].interleave: Input should be a valid boolean"),
    ("interleave: 1", "protocols[0].interleave: Input should be a valid boolean"),
    ("rounds: 5", "protocols[0].rounds: Input should be greater than or equal to 6"),
    ("rounds: true", "protocols[0].rounds: expected a number"),
    ("rounds: 2.5", "protocols[0].rounds:"),
])
def test_bad_values_one_problem_each(where: Path, line: str, expected: str) -> None:
    with pytest.raises(SuiteError) as exc:
        parse_suite(BASE + f"    {line}\n", where / "s.yaml", {})
    assert len(exc.value.problems) == 1
    assert exc.value.problems[0].startswith(expected), exc.value.problems


def test_interleave_on_a_verification_protocol_is_unknown(where: Path) -> None:
    text = BASE + """  - id: lfw
    kind: verification
    interleave: true
    dataset: {pairs: pairs.txt, images: images}
"""
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, where / "s.yaml", {})
    assert any("interleave: unknown key" in p for p in exc.value.problems), exc.value.problems


def test_cli_validate_says_it_in_one_line(where: Path) -> None:
    bad = where / "bad.yaml"
    bad.write_text(BASE + "    interleave: sometimes\n")
    res = subprocess.run([sys.executable, "-m", "facebench.cli", "validate", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if "interleave" in ln]
    assert len(lines) == 1 and "Traceback" not in res.stderr
