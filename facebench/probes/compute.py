"""Compute cost: multiply-adds and parameter counts, from a torch module or an ONNX graph.

Conventions (docs/metrics.md): one fused multiply-add = 1 MAC; ``gmac`` = MACs / 1e9 (what fvcore,
ptflops and thop call "flops"); ``gflops = 2 * gmac``. Both counters follow fvcore's per-operator
rules so their numbers are comparable:

* conv: N * prod(weight shape) * prod(output spatial) (groups via the weight shape; bias free);
  linear / Gemm / MatMul: prod(input) * out_features;
* inference BatchNorm: 2 * numel(input) (affine); adaptive/global average pool: numel(input);
* ReLU/clamp, reshapes and other data movement are free and not reported;
* everything else (PReLU, add, mul, sigmoid, max-pool, ...) is *skipped*: counted 0 and listed
  in ``skipped_ops`` with its number of occurrences.

ONNX caveat: an exporter that folds BatchNorm into the preceding Conv (torch.onnx in eval mode
does) removes those BN nodes, so the graph count is lower than fvcore's by 2 * numel per folded
BN (2.8 % for MobileFaceNet, 0.19 % for IResNet-50, 0.09 % for IR-SE-50). ``params`` for ONNX
counts the elements of float initializers in weight slots (Conv/Gemm/MatMul weights and biases,
BN scale and bias but not its running mean/variance, PReLU slopes, non-scalar Add/Mul/Sub/Div
operands): it equals the torch count for an unfolded export; each folded Conv+BN pair loses the
BN's 2*C scale/bias and gains a C-element conv bias, i.e. C fewer. Equal tensors that the
exporter de-duplicated behind ``Identity`` nodes count once per use. Export with
``export_onnx(..., fold_bn=False)`` to compare like with like.

Quantized ONNX models. A weight slot is followed back through ``Identity``, ``Reshape``,
``Transpose``, ``Squeeze``/``Unsqueeze``, ``Cast``/``CastLike``, ``QuantizeLinear`` and
``DequantizeLinear`` to the initializer (or ``Constant``) holding the data; a weight reached
through ``DequantizeLinear`` counts the elements of its *quantized* tensor (int8, int4, int32
biases, ...). The weight slots of QOperator ops (``QLinearConv`` w and bias, ``QLinearMatMul``,
``MatMulInteger``, ``ConvInteger``, ``com.microsoft`` ``QGemm``) count their integer
initializers. Zero points and scales are quantization metadata, not parameters: they are in
``weights`` (storage) but not in ``params``. So a QDQ model quantized from an fp32 export counts
the same ``params`` as its source. Besides ``params`` every counter reports:

* ``params_by_dtype``: ``params`` split by the stored dtype (``{"int8": n, "float32": m}``);
* ``quantized_params``: params reached through ``DequantizeLinear`` or a QOperator weight slot;
* ``weights``: storage of *all* initializers by dtype, ``{dtype: {"elements": n, "bytes": b}}``
  (torch: parameters and buffers), quantization metadata and shape tensors included;
* ``dequantized_at_run_time``: how many ``DequantizeLinear`` nodes take a constant (a stored
  weight) as data: the weights are stored quantized and expanded to float by a graph node. A
  runtime may fuse such a node with its consumer into an integer kernel (onnxruntime does for
  per-tensor/per-channel QDQ Conv/MatMul on CPU) or run it on every call (block-wise
  ``DequantizeLinear`` feeding a ``Reshape``, as in OpenCV's int8bq models); the flag says only
  that the graph asks for it. QOperator models and float models report 0.

MACs of ``QLinearConv``/``ConvInteger`` and ``QLinearMatMul``/``MatMulInteger`` follow the rules
of ``Conv`` and ``MatMul``.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

# ONNX op types that fvcore would also treat as free (its _IGNORED_OPS analogues).
_ONNX_FREE = frozenset({
    "Cast", "CastLike", "Clip", "Concat", "Constant", "ConstantOfShape", "Dropout", "Equal",
    "Expand", "Flatten", "Floor", "Gather", "GatherElements", "Greater", "GreaterOrEqual",
    "Identity", "NonZero", "Pad", "Range", "Relu", "Reshape", "ScatterND", "Shape", "Size",
    "Slice", "Split", "Squeeze", "Transpose", "Unsqueeze",
})
# (op type -> input slots that hold weights) for the ONNX params count.
_WEIGHT_SLOTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
    "BatchNormalization": (1, 2), "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2), "PRelu": (1,),
}
_ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
# QOperator ops (op type -> input slots that hold integer weights or int32 biases).
_QUANT_SLOTS: dict[str, tuple[int, ...]] = {
    "QLinearConv": (3, 8), "QLinearMatMul": (0, 3), "MatMulInteger": (0, 1),
    "ConvInteger": (1,), "QGemm": (0, 3, 6),
}
# Ops a weight passes through on its way from its initializer to a weight slot.
_WEIGHT_PATH = frozenset({"Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Cast",
                          "CastLike", "QuantizeLinear", "DequantizeLinear"})
# Element widths in bits of the packed sub-byte ONNX types (numpy would say one byte).
_SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "float4_e2m1": 4}


class _Weights:
    """Accumulates ``params_by_dtype``, ``quantized_params`` and ``weights`` (storage by dtype)."""

    def __init__(self) -> None:
        self.params: Counter[str] = Counter()
        self.quantized = 0
        self.storage: dict[str, dict[str, int]] = {}

    def param(self, dtype: str, n: int, quantized: bool = False) -> None:
        self.params[dtype] += int(n)
        self.quantized += int(n) if quantized else 0

    def store(self, dtype: str, elements: int, nbytes: int) -> None:
        entry = self.storage.setdefault(dtype, {"elements": 0, "bytes": 0})
        entry["elements"] += int(elements)
        entry["bytes"] += int(nbytes)

    def fields(self, dequantized: int) -> dict[str, Any]:
        return {"params_by_dtype": dict(sorted(self.params.items())),
                "quantized_params": self.quantized,
                "weights": dict(sorted(self.storage.items())),
                "dequantized_at_run_time": int(dequantized)}


def _result(macs: int, params: int, skipped: dict[str, int], counter: str,
            shape: tuple[int, ...], weights: dict[str, Any]) -> dict[str, Any]:
    return {"gmac": macs / 1e9, "gflops": 2 * macs / 1e9, "macs": int(macs), "params": int(params),
            **weights, "skipped_ops": dict(sorted(skipped.items())), "counter": counter,
            "input_shape": list(shape)}


def count_torch(model: Any, input_shape: tuple[int, ...] = (1, 3, 112, 112)) -> dict[str, Any]:
    """fvcore MACs of ``model`` (in eval mode) on a zero input, and Σ numel of its parameters."""
    import torch

    with warnings.catch_warnings():  # fvcore's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis

    param = next(model.parameters(), None)
    x = torch.zeros(input_shape, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    fv_logger = logging.getLogger("fvcore")
    level = fv_logger.level
    fv_logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = FlopCountAnalysis(model, (x,))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            macs = analysis.total()
            skipped = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
        fv_logger.setLevel(level)
    params = sum(p.numel() for p in model.parameters())
    weights = _Weights()
    for p in model.parameters():
        weights.param(_torch_dtype(p.dtype), p.numel())
    for t in (*model.parameters(), *model.buffers()):
        weights.store(_torch_dtype(t.dtype), t.numel(), t.numel() * t.element_size())
    return _result(macs, params, skipped, "fvcore", tuple(input_shape), weights.fields(0))


def _torch_dtype(dtype: Any) -> str:
    """``torch.float32`` -> ``"float32"`` (the numpy spelling the ONNX counter uses too)."""
    return str(dtype).removeprefix("torch.")


def _fix_input_shape(model: Any, input_shape: tuple[int, ...], path: Path) -> None:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"{path}: count_onnx supports one graph input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise ValueError(f"{path}: input {inputs[0].name!r} has rank {len(dims)}, "
                         f"but input_shape={tuple(input_shape)}")
    for dim, size in zip(dims, input_shape, strict=True):
        if dim.HasField("dim_value") and dim.dim_value not in (0, size):
            raise ValueError(f"{path}: input {inputs[0].name!r} is fixed at {dim.dim_value} where "
                             f"input_shape={tuple(input_shape)} asks for {size}")
        dim.Clear()
        dim.dim_value = size


def _shapes(model: Any) -> dict[str, list[int]]:
    """Static shapes by tensor name: ONNX shape inference, then, for graphs with operators outside
    the standard domain (``com.microsoft`` ``QLinearAdd`` of QOperator models, which stop ONNX's
    inference), onnxruntime's symbolic shape inference, which knows them."""
    import onnx

    infos: list[Any] = []
    if any(node.domain not in ("", "ai.onnx") for node in model.graph.node):
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        try:
            symbolic = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
            infos += [*symbolic.graph.value_info, *symbolic.graph.output]
        except Exception:  # noqa: BLE001 - best effort; a missing shape is named below
            logging.getLogger(__name__).debug("symbolic shape inference failed", exc_info=True)
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)  # wins where both know
    infos += [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    shapes: dict[str, list[int]] = {}
    for vi in infos:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = [d.dim_value for d in dims]
    for t in model.graph.initializer:
        shapes[t.name] = list(t.dims)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    return shapes


def _node_macs(node: Any, shape: Any) -> int | None:
    """MACs of one node under fvcore's rules; ``None`` when the op is not counted."""
    op = node.op_type
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        w, out = shape(node.input[3 if op == "QLinearConv" else 1]), shape(node.output[0])
        return out[0] * math.prod(w) * math.prod(out[2:])
    if op == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        return x[0] * math.prod(w) * math.prod(x[2:])
    if op == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        a, out = shape(node.input[0]), shape(node.output[0])
        return math.prod(out) * (a[0] if trans_a else a[1])
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        return math.prod(shape(node.output[0])) * shape(node.input[0])[-1]
    if op == "BatchNormalization":
        return 2 * math.prod(shape(node.input[0]))
    if op in ("InstanceNormalization", "LayerNormalization", "GroupNormalization"):
        return 5 * math.prod(shape(node.input[0]))
    if op == "GlobalAveragePool":
        return math.prod(shape(node.input[0]))
    if op == "Resize":
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        return math.prod(shape(node.output[0])) * (1 if mode == "nearest" else 4)
    return None


def _onnx_dtype(data_type: int) -> str:
    """An ONNX tensor type in numpy's spelling (``FLOAT`` -> ``"float32"``)."""
    import onnx

    try:
        return str(onnx.helper.tensor_dtype_to_np_dtype(data_type).name)
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(data_type).lower()


def _onnx_bytes(t: Any, dtype: str) -> int:
    """Stored bytes of an initializer's data (sub-byte types packed, strings by length)."""
    import numpy as np
    import onnx

    n = math.prod(t.dims)
    if t.data_type == onnx.TensorProto.STRING:
        return sum(len(v) for v in t.string_data)
    if dtype in _SUB_BYTE_BITS:
        return math.ceil(n * _SUB_BYTE_BITS[dtype] / 8)
    return n * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _onnx_weights(model: Any) -> tuple[int, dict[str, Any]]:
    """``params`` and the weight fields of the module docstring for an ONNX graph."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16}
    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and node.attribute else None
        if attr is not None and attr.name == "value":
            consts[node.output[0]] = attr.t
    producer = {out: node for node in model.graph.node for out in node.output}

    def source(name: str) -> tuple[Any, bool] | None:
        """The constant behind ``name`` and whether a dequantizer lies on the way, or None."""
        quantized = False
        while name not in consts:
            node = producer.get(name)
            if node is None or node.op_type not in _WEIGHT_PATH or not node.input:
                return None
            quantized |= node.op_type == "DequantizeLinear"
            name = node.input[0]
        return consts[name], quantized

    # Keyed by the name at the weight slot: equal tensors the exporter de-duplicated behind
    # Identity (or Reshape, ...) nodes count once per use, a tensor used twice directly once.
    used: dict[str, tuple[Any, bool]] = {}
    dequantized = 0
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input and source(node.input[0]):
            dequantized += 1
        if node.op_type in _QUANT_SLOTS:
            slots = [node.input[i] for i in _QUANT_SLOTS[node.op_type] if i < len(node.input)]
            found = {n: source(n) for n in slots if n}
            used.update((n, (src[0], True)) for n, src in found.items() if src)
            continue
        if node.op_type in _WEIGHT_SLOTS:
            names = [node.input[i] for i in _WEIGHT_SLOTS[node.op_type] if i < len(node.input)]
            found = {n: source(n) for n in names if n}
        elif node.op_type in _ELEMENTWISE:
            found = {n: source(n) for n in node.input}
            found = {n: src for n, src in found.items()
                     if src and math.prod(src[0].dims) > 1}
        else:
            continue
        used.update((n, src) for n, src in found.items()  # unquantized: float data only
                    if src and (src[1] or src[0].data_type in floats))
    weights = _Weights()
    for t, quantized in used.values():
        weights.param(_onnx_dtype(t.data_type), math.prod(t.dims), quantized)
    for t in model.graph.initializer:
        dtype = _onnx_dtype(t.data_type)
        weights.store(dtype, math.prod(t.dims), _onnx_bytes(t, dtype))
    return sum(weights.params.values()), weights.fields(dequantized)


def _load_onnx(path: Path) -> Any:
    import onnx

    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}); "
                         "re-export or re-download it") from exc


def count_onnx_weights(path: str | Path) -> dict[str, Any]:
    """``params`` and the weight fields of an ONNX file, without the MAC count (no shape
    inference): what a quantized variant stores, whatever its MACs were counted on."""
    params, weights = _onnx_weights(_load_onnx(Path(path)))
    return {"params": params, **weights}


def count_onnx(path: str | Path, input_shape: tuple[int, ...] = (1, 3, 112, 112)) -> dict[str, Any]:
    """MACs of an ONNX graph (shape inference at ``input_shape``), its weight-element count and
    the weight fields of the module docstring."""
    path = Path(path)
    model = _load_onnx(path)
    _fix_input_shape(model, tuple(input_shape), path)
    shapes = _shapes(model)

    def shape(name: str) -> list[int]:
        if name not in shapes:
            raise ValueError(f"{path}: shape inference left {name!r} without a static shape at "
                             f"input_shape={tuple(input_shape)}")
        return shapes[name]

    macs, skipped = 0, Counter[str]()
    for node in model.graph.node:
        if node.op_type in _ONNX_FREE:
            continue
        n = _node_macs(node, shape)
        if n is None:
            skipped[node.op_type] += 1
        else:
            macs += n
    params, weights = _onnx_weights(model)
    return _result(macs, params, dict(skipped), "onnx-graph", tuple(input_shape), weights)
