"""``kill -9`` of a run at 10 seeded random points — the whole process group or only the parent
(the cell's worker then finishes or fails on its own) — each followed by ``--resume`` (which is
killed in turn, until the last one completes): the final results are identical to an
uninterrupted run (per-cell scores.csv byte for byte, verification metrics), and no file is
ever corrupt or partial (every JSON parses, every scores.csv is whole, no temp file is left).

Each point is a phase of the run plus a random delay: start-up, inside a cell, just after a
cell, while rendering the report. The data is a real LFW subset (100 pairs of View 2)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import Background
from .kit import (
    Ctx,
    assert_same_results,
    cells_by_id,
    leftovers,
    reference,
    results,
    scenario,
    scenario_name,
    unparsable_json,
)

SEED = 20240917
KILLS = 10
CELLS = {"flip": "mfn@cpu@flip", "noflip": "mfn@cpu@noflip"}
#: (phase that arms the kill, shortest and longest delay after it, in seconds)
POINTS = [
    ("start", 0.0, 1.5),
    ("cell:flip", 0.2, 2.5),
    ("cell:flip", 0.2, 2.5),
    ("done:flip", 0.0, 0.3),
    ("cell:noflip", 0.2, 2.5),
    ("cell:noflip", 0.2, 2.5),
    ("done:noflip", 0.0, 0.3),
    ("after:noflip", 0.1, 1.5),  # every cell finished (or resumed): rendering the report
    ("start", 0.0, 2.0),  # a resume with every cell finished
    ("report", 0.0, 0.2),
]


@dataclass
class Attempt:
    """One ``facebench run`` process, its stderr lines read as they come."""

    proc: subprocess.Popen[str]
    started: float
    stderr: list[str] = field(default_factory=list)

    def read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.strip())


def start(suite: Path, out: Path, env: dict[str, str], cwd: Path, resume: bool) -> Attempt:
    args = ["run", str(suite), "--out", str(out), "--no-progress"] + (["--resume"] * resume)
    proc = subprocess.Popen([sys.executable, "-m", "facebench.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group
    a = Attempt(proc, time.monotonic())
    threading.Thread(target=a.read, daemon=True).start()
    return a


def mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def armed(a: Attempt, phase: str, out: Path, logs_before: dict[str, int | None]) -> bool:
    """Whether ``phase`` has happened in this attempt."""
    kind, _, name = phase.partition(":")
    if kind == "start":
        return True
    if kind == "cell":  # the cell's worker (re)opened its stderr.log in this attempt
        return mtime(out / "cells" / CELLS[name] / "stderr.log") != logs_before[name]
    if kind in ("done", "after"):  # done: in this attempt; after: or resumed from an earlier
        return any(ln.startswith(f"ok mfn@cpu@{name}") and
                   (kind == "after" or "(resumed)" not in ln) for ln in a.stderr)
    return any(ln.startswith("report: ") for ln in a.stderr)


def wait_group_gone(pgid: int, timeout: float = 120) -> None:
    """Wait for every process of the group (an orphaned worker) to exit; then make sure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def check_whole(out: Path) -> None:
    """No corrupt or partial file: every JSON parses, every scores.csv is complete."""
    assert unparsable_json(out) == []
    if (out / "results.json").exists():
        assert results(out)["schema_version"] == 1
    for slug in CELLS.values():
        scores = out / "cells" / slug / "scores.csv"
        if scores.exists():
            assert len(scores.read_text().splitlines()) == 1 + 100


@dataclass(frozen=True)
class Chain:
    out: Path
    kills: list[str]
    stale: int  # temp/job files the kills left behind (swept by the next run)


@scenario(order=0)
def kill_chain(ctx: Ctx) -> Chain:
    """Kill at every point in turn, each time on a ``--resume`` of the run killed before,
    then let a last ``--resume`` finish; every file is checked after every kill."""
    rng = random.Random(SEED)
    out = ctx.dir / "out"
    env = {**ctx.env, "FACEBENCH_CACHE": str(ctx.dir / "cache")}
    points = list(POINTS)
    kills: list[str] = []
    stale = 0
    for _ in range(2 * KILLS):  # a run that finishes before its kill point is not a kill
        if len(kills) == KILLS:
            break
        phase, lo, hi = points.pop(0) if points else ("start", 0.0, 1.5)
        delay = rng.uniform(lo, hi)
        group = len(kills) % 2 == 0  # alternate: the process group, the parent alone
        logs = {k: mtime(out / "cells" / s / "stderr.log") for k, s in CELLS.items()}
        a = start(ctx.lfw100, out, env, ctx.dir, resume=out.exists())
        while not armed(a, phase, out, logs) and a.proc.poll() is None:
            time.sleep(0.01)
        time.sleep(delay)
        if a.proc.poll() is not None:  # finished (or failed) before the kill
            a.proc.wait()
            assert a.proc.returncode == 0, a.stderr
            continue
        if group:
            os.killpg(a.proc.pid, signal.SIGKILL)
        else:
            os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        wait_group_gone(a.proc.pid)
        kills.append(f"{'group' if group else 'parent'} at {phase}+{delay:.2f}s")
        check_whole(out)
        stale += len(leftovers(out))
    assert len(kills) == KILLS, kills
    a = start(ctx.lfw100, out, env, ctx.dir, resume=True)
    assert a.proc.wait(timeout=900) == 0, a.stderr
    return Chain(out, kills, stale)


@pytest.fixture(scope="module")
def chain(background: Background) -> Chain:
    return background.result(scenario_name(kill_chain))


def test_ten_kills_happened(chain: Chain) -> None:
    print(f"{len(chain.kills)} kills: {chain.kills}; temp/job files they left: {chain.stale}")
    assert len(chain.kills) >= KILLS
    assert {k.split()[0] for k in chain.kills} == {"group", "parent"}


def test_nothing_corrupt_or_partial_after_resume(chain: Chain) -> None:
    check_whole(chain.out)
    assert leftovers(chain.out) == []  # what the kills left was swept by the next run
    assert [c["status"] for c in cells_by_id(chain.out).values()] == ["ok", "ok"]
    assert (chain.out / "report.html").is_file() and (chain.out / "report.md").is_file()


def test_resumed_results_equal_an_uninterrupted_run(chain: Chain,
                                                     background: Background) -> None:
    assert_same_results(chain.out, background.result(scenario_name(reference)).out)
