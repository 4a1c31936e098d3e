"""Unavailable configurations give clear reasons and EngineUnavailable, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from facebench.engines import (
    EngineConfig,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
)

CUDA = torch.cuda.is_available()
ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
ORT_TRT = "TensorrtExecutionProvider" in ort.get_available_providers()


@pytest.fixture
def onnx_source(tmp_path: Path, small_model: torch.nn.Module) -> ModelSource:
    path = tmp_path / "small.onnx"
    torch.onnx.export(small_model, (torch.zeros(1, 3, 32, 32),), str(path), dynamo=False,
                      input_names=["input"], output_names=["emb"],
                      dynamic_axes={"input": {0: "n"}, "emb": {0: "n"}})
    return ModelSource(kind="onnx", path=path, input_size=(32, 32))


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
@pytest.mark.parametrize("engine", ["torch", "torch_compile"])
def test_torch_cuda_unavailable(engine: str, torchscript_path: Path) -> None:
    cfg = EngineConfig(engine=engine, device="cuda")  # type: ignore[arg-type]
    reason = check_available(cfg)
    assert reason is not None and reason.startswith("CUDA not available")
    assert "torch.cuda.is_available() is False" in reason
    with pytest.raises(EngineUnavailable) as info:
        create_engine(ModelSource(kind="torchscript", path=torchscript_path), cfg)
    assert info.value.reason == reason


@pytest.mark.skipif(ORT_CUDA and ORT_TRT, reason="GPU providers are available here")
@pytest.mark.parametrize("providers", [(), ("cuda",), ("tensorrt", "cuda"), ("tensorrt",)])
def test_ort_gpu_providers_unavailable(providers: tuple, onnx_source: ModelSource) -> None:
    cfg = EngineConfig(engine="onnxruntime", device="cuda", providers=providers)
    reason = check_available(cfg, onnx_source)
    if reason is None:
        pytest.skip("this provider set is available")
    assert "ONNX Runtime" in reason and "not available" in reason
    assert ort.__version__ in reason
    with pytest.raises(EngineUnavailable, match="not available"):
        create_engine(onnx_source, cfg)


def test_fp16_on_cpu_is_a_reason_not_a_crash() -> None:
    for cfg in (EngineConfig(engine="torch", fp16=True),
                EngineConfig(engine="onnxruntime", fp16=True)):
        reason = check_available(cfg)
        assert reason is not None and "fp16" in reason


def test_inconsistent_configs_are_errors_not_skips() -> None:
    with pytest.raises(ValueError, match="device='cuda'"):
        check_available(EngineConfig(engine="onnxruntime", providers=("cuda",)))
    with pytest.raises(ValueError, match="onnxruntime only"):
        check_available(EngineConfig(engine="torch", providers=("cpu",)))
    with pytest.raises(ValueError, match="unknown"):
        check_available(EngineConfig(engine="onnxruntime", providers=("rocm",)))  # type: ignore


def test_source_mismatch_reasons(onnx_source: ModelSource) -> None:
    reason = check_available(EngineConfig(engine="torch"), onnx_source)
    assert reason is not None and "ONNX" in reason
    with pytest.raises(EngineUnavailable):
        create_engine(onnx_source, EngineConfig(engine="torch"))


def test_silent_ort_fallback_is_detected(
    onnx_source: ModelSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ORT given a provider it cannot load warns and runs on CPU; the engine must refuse."""
    if ORT_CUDA:
        pytest.skip("CUDA EP really loads here")
    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", *real])
    cfg = EngineConfig(engine="onnxruntime", device="cuda", providers=("cuda",))
    assert check_available(cfg, onnx_source) is None  # looks fine before building
    with pytest.raises(EngineUnavailable, match="fell back") as info:
        create_engine(onnx_source, cfg)
    assert "CPUExecutionProvider" in info.value.reason


def test_ort_engine_matches_torch_on_exported_model(
    onnx_source: ModelSource, small_model: torch.nn.Module
) -> None:
    engine = create_engine(onnx_source, EngineConfig(engine="onnxruntime", intra_op_threads=1))
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = small_model(torch.from_numpy(x)).numpy()
    got = engine.infer(x)
    assert got.shape == (3, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="N, 3, H, W"):
        engine.infer(x[0])
