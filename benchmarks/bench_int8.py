"""int8 / fp32 latency ratio of the flagship's quantized models, interleaved so drift cancels.

    python benchmarks/bench_int8.py [--models mobilefacenet facenet] [--rounds 7] [--out F.json]

A suite run measures the fp32 and int8 efficiency cells one after the other, minutes apart; on
a shared machine whose speed changes 2× from one minute to the next their ratio carries that
drift. Here both sessions live in one process and are timed in alternating rounds (fp32, int8,
int8, fp32, …) at each batch size; each round gives a ratio of p50s, and the median over rounds
is reported with its range.

The int8 model is the one ``facebench run suites/paper.yaml`` makes for
``<model>@cpu-ort-int8@efficiency`` (``facebench.pipeline.embeddings.cell_source``: static QDQ,
per channel, calibrated on 200 aligned crops of the model's LFW protocol), taken from the
facebench cache (``$FACEBENCH_CACHE``) or made there; threads as the suite's devices (2 intra-op).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench.engines import create_engine, run_source  # noqa: E402
from facebench.io import atomic_write_json  # noqa: E402
from facebench.paths import default_cache_dir  # noqa: E402
from facebench.pipeline.context import CellContext, engine_parts  # noqa: E402
from facebench.pipeline.embeddings import cell_source  # noqa: E402
from facebench.plan import plan  # noqa: E402
from facebench.probes.latency import measure_latency  # noqa: E402
from facebench.suite import load_suite  # noqa: E402

SUITE = ROOT / "suites" / "paper.yaml"


def p50(engine: Any, x: np.ndarray, seconds: float) -> float:
    run, _ = engine.runner(x)
    stats = measure_latency(run, warmup=3, min_iters=10, min_seconds=seconds, batch=len(x))
    return stats.p50_ms


def bench(model: str, cells: dict[str, Any], rounds: int, seconds: float,
          batches: list[int]) -> dict[str, Any]:
    c32, c8 = cells[f"{model}@cpu-ort@efficiency"], cells[f"{model}@cpu-ort-int8@efficiency"]
    with tempfile.TemporaryDirectory() as t:
        ctx = CellContext(out_dir=Path(t), cell_dir=Path(t), cache_dir=default_cache_dir())
        src8, cfg8, record = cell_source(c8, ctx)
    src32, cfg32 = engine_parts(c32.model, c32.device)
    e32 = create_engine(run_source(src32, cfg32), cfg32)
    e8 = create_engine(src8, cfg8)
    w, h = c32.model.preprocess.input_size
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"model": model, "int8": {k: record.get(k) for k in (
        "mode", "per_channel", "activation_type", "weight_type", "model_sha256", "reused")},
        "threads": cfg32.intra_op_threads, "batches": {}}
    for b in batches:
        x = rng.uniform(-1, 1, (b, 3, h, w)).astype(np.float32)
        ratios, t32, t8 = [], [], []
        for r in range(rounds):
            order = ((e32, t32), (e8, t8)) if r % 2 == 0 else ((e8, t8), (e32, t32))
            for engine, into in order:
                into.append(p50(engine, x, seconds))
            ratios.append(t8[-1] / t32[-1])
        out["batches"][str(b)] = {
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
            "fp32_p50_ms_median": round(statistics.median(t32), 3),
            "int8_p50_ms_median": round(statistics.median(t8), 3), "rounds": rounds}
        print(f"{model:14} b{b}: int8/fp32 = {out['batches'][str(b)]['ratio_median']:.3f} "
              f"[{min(ratios):.3f}, {max(ratios):.3f}]  fp32 {statistics.median(t32):.2f} ms, "
              f"int8 {statistics.median(t8):.2f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["mobilefacenet", "facenet"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=1.0, help="at least this long per p50")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("FACEBENCH_SHARED", str(ROOT.parent / "shared"))
    cells = {c.id: c for c in plan(load_suite(SUITE))}
    record = {"cores": len(os.sched_getaffinity(0)), "rounds": args.rounds,
              "models": [bench(m, cells, args.rounds, args.seconds, args.batches)
                         for m in args.models]}
    if args.out is not None:
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
