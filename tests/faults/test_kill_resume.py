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

from .conftest import Run
from .kit import assert_same_results, cells_by_id, leftovers, results, unparsable_json

SEED = 20240917
KILLS = 10
CELLS = {"flip": "mfn__cpu__flip", "noflip": "mfn__cpu__noflip"}
#: (phase that arms the kill, shortest and longest delay after it, in seconds)
POINTS = [
    ("start", 0.0, 1.5),
    ("cell:flip", 0.2, 3.0),
    ("cell:flip", 0.2, 3.0),
    ("done:flip", 0.0, 0.3),
    ("cell:noflip", 0.2, 3.0),
    ("cell:noflip", 0.2, 3.0),
    ("done:noflip", 0.0, 0.3),
    ("done:noflip", 0.3, 2.0),  # rendering the report
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
    if kind == "done":
        return any(ln.startswith(f"ok mfn@cpu@{name}") and "(resumed)" not in ln
                   for ln in a.stderr)
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


def test_kill_9_at_random_points_then_resume(lfw100: Path, reference_run: Run,
                                             fb_env: dict[str, str], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    out = tmp_path / "out"
    env = {**fb_env, "FACEBENCH_CACHE": str(tmp_path / "cache")}
    points = list(POINTS)
    kills: list[str] = []
    stale_seen = 0
    while len(kills) < KILLS:
        assert points or len(kills) + 5 > KILLS, "too many runs finished before their kill"
        phase, lo, hi = points.pop(0) if points else ("start", 0.0, reference_run.seconds)
        delay = rng.uniform(lo, hi)
        group = len(kills) % 2 == 0  # alternate: the process group, the parent alone
        logs = {k: mtime(out / "cells" / s / "stderr.log") for k, s in CELLS.items()}
        a = start(lfw100, out, env, tmp_path, resume=out.exists())
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
        stale_seen += len(leftovers(out))
    a = start(lfw100, out, env, tmp_path, resume=True)
    assert a.proc.wait(timeout=600) == 0, a.stderr
    print(f"{len(kills)} kills: {kills}; temp/job files left by kills: {stale_seen}")
    check_whole(out)
    assert leftovers(out) == []  # swept by the resumed runs
    assert [c["status"] for c in cells_by_id(out).values()] == ["ok", "ok"]
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert_same_results(out, reference_run.out)
