"""Issue 27, item 8: a tampered ``results.json`` gets one line and exit 2 from every reader.

``report``, ``gate``, ``gate --baseline`` and ``report --baseline`` (real processes), the history
(a path or a stored run as baseline, recording) and the Python API read results.json through one
loader with a size limit, a nesting limit checked before parsing, ids as bounded as a suite's and
the contract's structure. Before, 200,000 nested ``[`` ended in a ``RecursionError`` traceback
with exit 1 (for ``gate``: "a gate failed"), ``{schema_version: 1, run: {}, cells: []}`` in a
``KeyError`` traceback from ``gate``, and a 5 MB model id kept ``report`` busy for minutes.

The documents are the committed example run (``reports/lfw-mobilefacenet``), edited the way a
hostile file would be.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import facebench
from facebench.history import HistoryStore
from facebench.results import MAX_RESULTS_BYTES

from .kit import ROOT, facebench_many, lines

EXAMPLE = ROOT / "reports" / "lfw-mobilefacenet"


def example() -> dict[str, Any]:
    return json.loads((EXAMPLE / "results.json").read_text(encoding="utf-8"))


def edited(fn: Callable[[dict[str, Any]], Any]) -> bytes:
    doc = example()
    fn(doc)
    return json.dumps(doc).encode()


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth):
        out = [out]
    return out


def five_mb_model(doc: dict[str, Any]) -> None:
    cell = doc["cells"][0]
    cell["model"] = "m" * 5_000_000
    cell["id"] = cell["slug"] = f"{cell['model']}@{cell['device']}@{cell['protocol']}"


#: Each tampered form: its bytes, and a piece of the one line that refuses it.
FORMS: dict[str, tuple[Callable[[], bytes], str]] = {
    "200k-brackets": (lambda: b"[" * 200_000, "nested 200000 levels deep, more than the 64"),
    "deep-details": (lambda: edited(lambda d: d["cells"][0]["details"].update(x=nested(100))),
                     "levels deep, more than the 64 allowed"),
    "minimal": (lambda: b'{"schema_version": 1, "run": {}, "cells": []}',
                "run.id: Field required"),
    "empty-cell": (lambda: edited(lambda d: d.update(cells=[{}])), "cells[0].id: Field required"),
    "cells-not-records": (lambda: edited(lambda d: d.update(cells=[1, "x"])),
                          "cells[0]: Input should be a valid dictionary"),
    "run-id-list": (lambda: edited(lambda d: d["run"].update(id=["x"])),
                    "run.id: Input should be a valid string"),
    "5mb-model-id": (lambda: edited(five_mb_model),
                     "String should have at most 242 characters"),
    "metric-string": (lambda: edited(lambda d: d["cells"][0]["metrics"].update(accuracy="high")),
                      "metric 'accuracy' is 'high', not a number or null"),
    "metric-nan": (lambda: edited(lambda d: d["cells"][0]["metrics"].update(accuracy=1.5))
                   .replace(b'"accuracy": 1.5', b'"accuracy": NaN'), "NaN is not JSON"),
    "duplicate-cell": (lambda: edited(lambda d: d["cells"].append(d["cells"][0])),
                       "appears twice"),
    "id-not-its-parts": (lambda: edited(lambda d: d["cells"][0].update(id="x@cpu-ort@lfw")),
                         "is not model@device@protocol"),
    "schema-version-true": (lambda: edited(lambda d: d.update(schema_version=True)),
                            "schema_version: Input should be a valid integer"),
    "not-utf8": (lambda: b"\xff\xfe{}", "not a readable results.json"),
}

COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "report": lambda bad, good: ["report", str(bad)],
    "gate": lambda bad, good: ["gate", str(bad)],
    "gate-baseline": lambda bad, good: ["gate", str(good), "--baseline", str(bad)],
}


def write_forms(root: Path) -> dict[str, Path]:
    paths = {}
    for name, (make, _) in FORMS.items():
        folder = root / name
        folder.mkdir()
        (folder / "results.json").write_bytes(make())
        paths[name] = folder / "results.json"
    big = root / "too-large"
    big.mkdir()
    with open(big / "results.json", "wb") as f:  # sparse: refused by its size, never read
        f.truncate(MAX_RESULTS_BYTES + 1)
    paths["too-large"] = big / "results.json"
    return paths


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_forms(tmp_path_factory.mktemp("tampered"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "run"
    shutil.copytree(EXAMPLE, out)
    return out


@pytest.fixture(scope="module")
def answers(tampered: dict[str, Path], good: Path, fb_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every command on every tampered form, two processes at a time."""
    cwd = tmp_path_factory.mktemp("cwd")
    env = {**fb_env, "FACEBENCH_HISTORY": f"sqlite:///{cwd / 'history.db'}"}
    jobs = {f"{cmd}/{form}": make(path, good) for cmd, make in COMMANDS.items()
            for form, path in tampered.items()}
    return facebench_many(jobs, env, cwd, parallel=2)


