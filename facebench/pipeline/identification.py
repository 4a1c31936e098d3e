"""Identification (1:N) cell: embed identity-labelled images → gallery/probe split → CMC."""

from __future__ import annotations

import time
from typing import Any

from facebench.pipeline.context import CellContext
from facebench.pipeline.embeddings import embed_images
from facebench.plan import Cell


def run_identification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Gallery = first image per identity, probes = the rest; rank-k and the CMC curve."""
    from facebench.datasets.identity import gallery_probe_split, identification_metrics
    from facebench.datasets.specs import load_spec_identities

    proto = cell.protocol
    ids = load_spec_identities(proto.dataset)
    t0 = time.perf_counter()
    e = embed_images(cell, ids.images, ids.root, ctx)
    gallery, probes = gallery_probe_split(ids)
    res = identification_metrics(e.emb, ids, gallery, probes, ranks=tuple(proto.ranks),
                                 max_rank=proto.max_rank, valid=e.valid)
    metrics = dict(res.metrics)
    metrics.update(fta_images=len(e.fta), images=len(ids.images))
    details = {
        "cmc": [float(x) for x in res.curve],
        "fta_images_list": e.fta,
        "acquire": e.acquire,
        "preprocess": e.acquire.get("preprocess") if cell.model.source == "dlib"
        else cell.model.preprocess.model_dump(mode="json"),
        "flip": proto.flip,
        "engine": e.engine,
        "timings_s": {**e.timings_s, "total": round(time.perf_counter() - t0, 3)},
    }
    dataset = {"name": ids.name, "root": str(ids.root), "images": len(ids.images),
               "identities": len(ids.identities), "sha256": ids.checksum,
               "kind": proto.dataset.kind}
    return {"metrics": metrics, "details": details, "artifacts": {}, "dataset": {proto.id: dataset}}
