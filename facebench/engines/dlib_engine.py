"""dlib engine: dlib's pretrained ResNet face descriptor behind the :class:`Engine` interface.

Model: ``dlib_face_recognition_resnet_model_v1.dat`` (29 conv layers, 128-d output; Davis King,
2017; published LFW accuracy 99.38 %), by default the file of the ``face_recognition_models``
package. The engine receives float32 NHWC RGB batches of 150×150 ``dlib.get_face_chip`` crops
holding 0..255 values (the model's preprocess: ``mean 0, std 1``), rounds them back to uint8 and
runs ONE ``compute_face_descriptor(chips, 0)`` call per batch; dlib's own input scaling
(``(x - (122.782, 117.001, 104.298)) / 256`` per RGB channel) happens inside dlib.

dlib's CPU network is single-threaded (no BLAS in the wheels, the GIL is held), so the thread
settings are ignored and recorded as 1. :meth:`DlibEngine.compute_counts` gives the efficiency
probe the parameter count read from the ``.dat`` file and the MACs of an analytic walk of the
published network definition (facebench's torch/ONNX counters cannot read a dlib network).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from facebench.engines.base import (
    EngineConfig,
    EngineError,
    EngineUnavailable,
    ModelSource,
    as_batch,
    as_embeddings,
)
from facebench.io import sha256_file_once

EMBEDDING_SIZE = 128
CHIP_SIZE = 150
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
CNN_FILE = "mmod_human_face_detector.dat"
INSTALL_HINT = "pip install 'facebench[dlib]'"


def dlib_unavailable(device: str = "cpu") -> str | None:
    """Why dlib cannot run on ``device`` here (``None`` when it can)."""
    try:
        import dlib
        import face_recognition_models  # noqa: F401
    except ImportError as exc:
        return f"dlib model needs the 'dlib' extra ({exc.name} missing): {INSTALL_HINT}"
    if device == "cuda" and not dlib.DLIB_USE_CUDA:
        return "this dlib build has no CUDA support (dlib-bin is CPU-only)"
    if device == "cpu" and dlib.DLIB_USE_CUDA:
        return "this dlib build runs its network on CUDA: use device 'cuda' (or a CPU-only dlib)"
    return None


def default_model_dir() -> Path:
    """The ``models/`` folder of the ``face_recognition_models`` package."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location()).parent


def resolve_source(source: ModelSource) -> ModelSource:
    """``source`` with the default network file filled in when it names none."""
    if source.path is not None:
        return source
    return dataclasses.replace(source, path=default_model_dir() / RESNET_FILE)


def source_problem(source: ModelSource) -> str | None:
    """What makes ``source`` wrong for dlib everywhere (``None`` when nothing does)."""
    if tuple(source.input_size) != (CHIP_SIZE, CHIP_SIZE):
        return (f"a dlib model takes {CHIP_SIZE}×{CHIP_SIZE} chips (dlib.get_face_chip), not "
                f"input_size {list(source.input_size)}: set the model's preprocess input_size "
                f"to [{CHIP_SIZE}, {CHIP_SIZE}]")
    if source.embedding_size not in (None, EMBEDDING_SIZE):
        return (f"dlib's ResNet gives {EMBEDDING_SIZE}-d descriptors, not "
                f"embedding_size={source.embedding_size}")
    return None


