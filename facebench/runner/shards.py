"""Sharded embedding: a dataset's image list cut into shards, each acquired (detect + align,
alignment cache shared through the cache folder) and embedded by a Ray task on a node that has
the cell's device, merged in order into what :func:`facebench.pipeline.embeddings.compute`
returns for the whole list.

Inside a cell run by the Ray executor the shards go to that cluster; elsewhere (local executor,
no Ray) they run one after another in this process, with the same result.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.datasets import PairSet
from facebench.faces.acquire import AcquireConfig, acquire
from facebench.paths import relative_name
from facebench.pipeline.context import CellContext
from facebench.pipeline.embed import BatchEmbedder
from facebench.pipeline.embeddings import Embedded, acquire_config, make_embedder
from facebench.plan import Cell


@dataclass
class Shard:
    """One shard's outcome: embedding rows (NaN for FtA) of images ``start:start+len(valid)``."""

    start: int
    emb: np.ndarray | None  # None when no face was acquired in the shard
    valid: np.ndarray
    fta: list[tuple[int, str | None]]  # (index in the whole list, reason)
    cache_hits: int
    record: dict[str, Any]
    engine: dict[str, Any] = field(default_factory=dict)
    model_load_s: float = 0.0
    node_id: str | None = None  # the Ray node that computed it, if any


def embed_shard(cell: Cell, start: int, paths: list[Path], acq: AcquireConfig, infer: Any,
                workers: int = 1) -> Shard:
    """Acquire and embed ``paths`` (images ``start:start+len(paths)`` of the list), batching
    acquired faces as :func:`facebench.pipeline.embeddings.compute` does."""
    proto = cell.protocol
    faces, record = acquire(list(paths), acq, workers=workers)
    acc = BatchEmbedder(len(paths), infer, cell.model.preprocess, proto.flip, proto.batch_size)
    fta: list[tuple[int, str | None]] = []
    hits = 0
    for face in faces:
        hits += face.cached
        if face.crop is None:
            fta.append((start + face.index, face.reason))
        else:
            acc.add(face.index, face.crop)
    acc.flush()
    emb, valid = acc.emb, acc.valid
    return Shard(start, emb, valid, fta, hits, record)


def shard_task(cell: Cell, start: int, paths: list[Path], acq: AcquireConfig) -> Shard:
    """A Ray task: build the cell's engine on this node and embed one shard."""
    import ray

    ctx = CellContext(out_dir=Path.cwd(), cell_dir=Path.cwd(), cache_dir=acq.cache_dir)
    t0 = time.perf_counter()
    infer, engine = make_embedder(cell, ctx)
    loaded = time.perf_counter() - t0
    shard = embed_shard(cell, start, paths, acq, infer)
    shard.engine, shard.model_load_s = engine, loaded
    shard.node_id = ray.get_runtime_context().get_node_id()
    return shard


def merge(shards: list[Shard], images: list[Path], root: Path, shard_size: int, where: str,
          wall_s: float) -> Embedded:
    """Shards (any order) → the :class:`Embedded` of the whole image list."""
    n = len(images)
    shards = sorted(shards, key=lambda s: s.start)
    dim = next((s.emb.shape[1] for s in shards if s.emb is not None), None)
    if dim is None:
        raise RuntimeError(f"no face acquired in any of the {n} images; check the detector "
                           "settings and the image root")
    emb = np.full((n, dim), np.nan, dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    fta: list[dict[str, Any]] = []
    for s in shards:
        stop = s.start + s.valid.size
        if s.emb is not None:
            emb[s.start:stop] = s.emb
        valid[s.start:stop] = s.valid
        fta.extend({"image": relative_name(images[i], root), "reason": r} for i, r in s.fta)
    record = dict(shards[0].record)
    record.update(cache_hits=sum(s.cache_hits for s in shards), acquired=int(valid.sum()))
    record["shards"] = {"size": shard_size, "count": len(shards), "executor": where,
                        "nodes": sorted({s.node_id for s in shards if s.node_id})}
    model_load = max(s.model_load_s for s in shards)
    timings = {"model_load": round(model_load, 3),
               "acquire_and_embed": round(max(wall_s - model_load, 0.0), 3)}
    return Embedded(emb, valid, record, fta, shards[0].engine, timings)


def compute_sharded(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
                    acq: AcquireConfig, shard_size: int, *,
                    address: str | None = None) -> Embedded:
    """:func:`facebench.pipeline.embeddings.compute` in shards of ``shard_size`` images: Ray
    tasks on the cluster at ``address`` (default: the one running this cell, if any), else
    one after another here."""
    from facebench.runner.ray_executor import ADDRESS_ENV

    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    jobs = [(s, images[s:s + shard_size]) for s in range(0, len(images), shard_size)]
    address = address or os.environ.get(ADDRESS_ENV)
    t0 = time.perf_counter()
    if address:
        shards = _on_ray(cell, jobs, acq, ctx, address, len(images))
        return merge(shards, images, root, shard_size, "ray", time.perf_counter() - t0)
    infer, engine = make_embedder(cell, ctx)
    loaded = time.perf_counter() - t0
    shards, done = [], 0
    for start, paths in jobs:
        shards.append(embed_shard(cell, start, paths, acq, infer,
                                  workers=cell.protocol.workers))
        done += len(paths)
        ctx.progress("images", done, len(images))
    shards[0].engine, shards[0].model_load_s = engine, loaded
    return merge(shards, images, root, shard_size, "local", time.perf_counter() - t0)


def embed_sharded(cell: Cell, pairs: PairSet, ctx: CellContext, shard_size: int, *,
                  address: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict]]:
    """``(emb, valid, acquisition record, FtA list)`` of a pair set's images, sharded."""
    e = compute_sharded(cell, pairs.images, pairs.root, ctx, acquire_config(cell, ctx),
                        shard_size, address=address)
    return e.emb, e.valid, e.acquire, e.fta


def _on_ray(cell: Cell, jobs: list[tuple[int, list[Path]]], acq: AcquireConfig,
            ctx: CellContext, address: str, total: int) -> list[Shard]:
    from facebench.runner.ray_executor import (
        MAX_RETRIES,
        NODE_IP_ENV,
        SHARD_SHARE,
        ray_session,
        task_options,
    )

    with ray_session(address, node_ip=os.environ.get(NODE_IP_ENV)) as ray:
        remote = ray.remote(shard_task).options(
            **task_options(cell.device, SHARD_SHARE), max_retries=MAX_RETRIES,
            retry_exceptions=False, name=f"facebench-shard:{cell.id}")
        pending = [remote.remote(cell, start, paths, acq) for start, paths in jobs]
        shards: list[Shard] = []
        done = 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            shard = ray.get(ready[0])
            shards.append(shard)
            done += shard.valid.size
            ctx.progress("images", done, total)
        return shards
