"""One-shot GPU check of facebench's engines and probes; prints a JSON summary.

Exercises torch on CUDA (fp32, fp16, torch.compile), ONNX Runtime's CUDA and TensorRT providers
(fp32 and fp16), CUDA event timing, CUDA peak-memory statistics and facebench's measured GPU
peaks (beside the datasheet's). Each check reports
``ok`` (with numbers), ``unavailable`` (with the reason facebench gives) or ``failed`` (with the
error), so the script runs to the end on any machine, GPU or not.

    python benchmarks/gpu_check.py [--onnx PATH] [--zoo mobilefacenet] [--json OUT] [--quick]

Models: torch checks build ``--zoo`` from facebench.zoo (seeded random init: numbers compare
engines, not accuracy); ONNX Runtime checks use ``--onnx`` (default: the shared MobileFaceNet,
``$FACEBENCH_SHARED/models/mobilefacenet_128d.onnx``), else the zoo model exported to ONNX.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench import environment  # noqa: E402
from facebench.engines import (  # noqa: E402
    EngineConfig,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
)
from facebench.probes.efficiency import run_efficiency  # noqa: E402

KEEP = ("cold_start_ms", "latency.p50_ms", "throughput.b1", "memory.peak_rss_delta_bytes",
        "memory.cuda_max_allocated_bytes", "memory.cuda_max_reserved_bytes", "gflops_per_s",
        "pct_of_peak")


def run_check(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        out = {"status": "ok", **fn()}
    except EngineUnavailable as exc:
        out = {"status": "unavailable", "reason": exc.reason}
    except Exception as exc:
        out = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
               "traceback": traceback.format_exc(limit=6)}
    out["seconds"] = round(time.monotonic() - t0, 2)
    print(f"[{out['status']:>11}] {name} ({out['seconds']} s)"
          + (f": {out.get('reason') or out.get('error')}" if out["status"] != "ok" else ""),
          file=sys.stderr, flush=True)
    return out


def need(ref: dict[str, Any]) -> np.ndarray:
    """The CPU reference output, or an error when its check failed."""
    if "y" not in ref:
        raise RuntimeError("the CPU reference check failed; nothing to compare with")
    return ref["y"]


def unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def compare(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Agreement of two embedding batches: min cosine and max |Δ| after L2 normalization."""
    a, b = unit(got), unit(ref)
    return {"min_cosine": float((a * b).sum(1).min()), "max_abs_diff_normalized":
            float(np.abs(a - b).max())}


def engine_check(source: ModelSource, cfg: EngineConfig, ref: np.ndarray, x: np.ndarray,
                 eff: dict[str, Any], min_cosine: float) -> dict[str, Any]:
    """Build, compare with the CPU reference, then a short efficiency cell."""
    reason = check_available(cfg, source)
    if reason:
        raise EngineUnavailable(reason)
    engine = create_engine(source, cfg, cache_dir=eff.get("cache_dir"))
    agreement = compare(engine.infer(x), ref)
    if agreement["min_cosine"] < min_cosine:
        raise AssertionError(f"outputs disagree with the CPU reference: {agreement}")
    info = engine.info()
    del engine
    cell = run_efficiency(source, cfg, **eff)
    return {"agreement": agreement, "info": {k: info.get(k) for k in (
        "device_name", "providers", "providers_requested", "fp16", "compile_s", "versions")},
        "metrics": {k: v for k, v in cell["metrics"].items()
                    if k in KEEP or k.startswith("latency.b") and k.endswith("p50_ms")
                    or k.startswith("throughput.")}}