class DlibEngine:
    """``dlib.face_recognition_model_v1`` behind the :class:`Engine` interface."""

    name = "dlib"

    def __init__(self, source: ModelSource, cfg: EngineConfig) -> None:
        reason = dlib_unavailable(cfg.device)
        if reason:
            raise EngineUnavailable(reason)
        problem = source_problem(source)
        if problem:
            raise ValueError(problem)
        import dlib

        path = Path(resolve_source(source).path)  # type: ignore[arg-type]
        if not path.is_file():
            raise FileNotFoundError(f"dlib network file not found: {path}")
        try:
            self._net = dlib.face_recognition_model_v1(str(path))
        except RuntimeError as exc:
            raise EngineError(f"dlib could not load {path}: {exc}") from exc
        self.path = path
        self.layout = source.layout
        self.cfg = cfg

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 RGB chips holding 0..255 (in the source's layout) -> float32 ``(N, 128)``
        raw descriptors (dlib's, not re-normalized)."""
        arr = as_batch(batch, self.layout)
        if self.layout == "NCHW":
            arr = arr.transpose(0, 2, 3, 1)
        chips = np.rint(np.clip(arr, 0.0, 255.0)).astype(np.uint8)
        try:
            out = self._net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips], 0)
        except RuntimeError as exc:
            raise EngineError(f"dlib compute_face_descriptor failed: {exc}") from exc
        return as_embeddings(np.array(out, dtype=np.float32).reshape(len(chips), -1), len(chips))

    def info(self) -> dict[str, Any]:
        import dlib

        return {"engine": "dlib", "device": self.cfg.device, "dlib_version": dlib.__version__,
                "cuda": bool(dlib.DLIB_USE_CUDA), "blas": bool(dlib.DLIB_USE_BLAS),
                "threads": {"intra_op": 1, "inter_op": 1}, "fp16": False,
                "file": str(self.path), "sha256": sha256_file_once(self.path),
                "num_jitters": 0, "input": f"uint8 {CHIP_SIZE}×{CHIP_SIZE}×3 RGB chips"}

    def compute_counts(self) -> dict[str, Any]:
        """Params read from the ``.dat`` file and MACs of the analytic walk (per chip)."""
        params, comp = count_params(self.path), count_macs()
        gmac = comp["macs"] / 1e9
        total = params["total"]
        return {"params": total, "gmac": gmac, "gflops": 2 * gmac,
                # dlib holds every tensor in float32 at run time (the .dat packs them smaller)
                "params_by_dtype": {"float32": total}, "quantized_params": 0,
                "weights": {"float32": {"elements": total, "bytes": 4 * total}},
                "dequantized_at_run_time": 0,
                "macs": comp["macs"], "params_by_layer": params,
                "params_source": "tensors read from the .dat file",
                "params_analytic": comp["params"],
                "macs_source": "analytic walk of the network definition",
                "counter": "facebench.engines.dlib_engine", "input_shape": comp["input"],
                "skipped": comp["skipped"], "counted_on": "dlib .dat file"}


# ---- cost ------------------------------------------------------------------------------------


def _dlib_int(data: bytes, pos: int) -> tuple[int, int]:
    """One integer in dlib's serialization (size byte, then little-endian bytes)."""
    head = data[pos]
    size = head & 0x0F
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
    return (-value if head & 0x80 else value), pos + 1 + size


def _tensor_at(data: bytes, pos: int) -> int | None:
    """Element count of a dlib tensor serialized at ``pos`` (version 2 header), else None."""
    try:
        version, p = _dlib_int(data, pos)
        if version != 2:
            return None
        dims = []
        for _ in range(4):
            v, p = _dlib_int(data, p)
            dims.append(v)
    except IndexError:
        return None
    if min(dims) < 1:
        return None
    count = int(np.prod(dims))
    return count if p + 4 * count <= len(data) else None


def count_params(path: Path) -> dict[str, int]:
    """Σ numel of the learnable tensors stored in a dlib network file (``con_``, ``affine_``,
    ``fc_`` layers), read from the file itself: ``{"con_": n, "affine_": n, "fc_": n, "total"}``."""
    data = Path(path).read_bytes()
    out: dict[str, int] = {}
    for tag in ("con_", "affine_", "fc_"):
        name = tag.encode()
        total, pos = 0, data.find(name)
        while pos >= 0:
            for off in range(pos + len(name), pos + len(name) + 48):
                count = _tensor_at(data, off)
                if count is not None:
                    total += count
                    break
            pos = data.find(name, pos + 1)
        out[tag] = total
    out["total"] = sum(out.values())
    return out


def count_macs(size: int = CHIP_SIZE) -> dict[str, Any]:
    """Multiply-accumulates of one descriptor, walked from the published network definition
    (dlib ``dnn_face_recognition_ex.cpp``): conv + fc only, dlib's padding rule (stride 1 →
    same, else 0) and ``add_prev``'s max-size zero-padded sum."""
    macs = params = 0
    c, h = 3, size

    def conv(cout: int, k: int, stride: int) -> None:
        nonlocal macs, params, c, h
        pad = k // 2 if stride == 1 else 0
        h = (h + 2 * pad - k) // stride + 1
        macs += h * h * cout * c * k * k
        params += cout * c * k * k + cout + 2 * cout  # weights, bias, affine gamma/beta
        c = cout

    def block(n: int, down: bool) -> None:
        nonlocal c, h
        cin, hin = c, h
        conv(n, 3, 2 if down else 1)
        conv(n, 3, 1)
        if down:
            c, h = max(cin, n), max(h, (hin - 2) // 2 + 1)  # avg_pool 2×2/2 shortcut

    conv(32, 7, 2)
    h = (h - 3) // 2 + 1  # max_pool 3×3/2
    for n, reps in ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1)):
        for r in range(reps):
            block(n, down=(r == 0 and n != 32))
    macs += c * EMBEDDING_SIZE  # fc_no_bias after global average pooling
    params += c * EMBEDDING_SIZE
    return {"macs": macs, "params": params, "input": [size, size, 3],
            "skipped": ["affine", "relu", "add_prev", "avg_pool", "max_pool"]}
