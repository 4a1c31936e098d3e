"""Runs that misbehave as processes: a cell that outlives its time limit, workers killed by
signals, a suite edited between a run and its ``--resume``, and the exit status of a run whose
cells failed. Every run is a real ``facebench`` process over the trained MobileFaceNet ONNX.

- A cell still running at its ``cell_timeout_s`` (here an efficiency cell asked for 600 s of
  latency samples, printing progress all along) is killed with every process under it and
  recorded as failed ``timed out after N s``, its Python stack in the record; the other cell
  completes. Every cell has a limit: the suite's default is 2 h, and limits are bounded.
- A worker killed by a signal is recorded with the signal's name; SIGKILL says "out of memory"
  only when the cgroup's OOM-kill count rose.
- ``--resume`` after an edit re-plans from the current suite file.
- ``facebench run`` exits 3 when the run finished but some cell failed (skipped cells are not
  failures), 0 with ``--allow-failed-cells``.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from facebench.plan import plan
from facebench.suite import SuiteError, load_suite

from .conftest import Background
from .kit import (
    Ctx,
    cells_by_id,
    facebench,
    lines,
    model,
    results,
    scenario,
    scenario_name,
    suite,
    write_suite,
)

#: The slow cell's limit; it would otherwise sample latency for SLOW_SECONDS.
TIMEOUT_S = 20
SLOW_SECONDS = 600


def efficiency(ident: str, **extra: Any) -> dict[str, Any]:
    """A quick efficiency protocol (a few latency samples at batch 1)."""
    return {"id": ident, "kind": "efficiency", "warmup": 1, "min_iters": 3, "min_seconds": 0,
            "batch_sizes": [1], **extra}


def slow(ident: str, **extra: Any) -> dict[str, Any]:
    """An efficiency protocol that samples latency for ``SLOW_SECONDS`` (progress all along)."""
    return efficiency(ident, warmup=0, min_iters=1, min_seconds=SLOW_SECONDS, **extra)


@dataclass
class Watched:
    """A ``facebench run`` process, its stderr read as it comes, and every process seen under
    it while it ran."""

    proc: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def read(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def descendants(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        for p in found:
            self.seen.setdefault(p.pid, p)
        return found

    def next_worker(self, done: set[int], limit_s: float = 300) -> psutil.Process:
        """The first cell worker not in ``done`` (waits for it to start)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            for p in self.descendants():
                try:
                    if p.pid not in done and "facebench.runner.worker" in p.cmdline():
                        return p
                except psutil.Error:
                    continue
            time.sleep(0.05)
        raise AssertionError(f"no new cell worker appeared: {''.join(self.stderr)[-3000:]}")

    def wait(self, limit_s: float = 600) -> int:
        """Wait for the run to end, noting the processes under it meanwhile."""
        deadline = time.monotonic() + limit_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.descendants()
            time.sleep(0.2)
        return self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))


