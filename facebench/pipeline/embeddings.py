"""Embeddings of a dataset's images for one cell, with a content-keyed embedding cache.

The first run detects, aligns (crops cached by :mod:`facebench.faces.acquire`, keyed by image
content) and embeds. The embeddings are then cached under a key made of the model's content
hash, the engine, device and precision, the preprocessing, flip, batch size, the
detector/alignment settings (the detector's model by content) and the path and content of every
image, so a second run of the same suite loads them and builds no model at all.
"""

from __future__ import annotations

import hashlib
import json
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.faces.acquire import AcquireConfig, acquire, detector_settings
from facebench.io import (
    atomic_write_bytes,
    atomic_write_json,
    read_json,
    sha256_file,
    sha256_file_once,
)
from facebench.paths import relative_name
from facebench.pipeline.context import CellContext, engine_parts
from facebench.pipeline.embed import BatchEmbedder
from facebench.plan import Cell

EMBED_CACHE_VERSION = 1


@dataclass
class Embedded:
    """Per-image embeddings (NaN rows where no face was acquired) and how they were made."""

    emb: np.ndarray
    valid: np.ndarray
    acquire: dict[str, Any]
    fta: list[dict[str, Any]]
    engine: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)


def record(cell: Cell, e: Embedded, elapsed: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics and details every embedding-based cell reports about how it got its
    embeddings: counts, failures to acquire, settings, engine and timings."""
    n = int(e.valid.size)
    preprocess = (e.acquire.get("preprocess") if cell.model.source == "dlib"
                  else cell.model.preprocess.model_dump(mode="json"))
    metrics = {"fta_images": len(e.fta), "images": n}
    details = {
        "fta_images_list": e.fta,
        "acquire": e.acquire,
        "preprocess": preprocess,
        "flip": cell.protocol.flip,
        "engine": e.engine,
        "timings_s": {**e.timings_s, "total": round(elapsed, 3)},
        "images_per_s": round(n / elapsed, 2) if elapsed else None,
    }
    return metrics, details


def protocol_acquire_config(proto: Any, size: int, cache_dir: Path | None) -> AcquireConfig:
    """How a protocol's detector settings acquire ``size``×``size`` crops (one definition for
    the cells and for `facebench align`, so both hit the same cache entries)."""
    det = proto.detector
    options: dict[str, Any] = {}
    if det.name != "none":
        if det.model is not None:
            options["model"] = det.model
        if det.score_threshold is not None:
            options["score_threshold"] = det.score_threshold
    return AcquireConfig(detector=det.name, detector_options=options, select=det.select,
                         size=(size, size), cache_dir=cache_dir)


def acquire_config(cell: Cell, ctx: CellContext) -> AcquireConfig:
    size = cell.protocol.align_size or cell.model.preprocess.input_size[0]
    return protocol_acquire_config(cell.protocol, size, ctx.cache_dir)


def make_embedder(cell: Cell, ctx: CellContext) -> tuple[Any, dict[str, Any]]:
    """``infer(batch) -> embeddings`` for the cell's model on its device, and its info."""
    from facebench.engines import create_engine

    source, cfg = engine_parts(cell.model, cell.device)
    cache = ctx.cache_dir / "engines" if ctx.cache_dir else None
    engine = create_engine(source, cfg, cache_dir=cache)
    return engine.infer, engine.info()


def _model_key(cell: Cell) -> str:
    from facebench.engines.sources import export_key

    source, cfg = engine_parts(cell.model, cell.device)
    content = sha256_file_once(source.path) if source.kind == "onnx" else export_key(source)
    return json.dumps({"model": content, "engine": cfg.engine, "device": cfg.device,
                       "fp16": cfg.fp16, "providers": list(cfg.resolved_providers())})


def _images_digest(images: list[Path]) -> str:
    """Identity of the image set: the path and the content (sha256) of every file, in order. A
    file replaced by another of the same size and modification time still changes the key;
    hashing full LFW (7,701 images) takes about a second."""
    h = hashlib.sha256()
    for p in images:
        try:
            mode = p.stat().st_mode
            # never open a FIFO or device (it could block): its type is its identity here
            content = sha256_file(p) if stat.S_ISREG(mode) else f"type:{stat.S_IFMT(mode):o}"
        except OSError as exc:
            content = f"unreadable:{exc.errno}"
        h.update(f"{p}\0{content}\n".encode())
    return h.hexdigest()


