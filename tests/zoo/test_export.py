"""ONNX export parity, and the ONNX graph counter against fvcore and the shared model."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from facebench.probes.compute import count_onnx, count_torch
from facebench.zoo import get_model
from facebench.zoo.export import ExportParityError, export_onnx
from facebench.zoo.iresnet import IResNet
from facebench.zoo.irse import IRBlock

from ._helpers import randomize


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_export_parity_and_dynamic_batch(tmp_path: Path) -> None:
    model = randomize(get_model("mobilefacenet"))
    record = export_onnx(model, tmp_path / "mfn.onnx")
    assert record["ok"] and record["normalized"] and record["opset"] == 17
    assert record["max_abs_diff"] <= 1e-4 and record["batches"] == [1, 3]
    assert not model.training
    out = _session(tmp_path / "mfn.onnx").run(None, {"input": np.zeros((5, 3, 112, 112),
                                                                         np.float32)})[0]
    assert out.shape == (5, 128)
    assert onnx.load(str(tmp_path / "mfn.onnx")).opset_import[0].version == 17


class _Drifting(nn.Module):
    """Adds a fresh random constant per call; tracing freezes one, so parity must fail."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :8] + float(torch.rand(()) * 100)


def test_export_parity_failure_raises(tmp_path: Path) -> None:
    with pytest.raises(ExportParityError, match=r"bad\.onnx: ONNX Runtime differs from torch"):
        export_onnx(_Drifting(), tmp_path / "bad.onnx")


@pytest.fixture(scope="module")
def iresnet50_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path]:
    torch.set_num_threads(1)
    model = randomize(get_model("iresnet50"))
    path = tmp_path_factory.mktemp("onnx") / "iresnet50.onnx"
    assert export_onnx(model, path, fold_bn=False, dynamic_batch=False)["ok"]
    return model, path


def _small_ir_se() -> nn.Module:
    """IR-SE blocks (SE pooling, gating, max-pool shortcuts) at 1 block per stage, 8-d."""
    return IResNet((1, 1, 1, 1), 8, block=partial(IRBlock, se=True), family="ir")


@pytest.mark.parametrize("name", ["mobilefacenet", "mbf", "ir_se_small", "iresnet50"])
def test_onnx_graph_count_matches_fvcore(name: str, tmp_path: Path, iresnet50_onnx) -> None:
    if name == "iresnet50":
        model, path = iresnet50_onnx
    else:
        model = randomize(_small_ir_se() if name == "ir_se_small" else get_model(name))
        path = tmp_path / f"{name}.onnx"
        export_onnx(model, path, fold_bn=False, dynamic_batch=False)
    fv, graph = count_torch(model), count_onnx(path)
    assert graph["counter"] == "onnx-graph" and fv["counter"] == "fvcore"
    assert graph["gmac"] == pytest.approx(fv["gmac"], rel=0.01)
    assert graph["params"] == fv["params"]  # unfolded export: BN scale/bias kept, stats excluded
    # the same operators are skipped on both sides, as often
    assert sorted(graph["skipped_ops"].values()) == sorted(fv["skipped_ops"].values())


def test_bn_folding_effect_is_as_documented(tmp_path: Path) -> None:
    model = randomize(get_model("mobilefacenet"))
    export_onnx(model, tmp_path / "folded.onnx", dynamic_batch=False)
    fv, folded = count_torch(model), count_onnx(tmp_path / "folded.onnx")
    bn2d = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]  # each follows a conv
    bn_macs = sum(2 * m.num_features * h * h for m, h in zip(bn2d, _bn_sizes(model), strict=True))
    assert folded["macs"] == fv["macs"] - bn_macs
    assert folded["params"] == fv["params"] - sum(m.num_features for m in bn2d)


def _bn_sizes(model: nn.Module) -> list[int]:
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 112, 112))
    for h in hooks:
        h.remove()
    return sizes


def test_count_onnx_rejects_conflicting_static_batch(iresnet50_onnx) -> None:
    _, path = iresnet50_onnx
    with pytest.raises(ValueError, match="fixed at 1"):
        count_onnx(path, (2, 3, 112, 112))  # exported with a static batch


def test_shared_mobilefacenet_onnx(models_dir: Path) -> None:
    path = models_dir / "mobilefacenet_128d.onnx"
    one, two = count_onnx(path), count_onnx(path, (2, 3, 112, 112))
    assert 0.22 <= one["gmac"] <= 0.24
    assert two["macs"] == 2 * one["macs"]
    assert one["params"] == 989_952  # BN folded into the convolutions
    assert one["skipped_ops"] == {"Add": 12}
    # independent check: Conv MACs from the shapes ONNX Runtime actually produces
    model = onnx.load(str(path))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    model.graph.output.extend(onnx.ValueInfoProto(name=n.output[0]) for n in convs)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run([n.output[0] for n in convs],
                    {"input": np.zeros((1, 3, 112, 112), np.float32)})
    macs = sum(int(np.prod(weights[n.input[1]])) * int(np.prod(o.shape[2:]))
               for n, o in zip(convs, outs, strict=True))
    assert one["macs"] == macs


def test_count_onnx_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"bad\.onnx: not a readable ONNX model"):
        count_onnx(tmp_path / "bad.onnx")
    with pytest.raises(FileNotFoundError, match=r"none\.onnx"):
        count_onnx(tmp_path / "none.onnx")
