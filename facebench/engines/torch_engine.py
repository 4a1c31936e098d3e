"""PyTorch engines: eager (``torch``) and ``torch.compile`` (inductor), on CPU or CUDA.

Threads are process-wide in torch. ``torch.set_num_threads`` can change at any time and is
re-applied before each run; ``torch.set_num_interop_threads`` can be set only ONCE per process
and only before any inter-op parallel work has started, so asking for a different inter-op count
later raises :class:`EngineUnavailable` (run such a cell in a fresh process:
``facebench.probes.efficiency.run_efficiency_isolated``).
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from facebench.engines.base import (
    EngineConfig,
    EngineError,
    EngineUnavailable,
    as_batch,
    as_embeddings,
)


def torch_unavailable_reason(cfg: EngineConfig) -> str | None:
    """Why ``cfg`` (a torch / torch_compile config) cannot run here; ``None`` when it can."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency
        return f"torch is not installed: {exc}"
    if cfg.providers:
        raise ValueError(f"providers {cfg.providers} apply to onnxruntime only, not {cfg.engine}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA (CPU-only build)"
        return (
            f"CUDA not available: torch.cuda.is_available() is False "
            f"(torch {torch.__version__}, built with {built})"
        )
    if cfg.fp16 and cfg.device != "cuda":
        return "fp16 needs device='cuda' (torch half precision on CPU is not benchmarked)"
    if cfg.engine == "torch_compile":
        if cfg.device == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
            return "torch.compile (inductor) on CPU needs a C++ compiler; none found on PATH"
        if cfg.device == "cuda" and importlib.util.find_spec("triton") is None:
            return "torch.compile (inductor) on CUDA needs triton, which is not installed"
    return None


def apply_torch_threads(intra: int | None, inter: int | None) -> dict[str, Any]:
    """Set torch's thread counts (see module docstring) and return what is in effect."""
    import torch

    if intra is not None:
        if intra < 1:
            raise ValueError("intra_op_threads must be >= 1")
        if torch.get_num_threads() != intra:
            torch.set_num_threads(intra)
    if inter is not None and torch.get_num_interop_threads() != inter:
        try:
            torch.set_num_interop_threads(inter)
        except RuntimeError as exc:
            raise EngineUnavailable(
                f"torch inter-op threads are already fixed at {torch.get_num_interop_threads()} "
                f"in this process (they can be set once, before parallel work); {inter} was "
                "asked for: run this cell in a fresh process"
            ) from exc
    return {
        "intra_op": torch.get_num_threads(),
        "inter_op": torch.get_num_interop_threads(),
        "requested_intra_op": intra,
        "requested_inter_op": inter,
    }


def _first_tensor(out: Any) -> Any:
    """The embedding tensor of a model output (tensor, or first item of a tuple/list/dict)."""
    if isinstance(out, (tuple, list)):
        return _first_tensor(out[0])
    if isinstance(out, dict):
        return _first_tensor(next(iter(out.values())))
    return out


class TorchEngine:
    """A torch module (eager or compiled) behind the :class:`Engine` interface."""

    def __init__(self, module: Any, cfg: EngineConfig, label: str = "") -> None:
        import torch

        if cfg.engine not in ("torch", "torch_compile"):
            raise ValueError(f"TorchEngine cannot run engine {cfg.engine!r}")
        reason = torch_unavailable_reason(cfg)
        if reason:
            raise EngineUnavailable(reason)
        self.name = cfg.engine
        self.cfg = cfg
        self.label = label
        self._threads = apply_torch_threads(cfg.intra_op_threads, cfg.inter_op_threads)
        self.device = torch.device("cuda" if cfg.device == "cuda" else "cpu")
        self.dtype = torch.float16 if cfg.fp16 else torch.float32
        model = module.eval().to(self.device)
        if cfg.fp16:
            model = model.half()
        self._eager = model
        self.compile_s: float | None = None
        self._compile_calls: dict[str, float] = {}
        self._seen: set[tuple[int, ...]] = set()
        self._model = model
        if cfg.engine == "torch_compile":
            try:
                self._model = torch.compile(model)
            except Exception as exc:
                raise EngineError(f"torch.compile failed: {type(exc).__name__}: {exc}") from exc

    # -- helpers --------------------------------------------------------------------------
    def _reapply_threads(self) -> None:
        import torch

        want = self.cfg.intra_op_threads
        if want is not None and torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def _stage(self, batch: np.ndarray) -> Any:
        import torch

        x = torch.from_numpy(as_batch(batch)).to(self.device)
        return x.to(self.dtype)

    def _forward(self, x: Any) -> Any:
        """One forward pass; the first call per input shape of a compiled model is timed as
        compilation (``info()['compile_calls']``)."""
        import torch

        shape = tuple(x.shape)
        first = self.cfg.engine == "torch_compile" and shape not in self._seen
        t0 = time.perf_counter()
        try:
            with torch.inference_mode():
                out = _first_tensor(self._model(x))
            if first and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        except Exception as exc:
            if first:
                raise EngineError(
                    f"torch.compile failed on input {shape}: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        if first:
            seconds = time.perf_counter() - t0
            self._compile_calls["x".join(map(str, shape))] = round(seconds, 4)
            if self.compile_s is None:
                self.compile_s = seconds
        self._seen.add(shape)
        return out

    # -- Engine ---------------------------------------------------------------------------
    def compile_now(self, input_size: tuple[int, int], batch: int = 1) -> float | None:
        """Trigger compilation with a zero batch; returns seconds (``None`` for eager)."""
        if self.cfg.engine != "torch_compile":
            return None
        self._reapply_threads()
        h, w = input_size
        self._forward(self._stage(np.zeros((batch, 3, h, w), np.float32)))
        return self.compile_s

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._reapply_threads()
        x = self._stage(batch)
        out = self._forward(x)
        return as_embeddings(out.float().cpu().numpy(), x.shape[0])

    def runner(self, batch: np.ndarray) -> tuple[Callable[[], Any], Callable[[], None] | None]:
        import torch

        self._reapply_threads()
        x = self._stage(batch)
        self._forward(x)  # compiles for this shape (timed) before any measurement
        model = self._model

        def run() -> Any:
            with torch.inference_mode():
                return model(x)

        if self.device.type == "cuda":
            device = self.device
            return run, lambda: torch.cuda.synchronize(device)
        return run, None

    def info(self) -> dict[str, Any]:
        import torch

        versions = {"torch": torch.__version__, "numpy": np.__version__}
        device_name = "cpu"
        if self.device.type == "cuda":
            versions["cuda"] = torch.version.cuda
            versions["cudnn"] = torch.backends.cudnn.version()
            device_name = torch.cuda.get_device_name(self.device)
        return {
            "engine": self.name,
            "device": self.cfg.device,
            "device_name": device_name,
            "providers": [],
            "threads": dict(self._threads),
            "fp16": self.cfg.fp16,
            "dtype": str(self.dtype).removeprefix("torch."),
            "versions": versions,
            "compile_s": self.compile_s,
            "compile_calls": dict(self._compile_calls),
            "source": self.label,
        }
