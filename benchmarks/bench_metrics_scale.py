"""Scale benchmark: ROC + AUC + EER + TAR@FAR (1e-6..1e-1) on millions of float32 scores.

Compares facebench's ROC with scikit-learn's ``roc_curve`` on the same scores in the same run,
and measures peak working memory (tracemalloc, which sees numpy's buffers) at two sizes to
show it grows linearly.

Script (prints a table; the sizes are total scores, genuine share 100 000 / 15.6 M)::

    python benchmarks/bench_metrics_scale.py --sizes 1560000 15600000

pytest-benchmark (size from ``FACEBENCH_BENCH_N``, default 1.56 M)::

    pytest benchmarks/bench_metrics_scale.py --benchmark-only
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import auc as sk_auc  # noqa: E402
from sklearn.metrics import roc_curve as sk_roc_curve  # noqa: E402

from facebench.metrics import (  # noqa: E402
    compute_verification_metrics,
    eer,
    roc_auc,
    roc_curve,
    tar_at_far,
)

FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
GENUINE_SHARE = 100_000 / 15_600_000


def make_scores(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine-like float32 scores: impostors ~ N(0.05, 0.1), genuine ~ N(0.6, 0.15)."""
    rng = np.random.default_rng(seed)
    n_gen = max(1, round(n * GENUINE_SHARE))
    labels = np.zeros(n, dtype=np.int8)
    labels[rng.choice(n, n_gen, replace=False)] = 1
    scores = rng.normal(0.05, 0.1, n).astype(np.float32)
    gen = labels == 1
    scores[gen] = rng.normal(0.6, 0.15, n_gen).astype(np.float32)
    np.clip(scores, -1.0, 1.0, out=scores)
    return scores, labels


def ours(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """facebench: full ROC, AUC, EER and TAR at every target."""
    roc = roc_curve(scores, labels)
    out: dict[str, float | None] = {
        "auc": roc_auc(roc),
        "eer": eer(roc).eer,
        "points": float(len(roc)),
    }
    for x in FAR_TARGETS:
        out[f"tar@{x:g}"] = tar_at_far(roc, x).tar
    return out


def sklearn_roc(scores: np.ndarray, labels: np.ndarray) -> float:
    """scikit-learn's ``roc_curve`` (default ``drop_intermediate=True``) and its AUC."""
    fpr, tpr, _ = sk_roc_curve(labels, scores)
    return float(sk_auc(fpr, tpr))


def best_times(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time of each function, runs interleaved so that load hits all alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes allocated while ``fn`` runs (inputs allocated before do not count)."""
    return traced(fn)[0]


def traced(fn: Callable[[], object]) -> tuple[int, object]:
    """``fn()`` under tracemalloc: (peak bytes allocated during the call, its result)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


def full_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Everything the runner asks for without folds (ROC, best threshold, histogram, ...)."""
    return compute_verification_metrics(scores, labels).metrics


def measure(n: int, repeat: int, full: bool = False) -> dict:
    scores, labels = make_scores(n)
    extra = {}
    if full:
        extra = {
            "full_s": best_times([lambda: full_metrics(scores, labels)], 1)[0],
            "full_peak": peak_bytes(lambda: full_metrics(scores, labels)),
        }
    t_ours, t_sklearn = best_times(
        [lambda: ours(scores, labels), lambda: sklearn_roc(scores, labels)], repeat
    )
    ours_peak, result = traced(lambda: ours(scores, labels))
    sk_peak, sk_result = traced(lambda: sklearn_roc(scores, labels))
    return extra | {
        "n": n,
        "ours_s": t_ours,
        "sklearn_s": t_sklearn,
        "ours_peak": ours_peak,
        "result": result,
        "sklearn_peak": sk_peak,
        "sklearn_auc": sk_result,
        "input_bytes": scores.nbytes + labels.nbytes,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_560_000, 15_600_000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--full", action="store_true", help="time compute_verification_metrics too")
    args = parser.parse_args(argv)
    rows = [measure(n, args.repeat, args.full) for n in args.sizes]
    print(
        f"{'scores':>12} {'ours s':>8} {'sklearn s':>10} {'speedup':>8} "
        f"{'ours peak MB':>13} {'B/score':>8} {'sklearn peak MB':>16}"
    )
    for r in rows:
        print(
            f"{r['n']:>12,} {r['ours_s']:>8.3f} {r['sklearn_s']:>10.3f} "
            f"{r['sklearn_s'] / r['ours_s']:>7.1f}x {r['ours_peak'] / 1e6:>13.1f} "
            f"{r['ours_peak'] / r['n']:>8.1f} {r['sklearn_peak'] / 1e6:>16.1f}"
        )
    for r in rows:
        if "full_s" in r:
            print(
                f"compute_verification_metrics(folds=None) at {r['n']:,}: {r['full_s']:.3f} s, "
                f"peak {r['full_peak'] / 1e6:.1f} MB ({r['full_peak'] / r['n']:.1f} B/score)"
            )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(
            f"size ratio {b['n'] / a['n']:.2f}: ours peak ratio "
            f"{b['ours_peak'] / a['ours_peak']:.2f}, time ratio {b['ours_s'] / a['ours_s']:.2f}"
        )
    print("metrics at the largest size:", rows[-1]["result"])
    print("AUC ours vs sklearn:", [(r["result"]["auc"], r["sklearn_auc"]) for r in rows])


# ------------------------------------------------------------------ pytest-benchmark

BENCH_N = int(os.environ.get("FACEBENCH_BENCH_N", "1560000"))


def _data() -> tuple[np.ndarray, np.ndarray]:
    return make_scores(BENCH_N)


def test_bench_ours_roc_eer_tar(benchmark) -> None:
    scores, labels = _data()
    result = benchmark.pedantic(ours, args=(scores, labels), rounds=3, iterations=1)
    benchmark.extra_info["peak_bytes"] = peak_bytes(lambda: ours(scores, labels))
    assert 0.0 < result["eer"] < 0.5


def test_bench_sklearn_roc_curve(benchmark) -> None:
    scores, labels = _data()
    benchmark.pedantic(sklearn_roc, args=(scores, labels), rounds=3, iterations=1)
    benchmark.extra_info["peak_bytes"] = peak_bytes(lambda: sklearn_roc(scores, labels))


def test_ours_not_slower_and_memory_linear() -> None:
    """Same-run comparison at BENCH_N, and peak memory at BENCH_N vs BENCH_N / 10."""
    big = measure(BENCH_N, repeat=2)
    small = measure(BENCH_N // 10, repeat=1)
    assert big["ours_s"] <= big["sklearn_s"]
    ratio = big["ours_peak"] / small["ours_peak"]
    assert 8.0 <= ratio <= 12.0, ratio


if __name__ == "__main__":
    main()
