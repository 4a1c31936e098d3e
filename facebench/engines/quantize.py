"""int8 variants of an ONNX model through ``onnxruntime.quantization``, cached on disk.

- ``static``: QDQ format (what ONNX Runtime's CPU kernels are optimized for since 1.11), MinMax
  calibration of the activation ranges on batches the caller supplies (real aligned crops, see
  ``facebench.pipeline.calibrate``). Types follow ONNX Runtime's own guidance in
  ``quantize_static``'s docstring: on x86-64 CPUs activations ``QUInt8`` and weights ``QInt8``
  (U8S8), with ``reduce_range`` (7-bit weights, against int16 saturation) only on CPUs without
  VNNI; on ARM CPUs and for TensorRT symmetric ``QInt8`` for both. Normalisation operators stay
  float (:data:`FLOAT_OPS`), and the quantized model must build a session and run one
  calibration batch before it is cached.
- ``dynamic``: weights int8, activations quantized at run time (``ConvInteger``/``MatMulInteger``;
  CPU provider only); needs no calibration data.

``quant_pre_process`` (symbolic shape inference and graph optimization) runs first when it works;
a model below opset 13 is converted to opset 13 first when weights are per channel (a per-channel
``DequantizeLinear`` needs its ``axis`` attribute). The result is written atomically to
``<out_dir>/<stem>-<key>.onnx``, ``key`` hashing the source's sha256, the settings (calibration
sample identity included) and the onnxruntime version, with a ``.json`` record beside it that
holds the file's sha256; a second request with the same key reuses the file when it still has
those bytes, else (damaged, altered, record missing) makes it again, with a warning. The
quantized model carries its provenance in its metadata (``facebench.quantization``), which is how
:func:`already_quantized` tells a model facebench quantized from one that came quantized (not
quantized twice).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facebench.cache import load_checked_file
from facebench.engines.base import EngineConfig, EngineError, EngineUnavailable
from facebench.io import atomic_path, atomic_write_json, sha256_file, sha256_file_once

QuantType = Literal["QInt8", "QUInt8"]
Mode = Literal["static", "dynamic"]

#: Metadata key of a model facebench quantized (its value: the settings record, JSON).
MARK = "facebench.quantization"
#: Part of every cache key: 2 = the ``.json`` record holds the model's sha256.
CACHE_FORMAT = 2
#: Operators that hold or compute on quantized tensors.
QUANTIZED_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
                           "QLinearAdd", "QLinearMul", "QGemm", "DynamicQuantizeLinear"})
#: Why a static request is quantized dynamically when the cell has no calibration images.
NO_CALIBRATION = ("no protocol with images runs this model on this device; dynamic "
                  "quantization")
#: Per-channel ``DequantizeLinear`` (its ``axis`` attribute) needs this opset.
PER_CHANNEL_OPSET = 13
#: Operators left in float: normalisations have no int8 kernel on the CPU provider (no speed to
#: gain), and per-channel QDQ of a BatchNormalization on a 2-D input (FaceNet's bottleneck BN
#: after its last MatMul) writes a zero point onnxruntime refuses at run time.
FLOAT_OPS = ("BatchNormalization", "InstanceNormalization", "LayerNormalization")


@dataclass(frozen=True)
class QuantizeSettings:
    """What is asked of onnxruntime.quantization. ``calibration`` identifies the calibration
    sample (dataset, detector, alignment, normalisation, chosen images) for the cache key; the
    batches themselves come from the callable given to :func:`quantize_onnx`."""

    mode: Mode = "static"
    per_channel: bool = True
    activation_type: QuantType = "QUInt8"
    weight_type: QuantType = "QInt8"
    reduce_range: bool = False
    calibration: dict[str, Any] | None = None
    why_types: str = ""
    float_ops: tuple[str, ...] = FLOAT_OPS

    def record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QuantizedModel:
    """A quantized ONNX file and how it was made (``mode`` actually used, ``reason`` when that
    is not the mode asked for)."""

    path: Path
    sha256: str
    settings: dict[str, Any]
    mode: Mode
    reason: str | None
    seconds: float  # calibration (acquiring the crops) + quantization, when the file was made
    reused: bool
    pre_process: str
    calibration_images: int | None = None  # images that went through calibration (static)
    versions: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def cpu_has_vnni() -> bool:
    """Whether this x86-64 CPU has a VNNI dot-product instruction (AVX512-VNNI or AVX-VNNI)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def recommended_settings(cfg: EngineConfig, mode: Mode = "static", per_channel: bool = True,
                         calibration: dict[str, Any] | None = None) -> QuantizeSettings:
    """onnxruntime's recommended types for where ``cfg`` runs (see the module docstring)."""
    machine = platform.machine().lower()
    act: QuantType
    if cfg.device == "cuda":
        act, why, reduce = "QInt8", "TensorRT: symmetric QInt8 activations and weights", False
    elif machine in ("arm64", "aarch64") or machine.startswith("arm"):
        act, why, reduce = "QInt8", "ARM CPU: symmetric QInt8 activations and weights", False
    else:
        reduce = not cpu_has_vnni()
        act = "QUInt8"
        why = ("x86-64 CPU: QUInt8 activations, QInt8 weights (U8S8), "
               + ("reduce_range (no VNNI)" if reduce else "full range (VNNI present)"))
    return QuantizeSettings(mode=mode, per_channel=per_channel, activation_type=act,
                            weight_type="QInt8", reduce_range=reduce, calibration=calibration,
                            why_types=why + "; onnxruntime.quantization.quantize_static guidance")


