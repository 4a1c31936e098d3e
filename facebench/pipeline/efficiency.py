"""Efficiency cell: the probes of :mod:`facebench.probes.efficiency` on a model × device."""

from __future__ import annotations

from typing import Any

from facebench.pipeline.context import CellContext, engine_parts
from facebench.pipeline.embeddings import cell_source
from facebench.plan import Cell
from facebench.probes.efficiency import run_efficiency
from facebench.probes.peaks import PeakCache

#: The run folder's file of measured peaks, shared by the run's cells (facebench.probes.peaks).
PEAKS_FILE = "peaks.json"


def run_efficiency_cell(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """One efficiency cell through the shared probe (every engine, dlib included)."""
    proto = cell.protocol
    batch_sizes = proto.batch_sizes or cell.device.batch_sizes
    source, cfg = engine_parts(cell.model, cell.device)
    # int8: the quantized model (made once, before timing) is what runs; params and GMAC are
    # counted on the model's own source
    run_src, _, precision = cell_source(cell, ctx)
    out = run_efficiency(
        source, cfg, batch_sizes=tuple(batch_sizes), warmup=proto.warmup,
        min_iters=proto.min_iters, min_seconds=proto.min_seconds,
        progress=lambda done, total: ctx.progress("iterations", done, total),
        cache_dir=ctx.cache_dir / "engines" if ctx.cache_dir else None,
        run_src=run_src if cell.device.precision == "int8" else None,
        peaks=PeakCache(ctx.out_dir / PEAKS_FILE),
    )
    details = {**out["details"], "precision": precision}
    return {"metrics": out["metrics"], "details": details, "artifacts": {}}