def cache_key(cell: Cell, images: list[Path], acq: AcquireConfig) -> str:
    blob = json.dumps({
        "v": EMBED_CACHE_VERSION,
        "model": _model_key(cell),
        "preprocess": cell.model.preprocess.model_dump(mode="json"),
        "flip": cell.protocol.flip,
        "batch_size": cell.protocol.batch_size,  # batching changes float rounding
        "acquire": acq.key(detector_settings(acq)),
        "images": _images_digest(images),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def compute(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
            acq: AcquireConfig) -> Embedded:
    """Detect/align (streamed from the worker pool) and embed in batches."""
    if getattr(cell.protocol, "shard_size", None):
        from facebench.runner.shards import compute_sharded

        return compute_sharded(cell, images, root, ctx, acq, cell.protocol.shard_size)
    proto, pre = cell.protocol, cell.model.preprocess
    t0 = time.perf_counter()
    infer, engine_info = make_embedder(cell, ctx)
    t_model = time.perf_counter() - t0
    if cell.device.device == "cpu" and proto.workers > 1:
        return _compute_parallel(cell, images, root, ctx, acq, engine_info, t0, t_model)
    faces, record = acquire(images, acq, workers=proto.workers)
    n = len(images)
    acc = BatchEmbedder(n, infer, pre, proto.flip, proto.batch_size)
    fta: list[dict[str, Any]] = []
    cached = 0
    for done, face in enumerate(faces, start=1):
        cached += face.cached
        if face.crop is None:
            fta.append({"image": relative_name(images[face.index], root), "reason": face.reason})
        else:
            acc.add(face.index, face.crop)
        ctx.progress("images", done, n)
    acc.flush()
    emb, valid = acc.emb, acc.valid
    if emb is None:
        raise RuntimeError(f"no face acquired in any of the {n} images; check the detector "
                           "settings and the image root")
    record.update(cache_hits=cached, acquired=int(valid.sum()))
    t_total = time.perf_counter() - t0
    timings = {"model_load": round(t_model, 3), "acquire_and_embed": round(t_total - t_model, 3)}
    return Embedded(emb, valid, record, fta, engine_info, timings)


def _compute_parallel(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
                      acq: AcquireConfig, engine_info: dict[str, Any], t0: float,
                      t_model: float) -> Embedded:
    """CPU: every worker detects, aligns and embeds its chunks (see
    :mod:`facebench.pipeline.parallel`); the engine built here only checked the model and
    exported it once, so workers load it from the cache."""
    from facebench.pipeline.parallel import embed_parallel

    proto = cell.protocol
    source, cfg = engine_parts(cell.model, cell.device)
    engine_cache = ctx.cache_dir / "engines" if ctx.cache_dir else None
    items, record = embed_parallel(images, acq, source, cfg, cell.model.preprocess, proto.flip,
                                   proto.workers, proto.batch_size, engine_cache)
    n = len(images)
    emb: np.ndarray | None = None
    valid = np.zeros(n, dtype=bool)
    fta: list[dict[str, Any]] = []
    cached = 0
    for done, (index, vector, reason, hit) in enumerate(items, start=1):
        cached += hit
        if vector is None:
            fta.append({"image": relative_name(images[index], root), "reason": reason})
        else:
            if emb is None:
                emb = np.full((n, vector.shape[0]), np.nan, dtype=np.float32)
            emb[index] = vector
            valid[index] = True
        ctx.progress("images", done, n)
    if emb is None:
        raise RuntimeError(f"no face acquired in any of the {n} images; check the detector "
                           "settings and the image root")
    record.update(cache_hits=cached, acquired=int(valid.sum()))
    engine_info = {**engine_info, "verification_threads": record["parallel"]}
    t_total = time.perf_counter() - t0
    timings = {"model_load": round(t_model, 3), "acquire_and_embed": round(t_total - t_model, 3)}
    return Embedded(emb, valid, record, fta, engine_info, timings)


def embed_images(cell: Cell, images: list[Path], root: Path, ctx: CellContext) -> Embedded:
    """Embeddings for ``images``, from the embedding cache when this exact work was done."""
    if cell.model.source == "dlib":  # own detector, chips and per-image descriptor cache
        from facebench.models_dlib import embed_images_dlib

        return embed_images_dlib(cell, images, root, ctx)
    acq = acquire_config(cell, ctx)
    use_cache = ctx.cache_dir is not None and getattr(cell.protocol, "cache_embeddings", True)
    if not use_cache:
        return compute(cell, images, root, ctx, acq)
    t0 = time.perf_counter()
    key = cache_key(cell, images, acq)
    base = Path(ctx.cache_dir) / "embeddings" / key  # type: ignore[arg-type]
    arrays, meta = base.with_suffix(".npz"), base.with_suffix(".json")
    if arrays.is_file() and meta.is_file():
        try:
            with np.load(arrays, allow_pickle=False) as z:
                emb, valid = z["emb"], z["valid"]
            info = read_json(meta)
            if emb.shape[0] == len(images):
                info["acquire"]["embedding_cache"] = {"key": key, "hit": True}
                ctx.progress("images", len(images), len(images))
                return Embedded(emb, valid, info["acquire"], info["fta"], info["engine"],
                                {"cache_load": round(time.perf_counter() - t0, 3)})
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is recomputed
    out = compute(cell, images, root, ctx, acq)
    out.acquire["embedding_cache"] = {"key": key, "hit": False}
    try:
        import io

        buf = io.BytesIO()
        np.savez(buf, emb=out.emb, valid=out.valid)
        atomic_write_bytes(arrays, buf.getvalue())
        atomic_write_json(meta, {"acquire": out.acquire, "fta": out.fta, "engine": out.engine})
    except OSError:
        pass  # a read-only or full cache never fails the run
    return out
