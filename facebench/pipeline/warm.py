"""Precompute the alignment cache of a suite's datasets (``facebench align``)."""

from __future__ import annotations

from collections.abc import Iterator

from facebench.faces.acquire import acquire, default_cache_dir
from facebench.pipeline.embeddings import protocol_acquire_config
from facebench.suite.schema import Suite


def warm_alignment_cache(suite: Suite, only: list[str] | None = None,
                         workers: int = 2) -> Iterator[str]:
    """Detect and align every image of every (selected) protocol once per crop size; yields a
    line per protocol × size with counts."""
    from facebench.datasets import load_pairs
    from facebench.datasets.specs import load_spec_identities

    cache = suite.cache_dir or default_cache_dir()
    for proto in suite.protocols:
        if proto.kind == "efficiency" or (only and proto.id not in only):
            continue
        if proto.kind == "identification":
            images = load_spec_identities(proto.dataset).images
        else:
            images = load_pairs(proto.dataset, cache).images
        models = [m for m in suite.models if proto.models is None or m.id in proto.models]
        sizes = sorted({proto.align_size or m.preprocess.input_size[0] for m in models})
        for size in sizes:
            cfg = protocol_acquire_config(proto, size, cache)
            faces, record = acquire(images, cfg, workers=workers)
            hits = fta = 0
            for face in faces:
                hits += face.cached
                fta += face.crop is None
            yield (f"{proto.id}: {len(images)} images at {size}×{size} — {hits} already cached, "
                   f"{fta} without a face; cache {record['cache']}")
