"""The interleaved pass of an efficiency protocol with ``interleave: true``.

After the protocol's cells ran (each its full cost probe in its own process), one process loads
every finished cell's engine and, per device and batch size, times the device's models in
alternating rounds A B C A B C … (:func:`facebench.probes.interleave.interleaved_p50`): first
each engine's ``warmup`` runs, then ``rounds`` rounds of a short block per model (2 warm-up
calls, at least ``max(5, ⌈min_iters / rounds⌉)`` timed calls and ``min_seconds / rounds``
seconds). Each model's latency is reported relative to the reference, the first model of the
protocol (its ``models`` order, else the suite's) that finished on the device, with the median
over rounds and its order-statistic CI (:func:`facebench.probes.interleave.relative_latency`).

``python -m facebench.pipeline.interleave JOB.json OUT.json`` runs it in a fresh process (the
runner's way); JOB holds the suite dump, the cell ids (in order) and the cache folder.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facebench.engines import create_engine, run_source
from facebench.engines.base import runner_for
from facebench.io import atomic_write_json, read_json
from facebench.pipeline.context import CellContext, engine_parts
from facebench.pipeline.embeddings import cell_source
from facebench.plan import Cell, plan
from facebench.probes.efficiency import make_input
from facebench.probes.interleave import Timed, interleaved_p50, relative_latency
from facebench.suite.schema import EfficiencyProtocol, Suite

METHOD = ("rounds A B C … of the protocol's finished cells on one device, one process; per "
          "round p50(model) / p50(reference); median over rounds; CI: order statistics of the "
          "per-round ratios (binomial, distribution-free)")


def block(proto: EfficiencyProtocol) -> dict[str, Any]:
    """One model's timed block within a round."""
    return {"warmup": 2, "min_iters": max(5, math.ceil(proto.min_iters / proto.rounds)),
            "min_seconds": proto.min_seconds / proto.rounds}


def cell_engine(cell: Cell, ctx: CellContext) -> Any:
    """The engine the cell's efficiency probe ran (int8: its quantized model)."""
    cache = ctx.cache_dir / "engines" if ctx.cache_dir else None
    source, cfg = engine_parts(cell.model, cell.device)
    if cell.device.precision == "int8":
        run_src, cfg, _ = cell_source(cell, ctx)
    else:
        run_src = run_source(source, cfg, cache)
    return create_engine(run_src, cfg, cache), source


def run_interleaved(cells: list[Cell], ctx: CellContext,
                    say: Callable[[str], None] = lambda line: None) -> dict[str, dict[str, Any]]:
    """``{cell id: details["interleave"]}`` for ``cells`` (one protocol's finished efficiency
    cells, in its model order); devices are timed one after the other."""
    out: dict[str, dict[str, Any]] = {}
    by_device: dict[str, list[Cell]] = {}
    for c in cells:
        by_device.setdefault(c.device.id, []).append(c)
    for group in by_device.values():
        proto = group[0].protocol
        assert isinstance(proto, EfficiencyProtocol)
        engines = [cell_engine(c, ctx) for c in group]
        ref = group[0].id
        sizes = proto.batch_sizes or group[0].device.batch_sizes
        per_cell: dict[str, dict[str, Any]] = {c.id: {} for c in group}
        for b in sorted(set(sizes)):
            timed = []
            for engine, source in engines:
                fn, sync, _ = runner_for(engine, make_input(b, source.input_size, seed=b,
                                                            layout=source.layout))
                for _ in range(proto.warmup):
                    fn()
                    if sync is not None:
                        sync()
                timed.append(Timed(fn, sync, b))
            say(f"interleaved rounds, {group[0].device.id}, batch {b}")
            table = interleaved_p50(timed, proto.rounds, **block(proto))
            for c, rel, j in zip(group, relative_latency(table), range(len(group)), strict=True):
                per_cell[c.id][str(b)] = {"p50_ms": [row[j] for row in table], **rel.as_dict()}
        for c in group:
            out[c.id] = {"reference": ref, "rounds": proto.rounds, "block": block(proto),
                         "order": [x.id for x in group], "method": METHOD,
                         "batch": per_cell[c.id]}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = read_json(argv[0])
    by_id = {c.id: c for c in plan(Suite.model_validate(job["suite"]))}
    cells = [by_id[i] for i in job["cells"]]
    out_dir = Path(job["out_dir"])
    cache = Path(job["cache_dir"]) if job.get("cache_dir") else None
    ctx = CellContext(out_dir=out_dir, cell_dir=out_dir, cache_dir=cache)
    result = run_interleaved(cells, ctx, say=lambda line: print(line, flush=True))
    atomic_write_json(Path(argv[1]), result, root=Path(argv[1]).parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
