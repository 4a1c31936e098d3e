"""The efficiency cell: compute, size, cold start, latency per batch size, peak memory, rates.

:func:`run_efficiency` returns ``{"metrics": {...}, "details": {...}}`` with exactly the metric
names of docs/results.md (plus ``memory.cuda_max_allocated_bytes`` / ``..._reserved_bytes`` on
CUDA, from shared/docs/metrics.md). Order of work:

1. availability check; ONNX export of torch sources for ONNX Runtime (cached, not timed);
2. heap trimmed, baseline RSS, then the RSS sampler starts;
3. cold start = engine creation + first inference (batch = smallest batch size; includes CUDA
   context creation when this process has not used CUDA yet, for torch and ORT alike);
4. per batch size: staged input, (torch CUDA: ``reset_peak_memory_stats``), warm-up (sampled;
   with ``warmup: 0`` one untimed memory run instead), timed loop (:func:`measure_latency`;
   torch CUDA: CUDA events) with the sampler PAUSED (one RSS read before, one after: its
   wake-ups would compete with the measured code for the cores), max allocated / reserved;
5. sampler stops; compute counts run last so that they do not disturb the memory numbers:
   the engine's ``compute_counts()`` when it has one (dlib, see
   :data:`facebench.engines.base.ComputeCountsFn`), else ``facebench.probes.compute`` (optional).
   Its weight fields become ``params_quantized``, ``weight_bytes`` (Σ bytes of the stored
   weights: ONNX initializers, torch parameters and buffers) and ``details.weights_by_dtype`` /
   ``details.dequantized_at_run_time``; null where a counter does not give them.

Every engine goes through this one path; the input batch has the source's input size and
layout (NHWC for dlib).

``gflops_per_s`` = GFLOPs per image × B / p50 latency at the largest batch size measured
(every batch size's rate is in ``details.rate``); ``pct_of_peak`` = 100 × that / the MEASURED
peak of the precision that ran, at the cell's threads (:mod:`facebench.probes.peaks`; measured
after the timed loops and the memory sampler, once per run and key); null when no peak could be
measured, and null with the reason in ``details.metric_errors.pct_of_peak`` when above 100 % (a
measurement error). ``details.rate.peak.nominal_upper_bound`` keeps the formula's
(:func:`facebench.environment.cpu_peak_gflops`) or the GPU datasheet's peak, never divided by.
``latency…p50_norm_ms`` (p90, p99 too) = latency × speed index / the reference index: the speed
index is the measured fp32 peak of the same engine and threads.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from facebench import environment
from facebench.engines import (
    Engine,
    EngineConfig,
    EngineError,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
    run_source,
)
from facebench.engines.base import Layout, runner_for
from facebench.engines.sources import load_torch_module, model_size_bytes
from facebench.probes.latency import (
    ColdStart,
    LatencyStats,
    measure_cold_start,
    measure_latency,
)
from facebench.probes.memory import (
    MemoryStats,
    RssSampler,
    cuda_peak,
    cuda_reset_peak,
    current_rss,
    trim_heap,
)
from facebench.probes.peaks import (
    PROCESS_PEAKS,
    REFERENCE_SPEED_INDEX,
    PeakCache,
    normalised_ms,
    peak_key,
    percent_of_peak,
)

LATENCY_FIELDS = ("mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "samples")


def metric_names(batch_sizes: Sequence[int]) -> list[str]:
    """All efficiency metric names of docs/results.md for these batch sizes."""
    names = ["params", "params_quantized", "gmac", "gflops", "model_size_bytes", "weight_bytes",
             "cold_start_ms"]
    for b in batch_sizes:
        names += [f"latency.b{b}.{f}" for f in LATENCY_FIELDS] + [f"throughput.b{b}"]
    names += ["latency.p50_ms", "latency.p90_ms", "latency.p99_ms",
              "memory.peak_rss_bytes", "memory.peak_rss_delta_bytes", "gflops_per_s", "pct_of_peak"]
    return names + normalised_names(batch_sizes)


#: The latency quantiles that get a normalised figure (``latency.b{B}.p50_norm_ms``).
NORMALISED = ("p50", "p90", "p99")


def normalised_names(batch_sizes: Sequence[int]) -> list[str]:
    """The normalised latency names: per batch size, then the batch-1 shortcuts."""
    names = [f"latency.b{b}.{q}_norm_ms" for b in batch_sizes for q in NORMALISED]
    return names + [f"latency.{q}_norm_ms" for q in NORMALISED]


def normalised_metrics(metrics: dict[str, Any], speed_index: float | None) -> dict[str, Any]:
    """Every ``latency…{q}_ms`` of :data:`NORMALISED` in ``metrics`` as ``…{q}_norm_ms`` =
    latency × ``speed_index`` / :data:`REFERENCE_SPEED_INDEX` (None where either is unknown)."""
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        head, _, tail = name.rpartition(".")
        if head.startswith("latency") and tail in {f"{q}_ms" for q in NORMALISED}:
            out[f"{head}.{tail[:-3]}_norm_ms"] = normalised_ms(value, speed_index)
    return out


def make_input(batch: int, input_size: tuple[int, int], seed: int = 0,
               layout: Layout = "NCHW") -> np.ndarray:
    """A deterministic float32 batch in the models' normalized range [-1, 1], in ``layout``."""
    h, w = input_size
    shape = (batch, 3, h, w) if layout == "NCHW" else (batch, h, w, 3)
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def step_reporter(progress: Callable[[int, int], None] | None, total: int) -> Callable[[], None]:
    """A callable that reports ``progress(done, total)`` and then counts one more step done."""
    done = [0]

    def say() -> None:
        if progress is not None:
            progress(done[0], total)
        done[0] += 1

    return say


