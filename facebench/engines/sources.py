"""Turn a :class:`ModelSource` into something an engine can run: a torch module or an ONNX file.

Zoo models come from ``facebench.zoo`` (imported lazily); without weights they are initialized
with torch seed 0, so every build of the same source is the same model. ONNX Runtime on a zoo or
TorchScript source exports to ONNX once, via ``facebench.zoo.export.export_onnx``, into a cache
keyed by
architecture, embedding size, input size, a content hash of the weights (or TorchScript file),
the opset and the torch version. A ``.json`` record beside the export holds its sha256; an
export that no longer has those bytes is made again (:mod:`facebench.cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from facebench.cache import load_checked_file
from facebench.engines.base import EngineUnavailable, ModelSource
from facebench.io import atomic_write_json, sha256_file
from facebench.io import sha256_file_once as file_sha256  # once per process and file version
from facebench.paths import default_cache_dir

OPSET = 17


def _require_file(path: Path | None, what: str) -> Path:
    if path is None:
        raise ValueError(f"a {what} source needs a path")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def load_torch_module(source: ModelSource) -> Any:
    """A ``torch.nn.Module`` in eval mode on CPU for a TorchScript or zoo source."""
    import torch

    if source.kind == "torchscript":
        path = _require_file(source.path, "torchscript")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch>=2.9 deprecates jit
            module = torch.jit.load(str(path), map_location="cpu")
    elif source.kind == "zoo":
        if not source.arch:
            raise ValueError("a zoo source needs arch (embedding_size defaults to the zoo's)")
        try:
            from facebench.zoo import get_model
        except ImportError as exc:
            raise EngineUnavailable(f"facebench.zoo is not available: {exc}") from exc
        # Without weights the model is randomly initialized: seed it, so that every build (torch
        # engine, ONNX export, compute counter) is the same model ("random-init" in cache keys).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            module = get_model(source.arch, source.embedding_size)
        if source.weights is not None:
            try:
                from facebench.zoo.weights import load_weights
            except ImportError as exc:
                raise EngineUnavailable(f"facebench.zoo.weights is not available: {exc}") from exc
            load_weights(module, _require_file(source.weights, "weights"))
    else:
        raise EngineUnavailable(
            f"torch engines need a torchscript or zoo source, not {source.kind!r} "
            "(ONNX -> torch conversion is not supported)"
        )
    return module.eval()


def export_key(source: ModelSource) -> str:
    """Cache key of the ONNX export of a torch source (stable across processes)."""
    import torch

    if source.kind == "zoo":
        content = file_sha256(Path(source.weights)) if source.weights else "random-init"
    else:
        content = file_sha256(_require_file(source.path, source.kind))
    payload = {
        "kind": source.kind,
        "arch": source.arch,
        "embedding_size": source.embedding_size,
        "input_size": list(source.input_size),
        "content_sha256": content,
        "opset": OPSET,
        "torch": torch.__version__,
        "format": 2,  # 2: the export has a record with its sha256
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def onnx_path_for(source: ModelSource, cache_dir: Path | None = None) -> Path:
    """The ONNX file for ``source``, exporting (once, atomically) when it is not ONNX already."""
    if source.kind == "onnx":
        return _require_file(source.path, "onnx")
    stem = source.arch if source.kind == "zoo" else Path(source.path or "model").stem
    emb = f"-{source.embedding_size}" if source.embedding_size else ""
    out = Path(cache_dir or default_cache_dir()) / "onnx" / f"{stem}{emb}-{export_key(source)}.onnx"
    record = out.with_suffix(".json")  # the export's sha256: a damaged file is made again
    if load_checked_file(out, record) is not None:
        return out
    try:
        from facebench.zoo.export import export_onnx
    except ImportError as exc:
        raise EngineUnavailable(f"facebench.zoo.export is not available: {exc}") from exc
    module = load_torch_module(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        export_onnx(module, tmp, source.input_size, opset=OPSET, dynamic_batch=True)
        atomic_write_json(record, {"sha256": sha256_file(tmp)})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def onnx_source(source: ModelSource, cache_dir: Path | None = None) -> ModelSource:
    """``source`` as an ONNX source (exported and cached if needed)."""
    if source.kind == "onnx":
        return source
    return ModelSource(
        kind="onnx",
        path=onnx_path_for(source, cache_dir),
        arch=source.arch,
        embedding_size=source.embedding_size,
        input_size=source.input_size,
    )


def model_size_bytes(source: ModelSource) -> tuple[int | None, str]:
    """Bytes of the model artifact and what was measured: the ONNX/TorchScript file, the zoo
    weights file, or, for a zoo model without weights, its state dict as ``torch.save`` writes
    it (the size its weights file would have)."""
    path = source.weights if source.kind == "zoo" else source.path
    if path is not None and Path(path).is_file():
        return Path(path).stat().st_size, f"file {Path(path).name}"
    if source.kind == "zoo":
        import io

        import torch

        buf = io.BytesIO()
        torch.save(load_torch_module(source).state_dict(), buf)
        return buf.tell(), "torch.save(state_dict) of the randomly initialized zoo model"
    return None, "no file"
