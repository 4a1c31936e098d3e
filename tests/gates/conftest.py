"""Real result files for gate tests: each made by a fresh ``make_run.py`` process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MAKE_RUN = Path(__file__).with_name("make_run.py")
#: One intra-op thread: on this shared 2-core box 2 threads are bimodal under load (see docs/ci.md).
TIMING = ("--threads", "1", "--samples", "200")

MakeRun = Callable[..., Path]


def make_run(out: Path, run_id: str, *args: str, gates: list[Any] | None = None) -> Path:
    """Run make_run.py in a fresh interpreter; return the results.json path."""
    cmd = [sys.executable, str(MAKE_RUN), str(out), "--run-id", run_id, *args]
    if gates is not None:
        cmd += ["--gates", json.dumps(gates)]
    subprocess.run(cmd, check=True, timeout=120)
    return out / "results.json"


@pytest.fixture(scope="session")
def run_factory(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> MakeRun:
    """``run_factory(run_id, *args, gates=…)`` → a fresh real results.json."""
    root = tmp_path_factory.mktemp("runs")

    def factory(run_id: str, *args: str, gates: list[Any] | None = None) -> Path:
        return make_run(root / run_id, run_id, *args, gates=gates)

    return factory


@pytest.fixture(scope="session")
def full_run(run_factory: MakeRun) -> Path:
    """A real run with an efficiency cell, an LFW-subset verification cell and a failed cell."""
    return run_factory("full-1", *TIMING, "--verify-pairs", "15", "--fail-cell")


@pytest.fixture(scope="session")
def full_results(full_run: Path) -> dict[str, Any]:
    return json.loads(full_run.read_text())