def watch(suite_file: Path, out: Path, ctx: Ctx) -> Watched:
    proc = subprocess.Popen([sys.executable, "-m", "facebench.cli", "run", str(suite_file),
                             "--out", str(out), "--no-progress"], cwd=ctx.dir, env=ctx.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    w = Watched(proc)
    threading.Thread(target=w.read, daemon=True).start()
    return w


# ---- a cell that outlives its time limit -----------------------------------------------------

@dataclass(frozen=True)
class TimedOut:
    out: Path
    rc: int
    stderr: str
    survivors: list[str]  # processes of the run still alive after it ended


@scenario(order=2)
def timed_out_cell(ctx: Ctx) -> TimedOut:
    d = ctx.dir
    write_suite(d / "suite.yaml", suite("timeout", [model("mfn")], [
        slow("slow", cell_timeout_s=TIMEOUT_S), efficiency("quick")]))
    w = watch(d / "suite.yaml", d / "out", ctx)
    rc = w.wait()
    survivors = []
    for p in w.seen.values():
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                survivors.append(" ".join(p.cmdline()))
                p.kill()
        except psutil.Error:
            pass
    return TimedOut(d / "out", rc, "".join(w.stderr), survivors)


@pytest.fixture(scope="module")
def timed_out(background: Background) -> TimedOut:
    return background.result(scenario_name(timed_out_cell))


def test_a_cell_past_its_limit_fails_as_timed_out(timed_out: TimedOut) -> None:
    cell = cells_by_id(timed_out.out)["mfn@cpu@slow"]
    assert cell["status"] == "failed" and cell["metrics"] == {}
    assert cell["error"]["type"] == "CellTimeout"
    assert cell["error"]["message"].startswith(f"timed out after {TIMEOUT_S} s"), cell["error"]
    # where it was when the limit came: the worker's Python stack (faulthandler)
    assert "most recent call first" in cell["error"]["traceback"], cell["error"]["traceback"]


def test_the_other_cell_completes_and_nothing_is_left_running(timed_out: TimedOut) -> None:
    cell = cells_by_id(timed_out.out)["mfn@cpu@quick"]
    assert cell["status"] == "ok", cell["error"]
    assert timed_out.survivors == []  # the timed-out worker and its RSS sampler were killed
    assert timed_out.rc == 3, timed_out.stderr  # finished, with a failed cell


def test_every_cell_has_a_bounded_time_limit(tmp_path: Path) -> None:
    def load(**extra: Any) -> Any:
        protocol = efficiency("eff", **extra.pop("protocol", {}))
        return load_suite(write_suite(tmp_path / "suite.yaml",
                                      suite("limits", [model("mfn")], [protocol], **extra)))

    assert load().cell_timeout_s == 7200  # 2 h unless the suite says otherwise
    assert load(cell_timeout_s=7 * 24 * 3600).cell_timeout_s == 604800  # the largest: 7 days
    cell = plan(load(protocol={"cell_timeout_s": 60}))[0]
    assert cell.protocol.cell_timeout_s == 60
    for bad in ({"cell_timeout_s": 1e9}, {"cell_timeout_s": float("inf")},
                {"cell_timeout_s": None}, {"protocol": {"cell_timeout_s": 0.01}}):
        with pytest.raises(SuiteError) as err:
            load(**bad)
        assert any("cell_timeout_s" in p for p in err.value.problems), err.value.problems


# ---- workers killed by signals ---------------------------------------------------------------

SIGNALS = {"a": signal.SIGTERM, "b": signal.SIGSEGV, "c": signal.SIGKILL}


@dataclass(frozen=True)
class Killed:
    out: Path
    rc: int
    stderr: str


@scenario(order=2)
def killed_workers(ctx: Ctx) -> Killed:
    """Three slow cells; the worker of each is killed, as it starts, with its own signal."""
    d = ctx.dir
    write_suite(d / "suite.yaml", suite("signals", [model("mfn")],
                                        [slow(name) for name in SIGNALS]))
    w = watch(d / "suite.yaml", d / "out", ctx)
    done: set[int] = set()
    try:
        for sig in SIGNALS.values():  # cells run one after another, in suite order
            worker = w.next_worker(done)
            done.add(worker.pid)
            worker.send_signal(sig)
        rc = w.wait()
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
    return Killed(d / "out", rc, "".join(w.stderr))


@pytest.fixture(scope="module")
def killed(background: Background) -> Killed:
    return background.result(scenario_name(killed_workers))


def test_a_worker_killed_by_a_signal_is_recorded_with_its_name(killed: Killed) -> None:
    cells = cells_by_id(killed.out)
    got = {name: cells[f"mfn@cpu@{name}"]["error"]["message"] for name in SIGNALS}
    assert got == {
        "a": "worker process killed by signal SIGTERM (15)",
        "b": "worker process killed by signal SIGSEGV (11)",
        # no OOM kill was counted in this cgroup: no claim of "out of memory"
        "c": "worker process killed by signal SIGKILL (9) (the OOM killer or a kill -9)",
    }
    assert all(cells[f"mfn@cpu@{n}"]["status"] == "failed" for n in SIGNALS)
    assert "out of memory?" not in killed.stderr
    assert killed.rc == 3, killed.stderr


# ---- --resume after editing the suite --------------------------------------------------------

@dataclass(frozen=True)
class Edited:
    out: Path
    first: dict[str, Any]
    suite_file: Path
    rc: int
    stderr: str


@scenario(order=3)
def resume_edited(ctx: Ctx) -> Edited:
    """Run a suite; edit it (one protocol setting changed, a model added, a protocol removed,
    and a limit and cell selection that change no cell's work); ``--resume``."""
    d = ctx.dir
    path = d / "suite.yaml"
    write_suite(path, suite("edited", [model("mfn")], [
        efficiency("same"), efficiency("changed"), efficiency("removed")]))
    first = facebench(["run", str(path), "--out", str(d / "out"), "--no-progress"], ctx.env, d)
    assert first.returncode == 0, first.stderr
    before = results(d / "out")
    write_suite(path, suite("edited", [model("mfn"), model("mfn2")], [
        efficiency("same", cell_timeout_s=900, models=["mfn", "mfn2"]),
        efficiency("changed", min_iters=4)]))
    res = facebench(["run", str(path), "--out", str(d / "out"), "--no-progress", "--resume"],
                    ctx.env, d)
    return Edited(d / "out", before, path, res.returncode, res.stderr)


@pytest.fixture(scope="module")
def edited(background: Background) -> Edited:
    return background.result(scenario_name(resume_edited))


def test_resume_reruns_changed_and_new_cells_only(edited: Edited) -> None:
    assert edited.rc == 0, edited.stderr
    cells = cells_by_id(edited.out)
    assert sorted(cells) == ["mfn2@cpu@changed", "mfn2@cpu@same", "mfn@cpu@changed",
                             "mfn@cpu@same"]  # the removed protocol's cell is dropped
    assert all(c["status"] == "ok" for c in cells.values()), cells
    first = {c["id"]: c for c in edited.first["cells"]}
    reused = cells["mfn@cpu@same"]
    assert reused.get("resumed") is True and reused["started"] == first["mfn@cpu@same"]["started"]
    for ident in ("mfn@cpu@changed", "mfn2@cpu@same", "mfn2@cpu@changed"):
        assert not cells[ident].get("resumed"), ident
    spec = {c.id: c.spec_sha256 for c in plan(load_suite(edited.suite_file))}
    assert {i: c["spec_sha256"] for i, c in cells.items()} == spec
    assert cells["mfn@cpu@changed"]["spec_sha256"] != first["mfn@cpu@changed"]["spec_sha256"]


def test_resume_stores_the_edited_suite(edited: Edited) -> None:
    got = results(edited.out)
    assert got["suite"] == load_suite(edited.suite_file).model_dump(mode="json")
    text = edited.suite_file.read_text(encoding="utf-8")
    assert got["run"]["suite_text"] == text
    assert got["run"]["suite_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert got["run"]["id"] == edited.first["run"]["id"]  # the same run, continued


# ---- the exit status of a run with failed cells ----------------------------------------------

@scenario(order=4)
def failed_cells(ctx: Ctx) -> dict[str, subprocess.CompletedProcess[str]]:
    """A suite with a broken model file (its cell fails) and an optional model whose file is
    missing (its cell is skipped), run plainly and with ``--allow-failed-cells``; and the
    skipped cell alone."""
    d = ctx.dir
    (d / "broken.onnx").write_bytes(b"not an onnx model")
    missing = model("missing", d / "missing.onnx", optional=True)
    write_suite(d / "both.yaml", suite("exit", [model("broken", d / "broken.onnx"), missing],
                                       [efficiency("eff")]))
    write_suite(d / "skipped.yaml", suite("exit", [missing], [efficiency("eff")]))
    got = {}
    for name, suite_file, extra in (("default", "both.yaml", []),
                                    ("allowed", "both.yaml", ["--allow-failed-cells"]),
                                    ("skipped", "skipped.yaml", [])):
        got[name] = facebench(["run", str(d / suite_file), "--out", str(d / name),
                               "--no-progress", *extra], ctx.env, d)
    return got


@pytest.fixture(scope="module")
def exits(background: Background) -> dict[str, subprocess.CompletedProcess[str]]:
    return background.result(scenario_name(failed_cells))


def test_a_run_with_a_failed_cell_exits_3(exits: dict[str, Any]) -> None:
    res = exits["default"]
    assert res.returncode == 3, res.stderr
    assert ("1 of 2 cell(s) failed: broken@cpu@eff (exit 3; --allow-failed-cells exits 0)"
            in lines(res.stderr)), res.stderr


def test_allow_failed_cells_exits_0(exits: dict[str, Any]) -> None:
    assert exits["allowed"].returncode == 0, exits["allowed"].stderr


def test_skipped_cells_are_not_failures(exits: dict[str, Any]) -> None:
    assert exits["skipped"].returncode == 0, exits["skipped"].stderr


def test_the_help_states_the_exit_codes(fb_env: dict[str, str], tmp_path: Path) -> None:
    res = facebench(["run", "--help"], {**fb_env, "COLUMNS": "200"}, tmp_path)
    assert "--allow-failed-cells" in res.stdout and "3 when the run finished" in res.stdout