def unavailable_reason(cfg: EngineConfig, mode: Mode) -> str | None:
    """Why an int8 variant of this config cannot be measured here (``None``: it can)."""
    if cfg.engine in ("torch", "torch_compile"):
        return ("int8 is provided through onnxruntime.quantization; use engine onnxruntime")
    if cfg.engine == "dlib":
        return "int8: dlib's network runs in float32 only (int8 is provided through " \
            "onnxruntime.quantization for ONNX models)"
    if cfg.engine != "onnxruntime":
        return f"int8 is not available on engine {cfg.engine!r}"
    try:
        import onnxruntime.quantization  # noqa: F401
    except ImportError as exc:
        return f"int8 needs onnxruntime.quantization, which does not import: {exc}"
    first = cfg.resolved_providers()[0]
    if first == "cuda":
        return ("int8 on ONNX Runtime's CUDA provider: it has no int8 convolution kernels "
                "(only QuantizeLinear, DequantizeLinear and MatMulInteger), so a QDQ model "
                "would run as DequantizeLinear + fp32 Conv — fake quantization, not int8 "
                "speed; use providers: [tensorrt], which builds int8 engines from the QDQ nodes")
    if first == "tensorrt" and mode == "dynamic":
        return ("int8 dynamic quantization (ConvInteger, DynamicQuantizeLinear) does not run "
                "on TensorRT; use quantization.mode: static")
    return None


@functools.lru_cache(maxsize=32)
def _marked_or_quantized(path: str, size: int, mtime_ns: int) -> tuple[bool, str | None]:
    import onnx

    model = onnx.load(path, load_external_data=False)
    marked = any(p.key == MARK for p in model.metadata_props)
    weights = {i.name for i in model.graph.initializer}
    weights |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    ops = sorted({n.op_type for n in model.graph.node if n.op_type in QUANTIZED_OPS})
    dq = sum(1 for n in model.graph.node
             if n.op_type == "DequantizeLinear" and n.input and n.input[0] in weights)
    if ops:
        return marked, f"quantized operators {', '.join(ops)}"
    if dq:
        return marked, f"{dq} DequantizeLinear nodes on stored weights"
    return marked, None