def sweep_metrics(stats: dict[int, LatencyStats], mem: MemoryStats | None) -> dict[str, Any]:
    """Per-batch latency/throughput metrics, the batch-1 ``latency.pXX_ms`` aliases and the
    RSS peaks (when measured), under the names of :func:`metric_names`."""
    out: dict[str, Any] = {}
    for st in stats.values():
        out.update(st.metrics())
    if 1 in stats:
        for q in ("p50_ms", "p90_ms", "p99_ms"):
            out[f"latency.{q}"] = getattr(stats[1], q)
    if mem is not None:
        out["memory.peak_rss_bytes"] = mem.peak_rss_bytes
        out["memory.peak_rss_delta_bytes"] = mem.peak_rss_delta_bytes
    return out


def sweep_details(stats: dict[int, LatencyStats], cold: ColdStart, batch: int) -> dict[str, Any]:
    """The raw per-batch samples and the cold-start split, as ``details`` stores them."""
    return {
        "latency": {str(b): {"samples_ms": st.samples_ms, "wall_s": st.wall_s,
                             "warmup": st.warmup, "timer": st.timer, "capped": st.capped,
                             "max_ms": st.max_ms}
                    for b, st in stats.items()},
        "cold_start": {"create_ms": cold.create_ms, "first_inference_ms": cold.first_inference_ms,
                       "batch": batch, "in_process": True},
    }


def memory_run(fn: Callable[[], Any], sync: Callable[[], Any] | None) -> None:
    """One untimed inference for the RSS sampler, where no warm-up runs one before the timed
    loop (the sampler is paused inside timed loops)."""
    fn()
    if sync is not None:
        sync()


def _cpu_busy_s() -> float:
    t = psutil.cpu_times()
    return float(sum(t)) - float(t.idle) - float(getattr(t, "iowait", 0.0))