def expected(form: str) -> str:
    return "more than the" if form == "too-large" else FORMS[form][1]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("form", [*FORMS, "too-large"])
def test_every_reader_refuses_with_one_line(answers: dict[str, Any], tampered: dict[str, Path],
                                            good: Path, form: str, command: str) -> None:
    res = answers[f"{command}/{form}"]
    assert res.returncode == 2, (res.stdout, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    got = lines(res.stderr)
    assert len(got) == 1, got
    assert got[0].startswith("error: ") and str(tampered[form]) in got[0], got[0]
    assert expected(form) in got[0], got[0]
    assert len(got[0]) < 1000  # the 5 MB id is not echoed
    assert res.stdout == ""  # no gate was evaluated, no report written
    assert not (tampered[form].parent / "report.html").exists()


@pytest.mark.parametrize("form", [*FORMS, "too-large"])
def test_python_api_and_history_refuse(tampered: dict[str, Path], tmp_path: Path,
                                       form: str) -> None:
    """``facebench.load_results`` (the DataFrame) and the history's path baselines use the same
    loader: a ``ValueError`` naming the file, never a ``RecursionError``."""
    path = tampered[form]
    with pytest.raises(ValueError) as info:
        facebench.load_results(path)
    assert str(path) in str(info.value) and expected(form) in str(info.value)
    with HistoryStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        with pytest.raises(ValueError) as info:
            store.resolve(str(path))
        assert str(path) in str(info.value) and expected(form) in str(info.value)
        if form == "metric-nan":
            return  # in memory a NaN metric is how a run holds an undefined one: stored as null
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            return  # not JSON at all: nothing a caller could hand to record()
        with pytest.raises(ValueError, match=str(path)):
            store.record(doc, path)
        assert store.list_runs() == []  # nothing recorded


def test_a_tampered_run_in_the_history_is_refused_as_baseline(good: Path, tmp_path: Path,
                                                             fb_env: dict[str, str]) -> None:
    """A run recorded earlier whose stored results.json was then replaced by 200,000 ``[``:
    ``gate --baseline RUN_ID`` gets one line and exit 2 (was a RecursionError, exit 1)."""
    db = tmp_path / "history.db"
    other = example()
    other["run"]["id"] = "20261127T000000Z-0000aa"
    with HistoryStore(f"sqlite:///{db}") as store:
        store.record(other, tmp_path / "other")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE results_json SET body = ? WHERE run_id = ?",
                     ("[" * 200_000, other["run"]["id"]))
    env = {**fb_env, "FACEBENCH_HISTORY": f"sqlite:///{db}"}
    res = facebench_many({"gate": ["gate", str(good), "--baseline", other["run"]["id"]]}, env,
                         tmp_path)["gate"]
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    got = lines(res.stderr)
    assert len(got) == 1 and other["run"]["id"] in got[0] and "nested 200000 levels" in got[0]
    assert res.stdout == ""


def test_report_exits_2_when_the_results_cannot_be_rendered(good: Path, tmp_path: Path,
                                                            fb_env: dict[str, str]) -> None:
    """A results.json the loader reads but the renderer cannot (``details.engine`` a number,
    not a mapping): ``report`` printed "report rendering failed" and exited 0. Now exit 2 with
    that one line, naming the file; results.json is left as it was."""
    out = tmp_path / "run"
    shutil.copytree(good, out)
    doc = example()
    doc["cells"][0]["details"]["engine"] = -1
    (out / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    before = (out / "results.json").read_bytes()
    res = facebench_many({"report": ["report", str(out)]}, fb_env, tmp_path)["report"]
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert lines(res.stderr) == [f"report rendering failed ({out / 'results.json'}): "
                                 "AttributeError: 'int' object has no attribute 'get'"]
    assert (out / "results.json").read_bytes() == before
