"""Precompute the alignment cache of a suite's datasets (``facebench align``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from facebench.faces.acquire import acquire, default_cache_dir
from facebench.pipeline.calibrate import protocol_images
from facebench.pipeline.embeddings import crop_size, protocol_acquire_config
from facebench.suite.schema import Suite


def protocols_to_align(suite: Suite, only: list[str] | None = None) -> list[Any]:
    """The protocols of ``suite`` that read images (all, or those ``only`` names); a
    :class:`ValueError` when an ``only`` id is not a protocol of the suite, or none is left."""
    ids = [p.id for p in suite.protocols]
    unknown = [o for o in dict.fromkeys(only or []) if o not in ids]
    if unknown:
        raise ValueError(f"--only {', '.join(map(repr, unknown))}: no such protocol in suite "
                         f"{suite.name!r}; its protocols: {', '.join(ids)}")
    chosen = [p for p in suite.protocols if not only or p.id in only]
    aligned = [p for p in chosen if p.kind != "efficiency"]
    if not aligned:
        which = ", ".join(p.id for p in chosen)
        raise ValueError(f"nothing to align in suite {suite.name!r}: {which} only time models "
                         "(efficiency protocols read no images); name a verification or "
                         "identification protocol")
    return aligned


def warm_alignment_cache(suite: Suite, protocols: list[Any] | None = None,
                         workers: int = 2) -> Iterator[str]:
    """Detect and align every image of every protocol in ``protocols`` (default: every one that
    reads images, :func:`protocols_to_align`) once per alignment its models use; yields a line
    per protocol × alignment with counts."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cache = suite.cache_dir or default_cache_dir()
    for proto in protocols_to_align(suite) if protocols is None else protocols:
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