def _own_cpu_s() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _compute(source: ModelSource, run_src: ModelSource,
             engine: Engine | None = None) -> dict[str, Any]:
    """Compute counts: the engine's ``compute_counts()`` when it has one, else via
    facebench.probes.compute; ``{"skipped": why}`` when impossible.

    A model is counted where it is defined: a zoo/TorchScript source on its torch module (so
    every engine of the same model reports the same params and GMAC; an ONNX export folds BN and
    counts lower), an ONNX source on its graph. If the torch count fails and an ONNX export
    exists, that is counted instead (``counted_on`` says which)."""
    counts = getattr(engine, "compute_counts", None)
    if counts is not None:
        try:
            return dict(counts())
        except Exception as exc:  # counters are best effort; record why
            return {"skipped": f"{type(exc).__name__}: {exc}"}
    shape = (1, 3, *source.input_size)
    try:
        from facebench.probes import compute
    except ImportError as exc:
        return {"skipped": f"facebench.probes.compute not importable: {exc}"}
    if source.kind == "onnx":
        try:
            return {**compute.count_onnx(source.path, shape), "counted_on": "onnx"}
        except Exception as exc:  # counters are best effort; record why
            return {"skipped": f"{type(exc).__name__}: {exc}"}
    try:
        module = load_torch_module(source)
    except Exception as exc:
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    try:
        return {**compute.count_torch(module, shape), "counted_on": "torch"}
    except Exception as exc:
        why = f"torch count failed: {type(exc).__name__}: {exc}"
    if run_src.kind == "onnx" and run_src.path is not None:
        try:
            return {**compute.count_onnx(run_src.path, shape), "counted_on": "onnx export",
                    "note": why}
        except Exception as exc:
            why += f"; onnx count failed: {type(exc).__name__}: {exc}"
    return {"skipped": why, "params": int(sum(p.numel() for p in module.parameters())),
            "params_source": "sum of parameter numel (docs/metrics.md definition)"}


#: The count fields that describe how weights are stored (facebench.probes.compute).
STORAGE_FIELDS = ("params_by_dtype", "quantized_params", "weights", "dequantized_at_run_time")


def _stored_weights(comp: dict[str, Any], run_src: ModelSource) -> dict[str, Any]:
    """``comp`` with the storage fields of the model that runs (an int8 variant quantized from
    the counted source stores int8 weights), where that model is an ONNX file."""
    if run_src.kind != "onnx" or run_src.path is None:
        return comp
    try:
        from facebench.probes import compute

        run = compute.count_onnx_weights(run_src.path)
    except Exception as exc:  # counters are best effort; record why
        return {**comp, **dict.fromkeys(STORAGE_FIELDS),
                "storage_skipped": f"{type(exc).__name__}: {exc}"}
    return {**comp, **{k: run[k] for k in STORAGE_FIELDS}, "storage_counted_on": str(run_src.path)}


def nominal_peak(info: dict[str, Any], cfg: EngineConfig) -> dict[str, Any] | None:
    """The formula's (CPU) or datasheet's (GPU) fp32/fp16 peak: a labelled upper bound, recorded
    beside the measured peak and never divided by."""
    if cfg.device == "cuda":
        return environment.gpu_peak_gflops(str(info.get("device_name", "")), fp16=cfg.fp16)
    return environment.cpu_peak_gflops(cores=peak_threads(info, cfg))


def peak_threads(info: dict[str, Any], cfg: EngineConfig) -> int:
    """The thread count the cell ran at (the engine's, else the device's, else every core this
    process may use), at most the cores it may use."""
    threads = (info.get("threads") or {}).get("intra_op") or cfg.intra_op_threads \
        or environment.cores_used()
    return max(1, min(int(threads), environment.cores_used()))


def ran_precision(cfg: EngineConfig) -> str:
    """The precision the device runs: ``int8``, ``fp16`` or ``fp32``."""
    return "int8" if cfg.int8 else "fp16" if cfg.fp16 else "fp32"


def against_peak(top: float | None, cfg: EngineConfig, info: dict[str, Any],
                 cache: PeakCache) -> tuple[float | None, dict[str, Any]]:
    """``(pct_of_peak, details)`` of an achieved rate ``top``: over the measured peak of the
    precision that ran (:mod:`facebench.probes.peaks`), measured once more when above it; a
    percentage still above 100 is None with ``pct_of_peak_error``. ``details`` also holds the
    nominal upper bound and the speed index (the fp32 peak at the same threads)."""
    threads = peak_threads(info, cfg)
    precision = ran_precision(cfg)
    peak = cache.get(cfg.engine, cfg.device, precision, threads)
    pct, error = percent_of_peak(top, peak.get("gflops"))
    if error is not None:
        peak = cache.remeasure(peak)
        pct, error = percent_of_peak(top, peak.get("gflops"))
    index = peak if precision == "fp32" else cache.get(cfg.engine, cfg.device, "fp32", threads)
    out: dict[str, Any] = {
        "precision": precision, "measured": peak,
        "nominal_upper_bound": nominal_peak(info, cfg),
        "speed_index": index.get("gflops"), "reference_speed_index": REFERENCE_SPEED_INDEX,
    }
    if error is not None:
        out["pct_of_peak_error"] = error
    return pct, out


