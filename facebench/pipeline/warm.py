"""Precompute the alignment cache of a suite's datasets (``facebench align``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from facebench.faces.acquire import acquire, default_cache_dir
from facebench.pipeline.calibrate import protocol_images
from facebench.pipeline.embeddings import crop_size, protocol_acquire_config
from facebench.suite.schema import Suite


def warm_alignment_cache(suite: Suite, only: list[str] | None = None,
                         workers: int = 2) -> Iterator[str]:
    """Detect and align every image of every (selected) protocol once per alignment its models
    use; yields a line per protocol × alignment with counts."""

    cache = suite.cache_dir or default_cache_dir()
    for proto in suite.protocols:
        if proto.kind == "efficiency" or (only and proto.id not in only):
            continue
        images, _, given = protocol_images(proto, cache)
        models = [m for m in suite.models if proto.models is None or m.id in proto.models]
        configs = {}
        for m in models:
            cfg = protocol_acquire_config(proto, m.align, crop_size(m, proto), cache,
                                          given is not None)
            configs.setdefault(json.dumps(cfg.effective_align().settings(), sort_keys=True), cfg)
        for cfg in configs.values():
            faces, record = acquire(images, cfg, workers=workers, given=given)
            hits = fta = 0
            for face in faces:
                hits += face.cached
                fta += face.crop is None
            w, h = cfg.size
            method = cfg.effective_align().method  # type: ignore[attr-defined]
            yield (f"{proto.id}: {len(images)} images, {method} {w}×{h} — {hits} already "
                   f"cached, {fta} without a face; cache {record['cache']}")
