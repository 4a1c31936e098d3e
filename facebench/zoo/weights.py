"""Load trained weights into zoo modules from the key layouts of the reference code bases.

Layouts:

* ``arcface_torch`` -- insightface ``recognition/arcface_torch`` (``iresnet*``, ``mbf``). Our
  modules use these key names, so this is the identity; for the IR family, which arcface_torch
  lacks, it is facebench's own (arcface-style) names.
* ``insightface_pytorch`` -- TreB1eN InsightFace_Pytorch: ``Backbone`` (``input_layer.``,
  ``body.N.res_layer.``, ``output_layer.``) for IR/IR-SE, and its ``MobileFaceNet``
  (``conv1.conv.``, ``conv_23.``, ``conv_6_dw.``, ``linear.``, ``bn.``).
* ``face_evolve`` -- face.evoLVe ``backbone/model_irse.py``: the same ``Backbone`` keys (IR only).

Files are read with ``torch.load(map_location="cpu", weights_only=True)``; a state dict may be
wrapped under ``state_dict``/``model``/``state_dict_backbone`` and prefixed ``module.``.
Loading is strict by default and all-or-nothing: any missing, unexpected or wrongly-shaped key,
or a tensor with NaN/inf values, raises :class:`WeightsError` before the model is touched.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

LAYOUTS = ("auto", "arcface_torch", "insightface_pytorch", "face_evolve")
_WRAPPERS = ("state_dict", "model", "state_dict_backbone")
_PREFIXES = ("module.", "_orig_mod.")
_BUFFERS_OPTIONAL = ("num_batches_tracked",)  # absent in pre-0.4.1 checkpoints; torch fills them


class WeightsError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did."""

    path: str
    layout: str
    loaded: int
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped and with ``module.`` prefixes removed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise WeightsError(f"{path}: not a regular file; give a checkpoint file (torch.save)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch < 2.6: "Unsupported global: GLOBAL x.y"; torch >= 2.6: "unsupported GLOBAL x.y"
        if found := re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(exc), re.I):
            raise WeightsError(
                f"{path}: holds a pickled Python object ({found[1]}), which weights_only=True "
                "refuses; in a trusted environment re-save it with "
                "torch.save(model.state_dict(), path)") from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:  # zip/EOF/runtime errors of a damaged file
        raise _unreadable(path, exc) from exc
    while isinstance(obj, Mapping):
        wrapper = next((k for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
        if wrapper is None:
            break
        obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: expected a state dict (name -> tensor), got "
                           f"{type(obj).__name__}{' (empty)' if isinstance(obj, Mapping) else ''}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: entry {bad[0]!r} is a {type(obj[bad[0]]).__name__}, not a "
                           "tensor; pass the model's state dict, not a training checkpoint")
    sd = {str(k): v for k, v in obj.items()}
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _unreadable(path: Path, exc: BaseException) -> WeightsError:
    text = str(exc).strip()
    # torch's weights-only refusal: keep its reason, not its advice to load with weights_only=False
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    detail = " ".join((found[1] if found else text.splitlines()[0] if text else "").split())
    return WeightsError(f"{path}: cannot read checkpoint, the file is corrupted, truncated or "
                        f"not a torch.save file of tensors ({type(exc).__name__}: {detail[:200]}); "
                        "re-download it or re-save it with torch.save(model.state_dict(), path)")


def detect_layout(keys: list[str]) -> str:
    """``insightface_pytorch`` for TreB1eN/face.evoLVe keys, else ``arcface_torch``."""
    if any(k.startswith(("input_layer.", "body.", "output_layer.", "conv_23.", "conv_6_sep."))
           for k in keys):
        return "insightface_pytorch"
    return "arcface_torch"


def _ir_translator(stages: tuple[int, ...]) -> Callable[[str], str]:
    """TreB1eN / face.evoLVe ``Backbone`` keys -> ours (``body.N`` -> ``layerS.B``)."""
    where = [(s, b) for s, n in enumerate(stages, start=1) for b in range(n)]
    outer = {"input_layer.0": "conv1", "input_layer.1": "bn1", "input_layer.2": "prelu",
             "output_layer.0": "bn2", "output_layer.3": "fc", "output_layer.4": "features"}
    res = {"0": "bn1", "1": "conv1", "2": "prelu", "3": "conv2", "4": "bn2", "5": "se"}
    body = re.compile(r"body\.(\d+)\.(res_layer|shortcut_layer)\.(\d+)\.(.+)")

    def translate(key: str) -> str:
        if m := re.fullmatch(r"((?:input|output)_layer\.\d+)\.(\w+)", key):
            return f"{outer[m[1]]}.{m[2]}" if m[1] in outer else key
        if (m := body.fullmatch(key)) and int(m[1]) < len(where):
            stage, block = where[int(m[1])]
            if m[2] == "shortcut_layer":
                sub = f"downsample.{m[3]}"
            elif m[3] in res:
                sub = res[m[3]]
            else:
                return key
            return f"layer{stage}.{block}.{sub}.{m[4]}"
        return key

    return translate


_MBF_TOP = {"conv1": "layers.0", "conv2_dw": "layers.1", "conv_23": "layers.2",
            "conv_3": "layers.3", "conv_34": "layers.4", "conv_4": "layers.5",
            "conv_45": "layers.6", "conv_5": "layers.7", "conv_6_sep": "conv_sep",
            "conv_6_dw": "features.layers.0",
            "linear": "features.layers.2", "bn": "features.layers.3"}
# children of Conv_block/Linear_block (conv, bn, prelu) and of Depth_Wise (conv, conv_dw, project)
_MBF_SUB = {"conv": "layers.0", "bn": "layers.1", "prelu": "layers.2", "conv_dw": "layers.1",
            "project": "layers.2", "model": "layers"}


def _treb1en_mobilefacenet(key: str) -> str:
    """TreB1eN ``MobileFaceNet`` keys -> arcface_torch ``MobileFaceNet`` keys."""
    *path, leaf = key.split(".")
    if not path or path[0] not in _MBF_TOP:
        return key
    parts = [_MBF_TOP[path[0]]] + [_MBF_SUB.get(p, p) for p in path[1:]]
    return ".".join([*parts, leaf])


def _translator(model: nn.Module, layout: str) -> Callable[[str], str]:
    family = getattr(model, "family", None)
    if layout == "arcface_torch":
        return lambda key: key
    if family == "ir":
        return _ir_translator(model.stage_sizes)  # type: ignore[arg-type]
    if family == "mobilefacenet" and layout == "insightface_pytorch":
        return _treb1en_mobilefacenet
    raise WeightsError(f"layout {layout!r} has no mapping for a {family or type(model).__name__} "
                       "model: InsightFace_Pytorch checkpoints fit ir*/ir_se*/mobilefacenet, "
                       "face.evoLVe ones ir*/ir_se*; build the model with the matching name")


def _first(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_weights(model: nn.Module, path: str | Path, layout: str = "auto",
                 strict: bool = True) -> LoadReport:
    """Load a checkpoint into ``model`` (a zoo module); strict and all-or-nothing by default.

    With ``strict=False`` the matching keys load and a warning lists the rest; a checkpoint that
    matches nothing still raises.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    sd = read_state_dict(path)
    used = detect_layout(list(sd)) if layout == "auto" else layout
    translate = _translator(model, used)
    mapped = {translate(k): v for k, v in sd.items()}
    target = model.state_dict()
    optional = tuple(f".{b}" for b in _BUFFERS_OPTIONAL)
    missing = [k for k in target if k not in mapped and not k.endswith(optional)]
    unexpected = [k for k in mapped if k not in target]
    mismatched = [f"{k}: file {list(v.shape)} vs model {list(target[k].shape)}"
                  for k, v in mapped.items() if k in target and v.shape != target[k].shape]
    ok = {k: v for k, v in mapped.items() if k in target and v.shape == target[k].shape}
    report = LoadReport(str(path), used, len(ok), tuple(missing), tuple(unexpected),
                        tuple(mismatched))
    problems = [f"{what} {len(keys)}: {_first(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
                if keys]
    if problems:
        none = (f"none of its {len(sd)} tensors is one of {type(model).__name__}'s, so it is not "
                "a checkpoint of this architecture (detector or other weights?); " if not ok
                else "")
        msg = (f"{path}: checkpoint does not fit {type(model).__name__} "
               f"(layout {used!r}, family {getattr(model, 'family', '?')!r}): {none}"
               + "; ".join(problems)
               + ". Check the model name and embedding_size, or pass layout= explicitly")
        if strict or not ok:
            tail = "" if strict else "; no key matched"
            raise WeightsError(f"{msg}{tail}. Nothing was loaded.")
        warnings.warn(msg + f". Loaded only the {len(ok)} matching tensors (strict=False).",
                      stacklevel=2)
    bad = next((k for k, v in ok.items() if v.is_floating_point() and not torch.isfinite(v).all()),
               None)
    if bad is not None:
        raise WeightsError(f"{path}: tensor {bad!r} holds NaN or infinite values; the model "
                           "would give meaningless embeddings. Nothing was loaded.")
    model.load_state_dict(ok, strict=False)
    return report


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """A TorchScript file on CPU in eval mode; a clear error names a missing or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    return module.eval()
