"""Do interleaved latency ratios survive a busy machine when raw milliseconds do not?

The models of ``suites/quickstart.yaml``'s interleaved efficiency protocol (the shared
MobileFaceNet and SFace on ONNX Runtime, 2 intra-op threads) are measured twice: once as the
machine is, and once with a CPU-burning process (a Python busy loop) pinned to one core with
``os.sched_setaffinity``. Each time:

- raw: each model's batch-``--batch`` p50, the models one after the other (as separate cells
  measure them), ``--seconds`` each;
- interleaved: ``--rounds`` rounds A B … (:func:`facebench.probes.interleave.interleaved_p50`,
  the same blocks as the suite's interleaved pass), each model's median per-round ratio to the
  first model (:func:`facebench.probes.interleave.relative_latency`).

Printed: each model's raw p50 change (busy / quiet − 1; expect > 30 %) and its interleaved
ratio's change (target: |change| < 10 %). This benchmark process is pinned to the burner's core
and one other, so the burner always competes with it.

    python benchmarks/bench_interleave_noise.py [--rounds 6] [--seconds 3] [--batch 1]
        [--json OUT] [--no-check]

Exit status 1 when a ratio moves by 10 % or more (``--no-check`` to only report).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench import environment  # noqa: E402
from facebench.engines.base import runner_for  # noqa: E402
from facebench.pipeline.context import CellContext  # noqa: E402
from facebench.pipeline.interleave import block, cell_engine  # noqa: E402
from facebench.plan import plan  # noqa: E402
from facebench.probes.efficiency import make_input  # noqa: E402
from facebench.probes.interleave import Timed, interleaved_p50, relative_latency  # noqa: E402
from facebench.probes.latency import measure_latency  # noqa: E402
from facebench.suite import load_suite  # noqa: E402

SUITE = ROOT / "suites" / "quickstart.yaml"
TARGET = 0.10
BURN = "while True:\n    pass\n"


def quickstart_runners(batch: int) -> tuple[list[str], list[Timed], Any]:
    """The quickstart's interleaved protocol's models on cpu-ort, as the suite runs them."""
    suite = load_suite(SUITE)
    cells = [c for c in plan(suite) if getattr(c.protocol, "interleave", False)]
    missing = [str(c.model.path) for c in cells if c.model.path and not c.model.path.exists()]
    if missing:
        raise SystemExit(f"models not found: {', '.join(missing)} (set FACEBENCH_MODELS)")
    ctx = CellContext(out_dir=Path("."), cell_dir=Path("."), cache_dir=None)
    timed = []
    for c in cells:
        engine, source = cell_engine(c, ctx)
        fn, sync, _ = runner_for(engine, make_input(batch, source.input_size, seed=batch,
                                                    layout=source.layout))
        timed.append(Timed(fn, sync, batch))
    return [c.model.id for c in cells], timed, cells[0].protocol


def measure(timed: list[Timed], proto: Any, rounds: int, seconds: float) -> dict[str, Any]:
    for t in timed:  # warm every engine first
        measure_latency(t.fn, warmup=proto.warmup, min_iters=1, min_seconds=0, sync=t.sync,
                        batch=t.batch)
    raw = [measure_latency(t.fn, warmup=2, min_iters=10, min_seconds=seconds, sync=t.sync,
                           batch=t.batch).p50_ms for t in timed]
    cfg = {**block(proto), "min_seconds": seconds / rounds}
    table = interleaved_p50(timed, rounds, **cfg)
    rel = relative_latency(table)
    return {"raw_p50_ms": raw, "ratio": [r.ratio for r in rel],
            "ci": [[r.ci_low, r.ci_high] for r in rel], "rounds_p50_ms": table}


def burner(core: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", BURN])
    os.sched_setaffinity(proc.pid, {core})
    return proc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=3.0, help="raw timing per model; the "
                    "interleaved rounds take as long in all")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print("needs at least 2 usable cores", file=sys.stderr)
        return 2
    core, mine = cores[0], set(cores[:2])
    os.sched_setaffinity(0, mine)  # the threads of the model share the burner's core
    names, timed, proto = quickstart_runners(args.batch)
    load_before = environment.load_avg()
    quiet = measure(timed, proto, args.rounds, args.seconds)
    proc = burner(core)
    try:
        time.sleep(0.5)
        busy = measure(timed, proto, args.rounds, args.seconds)
    finally:
        proc.kill()
        proc.wait(10)
    raw_change = [b / q - 1 for b, q in zip(busy["raw_p50_ms"], quiet["raw_p50_ms"],
                                             strict=True)]
    ratio_change = [b / q - 1 for b, q in zip(busy["ratio"], quiet["ratio"], strict=True)]
    # for comparison: the ratio of the raw (one-after-the-other) p50s
    seq = [v / quiet["raw_p50_ms"][0] for v in quiet["raw_p50_ms"]]
    seq_busy = [v / busy["raw_p50_ms"][0] for v in busy["raw_p50_ms"]]
    seq_change = [b / q - 1 for b, q in zip(seq_busy, seq, strict=True)]
    ok = all(abs(c) < TARGET for c in ratio_change[1:])
    summary = {
        "models": names, "batch": args.batch, "rounds": args.rounds, "cores": sorted(mine),
        "burner_core": core, "quiet": quiet, "busy": busy, "raw_p50_change": raw_change,
        "ratio_change": ratio_change, "sequential_ratio_change": seq_change,
        "target": f"|interleaved ratio change| < {TARGET}",
        "ok": ok, "load_avg_before": load_before, "load_avg_after": environment.load_avg(),
        "cpu_model": environment.cpu_model(),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    for i, name in enumerate(names):
        print(f"{name}: raw p50 {quiet['raw_p50_ms'][i]:.2f} → {busy['raw_p50_ms'][i]:.2f} ms "
              f"({raw_change[i]:+.1%}); ratio to {names[0]} {quiet['ratio'][i]:.3f} → "
              f"{busy['ratio'][i]:.3f} ({ratio_change[i]:+.1%}; one after the other: "
              f"{seq_change[i]:+.1%})", file=sys.stderr)
    print(f"{'ok' if ok else 'MISSED'}: {summary['target']}", file=sys.stderr)
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
