"""A small real CNN embedder (MobileFaceNet-style blocks) and a stand-in ``facebench.zoo``."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn


class SmallFaceNet(nn.Module):
    """Conv-BN-PReLU stem, a depthwise-separable block, global depthwise conv, linear + BN."""

    def __init__(self, embedding_size: int = 32, width: int = 16, size: int = 32) -> None:
        super().__init__()
        s = size // 4
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width),
            nn.Conv2d(width, width, 3, 2, 1, groups=width, bias=False), nn.BatchNorm2d(width),
            nn.PReLU(width),
            nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width),
            nn.Conv2d(2 * width, 2 * width, s, groups=2 * width, bias=False),  # GDConv
            nn.BatchNorm2d(2 * width), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(2 * width, embedding_size, bias=False),
                                  nn.BatchNorm1d(embedding_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_small(embedding_size: int = 32, seed: int = 0) -> SmallFaceNet:
    """Deterministic weights, with non-trivial BN statistics."""
    torch.manual_seed(seed)
    model = SmallFaceNet(embedding_size)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture
def small_factory() -> Any:
    """``make_small(embedding_size=32, seed=0)``."""
    return make_small


@pytest.fixture
def small_model() -> SmallFaceNet:
    return make_small()


@pytest.fixture(scope="session")
def torchscript_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`make_small` () traced to TorchScript."""
    path = tmp_path_factory.mktemp("torchscript") / "small.pt"
    torch.jit.trace(make_small(), torch.zeros(1, 3, 32, 32)).save(str(path))
    return path


def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


@pytest.fixture
def fake_zoo(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Stand-in ``facebench.zoo`` (get_model, weights.load_weights, export.export_onnx) with the
    agreed signatures; counts calls so that caching can be checked."""
    calls = {"get_model": 0, "load_weights": 0, "export_onnx": 0}

    def get_model(arch: str, embedding_size: int) -> nn.Module:
        calls["get_model"] += 1
        if arch != "small":
            raise KeyError(arch)
        return make_small(embedding_size)

    def load_weights(model: nn.Module, path: Path) -> nn.Module:
        calls["load_weights"] += 1
        model.load_state_dict(torch.load(path, map_location="cpu"))
        return model

    def export_onnx(model: nn.Module, out_path: Path, input_size: tuple[int, int],
                    opset: int = 17, dynamic_batch: bool = True) -> Path:
        calls["export_onnx"] += 1
        h, w = input_size
        torch.onnx.export(
            model.eval(), (torch.zeros(1, 3, h, w),), str(out_path), dynamo=False,
            input_names=["input"], output_names=["embeddings"], opset_version=opset,
            dynamic_axes={"input": {0: "batch"}, "embeddings": {0: "batch"}}
            if dynamic_batch else None,
        )
        return Path(out_path)

    zoo = _module("facebench.zoo", get_model=get_model)
    monkeypatch.setitem(sys.modules, "facebench.zoo", zoo)
    monkeypatch.setitem(sys.modules, "facebench.zoo.weights",
                        _module("facebench.zoo.weights", load_weights=load_weights))
    monkeypatch.setitem(sys.modules, "facebench.zoo.export",
                        _module("facebench.zoo.export", export_onnx=export_onnx))
    return calls


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Any:
    """Engines set torch's (process-wide) intra-op threads; put them back after each test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
