"""Run one cell in this process: ``python -m facebench.runner.worker JOB.json``.

Writes ``cells/<cell id>/result.json`` atomically whatever happens short of a hard crash; the
parent records a hard crash (signal, out of memory) from the exit status.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facebench.datasets.pairs import required_inputs
from facebench.engines import EngineUnavailable, check_available
from facebench.io import atomic_write_json, read_json
from facebench.pipeline.context import CellContext, engine_parts, stdout_progress
from facebench.pipeline.efficiency import run_efficiency_cell
from facebench.pipeline.identification import run_identification
from facebench.pipeline.outcome import NothingScored
from facebench.pipeline.verification import run_verification
from facebench.plan import Cell, plan
from facebench.results import CellRecord, now
from facebench.runner.inputs import with_inputs
from facebench.runner.outdir import cell_folder
from facebench.runner.shards import shard_runner
from facebench.suite.schema import Suite

LFW_HOWTO = (
    "LFW not found at {path}. Get LFW View 2 (pairs.txt and the images folder) from "
    "https://vis-www.cs.umass.edu/lfw/ and set FACEBENCH_DATA to the folder holding "
    "pairs.txt and images/."
)


def cell_record(cell: Cell) -> CellRecord:
    """A new record of ``cell``: pending, started now (``.to_dict()`` for results.json)."""
    return CellRecord(id=cell.id, slug=cell.slug, model=cell.model.id, device=cell.device.id,
                      protocol=cell.protocol.id, kind=cell.kind, spec_sha256=cell.spec_sha256,
                      started=now())


def skip_reason(cell: Cell) -> str | None:
    """Why this cell cannot run here (missing optional inputs, engine unavailable)."""
    m = cell.model
    p = cell.protocol
    missing = next((path for path in (m.path, m.weights)
                    if m.optional and path is not None and not Path(path).exists()), None)
    if missing is not None and p.kind == "efficiency":
        return (f"model file not found (optional model): {missing}; the suite file's comments "
                "say where to get it")
    if p.kind != "efficiency" and p.optional:
        for _, path, _ in required_inputs(p.dataset):
            if not path.exists():
                if p.dataset.kind == "lfw_pairs":
                    return LFW_HOWTO.format(path=path)
                return f"dataset not found (optional protocol): {path}"
        if p.detector.model is not None and not p.detector.model.exists():
            return f"detector model not found (optional protocol): {p.detector.model}"
    if missing is not None:
        return (f"model file not found (optional model): {missing}; the suite file's comments "
                "say where to get it")
    if p.kind != "efficiency" and p.requires_weights and m.source == "zoo" and m.weights is None:
        return (f"no trained weights for {m.id!r} (zoo {m.arch}, random init): accuracy would be "
                "chance; give its checkpoint (see docs/paper.md)")
    source, cfg = engine_parts(m, cell.device)
    return check_available(cfg, source)


#: The function that runs a cell of each protocol kind.
PIPELINES: dict[str, Callable[[Cell, CellContext], dict[str, Any]]] = {
    "verification": run_verification,
    "identification": run_identification,
    "efficiency": run_efficiency_cell,
}


def run_cell(cell: Cell, out_dir: Path, cache_dir: Path | None) -> dict[str, Any]:
    """Run ``cell`` and return its record (never raises for cell-level failures). The status is
    ``ok`` when the pipeline returns; ``failed`` when it raises — a cell with nothing to score
    (:class:`NothingScored`: every pair or search failed to acquire) keeps its details and
    dataset, and no metrics."""
    rec = cell_record(cell).to_dict()
    cell_dir = cell_folder(out_dir, cell.slug)
    ctx = CellContext(out_dir=out_dir, cell_dir=cell_dir, cache_dir=cache_dir,
                      progress=stdout_progress(), shards=shard_runner(cell))
    t0 = time.perf_counter()
    try:
        reason = skip_reason(cell)
        if reason:
            rec.update(status="skipped", reason=reason)
        else:
            rec.update(status="ok", **PIPELINES[cell.kind](cell, ctx))
    except NothingScored as exc:
        rec.update(status="failed", error={"type": type(exc).__name__, "message": str(exc)},
                   **exc.partial)
    except Exception as exc:  # one broken cell never stops the run
        if isinstance(exc, EngineUnavailable):
            rec.update(status="skipped", reason=exc.reason)
        else:
            rec.update(status="failed", error={
                "type": type(exc).__name__, "message": str(exc),
                "traceback": traceback.format_exc(limit=20)})
    rec["duration_s"] = round(time.perf_counter() - t0, 3)
    return rec


def main(argv: list[str] | None = None) -> int:
    # Python stacks to stderr.log on a fatal signal, and on SIGUSR1 (the parent's timeout)
    faulthandler.enable(all_threads=True)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    argv = sys.argv[1:] if argv is None else argv
    job = read_json(argv[0])
    suite = Suite.model_validate(job["suite"])
    cells = {c.id: c for c in plan(suite)}
    cell = cells[job["cell_id"]]
    out_dir = Path(job["out_dir"])
    cache = Path(job["cache_dir"]) if job.get("cache_dir") else None
    rec = run_cell(cell, out_dir, cache)
    if job.get("inputs") is not None:  # the parent's fingerprint of what the cell read
        rec = with_inputs(rec, job["inputs"])
    atomic_write_json(out_dir / "cells" / cell.slug / "result.json", rec, root=out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
