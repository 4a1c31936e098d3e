"""Inference engines behind one small interface (in the spirit of optimum-benchmark's backends).

>>> cfg = EngineConfig(engine="onnxruntime", intra_op_threads=1)
>>> engine = create_engine(ModelSource(kind="onnx", path=Path("m.onnx")), cfg)  # doctest: +SKIP
>>> engine.infer(batch)  # float32 (N, 3, H, W) -> float32 (N, D)          # doctest: +SKIP

Engines: ``torch``, ``torch_compile`` (TorchScript and zoo sources), ``onnxruntime`` (ONNX, or
an export of a torch source) and ``dlib`` (dlib sources only; NHWC 150×150 chips). int8 is
ONNX Runtime running a model quantized by :mod:`facebench.engines.quantize`.

:func:`check_available` answers "can this run here, and if not why" without building anything;
:func:`create_engine` raises :class:`EngineUnavailable` with the same kind of reason, including
failures only seen while building (e.g. an ONNX Runtime provider that silently fell back to CPU).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from facebench.engines.base import (
    Engine,
    EngineConfig,
    EngineError,
    EngineUnavailable,
    ModelSource,
)
from facebench.engines.dlib_engine import (
    DlibEngine,
    dlib_unavailable,
    resolve_source,
    source_problem,
)
from facebench.engines.quantize import already_quantized, is_quantized
from facebench.engines.quantize import unavailable_reason as int8_unavailable


def check_available(cfg: EngineConfig, source: ModelSource | None = None) -> str | None:
    """``None`` if ``cfg`` (and ``source``, when given) can run here, else a human reason.

    Raises ``ValueError`` for configurations that are wrong everywhere (e.g. CUDA providers
    on ``device='cpu'``), so that typos are not reported as skips.
    """
    if cfg.int8 is not None and (reason := int8_unavailable(cfg, cfg.int8)):
        return reason
    if cfg.engine == "onnxruntime":
        from facebench.engines.ort_engine import ort_unavailable_reason

        reason = ort_unavailable_reason(cfg)
    elif cfg.engine in ("torch", "torch_compile"):
        from facebench.engines.torch_engine import torch_unavailable_reason

        reason = torch_unavailable_reason(cfg)
    elif cfg.engine == "dlib":
        reason = _dlib_reason(cfg, source)
    else:
        raise ValueError(f"unknown engine {cfg.engine!r}")
    if reason or source is None:
        return reason
    return _source_reason(source, cfg)


def _dlib_reason(cfg: EngineConfig, source: ModelSource | None) -> str | None:
    if source is not None and source.kind == "dlib":
        problem = source_problem(source)
        if problem:
            raise ValueError(problem)
    if cfg.fp16:
        return "fp16: dlib's network runs in float32 only"
    return dlib_unavailable(cfg.device)


def _source_reason(source: ModelSource, cfg: EngineConfig) -> str | None:
    if (source.kind == "dlib") != (cfg.engine == "dlib"):
        if cfg.engine == "dlib":
            return (f"engine 'dlib' runs only dlib models (source: dlib), not a {source.kind} "
                    "source; restrict the protocol's devices")
        return (f"a dlib model runs only on engine 'dlib', not {cfg.engine}; restrict the "
                "protocol's devices")
    if cfg.engine != "onnxruntime" and source.kind == "onnx":
        return f"{cfg.engine} cannot run an ONNX file (ONNX -> torch conversion is not supported)"
    if cfg.int8 is not None and source.kind == "onnx" and source.path is not None \
            and Path(source.path).is_file() and (why := already_quantized(Path(source.path))):
        return (f"int8: {Path(source.path).name} is already quantized ({why}); it is not "
                "quantized twice: measure it at precision fp32")
    needs = []
    if source.kind == "zoo":
        needs.append("facebench.zoo")
        if source.weights is not None:
            needs.append("facebench.zoo.weights")
    if cfg.engine == "onnxruntime" and source.kind != "onnx":
        needs.append("facebench.zoo.export")
    for mod in needs:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"{mod} is not available (needed for a {source.kind} source on {cfg.engine})"
    return None


def create_engine(
    source: ModelSource, cfg: EngineConfig, cache_dir: Path | None = None
) -> Engine:
    """Build an engine for ``source``; raises :class:`EngineUnavailable` when it cannot run here
    and :class:`EngineError` when building fails. ONNX exports of torch sources are cached in
    ``cache_dir`` (default ``$FACEBENCH_CACHE`` or ``~/.cache/facebench``)."""
    reason = check_available(cfg, source)
    if reason:
        raise EngineUnavailable(reason)
    if cfg.engine == "onnxruntime":
        from facebench.engines.ort_engine import OrtEngine
        from facebench.engines.sources import onnx_path_for

        path = onnx_path_for(source, cache_dir)
        if cfg.int8 is not None and not is_quantized(path):
            raise EngineError(f"precision int8 runs the quantized model, but {path.name} is a "
                              "float model: quantize it first (facebench.engines.quantize."
                              "quantize_onnx; a suite's cells do this themselves)")
        return OrtEngine(path, cfg, cache_dir=cache_dir)
    if cfg.engine == "dlib":
        return DlibEngine(source, cfg)
    from facebench.engines.sources import load_torch_module
    from facebench.engines.torch_engine import TorchEngine

    engine = TorchEngine(load_torch_module(source), cfg, label=source.describe())
    engine.compile_now(source.input_size)
    return engine


def run_source(source: ModelSource, cfg: EngineConfig, cache_dir: Path | None = None,
               ) -> ModelSource:
    """The source the engine for ``cfg`` actually runs: ONNX Runtime's (cached) export of a
    torch source, a dlib source with its default network file filled in, else ``source``."""
    if source.kind == "dlib":
        return resolve_source(source)
    if cfg.engine == "onnxruntime":
        from facebench.engines.sources import onnx_source

        return onnx_source(source, cache_dir)
    return source


__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineUnavailable",
    "ModelSource",
    "check_available",
    "create_engine",
    "run_source",
]
