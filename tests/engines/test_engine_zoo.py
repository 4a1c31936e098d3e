"""The real model zoo through the engines: torch eager vs ONNX Runtime on its export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebench.engines import EngineConfig, ModelSource, create_engine

zoo = pytest.importorskip("facebench.zoo")
pytest.importorskip("facebench.zoo.export")


def test_zoo_mobilefacenet_torch_equals_ort(tmp_path: Path) -> None:
    src = ModelSource(kind="zoo", arch="mobilefacenet", embedding_size=128)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    eager = create_engine(src, EngineConfig(engine="torch"))
    onnx = create_engine(src, EngineConfig(engine="onnxruntime", intra_op_threads=1),
                         cache_dir=tmp_path)
    a, b = eager.infer(x), onnx.infer(x)
    assert a.shape == b.shape == (2, 128)
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    nb = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(na, nb, atol=1e-4)
    assert Path(onnx.info()["model_path"]).parent == tmp_path / "onnx"
