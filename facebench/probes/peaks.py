"""Measured peak compute: a short GEMM micro-benchmark through the engine's own library.

``pct_of_peak`` divides a cell's achieved rate by the peak of the precision that ran, MEASURED on
this machine at the cell's thread count, not derived from a formula (the nominal formula of
:func:`facebench.environment.cpu_peak_gflops` reads the clock the OS reports, in VMs often the
base clock while the cores turbo, and is kept only as a labelled upper bound).

How a peak is measured (:func:`measure_peak`): square GEMMs (n × n × n, 2n³ operations per call,
for each n of ``GEMM_SIZES``) run through

- onnxruntime: a one-node ONNX model built in memory (``MatMul`` for fp32/fp16,
  ``MatMulInteger`` with uint8 activations and int8 or uint8 weights for int8: the MLAS kernels
  a statically quantized model's ``QLinearConv`` uses), in a session with the cell's intra-op
  threads (CUDA: the same model on the CUDA provider with I/O bound on the device);
- torch / torch_compile: ``torch.matmul`` with ``torch.set_num_threads`` set to the cell's
  threads (CUDA: on the device, synchronized);
- any other engine (dlib, whose Python API has no GEMM): ``numpy.matmul`` with its BLAS
  limited to the cell's threads (threadpoolctl); the method says so.

Each kernel is warmed up, then timed in ``WINDOWS`` windows of at least ``WINDOW_S`` seconds
each; a window's rate is calls × 2n³ / its wall time and the peak is the best window (a peak is
a maximum: other work on the machine can only lower a window), over every size: a single size can
sit on a slow spot of the library (measured on a 2-core AVX-512 VM: ONNX Runtime's fp32 MatMul at
n = 1024 and 2048, whose 4 KiB row strides alias in the cache, ran at 135 GFLOP/s where n = 512
and 1536 ran at 199, below the 155 GFLOP/s MobileFaceNet's convolutions reached, so a peak from
n = 1024 alone put cells above 100 %). Where several kernels measure a precision (int8: u8s8
and u8u8), the faster counts.

:class:`PeakCache` keeps the peaks of one run (in this process, and in a JSON file the run's
cells share), so each (engine, device, precision, threads) is calibrated once per run. When a
cell's achieved rate exceeds the cached peak, the peak is measured once more (the machine may
have been busy during the first calibration) and the better one kept; a percentage still above
100 is a measurement error (:func:`percent_of_peak`), never a result.

The machine's speed index is the measured fp32 peak (GFLOP/s) of the cell's engine at its
thread count; a latency normalised to the reference machine is ``latency × index /
REFERENCE_SPEED_INDEX`` (:func:`normalised_ms`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facebench.io import atomic_write_json

#: Sides of the square GEMMs the peaks are measured on (not powers of two above 512: their
#: row strides alias in the cache; module docstring).
GEMM_SIZES = (512, 1536)
#: Timed windows per kernel, and the least seconds each lasts.
WINDOWS = 4
WINDOW_S = 0.25
#: The fixed reference of normalised latency: a machine whose engine does fp32 GEMM at this
#: many GFLOP/s at the cell's thread count (about two AVX2/AVX-512 server cores of 2023).
REFERENCE_SPEED_INDEX = 100.0
#: Above this, a percentage of peak is a measurement error.
MAX_PCT_OF_PEAK = 100.0

Clock = Callable[[], float]


def peak_key(engine: str, device: str, precision: str, threads: int) -> str:
    """The cache key of a calibration: ``onnxruntime/cpu/int8/2t``."""
    return f"{engine}/{device}/{precision}/{threads}t"


def best_window_gflops(call: Callable[[], Any], flops: float, *, windows: int = WINDOWS,
                       window_s: float = WINDOW_S, warmup: int = 2,
                       clock: Clock = time.perf_counter) -> list[float]:
    """GFLOP/s of each timed window of ``call`` (``flops`` operations per call): ``warmup``
    untimed calls, then ``windows`` windows, each as many calls as fill ``window_s`` seconds."""
    for _ in range(warmup):
        call()
    rates = []
    for _ in range(windows):
        calls, t0 = 0, clock()
        while True:
            call()
            calls += 1
            elapsed = clock() - t0
            if elapsed >= window_s:
                break
        rates.append(calls * flops / elapsed / 1e9)
    return rates


# -- kernels: each returns (call, what it runs) -----------------------------------------------
def _ort_session(model: Any, threads: int, device: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise RuntimeError(f"onnxruntime fell back to {sess.get_providers()}")
    return sess


def ort_gemm_model(n: int, kind: str, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(model, a, b)``: a one-node ONNX GEMM model Y = A·B with B an initializer, for
    ``kind`` ``fp32`` / ``fp16`` (MatMul) or ``u8s8`` / ``u8u8`` (MatMulInteger, zero points 0,
    int32 output); ``a`` is a matching input, ``b`` the weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    if kind in ("fp32", "fp16"):
        dt, tp = (np.float32, TensorProto.FLOAT) if kind == "fp32" else \
            (np.float16, TensorProto.FLOAT16)
        a = rng.uniform(-1, 1, (n, n)).astype(dt)
        b = rng.uniform(-1, 1, (n, n)).astype(dt)
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        inits = [numpy_helper.from_array(b, "B")]
        out_tp = tp
        in_tp = tp
    elif kind in ("u8s8", "u8u8"):
        bdt = np.int8 if kind == "u8s8" else np.uint8
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        b = rng.integers(-64 if bdt is np.int8 else 0, 64, (n, n)).astype(bdt)
        node = helper.make_node("MatMulInteger", ["A", "B", "az", "bz"], ["Y"])
        inits = [numpy_helper.from_array(b, "B"),
                 numpy_helper.from_array(np.array(0, np.uint8), "az"),
                 numpy_helper.from_array(np.array(0, bdt), "bz")]
        in_tp, out_tp = TensorProto.UINT8, TensorProto.INT32
    else:
        raise ValueError(f"unknown GEMM kind {kind!r}")
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", in_tp, [n, n])],
                              [helper.make_tensor_value_info("Y", out_tp, [n, n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model, a, b


def _ort_kernel(kind: str, n: int, threads: int, device: str) -> tuple[Callable[[], Any], str]:
    model, a, _ = ort_gemm_model(n, kind)
    sess = _ort_session(model, threads, device)
    op = "MatMul" if kind in ("fp32", "fp16") else f"MatMulInteger ({kind})"
    if device != "cuda":
        feed = {"A": a}
        return (lambda: sess.run(None, feed)), f"onnxruntime {op}, CPU provider"
    import onnxruntime as ort

    binding = sess.io_binding()
    binding.bind_ortvalue_input("A", ort.OrtValue.ortvalue_from_numpy(a, "cuda", 0))
    binding.bind_output("Y", "cuda")

    def call() -> None:
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return call, f"onnxruntime {op}, CUDA provider, I/O on the device"


def _torch_kernel(kind: str, n: int, threads: int, device: str) -> tuple[Callable[[], Any], str]:
    import torch

    dtype = {"fp32": torch.float32, "fp16": torch.float16}.get(kind)
    if dtype is None:
        raise ValueError(f"torch peak for {kind!r} is not measured")
    gen = torch.Generator().manual_seed(0)
    a = torch.rand((n, n), generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
    b = torch.rand((n, n), generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
    if device == "cuda":
        def call() -> None:
            torch.matmul(a, b)
            torch.cuda.synchronize()

        return call, f"torch.matmul {kind} on CUDA, synchronized"
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return (lambda: torch.matmul(a, b)), f"torch.matmul {kind}, torch.set_num_threads({threads})"


def _numpy_kernel(kind: str, n: int, threads: int, device: str) -> tuple[Callable[[], Any], str]:
    if kind != "fp32" or device != "cpu":
        raise ValueError(f"numpy peak for {kind} on {device} is not measured")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)

    def call() -> None:
        with threadpool_limits(limits=threads, user_api="blas"):
            np.matmul(a, b)

    return call, f"numpy.matmul fp32 (its BLAS limited to {threads} threads)"


#: The GEMM kinds that measure each precision.
KINDS = {"fp32": ("fp32",), "fp16": ("fp16",), "int8": ("u8s8", "u8u8")}


def _kernel_for(engine: str) -> Callable[..., tuple[Callable[[], Any], str]]:
    if engine == "onnxruntime":
        return _ort_kernel
    if engine in ("torch", "torch_compile"):
        return _torch_kernel
    return _numpy_kernel


def measure_peak(engine: str, device: str, precision: str, threads: int, *,
                 n: int | Sequence[int] = GEMM_SIZES, windows: int = WINDOWS,
                 window_s: float = WINDOW_S) -> dict[str, Any]:
    """The measured peak of ``precision`` on ``engine``/``device`` at ``threads`` (module
    docstring), the best over the GEMM sides ``n``: ``{"gflops", "method", "kernels", ...}``;
    ``gflops`` is None with an ``error`` when no kernel could run (the precision has no kernel
    in that library here)."""
    kernel = _kernel_for(engine)
    sizes = (n,) if isinstance(n, int) else tuple(n)
    tried: dict[str, Any] = {}
    for kind in KINDS.get(precision, ()):
        for size in sizes:
            try:
                call, what = kernel(kind, size, threads, device)
                rates = best_window_gflops(call, 2.0 * size ** 3, windows=windows,
                                           window_s=window_s)
            except Exception as exc:  # a kernel the library lacks here: recorded, never fatal
                tried.setdefault(kind, {"gflops": None,
                                        "error": f"{type(exc).__name__}: {exc}"[:300]})
                continue
            rec = tried.get(kind) or {}
            by_size = {**rec.get("by_size", {}), str(size): round(max(rates), 3)}
            if not rec.get("gflops") or max(rates) > rec["gflops"]:
                rec = {"gflops": max(rates), "windows": [round(r, 3) for r in rates],
                       "kernel": what, "n": size}
            tried[kind] = {**rec, "by_size": by_size}
    ok = {k: v for k, v in tried.items() if v["gflops"]}
    best = max(ok, key=lambda k: ok[k]["gflops"]) if ok else None
    unit = "GOP/s" if precision == "int8" else "GFLOP/s"
    out: dict[str, Any] = {
        "engine": engine, "device": device, "precision": precision, "threads": threads,
        "gflops": ok[best]["gflops"] if best else None, "unit": unit,
        "method": (f"best of {windows} windows of ≥ {window_s} s of square GEMMs, n = "
                   f"{', '.join(map(str, sizes))} (2n³ ops per call; best at n = "
                   f"{ok[best]['n']}): {ok[best]['kernel']}") if best else None,
        "kernels": tried,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if best is None:
        out["error"] = "; ".join(f"{k}: {v.get('error')}" for k, v in tried.items()) or \
            f"no kernel measures {precision}"
    return out


def percent_of_peak(rate: float | None, peak: float | None) -> tuple[float | None, str | None]:
    """``(100 × rate / peak, None)``; ``(None, why)`` when the percentage exceeds
    ``MAX_PCT_OF_PEAK`` (a measurement error: the peak was underestimated or the work
    overcounted) or cannot be computed."""
    if rate is None or not peak:
        return None, None
    pct = 100.0 * rate / peak
    if pct > MAX_PCT_OF_PEAK:
        return None, (f"measurement error: the achieved rate ({rate:.4g}) is above the peak "
                      f"({peak:.4g}), so the percentage is over {MAX_PCT_OF_PEAK:.0f} %; "
                      "not a result")
    return pct, None


def normalised_ms(latency_ms: float | None, speed_index: float | None) -> float | None:
    """``latency_ms × speed_index / REFERENCE_SPEED_INDEX``: the latency on the reference machine
    (None when either is unknown)."""
    if latency_ms is None or not speed_index:
        return None
    return latency_ms * speed_index / REFERENCE_SPEED_INDEX


class PeakCache:
    """The peaks of one run: measured once per key, kept in this process and, when ``path`` is
    given, in a JSON file the run's cells (separate processes) share."""

    def __init__(self, path: Path | None = None, measure: Callable[..., dict[str, Any]] =
                 measure_peak) -> None:
        self.path = path
        self.measure = measure
        self._memory: dict[str, dict[str, Any]] = {}

    def load(self) -> dict[str, dict[str, Any]]:
        """The peaks in the file (empty when there is none or it is unreadable)."""
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _store(self, key: str, peak: dict[str, Any]) -> None:
        self._memory[key] = peak
        if self.path is not None:
            data = {**self.load(), key: peak}
            atomic_write_json(self.path, data, root=self.path.parent)

    def get(self, engine: str, device: str, precision: str, threads: int) -> dict[str, Any]:
        """The run's peak for this key, measured now when it has none."""
        key = peak_key(engine, device, precision, threads)
        peak = self.load().get(key) or self._memory.get(key)
        if peak is None:
            peak = self.measure(engine, device, precision, threads)
            self._store(key, peak)
        return peak

    def remeasure(self, peak: dict[str, Any]) -> dict[str, Any]:
        """``peak`` measured again; the better of the two is kept (and returned) with
        ``remeasured`` counting how often."""
        args = (peak["engine"], peak["device"], peak["precision"], peak["threads"])
        again = self.measure(*args)
        best = again if (again.get("gflops") or 0) > (peak.get("gflops") or 0) else peak
        best = {**best, "remeasured": int(peak.get("remeasured", 0)) + 1}
        self._store(peak_key(*args), best)
        return best


#: The peaks of this process (cells run without a run folder share them).
PROCESS_PEAKS = PeakCache()


def environment_block(peaks: dict[str, dict[str, Any]],
                      nominal: dict[str, Any] | None) -> dict[str, Any]:
    """What results.json's ``environment`` records of a run's peaks: ``peaks`` (by key, each
    with its method), ``speed_index`` (the fp32 peaks, by engine/device/threads, and the
    reference) and ``peak_nominal_upper_bound`` (the formula's, for every core used)."""
    index = {key.replace("/fp32/", "/"): p.get("gflops") for key, p in sorted(peaks.items())
             if p.get("precision") == "fp32"}
    return {
        "peaks": dict(sorted(peaks.items())),
        "speed_index": {"values": index, "reference": REFERENCE_SPEED_INDEX,
                        "unit": "GFLOP/s (measured fp32 GEMM)",
                        "normalised_ms": "latency × speed index / reference"},
        "peak_nominal_upper_bound": nominal,
    }