def already_quantized(path: Path) -> str | None:
    """Why ``path`` is a model that came quantized (int8 weights: ``DequantizeLinear`` on its
    stored weights, or QLinear*/Integer operators); ``None`` for a float model or one that
    facebench quantized itself (it carries :data:`MARK`)."""
    st = os.stat(path)
    marked, why = _marked_or_quantized(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    return None if marked else why


def is_quantized(path: Path) -> bool:
    """Whether ``path`` holds quantized weights or operators (facebench's or not)."""
    st = os.stat(path)
    return _marked_or_quantized(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)[1] \
        is not None


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "onnx": onnx.__version__}


def cache_key(source_sha256: str, settings: QuantizeSettings) -> str:
    """Key of a quantized file: source content, settings (calibration identity included) and
    the onnxruntime version."""
    blob = json.dumps({"source": source_sha256, "settings": settings.record(),
                       "versions": _versions(), "format": CACHE_FORMAT},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def target_path(src: Path, out_dir: Path, settings: QuantizeSettings) -> Path:
    return Path(out_dir) / f"{Path(src).stem}-{cache_key(sha256_file_once(src), settings)}.onnx"


class _Reader:
    """A ``CalibrationDataReader`` over a list of float32 batches for one input."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self.name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}


def _prepare(src: Path, tmp: Path, per_channel: bool) -> tuple[Path, str]:
    """Opset upgrade when per-channel needs it, then ``quant_pre_process`` when it works."""
    import onnx

    notes = []
    model = onnx.load(str(src))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    path = src
    if per_channel and opset is not None and opset < PER_CHANNEL_OPSET:
        from onnx import version_converter

        try:
            model = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        except Exception as exc:
            raise EngineError(f"per-channel int8 needs opset {PER_CHANNEL_OPSET}; converting "
                              f"{src.name} from opset {opset} failed: {type(exc).__name__}: "
                              f"{exc}; use quantization.per_channel: false") from exc
        path = tmp / "upgraded.onnx"
        onnx.save(model, str(path))
        notes.append(f"opset {opset} -> {PER_CHANNEL_OPSET} (per-channel DequantizeLinear)")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = tmp / "pre.onnx"
        quant_pre_process(str(path), str(pre))
        notes.append("quant_pre_process")
        return pre, "; ".join(notes)
    except Exception as exc:  # pre-processing is an optimization: quantize without it
        notes.append(f"quant_pre_process skipped: {type(exc).__name__}: {exc}"[:300])
        return path, "; ".join(notes)


def _input_name(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise EngineError(f"int8 calibration needs a model with one input; {path.name} has "
                          f"{names}")
    return names[0]


def _op_types(model: Path, keep_float: tuple[str, ...]) -> list[str]:
    """The op types static QDQ may quantize: onnxruntime's QDQ registry minus ``keep_float``."""
    from onnxruntime.quantization.registry import QDQRegistry

    return sorted(set(QDQRegistry) - set(keep_float))


def _smoke_test(path: Path, batch: np.ndarray | None, src: Path) -> None:
    """Build a CPU session on the quantized model and run one batch: a model onnxruntime
    cannot run is refused here, with the reason, instead of being cached."""
    import onnxruntime as ort

    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        if batch is not None:
            sess.run(None, {sess.get_inputs()[0].name: batch[:1]})
    except Exception as exc:
        raise EngineError(f"the int8 model onnxruntime.quantization made from {src.name} does "
                          f"not run: {type(exc).__name__}: {str(exc)[:400]}; try "
                          "quantization.per_channel: false or mode: dynamic") from exc


def _mark(path: Path, record: dict[str, Any]) -> None:
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = MARK, json.dumps(record, sort_keys=True, default=str)
    onnx.save(model, str(path))


def quantize_onnx(src: Path, out_dir: Path, settings: QuantizeSettings,
                  calibration: Callable[[], Iterable[np.ndarray]] | None) -> QuantizedModel:
    """``src`` quantized to int8 by ``settings`` (see the module docstring), made once per key.

    ``calibration`` yields float32 model-input batches (static mode). Without it a static
    request is quantized dynamically (reason :data:`NO_CALIBRATION`), as it is when it yields no
    image. Raises :class:`EngineUnavailable` for a model that came quantized."""
    src = Path(src)
    why = already_quantized(src)
    if why:
        raise EngineUnavailable(f"{src.name} is already quantized ({why}); int8 is not applied "
                                "twice: measure it at precision fp32")
    reason = None
    if settings.mode == "static" and calibration is None:
        settings, reason = replace(settings, mode="dynamic", calibration=None), NO_CALIBRATION
    if settings.mode == "dynamic":
        settings = replace(settings, calibration=None)
    out = target_path(src, out_dir, settings)
    meta = out.with_suffix(".json")
    hit = load_checked_file(out, meta)  # a damaged or altered model is made again
    if hit is not None:
        digest, done = hit
        return QuantizedModel(out, digest, settings.record(), settings.mode,
                              reason or done.get("reason"), float(done.get("seconds", 0.0)), True,
                              str(done.get("pre_process", "")), done.get("calibration_images"),
                              _versions())
    t0 = time.perf_counter()
    images: int | None = None
    batches: list[np.ndarray] = []
    if settings.mode == "static":
        assert calibration is not None
        batches = [np.ascontiguousarray(b, dtype=np.float32) for b in calibration() if len(b)]
        images = sum(len(b) for b in batches)
        if not batches:
            dynamic = replace(settings, mode="dynamic", calibration=None)
            made = quantize_onnx(src, out_dir, dynamic, None)
            made.reason = ("no calibration image could be acquired; dynamic quantization")
            made.calibration_images = 0
            return made
    with tempfile.TemporaryDirectory(prefix="facebench-quant-") as tmpdir:
        tmp = Path(tmpdir)
        model, pre_note = _prepare(src, tmp, settings.per_channel)
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            quantize_dynamic,
            quantize_static,
        )
        from onnxruntime.quantization import QuantType as OrtQuantType

        qmodel = tmp / "int8.onnx"
        try:
            if settings.mode == "static":
                quantize_static(
                    str(model), str(qmodel), _Reader(_input_name(model), batches),
                    quant_format=QuantFormat.QDQ, per_channel=settings.per_channel,
                    reduce_range=settings.reduce_range,
                    activation_type=getattr(OrtQuantType, settings.activation_type),
                    weight_type=getattr(OrtQuantType, settings.weight_type),
                    calibrate_method=CalibrationMethod.MinMax,
                    op_types_to_quantize=_op_types(model, settings.float_ops))
            else:
                quantize_dynamic(str(model), str(qmodel), per_channel=settings.per_channel,
                                 reduce_range=settings.reduce_range,
                                 weight_type=getattr(OrtQuantType, settings.weight_type))
        except Exception as exc:
            raise EngineError(f"onnxruntime.quantization ({settings.mode}) failed on "
                              f"{src.name}: {type(exc).__name__}: {exc}") from exc
        _smoke_test(qmodel, batches[0] if batches else None, src)
        seconds = time.perf_counter() - t0
        record = {"source_sha256": sha256_file_once(src), "source": str(src),
                  "settings": settings.record(), "reason": reason, "seconds": round(seconds, 3),
                  "pre_process": pre_note, "calibration_images": images,
                  "versions": _versions()}
        # no time in the model: the same request makes the same bytes (two cells quantizing
        # at once write one file; a model made again keeps its embeddings' cache key)
        _mark(qmodel, {k: v for k, v in record.items() if k != "seconds"})
        record["sha256"] = sha256_file(qmodel)  # a reused model must have these bytes
        with contextlib.suppress(OSError):  # without its record a model is made again
            atomic_write_json(meta, record)  # first, so that a reused model has its record
        with atomic_path(out) as dest:
            shutil.copyfile(qmodel, dest)
    return QuantizedModel(out, sha256_file(out), settings.record(), settings.mode, reason,
                          round(seconds, 3), False, pre_note, images, _versions())
