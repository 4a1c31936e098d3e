"""Does facebench's efficiency CELL (engine, RSS sampler, warm-up, timed loop) time what a bare
onnxruntime loop times?

For the shared MobileFaceNet and FaceNet ONNX models (ONNX Runtime, CPU, ``--threads`` intra-op
threads, batch 1 and 8), each round runs, in alternating order (facebench first on even rounds,
bare first on odd ones):

- facebench: :func:`facebench.probes.efficiency.run_efficiency` — the whole cell path a suite
  runs, RSS sampler included (paused inside timed loops since issue 25);
- bare: a fresh ``InferenceSession`` with the engine's options and a plain ``perf_counter_ns``
  loop around ``session.run``, as many iterations as facebench timed, after the same warm-up;
- with ``--sampled``, also facebench's :func:`measure_latency` on the same engine with an
  :class:`RssSampler` running through the timed loop (the behaviour before issue 25), to show
  what the sampler costs.

Reported per model and batch: each round's p50 ratio facebench/bare, their median (target
≤ 1 + ``--target`` at batch 1) and range.

    python benchmarks/bench_cell_vs_bare.py [--rounds 6] [--threads 2] [--seconds 1] [--sampled]
        [--json OUT]

Exit status 1 when a batch-1 median misses the target (``--no-check`` to only report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench import environment  # noqa: E402
from facebench.engines import EngineConfig, ModelSource, create_engine  # noqa: E402
from facebench.engines.base import runner_for  # noqa: E402
from facebench.probes.efficiency import make_input, run_efficiency  # noqa: E402
from facebench.probes.latency import measure_latency  # noqa: E402
from facebench.probes.memory import RssSampler  # noqa: E402

#: (name, file, input size)
MODELS = (("mobilefacenet", "mobilefacenet_128d.onnx", (112, 112)),
          ("facenet", "facenet_inception_resnet_v1_casia.onnx", (160, 160)))
BATCHES = (1, 8)
WARMUP = 5


def shared_models() -> Path:
    return Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")) / "models"


def bare_p50(path: Path, threads: int, x: np.ndarray, iters: int) -> float:
    """The reference: the engine's session options, a plain timed loop around ``session.run``."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    for _ in range(WARMUP):
        session.run(None, feed)
    samples = np.empty(iters, dtype=np.int64)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples[i] = time.perf_counter_ns() - t0
    return float(np.median(samples)) / 1e6


def sampled_p50(source: ModelSource, cfg: EngineConfig, b: int, iters: int) -> float:
    """facebench's timed loop with the RSS sampler running through it (before issue 25)."""
    engine = create_engine(source, cfg)
    fn, sync, _ = runner_for(engine, make_input(b, source.input_size, seed=b))
    with RssSampler():
        st = measure_latency(fn, warmup=WARMUP, min_iters=iters, min_seconds=0, sync=sync,
                             batch=b)
    return st.p50_ms


def one_model(path: Path, size: tuple[int, int], threads: int, rounds: int, seconds: float,
              sampled: bool) -> dict[str, Any]:
    source = ModelSource(kind="onnx", path=path, input_size=size)
    cfg = EngineConfig(engine="onnxruntime", intra_op_threads=threads, inter_op_threads=1)
    p50: dict[str, dict[int, list[float]]] = {k: {b: [] for b in BATCHES}
                                              for k in ("facebench", "bare", "sampled")}
    iters = {1: 50, 8: 10}
    for r in range(rounds):
        arms = ["facebench", "bare"] + (["sampled"] if sampled else [])
        if r % 2:
            arms.reverse()
        for arm in arms:
            if arm == "facebench":
                out = run_efficiency(source, cfg, batch_sizes=BATCHES, warmup=WARMUP,
                                     min_iters=10, min_seconds=seconds)
                for b in BATCHES:
                    p50[arm][b].append(out["metrics"][f"latency.b{b}.p50_ms"])
                    iters[b] = int(out["metrics"][f"latency.b{b}.samples"])
            else:
                for b in BATCHES:
                    x = make_input(b, size, seed=b)
                    p50[arm][b].append(bare_p50(path, threads, x, iters[b]) if arm == "bare"
                                       else sampled_p50(source, cfg, b, iters[b]))
    out: dict[str, Any] = {}
    for b in BATCHES:
        row: dict[str, Any] = {k: p50[k][b] for k in p50 if p50[k][b]}
        for arm in ("facebench", "sampled"):
            if p50[arm][b]:
                ratios = np.array(p50[arm][b]) / np.array(p50["bare"][b])
                row[f"{arm}_over_bare"] = {"median": float(np.median(ratios)),
                                           "min": float(ratios.min()), "max": float(ratios.max()),
                                           "rounds": ratios.tolist()}
        out[f"b{b}"] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="min_seconds per timed loop")
    ap.add_argument("--target", type=float, default=0.03)
    ap.add_argument("--sampled", action="store_true", help="also time with the sampler running")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args(argv)
    folder = shared_models()
    missing = [f for _, f, _ in MODELS if not (folder / f).is_file()]
    if missing:
        print(f"models not found in {folder}: {', '.join(missing)} (set FACEBENCH_SHARED)",
              file=sys.stderr)
        return 2
    load_before, t0 = environment.load_avg(), time.monotonic()
    results = {name: one_model(folder / f, size, args.threads, args.rounds, args.seconds,
                               args.sampled) for name, f, size in MODELS}
    load_after = environment.load_avg()
    ok = all(r["b1"]["facebench_over_bare"]["median"] <= 1 + args.target for r in results.values())
    summary = {
        "models": results, "threads": args.threads, "rounds": args.rounds,
        "target": f"median facebench/bare p50 at batch 1 <= {1 + args.target}", "ok": ok,
        "load_avg_before": load_before, "load_avg_after": load_after,
        "busy": environment.is_busy(load_before, load_after, environment.cores_used(),
                                    own_threads=args.threads, duration_s=time.monotonic() - t0),
        "cpu_model": environment.cpu_model(), "onnxruntime": ort.__version__,
        "duration_s": round(time.monotonic() - t0, 1),
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    for name, r in results.items():
        for b in BATCHES:
            row = r[f"b{b}"]
            line = ", ".join(f"{arm}/bare median {row[k]['median']:.3f} "
                             f"(range {row[k]['min']:.3f}–{row[k]['max']:.3f})"
                             for arm in ("facebench", "sampled")
                             if (k := f"{arm}_over_bare") in row)
            print(f"{name} b{b}: {line}", file=sys.stderr)
    print(f"{'ok' if ok else 'MISSED'}: {summary['target']}", file=sys.stderr)
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
