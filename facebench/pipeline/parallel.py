"""Data-parallel acquisition and embedding on CPU.

Each worker process reads, detects, aligns and embeds its chunk of images with a one-thread
engine, so every core runs every stage with no thread oversubscription, and only embeddings
(not crops) cross process boundaries. Used for CPU devices with ``workers > 1``; GPU devices
keep the streamed design (detection in a pool, one engine in the cell's process).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from facebench.faces.acquire import AcquireConfig, acquire_chunk, init_with_cache, prepare
from facebench.pipeline.embed import embed_batch
from facebench.pool import chunks, ordered_map
from facebench.suite.schema import Preprocess

_STATE: dict[str, Any] = {}

#: ``(index, embedding or None, FtA reason, from the alignment cache)`` per image.
Item = tuple[int, np.ndarray | None, str | None, bool]


def _init(acq: AcquireConfig, cache: Path | None, source: Any, cfg: Any, pre: Preprocess,
          flip: bool, engine_cache: Path | None) -> None:
    init_with_cache(acq, cache, pool=True)
    _STATE.update(acq=acq, cache=cache, source=source, cfg=cfg, pre=pre, flip=flip,
                  engine_cache=engine_cache, engine=None)


def _engine() -> Any:
    if _STATE["engine"] is None:
        from facebench.engines import create_engine

        _STATE["engine"] = create_engine(_STATE["source"], _STATE["cfg"],
                                         cache_dir=_STATE["engine_cache"])
    return _STATE["engine"]


def _work(job: tuple[int, list[Path]]) -> list[Item]:
    start, paths = job
    faces = acquire_chunk(_STATE["acq"], _STATE["cache"], start, paths)
    crops = [f.crop for f in faces if f.crop is not None]
    embs = iter(embed_batch(_engine().infer, crops, _STATE["pre"], _STATE["flip"])
                if crops else ())
    return [(f.index, next(embs) if f.crop is not None else None, f.reason, f.cached)
            for f in faces]


def one_thread(cfg: Any) -> Any:
    """The engine config each worker uses: the same engine, one intra- and inter-op thread."""
    return dataclasses.replace(cfg, intra_op_threads=1, inter_op_threads=1)


def embed_parallel(images: list[Path], acq: AcquireConfig, source: Any, cfg: Any,
                   pre: Preprocess, flip: bool, workers: int, chunk: int,
                   engine_cache: Path | None) -> tuple[Iterator[Item], dict[str, Any]]:
    """Stream one :data:`Item` per image, in order, and the acquisition record."""
    cache, record = prepare(acq)
    record["parallel"] = {"mode": "data-parallel", "workers": workers, "threads_per_worker": 1,
                          "chunk": chunk}
    items = ordered_map(_work, chunks(images, chunk), workers, _init,
                        (acq, cache, source, one_thread(cfg), pre, flip, engine_cache))
    return items, record
