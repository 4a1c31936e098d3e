"""Engine interface: configuration, model source, the :class:`Engine` protocol and errors.

An engine turns a float32 batch (already preprocessed; NCHW, or NHWC where the source says so)
into float32 ``(N, D)`` embeddings.
Engines are built by :func:`facebench.engines.create_engine`; :func:`check_available` says, without
building anything, why a configuration cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

EngineName = Literal["torch", "torch_compile", "onnxruntime", "dlib"]
DeviceName = Literal["cpu", "cuda"]
ProviderName = Literal["cpu", "cuda", "tensorrt"]
Layout = Literal["NCHW", "NHWC"]


class EngineUnavailable(RuntimeError):
    """The configuration cannot run on this machine; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EngineError(RuntimeError):
    """The engine is available but building or running it failed (e.g. torch.compile broke)."""


@dataclass(frozen=True)
class EngineConfig:
    """How to run a model. ``None`` thread counts leave the library default (recorded in info).

    ``providers`` applies to ONNX Runtime only, in priority order; empty means ``("cpu",)`` on
    CPU and ``("cuda",)`` on CUDA. ``fp16`` means half precision weights and compute on CUDA
    (torch ``.half()``, ORT model converted to fp16 with float32 I/O, TensorRT ``trt_fp16``).
    ``int8`` (``static``/``dynamic``, ONNX Runtime only) says the source is an int8 model made
    by :func:`facebench.engines.quantize.quantize_onnx`; the engine refuses a float model then.
    """

    engine: EngineName
    device: DeviceName = "cpu"
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    fp16: bool = False
    int8: Literal["static", "dynamic"] | None = None
    providers: tuple[ProviderName, ...] = ()

    def resolved_providers(self) -> tuple[ProviderName, ...]:
        """The ORT providers to request, defaults filled in."""
        if self.providers:
            return tuple(self.providers)
        return ("cuda",) if self.device == "cuda" else ("cpu",)


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: an ONNX or TorchScript file, a zoo architecture, or a dlib
    network file (``path``; ``None``: the ``face_recognition_models`` package's ResNet).
    ``layout`` is that of the batches :meth:`Engine.infer` receives."""

    kind: Literal["onnx", "torchscript", "zoo", "dlib"]
    path: Path | None = None
    arch: str | None = None
    embedding_size: int | None = None
    weights: Path | None = None
    input_size: tuple[int, int] = (112, 112)
    layout: Layout = "NCHW"

    def describe(self) -> str:
        """A short human label, for messages."""
        if self.kind == "zoo":
            return f"zoo:{self.arch}({self.embedding_size})" + (
                f"+{Path(self.weights).name}" if self.weights else ""
            )
        return f"{self.kind}:{self.path}"


@runtime_checkable
class Engine(Protocol):
    """A built model ready for inference."""

    name: str

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 ``(N, 3, H, W)`` (``(N, H, W, 3)`` for an NHWC source) -> float32 ``(N, D)``;
        synchronous (results are on host)."""
        ...

    def info(self) -> dict[str, Any]:
        """engine, device, providers actually used, threads, versions, fp16 (JSON-safe)."""
        ...


#: Optional engine method used by the latency probe when present:
#: ``runner(batch) -> (fn, sync)``, a zero-argument call that runs ``batch`` with the input
#: staged on the device once, and a sync function for the timer (``None`` when ``fn`` is
#: synchronous). Without it the probe times ``infer(batch)`` (host to host).
RunnerFn = Callable[[np.ndarray], tuple[Callable[[], Any], Callable[[], None] | None]]

#: Optional engine method used by the efficiency probe when present: ``compute_counts() ->
#: dict`` with at least ``params``, ``gmac`` and ``gflops`` (``gflops = 2 * gmac``, per image),
#: for runtimes whose model facebench's torch/ONNX counters cannot read (dlib's ``.dat``).
#: Without it the probe counts the source with :mod:`facebench.probes.compute`.
ComputeCountsFn = Callable[[], dict[str, Any]]


def runner_for(engine: Engine, batch: np.ndarray) -> tuple[Callable[[], Any],
                                                           Callable[[], None] | None, str]:
    """``(fn, sync, what)`` to time one inference of ``batch`` on ``engine``."""
    make = getattr(engine, "runner", None)
    if make is not None:
        fn, sync = make(batch)
        return fn, sync, "runner: input staged once, forward only"
    return (lambda: engine.infer(batch)), None, "infer: host array in, host embeddings out"


def as_batch(batch: np.ndarray, layout: Layout = "NCHW") -> np.ndarray:
    """Validate and return a C-contiguous float32 array in ``layout`` (3 channels)."""
    arr = np.ascontiguousarray(batch, dtype=np.float32)
    channels = 1 if layout == "NCHW" else 3
    if arr.ndim != 4 or arr.shape[channels] != 3:
        want = "(N, 3, H, W)" if layout == "NCHW" else "(N, H, W, 3)"
        raise ValueError(f"expected a float32 {want} batch ({layout}), got shape {arr.shape}")
    return arr


def as_embeddings(out: np.ndarray, n: int) -> np.ndarray:
    """Validate a model output as ``(n, D)`` float32 embeddings."""
    arr = np.asarray(out, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[2:] == (1, 1):
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise EngineError(f"model output has shape {arr.shape}, expected ({n}, D) embeddings")
    return arr
