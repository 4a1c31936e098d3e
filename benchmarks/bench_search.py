"""1:N search at scale: facebench.search top-k with faiss vs the numpy matmul baseline.

    python benchmarks/bench_search.py [--gallery 1000000] [--probes 10000] [--dim 512]
                                      [--k 20] [--threads 2] [--out F.json]

Writes a gallery of seeded random unit vectors to a ``.npy`` in a temporary folder (generated
chunk by chunk, ~2 GB at full size; deleted at the end) and probes: half noisy copies of
gallery rows (mated), half random. Each backend then runs in its own fresh subprocess,
streaming the gallery from disk with ``NpyChunks`` and threads pinned to ``--threads``; this
process samples the worker's resident memory every 10 ms (peak, and peak minus the worker's
baseline just before the search; the kernel's ``ru_maxrss`` is recorded as a cross-check).

Checks: both backends return identical indices (and scores); faiss time <= numpy time; each
peak under 4 GB. Results go to ``benchmarks/results/search-2core.json`` (``--out``); the exit
status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEAK_LIMIT = 4 * 1024 ** 3
GEN_ROWS = 65536


def write_data(folder: Path, rows: int, probes: int, dim: int, seed: int) -> tuple[Path, Path]:
    """``gallery.npy`` (rows × dim unit float32, written chunk by chunk) and ``probes.npy``
    (first half noisy copies of seeded gallery rows, second half random unit vectors)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_mated = probes // 2
    sources = np.sort(rng.choice(rows, n_mated, replace=False)) if rows else np.zeros(0, int)
    mated = np.empty((n_mated, dim), np.float32)
    gallery = folder / "gallery.npy"
    with gallery.open("wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        for start in range(0, rows, GEN_ROWS):
            chunk = rng.standard_normal((min(GEN_ROWS, rows - start), dim), dtype=np.float32)
            chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
            pick = (sources >= start) & (sources < start + len(chunk))
            mated[pick] = chunk[sources[pick] - start]
            f.write(chunk.tobytes())
    noisy = mated + rng.standard_normal(mated.shape, dtype=np.float32) * (0.5 / dim ** 0.5)
    rand = rng.standard_normal((probes - n_mated, dim), dtype=np.float32)
    both = np.concatenate([noisy, rand])
    both /= np.linalg.norm(both, axis=1, keepdims=True)
    np.save(folder / "probes.npy", both.astype(np.float32))
    np.save(folder / "sources.npy", sources.astype(np.int64))
    return gallery, folder / "probes.npy"


def worker(backend: str, folder: Path, k: int, threads: int, chunk_rows: int) -> int:
    """Run one backend's top_k in this (fresh) process; write ``<backend>.json`` and the
    result arrays to ``folder``."""
    import numpy as np
    import psutil

    from facebench.search import NpyChunks, resolve_backend, top_k

    resolve_backend(backend)  # import faiss before the baseline
    probes = np.load(folder / "probes.npy")
    gallery = NpyChunks(folder / "gallery.npy", chunk_rows=chunk_rows)
    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    result = top_k(probes, gallery, k, backend=backend, threads=threads)
    seconds = time.perf_counter() - start
    np.save(folder / f"{backend}-index.npy", result.index)
    np.save(folder / f"{backend}-scores.npy", result.scores)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    record = {"seconds": seconds, "baseline_rss": baseline, "ru_maxrss": maxrss,
              "info": result.info}
    (folder / f"{backend}.json").write_text(json.dumps(record))
    return 0


def run_backend(backend: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start a worker subprocess for ``backend`` and sample its RSS every 10 ms."""
    import psutil

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [sys.executable, __file__, "--worker", backend, "--folder", str(folder),
           "--k", str(args.k), "--threads", str(args.threads),
           "--chunk-rows", str(args.chunk_rows)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    peak, samples = 0, 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
            samples += 1
        except psutil.Error:
            break
        time.sleep(0.01)
    if proc.wait() != 0:
        raise SystemExit(f"{backend} worker failed with exit status {proc.returncode}")
    record = json.loads((folder / f"{backend}.json").read_text())
    peak = max(peak, record["ru_maxrss"])
    return {"backend": backend, "seconds": record["seconds"],
            "process_seconds": time.perf_counter() - start,
            "peak_rss_bytes": peak, "peak_minus_baseline_bytes": peak - record["baseline_rss"],
            "baseline_rss_bytes": record["baseline_rss"], "ru_maxrss_bytes": record["ru_maxrss"],
            "rss_samples": samples, "info": record["info"]}


def machine() -> dict[str, Any]:
    import psutil

    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)),
            "memory_bytes": psutil.virtual_memory().total, "python": platform.python_version(),
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gallery", type=int, default=1_000_000)
    ap.add_argument("--probes", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-rows", type=int, default=65536)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/search-2core.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.folder, args.k, args.threads, args.chunk_rows)

    import numpy as np

    from facebench.io import atomic_write_json
    from facebench.search import backends

    load_before = os.getloadavg()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_search-") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        write_data(folder, args.gallery, args.probes, args.dim, args.seed)
        write_seconds = time.perf_counter() - t0
        for backend in ("numpy", "faiss"):
            runs[backend] = run_backend(backend, folder, args)
            print(f"{backend:6} {runs[backend]['seconds']:8.1f} s   peak "
                  f"{runs[backend]['peak_rss_bytes'] / 2**20:7.0f} MiB", flush=True)
        index = {b: np.load(folder / f"{b}-index.npy") for b in runs}
        scores = {b: np.load(folder / f"{b}-scores.npy") for b in runs}
        sources = np.load(folder / "sources.npy")
        mated_rank1 = float(np.mean(index["faiss"][:len(sources), 0] == sources)) \
            if len(sources) else None
    load_after = os.getloadavg()
    checks = {
        "identical_index": bool(np.array_equal(index["numpy"], index["faiss"])),
        "identical_scores": bool(np.array_equal(scores["numpy"], scores["faiss"])),
        "faiss_not_slower": runs["faiss"]["seconds"] <= runs["numpy"]["seconds"],
        "peaks_under_4gb": all(r["peak_rss_bytes"] < PEAK_LIMIT for r in runs.values()),
    }
    record = {
        "benchmark": "bench_search", "gallery": args.gallery, "probes": args.probes,
        "dim": args.dim, "k": args.k, "threads": args.threads, "chunk_rows": args.chunk_rows,
        "seed": args.seed, "machine": machine(), "versions": backends(),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "gallery_write_seconds": write_seconds,
        "faiss_over_numpy_time": runs["faiss"]["seconds"] / runs["numpy"]["seconds"],
        "mated_rank1": mated_rank1, "runs": runs, "checks": checks,
    }
    atomic_write_json(args.out, record)
    print(f"\n{'backend':8} {'seconds':>9} {'peak MiB':>9} {'+baseline MiB':>14} {'threads':>8}")
    for b, r in runs.items():
        print(f"{b:8} {r['seconds']:9.1f} {r['peak_rss_bytes'] / 2**20:9.0f} "
              f"{r['peak_minus_baseline_bytes'] / 2**20:14.0f} {r['info']['threads']:>8}")
    print(f"faiss / numpy time: {record['faiss_over_numpy_time']:.3f}   mated rank-1: "
          f"{mated_rank1}   load avg before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("checks: " + ", ".join(f"{name}={ok}" for name, ok in checks.items()))
    print(f"wrote {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
