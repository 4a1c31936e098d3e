"""ONNX Runtime engine: CPU, CUDA and TensorRT execution providers.

The session uses ``ORT_ENABLE_ALL`` graph optimizations and the requested thread counts
(``inter_op`` > 1 switches to ``ORT_PARALLEL`` execution, the only mode that uses inter-op
threads). After the session is built, :meth:`InferenceSession.get_providers` is checked: ONNX
Runtime silently falls back to CPU when a requested provider cannot load, and that is reported
as :class:`EngineUnavailable` instead of producing CPU numbers under a CUDA label.

fp16: CUDA EP runs a copy of the model converted to fp16 with float32 inputs/outputs
(``keep_io_types``; converter: onnxconverter-common, else onnxruntime.transformers.float16);
TensorRT builds fp16 engines itself (``trt_fp16_enable``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from facebench.engines.base import (
    EngineConfig,
    EngineError,
    EngineUnavailable,
    ProviderName,
    as_batch,
    as_embeddings,
)

PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def fp16_converter() -> tuple[str, Callable[..., Any]] | None:
    """``(name, convert_float_to_float16)`` from the first converter that imports, else None."""
    try:
        from onnxconverter_common.float16 import convert_float_to_float16

        return "onnxconverter_common", convert_float_to_float16
    except ImportError:
        pass
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        return "onnxruntime.transformers.float16", convert_float_to_float16
    except ImportError:
        return None


def fp16_model_bytes(path: Path) -> tuple[str, bytes]:
    """``(converter name, serialized model)``: ``path`` converted to fp16 weights and compute
    with float32 inputs and outputs (``keep_io_types=True``)."""
    import onnx

    conv = fp16_converter()
    if conv is None:
        raise EngineUnavailable("no fp16 converter (pip install onnxconverter-common)")
    name, convert = conv
    try:
        model16 = convert(onnx.load(str(path)), keep_io_types=True)
    except Exception as exc:
        raise EngineError(f"fp16 conversion failed: {type(exc).__name__}: {exc}") from exc
    return name, model16.SerializeToString()


def _validate(cfg: EngineConfig) -> tuple[ProviderName, ...]:
    providers = cfg.resolved_providers()
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        raise ValueError(f"unknown ONNX Runtime providers {unknown}; use {sorted(PROVIDERS)}")
    gpu = [p for p in providers if p != "cpu"]
    if cfg.device == "cpu" and gpu:
        raise ValueError(f"device='cpu' with GPU providers {gpu}: set device='cuda'")
    if cfg.device == "cuda" and not gpu:
        raise ValueError("device='cuda' needs providers 'cuda' and/or 'tensorrt'")
    return providers


def ort_unavailable_reason(cfg: EngineConfig) -> str | None:
    """Why an onnxruntime config cannot run here; ``None`` when it can (as far as can be told
    before building a session)."""
    providers = _validate(cfg)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return f"onnxruntime is not installed: {exc}"
    available = ort.get_available_providers()
    for p in providers:
        if PROVIDERS[p] not in available:
            hint = {"cuda": "onnxruntime-gpu with matching CUDA/cuDNN",
                    "tensorrt": "onnxruntime-gpu with TensorRT libraries"}.get(p, "")
            return (
                f"ONNX Runtime {PROVIDERS[p]} not available: onnxruntime {ort.__version__} "
                f"offers {available}" + (f" (needs {hint})" if hint else "")
            )
    if cfg.fp16:
        if cfg.device != "cuda":
            return "fp16 needs device='cuda' (ONNX Runtime's CPU provider has few fp16 kernels)"
        if providers[0] != "tensorrt" and fp16_converter() is None:
            return "fp16 on the CUDA provider needs onnxconverter-common (pip) or " \
                "onnxruntime.transformers.float16; neither imports"
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


class OrtEngine:
    """An ``onnxruntime.InferenceSession`` behind the :class:`Engine` interface."""

    name = "onnxruntime"

    def __init__(self, model_path: Path, cfg: EngineConfig, cache_dir: Path | None = None) -> None:
        import onnxruntime as ort

        if cfg.engine != "onnxruntime":
            raise ValueError(f"OrtEngine cannot run engine {cfg.engine!r}")
        reason = ort_unavailable_reason(cfg)
        if reason:
            raise EngineUnavailable(reason)
        self.cfg = cfg
        self.model_path = Path(model_path).resolve()
        self.requested = _validate(cfg)
        self.fp16_converter: str | None = None

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only; fallback is checked below, not logged
        if cfg.intra_op_threads is not None:
            opts.intra_op_num_threads = cfg.intra_op_threads
        parallel = cfg.inter_op_threads is not None and cfg.inter_op_threads > 1
        opts.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        if cfg.inter_op_threads is not None:
            opts.inter_op_num_threads = cfg.inter_op_threads
        self._opts = opts

        providers: list[tuple[str, dict[str, Any]]] = []
        for p in self.requested:
            options: dict[str, Any] = {}
            if p == "cuda":
                options = {"device_id": 0}
            elif p == "tensorrt":
                # int8: TensorRT reads the scales from the model's QDQ nodes (no calibration
                # table), with int8 kernels allowed
                options = {"device_id": 0, "trt_fp16_enable": bool(cfg.fp16),
                           "trt_int8_enable": cfg.int8 is not None}
                if cache_dir is not None:
                    trt_cache = Path(cache_dir) / "trt"
                    trt_cache.mkdir(parents=True, exist_ok=True)
                    options |= {"trt_engine_cache_enable": True,
                                "trt_engine_cache_path": str(trt_cache)}
            providers.append((PROVIDERS[p], options))

        model: str | bytes = str(self.model_path)
        if cfg.fp16 and self.requested[0] != "tensorrt":
            model = self._fp16_model_bytes()
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=providers)
        except Exception as exc:
            raise EngineError(
                f"ONNX Runtime could not build a session for {self.model_path.name} with "
                f"{[n for n, _ in providers]}: {type(exc).__name__}: {exc}"
            ) from exc
        self.used = list(self.session.get_providers())
        missing = [PROVIDERS[p] for p in self.requested if PROVIDERS[p] not in self.used]
        if missing:
            raise EngineUnavailable(
                f"ONNX Runtime fell back: requested {[PROVIDERS[p] for p in self.requested]}, "
                f"but the session uses {self.used} ({', '.join(missing)} failed to load)"
            )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise EngineError(f"expected one model input, got {[i.name for i in inputs]}")
        self.input_name = inputs[0].name
        self.input_shape = list(inputs[0].shape)
        self.output_name = outputs[0].name
        self.output_shape = list(outputs[0].shape)

    def _fp16_model_bytes(self) -> bytes:
        self.fp16_converter, data = fp16_model_bytes(self.model_path)
        return data

    @property
    def on_gpu(self) -> bool:
        return self.cfg.device == "cuda"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        x = as_batch(batch)
        out = self.session.run([self.output_name], {self.input_name: x})[0]
        return as_embeddings(out, x.shape[0])

    def runner(self, batch: np.ndarray) -> tuple[Callable[[], Any], Callable[[], None] | None]:
        """CPU: ``session.run`` on a fixed host array (what a bare loop does). GPU: IOBinding
        with input and output on the device; ``run_with_iobinding`` synchronizes the provider's
        stream before returning, so no extra sync is needed."""
        x = as_batch(batch)
        if not self.on_gpu:
            sess, names, feed = self.session, [self.output_name], {self.input_name: x}
            return (lambda: sess.run(names, feed)), None
        import onnxruntime as ort

        binding = self.session.io_binding()
        x_dev = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        binding.bind_ortvalue_input(self.input_name, x_dev)
        binding.bind_output(self.output_name, "cuda", 0)
        sess = self.session

        def run() -> Any:
            sess.run_with_iobinding(binding)
            return x_dev  # keep the device input alive with the closure

        return run, None

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort
        import psutil

        intra = self.cfg.intra_op_threads
        return {
            "engine": self.name,
            "device": self.cfg.device,
            "providers_requested": [PROVIDERS[p] for p in self.requested],
            "providers": self.used,
            "threads": {
                "intra_op": intra if intra is not None else psutil.cpu_count(logical=False),
                "inter_op": self.cfg.inter_op_threads,
                "requested_intra_op": intra,
                "requested_inter_op": self.cfg.inter_op_threads,
                "note": None if intra is not None
                else "intra_op not set: ONNX Runtime uses one thread per physical core",
            },
            "execution_mode": str(self._opts.execution_mode).rsplit(".", 1)[-1],
            "graph_optimization": "ORT_ENABLE_ALL",
            "fp16": self.cfg.fp16,
            "fp16_converter": self.fp16_converter,
            "int8": self.cfg.int8,
            "versions": {
                "onnxruntime": ort.__version__,
                "onnx": _version("onnx"),
                "numpy": np.__version__,
            },
            "model_path": str(self.model_path),
            "model_sha256": _sha256_prefix(self.model_path),
            "input_name": self.input_name,
            "input_shape": self.input_shape,
            "output_name": self.output_name,
            "output_shape": self.output_shape,
            "shape_note": _shape_note(self.input_shape, self.output_shape),
        }


def _shape_note(inputs: list[Any], outputs: list[Any]) -> str | None:
    """A fixed output batch beside a dynamic input batch (SFace declares ``fc1`` as [1, 128]):
    the declaration is wrong, onnxruntime returns the real batch (and warns, silenced here)."""
    if inputs and outputs and not isinstance(inputs[0], int) and isinstance(outputs[0], int):
        return (f"the model declares its output batch as {outputs[0]} while its input batch is "
                f"dynamic ({inputs[0]!r}); outputs have the real batch size")
    return None


def _sha256_prefix(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:16]