def rebase_on_run_peaks(cell: dict[str, Any], peaks: dict[str, dict[str, Any]]) -> None:
    """Divide a finished efficiency cell by its run's final peaks, in place.

    A run keeps, per (engine, device, precision, threads), the best GEMM rate of every
    measurement it made, so a cell measured early may have been divided by a figure that a later
    remeasure raised. At the end of a run every cell is rebased on the final figure: one peak and
    one speed index per key across the run, ``pct_of_peak`` (or its measurement error) and the
    normalised latencies recomputed. A cell without a measured peak is left as it is."""
    details = cell.get("details")
    metrics = cell.get("metrics")
    if not isinstance(details, dict) or not isinstance(metrics, dict):
        return
    peak = (details.get("rate") or {}).get("peak")
    measured = peak.get("measured") if isinstance(peak, dict) else None
    try:
        args = (measured["engine"], measured["device"], int(measured["threads"]))
        precision = measured["precision"]
    except (KeyError, TypeError, ValueError):
        return
    best = peaks.get(peak_key(args[0], args[1], precision, args[2]))
    if not isinstance(best, dict) or not best.get("gflops"):
        return
    index = (peaks.get(peak_key(args[0], args[1], "fp32", args[2])) or {}).get("gflops") \
        or peak.get("speed_index")
    pct, error = percent_of_peak(metrics.get("gflops_per_s"), best["gflops"])
    peak.update(measured=best, speed_index=index)
    peak.pop("pct_of_peak_error", None)
    errors = details.get("metric_errors")
    errors = errors if isinstance(errors, dict) else {}
    errors.pop("pct_of_peak", None)
    if error is not None:
        peak["pct_of_peak_error"] = errors["pct_of_peak"] = error
    details["metric_errors"] = errors
    metrics["pct_of_peak"] = pct
    metrics.update(normalised_metrics(metrics, index))
    if isinstance(details.get("speed_index"), dict):
        details["speed_index"]["value"] = index


