"""Issue 27, item 12: text from results reaches the terminal and JUnit XML inert.

A gate name holding NUL or an ANSI escape (valid YAML: ``"\\0"``, ``"\\e"``; it passes
``validate``) made ``junit.xml`` malformed and coloured the terminal; ``facebench history``
rendered rich markup stored in a run (``[bold red]x[/]`` came out bold, its text gone) and sent
raw ANSI escapes to the terminal; a failed cell's error message did the same in ``run``'s
progress lines. Every such text now goes through one helper (:func:`facebench.text.plain`):
control characters are shown as escapes (``\\x1b``), markup is shown as it is written.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from facebench.history import HistoryStore
from facebench.text import plain

from .kit import (
    LFW,
    ROOT,
    facebench,
    lfw_rows,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

EXAMPLE = ROOT / "reports" / "lfw-mobilefacenet"
LFW_CELL = "mobilefacenet-128d@cpu-ort@lfw"
ESC, NUL = "\x1b", "\x00"
MARKUP = "[bold red]x[/]"
NAMES = [f"red {ESC}[31mRED{ESC}[0m", f"nul {NUL} here", f"markup {MARKUP}", "rtl \u202eevil"]
ERROR = f"boom {ESC}[2J{ESC}[31m {MARKUP} {NUL}"


def raw_control(text: str) -> list[str]:
    """The raw control characters in ``text`` other than newline (none may reach a terminal)."""
    return sorted({ch for ch in text if ch != "\n" and (ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0
                                                        or ch == "\u202e")})


def test_plain_escapes_what_a_terminal_or_xml_would_obey() -> None:
    assert plain(f"a{ESC}[31mb{NUL}c\u202ed\n") == "a\\x1b[31mb\\x00c\\u202ed\\x0a"
    assert plain("line 1\n\tline 2\r", lines=True) == "line 1\n\tline 2\\x0d"
    assert plain(MARKUP) == MARKUP and plain("ünïcødé ✓") == "ünïcødé ✓"


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, fb_env: dict[str, str]) -> dict[str, Any]:
    """``facebench gate --junit`` on a copy of the example run whose gate names hold NUL, ANSI
    escapes, rich markup and a bidi override, and whose failed cell's error holds the same."""
    d = tmp_path_factory.mktemp("hygiene")
    out = d / "run"
    shutil.copytree(EXAMPLE, out)
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    doc["suite"]["gates"] = [{"metric": "accuracy", "op": ">=", "value": 0.9, "protocol": "lfw",
                              "name": name} for name in NAMES]
    cell = next(c for c in doc["cells"] if c["id"] == LFW_CELL)
    cell.update(status="failed", error={"type": "RuntimeError", "message": ERROR})
    (out / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    res = facebench(["gate", str(out), "--junit", str(d / "junit.xml")], fb_env, d)
    return {"res": res, "junit": d / "junit.xml"}


def test_junit_with_control_characters_in_gate_names_is_well_formed(gated: dict) -> None:
    assert gated["res"].returncode == 1, gated["res"].stderr  # the gates fail: the cell failed
    cases = ET.parse(gated["junit"]).getroot().iter("testcase")
    names = [case.get("name") for case in cases]
    assert names == [f"gates[{i}] {plain(n)}" for i, n in enumerate(NAMES)], names
    assert "gates[0] red \\x1b[31mRED\\x1b[0m" in names and f"gates[2] markup {MARKUP}" in names
    failure = ET.parse(gated["junit"]).getroot().find(".//failure")
    assert failure is not None and "boom \\x1b[2J\\x1b[31m" in (failure.text or "")


def test_gate_output_shows_control_characters_and_markup_as_text(gated: dict) -> None:
    res = gated["res"]
    assert raw_control(res.stdout + res.stderr) == []
    for i, name in enumerate(NAMES):
        assert f"FAIL  gates[{i}] {plain(name)} [{LFW_CELL}]: " in res.stdout
    assert MARKUP in res.stdout and "\\x1b[2J" in res.stdout


def test_history_shows_stored_text_literally(tmp_path: Path, fb_env: dict[str, str]) -> None:
    """A run whose branch is rich markup; another whose suite and branch (written by an older
    facebench, or by hand, into a shared database) hold ANSI escapes and NUL."""
    db = tmp_path / "history.db"
    doc = json.loads((EXAMPLE / "results.json").read_text(encoding="utf-8"))
    doc["run"]["git"]["branch"] = MARKUP
    with HistoryStore(f"sqlite:///{db}") as store:
        store.record(doc, EXAMPLE)
        doc["run"]["id"] = "20261127T000000Z-0000bb"
        store.record(doc, EXAMPLE)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET suite = ?, git_branch = ? WHERE run_id = ?",
                     (f"s{ESC}[31m{NUL}", f"b{ESC}]0;pwned{NUL}", doc["run"]["id"]))
    res = facebench(["history"], {**fb_env, "FACEBENCH_HISTORY": f"sqlite:///{db}"}, tmp_path)
    assert res.returncode == 0, res.stderr
    assert raw_control(res.stdout) == [], res.stdout
    assert MARKUP in res.stdout  # shown, not rendered as bold red "x"
    assert "s\\x1b[31m\\x00" in res.stdout and "b\\x1b]0;pwned\\x00" in res.stdout


def test_run_progress_lines_show_error_messages_as_text(tmp_path: Path,
                                                      fb_env: dict[str, str]) -> None:
    """A model file whose name holds an ANSI escape and markup: the failed cell's line on the
    console carries its error message (the path) escaped, not obeyed."""
    bad = tmp_path / f"m{ESC}[31m" / f"x{ESC}[2J[bold]y.onnx"
    bad.parent.mkdir()
    bad.write_bytes(b"not an onnx model")
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(1, 2))
    suite_file = write_suite(tmp_path / "suite.yaml", suite(
        "hygiene", [model("bad", bad)],
        [verification("lfw", pairs, LFW / "images", detector=False)]))
    res = facebench(["run", str(suite_file), "--out", str(tmp_path / "out"), "--no-progress"],
                    fb_env, tmp_path)
    assert res.returncode == 3, res.stderr  # finished, its one cell failed
    assert raw_control(res.stderr) == [], res.stderr
    failed = [ln for ln in res.stderr.splitlines() if "failed bad@cpu@lfw" in ln]
    assert len(failed) == 1 and "x\\x1b[2J[bold]y.onnx" in failed[0], res.stderr
