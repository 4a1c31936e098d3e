"""Torch eager / torch.compile engines, zoo sources and the ONNX export cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.engines import EngineConfig, EngineError, ModelSource, create_engine
from facebench.engines.sources import onnx_path_for
from facebench.engines.torch_engine import TorchEngine, apply_torch_threads

X = np.random.default_rng(0).uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)


def _reference(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_torchscript_engine_equals_module(torchscript_path: Path, small_model) -> None:
    before = torch.get_num_threads()
    try:
        engine = create_engine(ModelSource(kind="torchscript", path=torchscript_path,
                                           input_size=(32, 32)),
                               EngineConfig(engine="torch", intra_op_threads=1))
        out = engine.infer(X)
        assert out.shape == (4, 32) and out.dtype == np.float32
        np.testing.assert_allclose(out, _reference(small_model, X), rtol=1e-5, atol=1e-5)
        info = engine.info()
        assert info["engine"] == "torch" and info["device"] == "cpu"
        assert info["threads"]["intra_op"] == 1 == torch.get_num_threads()
        assert info["versions"]["torch"] == torch.__version__
        assert info["compile_s"] is None and info["fp16"] is False
        fn, sync = engine.runner(X)
        assert sync is None and fn().shape == (4, 32)
    finally:
        torch.set_num_threads(before)


def test_interop_threads_once_per_process() -> None:
    """Asking for the inter-op count already in force is fine; another one may be refused."""
    current = torch.get_num_interop_threads()
    assert apply_torch_threads(None, current)["inter_op"] == current


def test_zoo_source_with_weights(tmp_path: Path, fake_zoo: dict, small_factory) -> None:
    weights = tmp_path / "w.pt"
    trained = small_factory(seed=1)
    torch.save(trained.state_dict(), weights)
    src = ModelSource(kind="zoo", arch="small", embedding_size=32, weights=weights,
                      input_size=(32, 32))
    engine = create_engine(src, EngineConfig(engine="torch"))
    assert fake_zoo["get_model"] == 1 and fake_zoo["load_weights"] == 1
    np.testing.assert_allclose(engine.infer(X), _reference(trained, X), rtol=1e-5, atol=1e-5)


def test_ort_on_zoo_source_exports_once(tmp_path: Path, fake_zoo: dict) -> None:
    src = ModelSource(kind="zoo", arch="small", embedding_size=32, input_size=(32, 32))
    cfg = EngineConfig(engine="onnxruntime", intra_op_threads=1)
    first = create_engine(src, cfg, cache_dir=tmp_path)
    path = onnx_path_for(src, tmp_path)
    assert path.parent == tmp_path / "onnx" and path.name.startswith("small-32-")
    second = create_engine(src, cfg, cache_dir=tmp_path)
    assert fake_zoo["export_onnx"] == 1  # cached
    torch_engine = create_engine(src, EngineConfig(engine="torch"))
    np.testing.assert_allclose(first.infer(X), torch_engine.infer(X), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(first.infer(X), second.infer(X))
    assert first.info()["model_path"] == str(path.resolve())


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="inductor needs a C++ compiler")
def test_torch_compile_engine(small_model) -> None:
    engine = TorchEngine(small_model, EngineConfig(engine="torch_compile"))
    assert engine.compile_now((32, 32), batch=4) > 0
    out = engine.infer(X)
    np.testing.assert_allclose(out, _reference(small_model, X), rtol=1e-4, atol=1e-4)
    info = engine.info()
    assert info["engine"] == "torch_compile" and info["compile_s"] > 0
    assert list(info["compile_calls"]) == ["4x3x32x32"]  # no recompilation for a seen shape


def test_torch_compile_failure_is_clear() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(7, -1, 13)  # shape error at run time

    engine = TorchEngine(Broken(), EngineConfig(engine="torch_compile"))
    with pytest.raises(EngineError, match="torch.compile failed on input"):
        engine.compile_now((32, 32))


def test_efficiency_counts_the_source_model_on_every_engine(tmp_path: Path, fake_zoo: dict,
                                                            small_factory) -> None:
    """params/GMAC belong to the model, not the engine: the torch module is counted for both the
    torch cell and the ONNX Runtime cell (whose BN-folded export would count fewer)."""
    from facebench.probes.efficiency import run_efficiency

    pytest.importorskip("fvcore")  # the torch counter (a declared dependency)
    src = ModelSource(kind="zoo", arch="small", embedding_size=32, input_size=(32, 32))
    fast = {"warmup": 1, "min_iters": 3, "min_seconds": 0.0, "cache_dir": tmp_path}
    cells = {e: run_efficiency(src, EngineConfig(engine=e, intra_op_threads=1), **fast)
             for e in ("torch", "onnxruntime")}
    want = sum(p.numel() for p in small_factory().parameters())
    for cell in cells.values():
        assert cell["metrics"]["params"] == want
        assert cell["details"]["compute"]["counted_on"] == "torch"
    assert cells["torch"]["metrics"]["gmac"] == cells["onnxruntime"]["metrics"]["gmac"] > 0
    assert cells["onnxruntime"]["metrics"]["model_size_bytes"] > 0  # the exported file
    size = cells["torch"]["metrics"]["model_size_bytes"]  # random init: its state dict
    assert 4 * want < size < 4 * want + 50_000
    assert "state_dict" in cells["torch"]["details"]["model_size"]
