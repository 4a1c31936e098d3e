"""Does facebench's latency probe add anything to what it measures?

For the shared MobileFaceNet ONNX at batch 1 (ONNX Runtime, CPU, ``--threads`` intra-op threads),
alternate blocks of facebench's :func:`measure_latency` over its engine's ``runner`` and a bare
``session.run`` loop on a separately built ``InferenceSession`` with the same options, in
ABBA order over ``--rounds`` rounds. Target: the median over rounds of p50(facebench) /
p50(bare) is within ±3 % of 1. Also reports the p50 ratio of 2 vs 1 intra-op threads at batch 8
(interleaved the same way; informational, no target: on a shared machine it reflects contention).

    python benchmarks/bench_latency_fidelity.py [--rounds 6] [--seconds 1.0] [--json OUT]

Exit status 1 when the fidelity target is missed (``--no-check`` to only report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench import environment  # noqa: E402
from facebench.engines import EngineConfig, ModelSource, create_engine  # noqa: E402
from facebench.probes.latency import measure_latency  # noqa: E402

TARGET = 0.03


def shared_model() -> Path:
    shared = Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared"))
    return shared / "models" / "mobilefacenet_128d.onnx"


def bare_p50(session: ort.InferenceSession, x: np.ndarray, iters: int, warmup: int) -> float:
    """The reference: a plain loop around ``session.run`` timed with perf_counter_ns."""
    feed = {session.get_inputs()[0].name: x}
    for _ in range(warmup):
        session.run(None, feed)
    samples = np.empty(iters, dtype=np.int64)
    for i in range(iters):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        samples[i] = time.perf_counter_ns() - t0
    return float(np.median(samples)) / 1e6


def bare_session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def fidelity(path: Path, rounds: int, seconds: float, threads: int) -> dict:
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)
    engine = create_engine(ModelSource(kind="onnx", path=path),
                           EngineConfig(engine="onnxruntime", intra_op_threads=threads))
    fn, sync = engine.runner(x)
    bare = bare_session(path, threads)
    ours, ref = [], []
    for r in range(rounds):
        order = ("fb", "bare") if r % 2 == 0 else ("bare", "fb")
        for who in order:
            if who == "fb":
                st = measure_latency(fn, warmup=5, min_iters=50, min_seconds=seconds, sync=sync)
                ours.append(st.p50_ms)
                iters = st.samples  # the bare block runs as many iterations
            else:
                ref.append(bare_p50(bare, x, iters if ours else 200, warmup=5))
    ratios = [a / b for a, b in zip(ours, ref, strict=True)]
    return {
        "facebench_p50_ms": ours, "bare_p50_ms": ref, "ratios": ratios,
        "median_ratio": float(np.median(ratios)),
        "ratio_of_medians": float(np.median(ours) / np.median(ref)),
    }


def thread_ratio(path: Path, rounds: int, seconds: float) -> dict:
    x = np.random.default_rng(0).uniform(-1, 1, (8, 3, 112, 112)).astype(np.float32)
    runners = {n: create_engine(ModelSource(kind="onnx", path=path),
                                EngineConfig(engine="onnxruntime", intra_op_threads=n)).runner(x)[0]
               for n in (1, 2)}
    p50: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for n in ((1, 2) if r % 2 == 0 else (2, 1)):
            st = measure_latency(runners[n], warmup=3, min_iters=10, min_seconds=seconds, batch=8)
            p50[n].append(st.p50_ms)
    return {"p50_ms_1_thread": p50[1], "p50_ms_2_threads": p50[2],
            "median_ratio_2_over_1": float(np.median(np.array(p50[2]) / np.array(p50[1])))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=1.0, help="min_seconds per block")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for fidelity")
    ap.add_argument("--json", type=Path, help="write the summary here too")
    ap.add_argument("--no-check", action="store_true")
    args = ap.parse_args(argv)
    path = shared_model()
    if not path.is_file():
        print(f"model not found: {path} (set FACEBENCH_SHARED)", file=sys.stderr)
        return 2
    load_before, t0 = environment.load_avg(), time.monotonic()
    fid = fidelity(path, args.rounds, args.seconds, args.threads)
    thr = thread_ratio(path, max(2, args.rounds // 2), args.seconds)
    load_after = environment.load_avg()
    ok = abs(fid["median_ratio"] - 1) <= TARGET
    summary = {
        "fidelity": fid, "threads_b8": thr, "target": f"|median ratio - 1| <= {TARGET}",
        "ok": ok, "load_avg_before": load_before, "load_avg_after": load_after,
        "busy": environment.is_busy(load_before, load_after, environment.cores_used(),
                                    own_threads=2, duration_s=time.monotonic() - t0),
        "cpu_model": environment.cpu_model(), "onnxruntime": ort.__version__,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    print(f"facebench/bare p50 (median of {args.rounds} paired rounds): "
          f"{fid['median_ratio']:.4f}  [{'ok' if ok else 'MISSED'} ±{TARGET:.0%}]; "
          f"ORT b8 p50 2 threads / 1 thread: {thr['median_ratio_2_over_1']:.3f}",
          file=sys.stderr)
    return 0 if ok or args.no_check else 1


if __name__ == "__main__":
    sys.exit(main())
