"""Params, weight storage and run-time dequantization of quantized ONNX models (issue 14).

Real files: OpenCV's block-quantized SFace (int8 weights behind ``DequantizeLinear`` ->
``Reshape`` -> ``Conv``), the shared fp32 MobileFaceNet and FaceNet, and MobileFaceNet quantized
here by onnxruntime (QDQ and QOperator formats). The expected SFace figures are measured with
``onnx`` directly, not with the code under test.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from faults.kit import CPU, facebench, suite, write_suite

from facebench.engines import EngineConfig, ModelSource
from facebench.probes import compute
from facebench.probes.compute import count_onnx, count_torch
from facebench.probes.efficiency import run_efficiency
from facebench.report import fmt
from facebench.zoo import get_model

SFACE = "face_recognition_sface_2021dec_int8bq.onnx"
WEIGHT_FIELDS = {"params", "params_by_dtype", "quantized_params", "weights",
                 "dequantized_at_run_time"}


@pytest.fixture(scope="module")
def sface(models_dir: Path) -> Path:
    return models_dir / SFACE


def _independent_sface(path: Path) -> dict[str, int]:
    """SFace's figures from the graph, walked here: int8 data behind DequantizeLinear, float
    initializers that sit directly in a weight slot (BN scale/bias, PReLU, conv/gemm bias)."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    int8 = sum(math.prod(inits[n.input[0]].dims) for n in dq
               if inits[n.input[0]].data_type == onnx.TensorProto.INT8)
    slots = {"BatchNormalization": (1, 2), "PRelu": (1,), "Conv": (1, 2), "Gemm": (1, 2)}
    direct = {n.input[i] for n in model.graph.node if n.op_type in slots
              for i in slots[n.op_type] if i < len(n.input)}
    floats = sum(math.prod(inits[name].dims) for name in direct
                 if name in inits and inits[name].data_type == onnx.TensorProto.FLOAT)
    storage: dict[int, int] = {}
    for t in model.graph.initializer:
        storage[t.data_type] = storage.get(t.data_type, 0) + math.prod(t.dims)
    return {"int8_params": int8, "float_params": floats, "dq_nodes": len(dq),
            "int8_stored": storage[onnx.TensorProto.INT8],
            "float_stored": storage[onnx.TensorProto.FLOAT],
            "int64_stored": storage[onnx.TensorProto.INT64]}


def _sface_macs(sface: Path) -> int:
    """fvcore-rule MACs from the shapes ONNX Runtime actually produces: Conv (weight shape read
    from the Reshape after DequantizeLinear) + BatchNorm (2 × numel) + Gemm."""
    model = onnx.load(str(sface))
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    names = [n.output[0] for n in convs] + [n.input[0] for n in bns]
    model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip(names, sess.run(names, {"data": np.zeros((1, 3, 112, 112), np.float32)}),
                    strict=True))
    macs = 0
    for node in convs:
        reshape = producer[node.input[1]]
        assert reshape.op_type == "Reshape"
        w = onnx.numpy_helper.to_array(inits[reshape.input[1]])
        macs += int(np.prod(w)) * int(np.prod(outs[node.output[0]].shape[2:]))
    macs += sum(2 * outs[n.input[0]].size for n in bns)
    return macs + 50_176 * 128  # Gemm pre_fc1: 512×7×7 -> 128


def test_sface_counts_its_int8_weights(sface: Path) -> None:
    want = _independent_sface(sface)
    assert want["int8_params"] == 9_607_744 and want["dq_nodes"] == 29  # the brief's facts
    got = count_onnx(sface)
    assert got["params"] == want["int8_params"] + want["float_params"] == 9_642_880
    assert got["params_by_dtype"] == {"int8": 9_607_744, "float32": want["float_params"]}
    assert got["quantized_params"] == 9_607_744
    assert got["weights"] == {
        "int8": {"elements": 9_762_178, "bytes": 9_762_178},
        "float32": {"elements": 213_764, "bytes": 4 * 213_764},
        "int64": {"elements": 111, "bytes": 8 * 111}}
    assert (want["int8_stored"], want["float_stored"], want["int64_stored"]) == (
        9_762_178, 213_764, 111)
    assert got["dequantized_at_run_time"] == 29
    # MACs: conv weight shapes resolve through the Reshape after DequantizeLinear
    assert got["macs"] == _sface_macs(sface) == 584_324_864
    assert "Conv" not in got["skipped_ops"] and "Gemm" not in got["skipped_ops"]


