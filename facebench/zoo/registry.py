"""Registry of zoo architectures: names, metadata, factory and cached cost description."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache, partial
from typing import Any

from torch import nn

from facebench.zoo.iresnet import iresnet
from facebench.zoo.irse import ir
from facebench.zoo.mobilefacenet import MobileFaceNet

INPUT = (112, 112)


def _preprocess(std: float) -> dict[str, Any]:
    return {"color": "RGB", "mean": 127.5, "std": std, "layout": "NCHW"}


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo architecture is and how its input must be prepared."""

    name: str
    family: str
    input_size: tuple[int, int]
    embedding_size: int
    description: str
    preprocess: dict[str, Any]
    aliases: tuple[str, ...] = ()


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFOS: dict[str, ModelInfo] = {}
_ALIASES: dict[str, str] = {}


def _register(info: ModelInfo, builder: Callable[..., nn.Module]) -> None:
    _INFOS[info.name], _BUILDERS[info.name] = info, builder
    _ALIASES.update({alias: info.name for alias in info.aliases})


_register(ModelInfo(
    "mobilefacenet", "mobilefacenet", INPUT, 128,
    "MobileFaceNet (Chen et al. 2018): bottlenecks (1,4,6,2), GDConv head; "
    "(x-127.5)/128 as the original insightface release", _preprocess(128.0)),
    lambda emb, **kw: MobileFaceNet(emb, **kw))
_register(ModelInfo(
    "mbf", "mobilefacenet", INPUT, 512,
    "insightface arcface_torch 'mbf': MobileFaceNet with doubled channels (scale=2)",
    _preprocess(127.5)),
    lambda emb, **kw: MobileFaceNet(emb, scale=2, **kw))
for _depth in (18, 34, 50, 100, 200):
    _register(ModelInfo(
        f"iresnet{_depth}", "iresnet", INPUT, 512,
        f"insightface arcface_torch IResNet-{_depth} (improved pre-activation ResNet)",
        _preprocess(127.5)),
        partial(lambda emb, depth, **kw: iresnet(depth, emb, **kw), depth=_depth))
for _depth in (50, 100):
    for _se in (False, True):
        _name = f"ir{'_se' if _se else ''}{_depth}"
        _register(ModelInfo(
            _name, "ir", INPUT, 512,
            f"InsightFace_Pytorch / face.evoLVe {'IR-SE' if _se else 'IR'}-{_depth} Backbone"
            + (" (SE-LResNet100E-IR)" if _name == "ir_se100" else ""),
            _preprocess(127.5), aliases=("se_lresnet100e_ir",) if _name == "ir_se100" else ()),
            partial(lambda emb, depth, se, **kw: ir(depth, emb, se=se, **kw), depth=_depth, se=_se))


def resolve(name: str) -> str:
    """Canonical registry name of ``name`` (case-, dash- and alias-insensitive)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _INFOS:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(sorted(_INFOS))} "
                       f"(aliases: {', '.join(sorted(_ALIASES))})")
    return key


def get_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``."""
    return _INFOS[resolve(name)]


def list_models() -> list[ModelInfo]:
    """All registered architectures (aliases appear in :attr:`ModelInfo.aliases`)."""
    return list(_INFOS.values())


def get_model(name: str, embedding_size: int | None = None, **kw: Any) -> nn.Module:
    """A freshly initialized model in eval mode; ``kw`` goes to the constructor (e.g. dropout)."""
    info = get_info(name)
    emb = info.embedding_size if embedding_size is None else int(embedding_size)
    if emb <= 0:
        raise ValueError(f"embedding_size must be positive, got {embedding_size!r}")
    return _BUILDERS[info.name](emb, **kw).eval()


@cache
def _describe(name: str, embedding_size: int) -> tuple[tuple[str, Any], ...]:
    import torch

    from facebench.probes.compute import count_torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cost = count_torch(get_model(name, embedding_size))
    finally:
        torch.set_num_threads(threads)
    info = asdict(get_info(name))
    info["embedding_size"] = embedding_size
    info["input_size"] = list(info["input_size"])
    info["aliases"] = list(info["aliases"])
    info.update(params=cost["params"], gmac=cost["gmac"], gflops=cost["gflops"], macs=cost["macs"],
                skipped_ops=cost["skipped_ops"], counter=cost["counter"],
                input_shape=cost["input_shape"])
    return tuple(info.items())


def describe(name: str, embedding_size: int | None = None) -> dict[str, Any]:
    """Metadata plus params (Σ numel) and fvcore GMAC at 1x3x112x112; computed once per process."""
    info = get_info(name)
    emb = info.embedding_size if embedding_size is None else int(embedding_size)
    out = dict(_describe(info.name, emb))
    out["skipped_ops"] = dict(out["skipped_ops"])
    out["preprocess"] = dict(out["preprocess"])
    return out


__all__ = ["ModelInfo", "describe", "get_info", "get_model", "list_models", "resolve"]
