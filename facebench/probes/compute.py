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


def _result(macs: int, params: int, skipped: dict[str, int], counter: str,
            shape: tuple[int, ...]) -> dict[str, Any]:
    return {"gmac": macs / 1e9, "gflops": 2 * macs / 1e9, "macs": int(macs), "params": int(params),
            "skipped_ops": dict(sorted(skipped.items())), "counter": counter,
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
    return _result(macs, params, skipped, "fvcore", tuple(input_shape))


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
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
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
    if op == "Conv":
        w, out = shape(node.input[1]), shape(node.output[0])
        return out[0] * math.prod(w) * math.prod(out[2:])
    if op == "ConvTranspose":
        x, w = shape(node.input[0]), shape(node.input[1])
        return x[0] * math.prod(w) * math.prod(x[2:])
    if op == "Gemm":
        trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
        a, out = shape(node.input[0]), shape(node.output[0])
        return math.prod(out) * (a[0] if trans_a else a[1])
    if op == "MatMul":
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


def _onnx_params(model: Any) -> int:
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
              onnx.TensorProto.BFLOAT16}
    consts = {t.name: t for t in model.graph.initializer if t.data_type in floats}
    for node in model.graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and node.attribute else None
        if attr is not None and attr.name == "value" and attr.t.data_type in floats:
            consts[node.output[0]] = attr.t
    for node in model.graph.node:  # the exporter dedups equal tensors behind Identity nodes
        if node.op_type == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    used: set[str] = set()
    for node in model.graph.node:
        if node.op_type in _WEIGHT_SLOTS:
            names = [node.input[i] for i in _WEIGHT_SLOTS[node.op_type] if i < len(node.input)]
        elif node.op_type in _ELEMENTWISE:
            names = [n for n in node.input if n in consts and math.prod(consts[n].dims) > 1]
        else:
            continue
        used.update(n for n in names if n in consts)
    return sum(math.prod(consts[n].dims) for n in used)


def count_onnx(path: str | Path, input_shape: tuple[int, ...] = (1, 3, 112, 112)) -> dict[str, Any]:
    """MACs of an ONNX graph (shape inference at ``input_shape``) and its weight-element count."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}); "
                         "re-export or re-download it") from exc
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
    return _result(macs, _onnx_params(model), dict(skipped), "onnx-graph", tuple(input_shape))
