"""The local executor: every cell in its own subprocess, results written as cells finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facebench.acquire import default_cache_dir
from facebench.io import atomic_write_json, read_json
from facebench.plan import Cell
from facebench.results import now
from facebench.runner.worker import cell_record

ProgressFn = Callable[[Cell, str, int, int], None]


def finished_record(out_dir: Path, cell: Cell) -> dict[str, Any] | None:
    """The stored record of a finished (ok or skipped) cell, for ``--resume``; ``None`` when
    the cell's spec changed since (model, device or protocol edited in the suite)."""
    path = out_dir / "cells" / cell.slug / "result.json"
    try:
        rec = read_json(path)
    except (OSError, ValueError):
        return None
    same = rec.get("id") == cell.id and rec.get("spec_sha256") == cell.spec_sha256
    return rec if same and rec.get("status") in ("ok", "skipped") else None


def run_in_subprocess(cell: Cell, suite_dump: dict[str, Any], out_dir: Path,
                      cache_dir: Path | None, timeout_s: float | None,
                      on_progress: Callable[[str, int, int], None]) -> dict[str, Any]:
    """Run one cell in a fresh Python process and return its record.

    A crash, kill or timeout of the child is recorded as a failed cell with the exit status and
    the tail of its stderr."""
    cell_dir = out_dir / "cells" / cell.slug
    cell_dir.mkdir(parents=True, exist_ok=True)
    result_path = cell_dir / "result.json"
    result_path.unlink(missing_ok=True)
    job = {"suite": suite_dump, "cell_id": cell.id, "out_dir": str(out_dir),
           "cache_dir": str(cache_dir) if cache_dir else None}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=cell_dir,
                                     prefix=".job.") as f:
        json.dump(job, f)
        job_path = f.name
    log_path = cell_dir / "stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "facebench.runner.worker", job_path],
                                    stdout=subprocess.PIPE, stderr=log, env=env, text=True)
            assert proc.stdout is not None
            timed_out = False
            try:
                for line in proc.stdout:
                    _progress_line(line, on_progress)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                timed_out = True
    finally:
        Path(job_path).unlink(missing_ok=True)
    if result_path.is_file() and proc.returncode == 0:
        return read_json(result_path)
    rec = cell_record(cell)
    tail = log_path.read_text(errors="replace")[-2000:] if log_path.is_file() else ""
    why = (f"timed out after {timeout_s} s" if timed_out else
           f"worker process died with exit status {proc.returncode}"
           + (" (killed by a signal: out of memory?)" if proc.returncode < 0 else ""))
    rec.update(status="failed", duration_s=None,
               error={"type": "WorkerCrash", "message": why, "traceback": tail})
    atomic_write_json(result_path, rec)
    return rec


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
              progress: ProgressFn | None = None) -> None:
    """Run ``cells`` one after another (each isolated), reporting every finished record."""
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    for cell in cells:
        rec = finished_record(out_dir, cell) if resume else None
        if rec is not None:
            rec["resumed"] = True
            on_cell_done(rec)
            continue
        rec = run_in_subprocess(
            cell, suite_dump, out_dir, cache_dir, timeout_s,
            lambda stage, done, total, c=cell: progress and progress(c, stage, done, total),
        )
        rec.setdefault("finished", now())
        on_cell_done(rec)
