"""The local executor: every cell in its own subprocess, results written as cells finish."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from facebench.faces.acquire import default_cache_dir
from facebench.io import atomic_write_json, create_new, read_json_bounded
from facebench.plan import Cell
from facebench.results import MAX_JSON_DEPTH, MAX_RESULTS_BYTES, check_cell, now
from facebench.runner.inputs import InputDigests, stale_reason, with_inputs
from facebench.runner.outdir import cell_folder
from facebench.runner.worker import cell_record

ProgressFn = Callable[[Cell, str, int, int], None]


def resume_check(out_dir: Path, cell: Cell, inputs: dict[str, str]
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """For ``--resume``: ``(record, None)`` when the stored record of a finished (ok or
    skipped) cell still holds, ``(None, why)`` when it does not (its settings or the contents
    of what it reads changed since: :func:`facebench.runner.inputs.stale_reason`), and
    ``(None, None)`` when there is no finished record or it is not one (damaged, edited:
    :func:`read_record`)."""
    try:
        rec = read_record(out_dir / "cells" / cell.slug / "result.json")
    except (OSError, ValueError):
        return None, None
    if not (isinstance(rec, dict) and rec.get("id") == cell.id
            and rec.get("status") in ("ok", "skipped")):
        return None, None
    why = stale_reason(rec, cell, inputs)
    return (None, why) if why else (rec, None)


def finished_record(out_dir: Path, cell: Cell, inputs: dict[str, str]) -> dict[str, Any] | None:
    """The stored record of a finished cell that ``--resume`` reuses (:func:`resume_check`)."""
    return resume_check(out_dir, cell, inputs)[0]


def read_record(path: Path) -> dict[str, Any]:
    """A cell's ``result.json``, read with results.json's bounds and checked as its cells are
    (``ValueError`` naming the file when it is not a cell record)."""
    try:
        data = read_json_bounded(path, max_bytes=MAX_RESULTS_BYTES, max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:
        raise ValueError(f"{path}: not a cell record ({exc})") from None
    return check_cell(data, str(path))


def cell_timeout(cell: Cell, default: float | None) -> float | None:
    """The wall-clock limit of ``cell``: its protocol's ``cell_timeout_s``, else ``default``
    (the suite's)."""
    return getattr(cell.protocol, "cell_timeout_s", None) or default


def run_in_subprocess(cell: Cell, suite_dump: dict[str, Any], out_dir: Path,
                      cache_dir: Path | None, timeout_s: float | None,
                      on_progress: Callable[[str, int, int], None],
                      inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one cell in a fresh Python process and return its record, with ``inputs`` (the
    fingerprint of what it reads, taken before it starts) when given: the worker records them
    with its result, so that the result of a worker that outlives a killed run is reused.

    ``timeout_s`` is a wall-clock deadline: a worker still running then (whatever it is
    blocked on) has its Python stack dumped to ``stderr.log`` and is killed with every process
    under it. A crash, kill or timeout of the child is recorded as a failed cell with the
    reason and the tail of its stderr, and so is a result the worker wrote that is not a cell
    record (:func:`read_record`)."""
    cell_dir = cell_folder(out_dir, cell.slug)
    result_path = cell_dir / "result.json"
    result_path.unlink(missing_ok=True)
    job = {"suite": suite_dump, "cell_id": cell.id, "out_dir": str(out_dir),
           "cache_dir": str(cache_dir) if cache_dir else None, "inputs": inputs}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=cell_dir,
                                     prefix=".job.") as f:
        json.dump(job, f)
        job_path = f.name
    log_path = cell_dir / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ooms = oom_kill_count()
    try:
        with open(create_new(log_path), "wb") as log:  # new: never through a planted link
            proc = subprocess.Popen([sys.executable, "-m", "facebench.runner.worker", job_path],
                                    stdout=subprocess.PIPE, stderr=log, env=env)
            try:
                timed_out = not follow(proc, timeout_s, on_progress)
                if timed_out:
                    dump_stack(proc)
            finally:  # a timeout, or this process interrupted: never leave a worker behind
                kill_tree(proc)
                assert proc.stdout is not None
                proc.stdout.close()
    finally:
        Path(job_path).unlink(missing_ok=True)
    unreadable = None
    if result_path.is_file() and proc.returncode == 0 and not timed_out:
        try:
            return read_record(result_path)
        except (OSError, ValueError) as exc:  # never a record report and gate would refuse
            unreadable = str(exc)
    rec = cell_record(cell).to_dict()
    if inputs is not None:
        rec = with_inputs(rec, inputs)
    tail = log_path.read_text(errors="replace")[-4000:] if log_path.is_file() else ""
    if unreadable is not None:
        error = {"type": "BadRecord", "message": unreadable, "traceback": tail}
    elif timed_out:
        error = {"type": "CellTimeout", "message": f"timed out after {timeout_s:g} s "
                 "(cell_timeout_s); the worker was killed", "traceback": tail}
    else:
        error = {"type": "WorkerCrash", "traceback": tail,
                 "message": exit_reason(proc.returncode, oom_kill_count(), ooms)}
    rec.update(status="failed", duration_s=None, error=error)
    atomic_write_json(result_path, rec, root=cell_dir)
    return rec


#: How often a silent worker is checked for having exited (its pipe may be held open by a
#: process it started), and how long a stack dump may take before the kill.
POLL_S = 0.5
DUMP_WAIT_S = 1.0


def follow(proc: subprocess.Popen[bytes], timeout_s: float | None,
           on_progress: Callable[[str, int, int], None]) -> bool:
    """Pass the worker's progress lines (stdout) on until it exits; ``False`` when it is still
    running ``timeout_s`` seconds after it started (``None``: no limit)."""
    assert proc.stdout is not None
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    fd = proc.stdout.fileno()
    pending = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return proc.poll() is not None
            if not sel.get_map():  # end of output: wait for the exit itself
                try:
                    proc.wait(timeout=left)
                    return True
                except subprocess.TimeoutExpired:
                    return False
            if sel.select(POLL_S if left is None else min(left, POLL_S)):
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(fd)
                    continue
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    _progress_line(line.decode(errors="replace"), on_progress)
            elif proc.poll() is not None:  # exited; something it started holds stdout open
                return True


def dump_stack(proc: subprocess.Popen[bytes]) -> None:
    """Ask a worker to write its Python stack to its stderr.log (faulthandler, SIGUSR1)."""
    with contextlib.suppress(OSError):
        proc.send_signal(signal.SIGUSR1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=DUMP_WAIT_S)


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker that is still running and every process under it (detection pools,
    their helpers), then reap it. The worker is stopped first so it starts nothing new."""
    if proc.poll() is None:
        victims: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            root.suspend()
            victims = root.children(recursive=True)
        with contextlib.suppress(OSError):
            proc.kill()
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(victims, timeout=10)
    proc.wait()


def exit_reason(returncode: int, ooms_after: int | None, ooms_before: int | None) -> str:
    """Why a worker ended without its result: its exit status, or the signal that killed it by
    name; "out of memory" only when this cgroup's OOM-kill count rose meanwhile."""
    if returncode == 0:
        return "worker process exited with status 0 without writing its result"
    if returncode > 0:
        return f"worker process died with exit status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    why = f"worker process killed by signal {name} ({-returncode})"
    if -returncode != signal.SIGKILL:
        return why
    if ooms_after is not None and ooms_before is not None and ooms_after > ooms_before:
        return (f"{why}: out of memory (the kernel's OOM killer; this cgroup's oom_kill count "
                f"rose from {ooms_before} to {ooms_after})")
    return f"{why} (the OOM killer or a kill -9)"


def oom_kill_count() -> int | None:
    """How many processes of this process's memory cgroup the OOM killer has killed so far
    (cgroup v2 ``memory.events``, v1 ``memory.oom_control``); ``None`` where unreadable."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    candidates = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.strip().lstrip("/")
        if hierarchy == "0" and not controllers:
            candidates += [root / rel / "memory.events", root / "memory.events"]
        elif "memory" in controllers.split(","):
            candidates += [root / "memory" / rel / "memory.oom_control",
                           root / "memory" / "memory.oom_control"]
    for events in candidates:
        try:
            for row in events.read_text().splitlines():
                key, _, value = row.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            continue
    return None


def _progress_line(line: str, on_progress: Callable[[str, int, int], None]) -> None:
    if not line.startswith("{"):
        return
    try:
        msg = json.loads(line)
        on_progress(msg["progress"], int(msg["done"]), int(msg["total"]))
    except (ValueError, KeyError, TypeError):
        pass


def run_cells(cells: list[Cell], suite_dump: dict[str, Any], out_dir: Path,
              cache_dir: Path | None, *, resume: bool, timeout_s: float | None,
              on_cell_done: Callable[[dict[str, Any]], None],
              progress: ProgressFn | None = None,
              digests: InputDigests | None = None) -> None:
    """Run ``cells`` one after another (each isolated), reporting every finished record.
    ``digests`` fingerprints what each cell reads (one per run; default: a new one)."""
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digests = digests if digests is not None else InputDigests()
    for cell in cells:
        inputs = digests(cell)
        rec, why = resume_check(out_dir, cell, inputs) if resume else (None, None)
        if rec is not None:
            rec["resumed"] = True
            on_cell_done(rec)
            continue
        rec = run_in_subprocess(
            cell, suite_dump, out_dir, cache_dir, cell_timeout(cell, timeout_s),
            lambda stage, done, total, c=cell: progress and progress(c, stage, done, total),
            inputs,
        )
        rec.setdefault("finished", now())
        if why:
            rec["rerun_reason"] = why
        on_cell_done(rec)