def run_efficiency(
    source: ModelSource,
    cfg: EngineConfig,
    batch_sizes: Sequence[int] = (1,),
    warmup: int = 10,
    min_iters: int = 50,
    min_seconds: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
    *,
    max_seconds: float | None = None,
    cache_dir: Path | None = None,
    memory_interval_s: float = 0.01,
    run_src: ModelSource | None = None,
    peaks: PeakCache | None = None,
) -> dict[str, Any]:
    """Measure one efficiency cell in this process (see module docstring).

    ``run_src`` is the model the engine runs when it is not ``source`` itself or its export
    (an int8 model quantized from ``source``): latency, memory and size are that model's;
    params and GMAC are counted on ``source``, the weight storage fields (``params_quantized``,
    ``weight_bytes``, ``details.weights_by_dtype``, ``details.dequantized_at_run_time``) on
    ``run_src``.

    ``progress(done, total)`` is called between steps (cold start, each batch size, compute),
    never inside a timed loop. ``peaks`` holds the run's measured peaks (default: this
    process's); a missing one is measured after the timed loops and the memory sampler.
    Raises :class:`EngineUnavailable` when the configuration cannot run here.
    """
    batch_sizes = sorted(set(int(b) for b in batch_sizes))
    if not batch_sizes or batch_sizes[0] < 1:
        raise ValueError("batch_sizes must be positive")
    say = step_reporter(progress, len(batch_sizes) + 2)
    reason = check_available(cfg, source)
    if reason:
        raise EngineUnavailable(reason)
    metrics: dict[str, Any] = dict.fromkeys(metric_names(batch_sizes))
    details: dict[str, Any] = {"engine": cfg.engine, "config": asdict(cfg)}
    t_cell = time.monotonic()
    load_before = environment.load_avg()

    own_run = run_src is not None  # a model of its own (int8 variant), not source's export
    if run_src is None:
        run_src = run_source(source, cfg, cache_dir)
    cuda = cfg.device == "cuda"
    gc.collect()
    trim_heap()
    baseline = current_rss()
    sampler = RssSampler(interval_s=memory_interval_s, baseline_bytes=baseline).start()
    torch_cuda = cuda and cfg.engine in ("torch", "torch_compile")
    try:
        say()
        first = make_input(batch_sizes[0], source.input_size, layout=source.layout)
        engine, cold = measure_cold_start(lambda: create_engine(run_src, cfg, cache_dir), first)
        info = engine.info()
        cpu0, own0, wall0 = _cpu_busy_s(), _own_cpu_s(), time.monotonic()
        stats: dict[int, LatencyStats] = {}
        per_batch_cuda: dict[str, Any] = {}
        for b in batch_sizes:
            say()
            fn, sync, timed = runner_for(
                engine, make_input(b, source.input_size, seed=b, layout=source.layout))
            gc.collect()
            if torch_cuda:
                cuda_reset_peak()  # weights stay allocated, so they are in the peak
            if warmup == 0:
                memory_run(fn, sync)
            stats[b] = measure_latency(
                fn, warmup=warmup, min_iters=min_iters, min_seconds=min_seconds,
                max_seconds=max_seconds, sync=sync, batch=b, cuda_events=torch_cuda,
                quiet=sampler.paused,
            )
            if torch_cuda:
                per_batch_cuda[str(b)] = cuda_peak()
        wall = time.monotonic() - wall0
        other_cpu = (_cpu_busy_s() - cpu0) - (_own_cpu_s() - own0)
        cuda_total = ({k: max(v[k] for v in per_batch_cuda.values())
                       for k in ("max_allocated_bytes", "max_reserved_bytes")}
                      if per_batch_cuda else None)
    finally:
        mem = sampler.stop() if sampler.running else None

    say()
    comp = _compute(source, run_src, engine)
    if own_run:
        comp = _stored_weights(comp, run_src)
    for key in ("params", "gmac", "gflops"):
        metrics[key] = comp.get(key)
    metrics["params_quantized"] = comp.get("quantized_params")
    weights = comp.get("weights")
    metrics["weight_bytes"] = (sum(int(w["bytes"]) for w in weights.values())
                               if isinstance(weights, dict) else None)
    try:
        metrics["model_size_bytes"], size_source = model_size_bytes(run_src)
    except Exception as exc:  # never lose a cell over its size
        size_source = f"failed: {type(exc).__name__}: {exc}"
    metrics["cold_start_ms"] = cold.total_ms
    metrics.update(sweep_metrics(stats, mem))
    if cuda_total is not None:
        metrics["memory.cuda_max_allocated_bytes"] = cuda_total["max_allocated_bytes"]
        metrics["memory.cuda_max_reserved_bytes"] = cuda_total["max_reserved_bytes"]

    gflops = comp.get("gflops")
    rate = {str(b): (gflops * b / (st.p50_ms / 1e3) if gflops else None)
            for b, st in stats.items()}
    top = rate[str(batch_sizes[-1])]
    metrics["gflops_per_s"] = top
    metrics["pct_of_peak"], peak = against_peak(top, cfg, info, peaks or PROCESS_PEAKS)
    metrics.update(normalised_metrics(metrics, peak["speed_index"]))

    load_after = environment.load_avg()
    threads_used = int(info.get("threads", {}).get("intra_op") or 1)
    details.update({
        "threads": {"intra_op": info.get("threads", {}).get("intra_op"),
                    "inter_op": info.get("threads", {}).get("inter_op")},
        "engine_info": info,
        "source": {**{k: (str(v) if isinstance(v, Path) else v)
                      for k, v in asdict(source).items()},
                   "run_path": str(run_src.path) if run_src.path else None},
        **sweep_details(stats, cold, batch_sizes[0]),
        "latency_definition": {"percentiles": "numpy 'linear' (type 7)", "std": "ddof=1",
                               "timed": timed,
                               "min_iters": min_iters, "min_seconds": min_seconds,
                               "max_seconds": max_seconds, "warmup": warmup},
        "memory": {**(mem.as_dict() if mem else {}),
                   "note": "in-process: memory freed by earlier work and reused here is not "
                           "counted in the delta; run_efficiency_isolated gives a clean baseline",
                   "sampled": "cold start and warm-up (or one memory run per batch size when "
                              "warmup is 0); paused inside timed loops, read once before and "
                              "after each",
                   "cuda": {"total": cuda_total, "per_batch": per_batch_cuda} if cuda_total else
                   (f"not measured: {cfg.engine} allocates outside torch's allocator"
                    if cuda else None)},
        "compute": comp,
        "weights_by_dtype": weights,
        "dequantized_at_run_time": comp.get("dequantized_at_run_time"),
        "model_size": size_source,
        "rate": {"gflops_per_s": rate, "metric_batch": batch_sizes[-1],
                 "latency": "p50", "peak": peak},
        "metric_errors": ({"pct_of_peak": peak["pct_of_peak_error"]}
                          if "pct_of_peak_error" in peak else {}),
        "speed_index": {"value": peak["speed_index"], "reference": REFERENCE_SPEED_INDEX,
                        "normalised_ms": "latency × value / reference"},
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "other_cpu_frac": round(other_cpu / max(1e-9, wall * (os.cpu_count() or 1)), 4),
        "busy": environment.is_busy(load_before, load_after, environment.cores_used(),
                                    own_threads=threads_used,
                                    duration_s=time.monotonic() - t_cell),
        "duration_s": time.monotonic() - t_cell,
    })
    say()
    return {"metrics": metrics, "details": details}