def cuda_memory_check() -> dict[str, Any]:
    import torch

    from facebench.probes.memory import cuda_peak, cuda_reset_peak

    if not torch.cuda.is_available():
        raise EngineUnavailable("CUDA not available: torch.cuda.is_available() is False")
    size = 256 * 2**20
    cuda_reset_peak()
    block = torch.ones(size // 4, dtype=torch.float32, device="cuda")
    peak = cuda_peak()
    del block
    torch.cuda.empty_cache()
    cuda_reset_peak()
    after = cuda_peak()
    ok = peak["max_allocated_bytes"] >= size and after["max_allocated_bytes"] < size
    if not ok:
        raise AssertionError(f"peak stats wrong: {peak} then {after}")
    return {"allocated_bytes": size, "peak": peak, "after_reset": after}


def cuda_timing_check() -> dict[str, Any]:
    import torch

    from facebench.probes.latency import measure_latency

    if not torch.cuda.is_available():
        raise EngineUnavailable("CUDA not available: torch.cuda.is_available() is False")
    a = torch.randn(4096, 4096, device="cuda")

    def fn() -> Any:
        return a @ a

    events = measure_latency(fn, warmup=5, min_iters=30, min_seconds=0.3, cuda_events=True)
    host = measure_latency(fn, warmup=5, min_iters=30, min_seconds=0.3,
                           sync=torch.cuda.synchronize)
    tflops = 2 * 4096**3 / (events.p50_ms / 1e3) / 1e12
    return {"events_p50_ms": events.p50_ms, "host_sync_p50_ms": host.p50_ms,
            "ratio_host_over_events": host.p50_ms / events.p50_ms, "fp32_matmul_tflops": tflops,
            "timer": events.timer}


def measured_peaks_check() -> dict[str, Any]:
    """facebench's measured GPU peaks (facebench.probes.peaks: torch.matmul synchronized, ORT
    MatMul on the CUDA provider with I/O bound on the device), beside the datasheet's."""
    import torch

    from facebench.probes.peaks import measure_peak

    if not torch.cuda.is_available():
        raise EngineUnavailable("CUDA not available: torch.cuda.is_available() is False")
    name = torch.cuda.get_device_name(0)
    out: dict[str, Any] = {"device": name}
    for engine in ("torch", "onnxruntime"):
        for precision in ("fp32", "fp16"):
            peak = measure_peak(engine, "cuda", precision, 1, n=4096)
            sheet = environment.gpu_peak_gflops(name, fp16=precision == "fp16")
            out[f"{engine}_{precision}"] = {
                "gflops": peak["gflops"], "method": peak["method"], "error": peak.get("error"),
                "datasheet_gflops": sheet["gflops"] if sheet else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", type=Path)
    ap.add_argument("--zoo", default="mobilefacenet")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="shorter timed loops")
    args = ap.parse_args(argv)

    summary: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        import torch

        summary["torch"] = {"version": torch.__version__, "cuda": torch.version.cuda,
                            "cuda_available": torch.cuda.is_available(),
                            "device": torch.cuda.get_device_name(0)
                            if torch.cuda.is_available() else None}
    except ImportError as exc:
        summary["torch"] = {"error": str(exc)}
    try:
        import onnxruntime as ort

        summary["onnxruntime"] = {"version": ort.__version__,
                                  "providers": ort.get_available_providers()}
    except ImportError as exc:
        summary["onnxruntime"] = {"error": str(exc)}
    env = environment.fingerprint()
    summary["machine"] = {k: env[k] for k in ("cpu_model", "logical_cores", "memory_bytes", "os")}

    cache = Path(tempfile.mkdtemp(prefix="facebench-gpu-check-"))
    secs = 0.3 if args.quick else 1.0
    eff = {"batch_sizes": (1, 32), "warmup": 5, "min_iters": 20, "min_seconds": secs,
           "cache_dir": cache}
    zoo_src = ModelSource(kind="zoo", arch=args.zoo)
    shared = Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared"))
    onnx_path = args.onnx or shared / "models" / "mobilefacenet_128d.onnx"
    x = np.random.default_rng(0).uniform(-1, 1, (4, 3, 112, 112)).astype(np.float32)
    checks: dict[str, Any] = {}

    checks["cuda_memory_stats"] = run_check("cuda memory stats", cuda_memory_check)
    checks["cuda_event_timing"] = run_check("cuda event timing", cuda_timing_check)
    checks["measured_peaks"] = run_check("measured peaks", measured_peaks_check)

    torch_ref: dict[str, np.ndarray] = {}

    def torch_reference() -> dict[str, Any]:
        engine = create_engine(zoo_src, EngineConfig(engine="torch"))
        torch_ref["y"] = engine.infer(x)
        return {"shape": list(torch_ref["y"].shape)}

    checks["torch_cpu_reference"] = run_check("torch cpu reference", torch_reference)
    for key, cfg, tol in (
        ("torch_cuda_fp32", EngineConfig(engine="torch", device="cuda"), 0.9999),
        ("torch_cuda_fp16", EngineConfig(engine="torch", device="cuda", fp16=True), 0.99),
        ("torch_compile_cuda", EngineConfig(engine="torch_compile", device="cuda"), 0.9999),
    ):
        checks[key] = run_check(key, lambda cfg=cfg, tol=tol: engine_check(
            zoo_src, cfg, need(torch_ref), x, eff, tol))

    ort_ref: dict[str, Any] = {}

    def ort_reference() -> dict[str, Any]:
        src = ModelSource(kind="onnx", path=onnx_path) if onnx_path.is_file() else zoo_src
        engine = create_engine(src, EngineConfig(engine="onnxruntime"), cache_dir=cache)
        ort_ref.update(src=ModelSource(kind="onnx", path=Path(engine.info()["model_path"])),
                       y=engine.infer(x))
        return {"model": engine.info()["model_path"]}

    checks["ort_cpu_reference"] = run_check("onnxruntime cpu reference", ort_reference)
    for key, cfg, tol in (
        ("ort_cuda_fp32", EngineConfig(engine="onnxruntime", device="cuda"), 0.9999),
        ("ort_cuda_fp16", EngineConfig(engine="onnxruntime", device="cuda", fp16=True), 0.99),
        ("ort_tensorrt_fp32", EngineConfig(engine="onnxruntime", device="cuda",
                                           providers=("tensorrt", "cuda")), 0.9999),
        ("ort_tensorrt_fp16", EngineConfig(engine="onnxruntime", device="cuda", fp16=True,
                                           providers=("tensorrt", "cuda")), 0.99),
    ):
        checks[key] = run_check(key, lambda cfg=cfg, tol=tol: engine_check(
            ort_ref["src"], cfg, need(ort_ref), x, eff, tol))

    summary["checks"] = checks
    summary["counts"] = {s: sum(1 for c in checks.values() if c["status"] == s)
                         for s in ("ok", "unavailable", "failed")}
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 1 if summary["counts"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
