"""Export a module to ONNX (TorchScript exporter) and check torch/ONNX Runtime parity."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facebench.io import atomic_path

TOLERANCE = 1e-4


class ExportParityError(RuntimeError):
    """ONNX Runtime disagrees with torch on the exported model."""


def _normalize(x: np.ndarray) -> np.ndarray:
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def check_input_size(model: nn.Module, input_size: tuple[int, int]) -> None:
    """A :class:`ValueError` when ``model`` does not run on one ``1×3×H×W`` input (a zoo model
    whose fully connected head expects the 7×7 map of a 112×112 input, a side under a kernel)."""
    h, w = input_size
    if h < 1 or w < 1:
        raise ValueError(f"input size {h}×{w}: both sides must be positive")
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, h, w))
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ValueError(f"{type(model).__name__} does not run on a {h}×{w} input ({reason}); "
                         "use the input size it was built for (`facebench models` lists "
                         "it)") from None


def export_onnx(model: nn.Module, out_path: str | Path, input_size: tuple[int, int] = (112, 112),
                opset: int = 17, dynamic_batch: bool = True, fold_bn: bool = True,
                seed: int = 0) -> dict[str, Any]:
    """Export ``model`` (left in eval mode) to ``out_path`` and return its parity record.

    Parity: max |normalize(torch(x)) - normalize(ort(x))| over random inputs in [-1, 1]
    (batches 1 and 3 when ``dynamic_batch``, else 1); raises :class:`ExportParityError` above
    1e-4, or when either side gives a NaN or infinite embedding. ``fold_bn=False`` keeps
    BatchNorm nodes (TrainingMode.PRESERVE on an eval model), so a graph FLOP count matches
    fvcore's convention (see :mod:`facebench.probes.compute`). A model that does not run at
    ``input_size`` is a :class:`ValueError` before anything is written; the file is written
    beside ``out_path`` and renamed over it only once it passed.
    """
    out_path = Path(out_path)
    model.eval()
    check_input_size(model, input_size)
    with atomic_path(out_path) as tmp:
        return _export_and_check(model, tmp, out_path, input_size, opset, dynamic_batch, fold_bn,
                                 seed)


def _export_and_check(model: nn.Module, tmp: Path, out_path: Path, input_size: tuple[int, int],
                      opset: int, dynamic_batch: bool, fold_bn: bool,
                      seed: int) -> dict[str, Any]:
    """Export to ``tmp`` and run the parity check on it (records name ``out_path``)."""
    import onnxruntime as ort

    h, w = input_size
    dummy = torch.zeros(1, 3, h, w)
    axes = {"input": {0: "batch"}, "embedding": {0: "batch"}} if dynamic_batch else None
    mode = torch.onnx.TrainingMode.EVAL if fold_bn else torch.onnx.TrainingMode.PRESERVE
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["embedding"], dynamic_axes=axes,
                          training=mode, do_constant_folding=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(tmp), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    diff = 0.0
    batches = (1, 3) if dynamic_batch else (1,)
    for n in batches:
        x = rng.uniform(-1.0, 1.0, size=(n, 3, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {"input": x})[0]
        if got.shape != ref.shape:
            raise ExportParityError(
                f"{out_path}: ONNX output shape {got.shape} != torch {ref.shape}")
        if not (np.isfinite(ref).all() and np.isfinite(got).all()):
            raise ExportParityError(
                f"{out_path}: {'torch' if not np.isfinite(ref).all() else 'ONNX Runtime'} gives "
                "NaN or infinite embeddings on inputs in [-1, 1]; check the weights")
        diff = max(diff, float(np.abs(_normalize(ref) - _normalize(got)).max()))
    record = {"max_abs_diff": diff, "normalized": True, "opset": opset, "ok": diff <= TOLERANCE,
              "tolerance": TOLERANCE, "batches": list(batches), "dynamic_batch": dynamic_batch,
              "fold_bn": fold_bn, "path": str(out_path)}
    if not record["ok"]:
        raise ExportParityError(f"{out_path}: ONNX Runtime differs from torch by {diff:.3g} on "
                                f"L2-normalized embeddings (> {TOLERANCE:g}); record: {record}")
    return record