# -- isolation: one fresh process per cell ---------------------------------------------------
def run_efficiency_isolated(
    source: ModelSource, cfg: EngineConfig, timeout_s: float | None = None, **kwargs: Any
) -> dict[str, Any]:
    """:func:`run_efficiency` in a fresh Python process (``python -m facebench.probes.efficiency``):
    a clean RSS baseline, a true cold start, and torch inter-op threads that can still be set.
    ``kwargs`` must be JSON-serializable (``progress`` is not forwarded; ``peaks`` is passed as
    its file, so that the child reuses and adds to the run's measured peaks)."""
    kwargs.pop("progress", None)
    peaks = kwargs.pop("peaks", None)  # the child shares the run's peaks through their file
    if peaks is not None and peaks.path is not None:
        kwargs["peaks_path"] = str(peaks.path)
    spec = {
        "source": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(source).items()},
        "cfg": asdict(cfg),
        "kwargs": {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()},
    }
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    with tempfile.TemporaryDirectory(prefix="facebench-eff-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, "-m", "facebench.probes.efficiency", str(out)],
            input=json.dumps(spec), text=True, capture_output=True, env=env, timeout=timeout_s,
        )
        if not out.is_file():
            raise EngineError(f"isolated efficiency run failed (rc {proc.returncode}): "
                              f"{proc.stderr[-2000:]}")
        result = json.loads(out.read_text())
    if "unavailable" in result:
        raise EngineUnavailable(result["unavailable"])
    if "error" in result:
        raise EngineError(result["error"])
    return result


def _child(out_path: str) -> None:
    spec = json.loads(sys.stdin.read())
    src = spec["source"]
    source = ModelSource(**{
        **src, "path": Path(src["path"]) if src["path"] else None,
        "weights": Path(src["weights"]) if src["weights"] else None,
        "input_size": tuple(src["input_size"])})
    cfg = EngineConfig(**{**spec["cfg"], "providers": tuple(spec["cfg"]["providers"])})
    kwargs = spec["kwargs"]
    if kwargs.get("cache_dir"):
        kwargs["cache_dir"] = Path(kwargs["cache_dir"])
    if kwargs.get("peaks_path"):
        kwargs["peaks"] = PeakCache(Path(kwargs.pop("peaks_path")))
    try:
        result = run_efficiency(source, cfg, **kwargs)
    except EngineUnavailable as exc:
        result = {"unavailable": exc.reason}
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    tmp = out_path + ".tmp"
    Path(tmp).write_text(json.dumps(result))
    os.replace(tmp, out_path)


if __name__ == "__main__":
    _child(sys.argv[1])
