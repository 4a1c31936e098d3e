"""Fixtures of the fault-injection tests, and the count of their cases at the end of a session
(``fault-injection cases: N passed``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .kit import LFW, facebench, lfw_rows, model, suite, verification, write_pair_csv, write_suite

HERE = Path(__file__).resolve().parent
_CASES: set[str] = set()
_OUTCOMES: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    _CASES.update(i.nodeid for i in session.items if HERE in Path(i.path).resolve().parents)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _CASES:
        return
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = "passed"
    if _OUTCOMES.get(report.nodeid) in ("failed", "error"):
        return  # a passing teardown does not hide a failure
    if report.when == "call" or outcome != "passed" or report.nodeid not in _OUTCOMES:
        _OUTCOMES[report.nodeid] = outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _CASES:
        return
    counts: dict[str, int] = {}
    for outcome in _OUTCOMES.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    order = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    text = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    not_run = len(_CASES) - len(_OUTCOMES)
    if not_run:
        text += f", {not_run} not run"
    terminalreporter.write_sep("=", f"fault-injection cases: {text or 'none run'}")


@pytest.fixture(scope="session")
def fb_env(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every CLI call: real data, a session alignment cache, a private history."""
    base = tmp_path_factory.mktemp("fb-env")
    return {**os.environ, "FACEBENCH_SHARED": str(shared),
            "FACEBENCH_CACHE": str(base / "cache"),
            "FACEBENCH_HISTORY": f"sqlite:///{base / 'history.db'}",
            "PYTHONWARNINGS": "ignore"}


@dataclass(frozen=True)
class Run:
    """A finished ``facebench run``: its output folder and wall time."""

    out: Path
    seconds: float


@pytest.fixture(scope="session")
def lfw100(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real LFW subset: 100 pairs of View 2 (folds 1-2: 25 genuine + 25 impostor each), and
    a suite of two verification cells over it (flip and no flip); returns the suite file."""
    d = tmp_path_factory.mktemp("lfw100")
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(25, 2))
    images = LFW / "images"
    write_suite(d / "suite.yaml", suite("lfw100", [model("mfn")], [
        verification("flip", pairs, images, flip=True),
        verification("noflip", pairs, images, flip=False),
    ]))
    return d / "suite.yaml"


@pytest.fixture(scope="session")
def reference_run(lfw100: Path, fb_env: dict[str, str],
                  tmp_path_factory: pytest.TempPathFactory) -> Run:
    """An uninterrupted run of ``lfw100`` with a cold alignment cache of its own."""
    d = tmp_path_factory.mktemp("reference")
    env = {**fb_env, "FACEBENCH_CACHE": str(d / "cache")}
    t0 = time.perf_counter()
    res = facebench(["run", str(lfw100), "--out", str(d / "out"), "--no-progress"], env, d)
    assert res.returncode == 0, res.stderr
    return Run(d / "out", time.perf_counter() - t0)