@pytest.mark.parametrize(("name", "shape", "params", "macs"), [
    ("mobilefacenet_128d.onnx", (1, 3, 112, 112), 989_952, 233_810_432),
    ("facenet_inception_resnet_v1_casia.onnx", (1, 3, 160, 160), 23_468_336, 1_417_662_304),
])
def test_float_models_keep_their_counts(models_dir: Path, name: str, shape: tuple[int, ...],
                                        params: int, macs: int) -> None:
    """The landed counter's figures (measured on the landed code), plus the new fields."""
    got = count_onnx(models_dir / name, shape)
    assert (got["params"], got["macs"]) == (params, macs)
    assert got["params_by_dtype"] == {"float32": params}
    assert got["quantized_params"] == 0 and got["dequantized_at_run_time"] == 0
    assert got["weights"]["float32"]["elements"] >= params


class _Calibration:
    """Eight seeded random inputs (onnxruntime's CalibrationDataReader protocol)."""

    def __init__(self, name: str) -> None:
        rng = np.random.default_rng(0)
        self._it = iter([{name: rng.uniform(-1, 1, (1, 3, 112, 112)).astype(np.float32)}
                         for _ in range(8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _quantize(src: Path, out: Path, fmt_name: str, per_channel: bool = True) -> Path:
    """``src`` quantized by onnxruntime: static QDQ / QOperator, or dynamic. (The shared
    MobileFaceNet is opset 12: per-channel DequantizeLinear, opset 13, counts but does not run.)"""
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's pre-processing advice
    if fmt_name == "dynamic":
        quantize_dynamic(str(src), str(out), per_channel=per_channel)
    else:
        quantize_static(str(src), str(out), _Calibration("input"),  # type: ignore[arg-type]
                        quant_format=getattr(QuantFormat, fmt_name), per_channel=per_channel)
    return out


@pytest.mark.parametrize("fmt_name", ["QDQ", "QOperator", "dynamic"])
def test_static_quantization_keeps_the_params(models_dir: Path, tmp_path: Path,
                                              fmt_name: str) -> None:
    src = models_dir / "mobilefacenet_128d.onnx"
    fp32 = count_onnx(src)
    path = _quantize(src, tmp_path / f"{fmt_name}.onnx", fmt_name)
    got = count_onnx(path)
    assert got["params"] == fp32["params"] == 989_952
    assert compute.count_onnx_weights(path) == {k: got[k] for k in WEIGHT_FIELDS}
    assert got["macs"] == fp32["macs"]  # QLinearConv counts as Conv; shapes past QLinearAdd
    if fmt_name == "dynamic":  # ConvInteger takes int8 weights; biases stay float (an Add)
        assert got["params_by_dtype"] == {"int8": got["quantized_params"], "float32": 9_856}
        assert got["dequantized_at_run_time"] == 0
        return
    assert got["quantized_params"] == got["params"]  # int8 weights + int32 biases
    assert set(got["params_by_dtype"]) == {"int8", "int32"}
    if fmt_name == "QDQ":  # weights behind DequantizeLinear (ORT may fuse them on CPU)
        assert got["dequantized_at_run_time"] > 0
    else:  # QLinearConv takes the int8 weights itself
        assert got["dequantized_at_run_time"] == 0
        assert "QLinearConv" not in got["skipped_ops"]


def test_torch_counts_have_the_same_fields(models_dir: Path) -> None:
    model = get_model("mobilefacenet", 128)
    got = count_torch(model)
    assert set(got) == set(count_onnx(models_dir / "mobilefacenet_128d.onnx")) >= WEIGHT_FIELDS
    params = sum(p.numel() for p in model.parameters())
    assert got["params_by_dtype"] == {"float32": params} and got["quantized_params"] == 0
    buffers = {str(b.dtype).removeprefix("torch."): 0 for b in model.buffers()}
    for b in model.buffers():
        buffers[str(b.dtype).removeprefix("torch.")] += b.numel()
    assert got["weights"]["float32"]["elements"] == params + buffers["float32"]
    assert got["weights"]["float32"]["bytes"] == 4 * (params + buffers["float32"])
    assert got["weights"]["int64"]["elements"] == buffers["int64"]  # num_batches_tracked
    assert got["dequantized_at_run_time"] == 0


@pytest.mark.parametrize(("value", "text"), [
    ({"int8": {"elements": 9_762_178, "bytes": 9_762_178},
      "float32": {"elements": 213_764, "bytes": 855_056},
      "int64": {"elements": 111, "bytes": 888}}, "9.76 M int8 + 0.21 M fp32"),
    ({"float32": 989_952}, "0.99 M fp32"),
    ({"float16": 2_000_000, "float32": 3_000_000}, "3.00 M fp32 + 2.00 M fp16"),
    ({"bfloat16": 1_500_000, "int4": 4_000_000}, "4.00 M int4 + 1.50 M bf16"),
    ({"float32": 120, "int64": 3}, "0.000120 M fp32"),  # all tiny: the largest, 3 digits
    ({"float32": {"elements": 0}}, fmt.NA),
    ({}, fmt.NA), (None, fmt.NA), ("9 M", fmt.NA),
    ({"float32": float("nan")}, fmt.NA),
])
def test_weights_by_precision(value: Any, text: str) -> None:
    assert fmt.weights_by_precision(value) == text


def test_cli_records_and_reports_sface_weights(sface: Path, tmp_path: Path) -> None:
    spec = suite("sface-cost", [{
        "id": "sface", "source": "onnx", "path": str(sface),
        "normalize": {"color": "RGB", "mean": 0.0, "std": 1.0, "input_size": [112, 112]}}],
        [{"id": "cost", "kind": "efficiency", "warmup": 0, "min_iters": 1, "min_seconds": 0}])
    assert spec["devices"] == [CPU] and CPU["batch_sizes"] == [1]
    out = tmp_path / "out"
    env = {**os.environ, "FACEBENCH_HISTORY": f"sqlite:///{tmp_path}/history.db",
           "FACEBENCH_CACHE": str(tmp_path / "cache")}
    res = facebench(["run", str(write_suite(tmp_path / "suite.yaml", spec)), "--out", str(out),
                     "--no-progress"], env, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    cell = json.loads((out / "results.json").read_text())["cells"][0]
    m, d = cell["metrics"], cell["details"]
    assert m["params"] == 9_642_880 and m["params_quantized"] == 9_607_744
    assert m["weight_bytes"] == 9_762_178 + 4 * 213_764 + 8 * 111
    assert d["weights_by_dtype"]["int8"]["elements"] == 9_762_178
    assert d["dequantized_at_run_time"] == 29
    md = (out / "report.md").read_text()
    assert "9.76 M int8 + 0.21 M fp32 ‡" in md
    assert "‡ weights dequantized at run time (29 DequantizeLinear nodes)" in md
    assert "9.76 M int8 + 0.21 M fp32 ‡" in (out / "report.html").read_text()


def test_int8_variant_cell_records_what_it_stores(models_dir: Path, tmp_path: Path) -> None:
    """An efficiency cell that runs a quantized file made from its source: params and GMAC are
    the source's, the storage fields the file's."""
    src = models_dir / "mobilefacenet_128d.onnx"
    qdq = _quantize(src, tmp_path / "qdq.onnx", "QDQ", per_channel=False)
    out = run_efficiency(ModelSource(kind="onnx", path=src),
                         EngineConfig(engine="onnxruntime", intra_op_threads=1),
                         warmup=0, min_iters=1, min_seconds=0,
                         run_src=ModelSource(kind="onnx", path=qdq))
    m, d = out["metrics"], out["details"]
    stored = compute.count_onnx_weights(qdq)
    assert m["params"] == 989_952 and m["params_quantized"] == 989_952
    assert m["weight_bytes"] == sum(w["bytes"] for w in stored["weights"].values()) < 1.2e6
    assert d["weights_by_dtype"] == stored["weights"]
    assert d["dequantized_at_run_time"] == stored["dequantized_at_run_time"] > 0
    assert m["model_size_bytes"] == qdq.stat().st_size
