"""Fixtures of the fault-injection tests, and the count of their cases at the end of a session
(``fault-injection cases: N passed``).

Most cases check the outcome of a real ``facebench run``. Those runs (:func:`kit.scenario`)
start together in the background when the first case of the session begins, a few at a time
($FACEBENCH_FAULTS_PARALLEL, default 3), so that the tree finishes in minutes on two shared
cores; each case then waits for the run it checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .kit import SCENARIOS, Ctx, make_lfw100

HERE = Path(__file__).resolve().parent
_CASES: set[str] = set()
_MODULES: set[str] = set()
_OUTCOMES: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        if HERE in Path(item.path).resolve().parents:
            _CASES.add(item.nodeid)
            _MODULES.add(Path(item.path).stem)


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
    parts = [f"{counts[k]} {k}" for k in order if counts.get(k)]
    if len(_CASES) > len(_OUTCOMES):
        parts.append(f"{len(_CASES) - len(_OUTCOMES)} not run")
    terminalreporter.write_sep("=", f"fault-injection cases: {', '.join(parts)}")


@pytest.fixture(scope="session")
def fb_env(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every CLI call: real data, a session alignment cache, a private history."""
    base = tmp_path_factory.mktemp("fb-env")
    return {**os.environ, "FACEBENCH_SHARED": str(shared),
            "FACEBENCH_CACHE": str(base / "cache"),
            "FACEBENCH_HISTORY": f"sqlite:///{base / 'history.db'}",
            "PYTHONWARNINGS": "ignore"}


class Background:
    """Scenario runs in worker threads (each run is its own ``facebench`` process tree)."""

    def __init__(self, parallel: int, make_ctx: Callable[[str], Ctx]) -> None:
        self.pool = ThreadPoolExecutor(parallel, thread_name_prefix="scenario")
        self.make_ctx = make_ctx
        self.jobs: dict[str, Future[Any]] = {}

    def start(self, name: str) -> Future[Any]:
        if name not in self.jobs:
            self.jobs[name] = self.pool.submit(SCENARIOS[name].fn, self.make_ctx(name))
        return self.jobs[name]

    def result(self, name: str) -> Any:
        return self.start(name).result()


@pytest.fixture(scope="session")
def background(fb_env: dict[str, str], shared: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    """Starts every selected module's scenarios at once, longest first."""
    lfw100 = make_lfw100(tmp_path_factory.mktemp("lfw100"))
    bg = Background(int(os.environ.get("FACEBENCH_FAULTS_PARALLEL", "3")),
                    lambda name: Ctx(tmp_path_factory.mktemp(name.rpartition(".")[2]), fb_env,
                                     lfw100))
    wanted = [s for s in SCENARIOS.values() if _MODULES.intersection(s.modules)]
    for s in sorted(wanted, key=lambda s: s.order):
        bg.start(s.name)
    yield bg
    bg.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session", autouse=True)
def _start_scenarios(background: Background) -> None:
    """Start the background runs with the first fault-injection case of the session."""
