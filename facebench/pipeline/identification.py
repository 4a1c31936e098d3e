"""Identification (1:N) cell: embed identity-labelled images → gallery/probe split → CMC."""

from __future__ import annotations

import time
from typing import Any

from facebench.datasets import load_spec_identities
from facebench.datasets.identity import gallery_probe_split
from facebench.metrics.identification import identification_metrics
from facebench.pipeline.context import CellContext
from facebench.pipeline.embeddings import embed_images, record
from facebench.plan import Cell


def run_identification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Gallery = first image per identity, probes = the rest; rank-k and the CMC curve."""

    proto = cell.protocol
    ids = load_spec_identities(proto.dataset)
    t0 = time.perf_counter()
    e = embed_images(cell, ids.images, ids.root, ctx)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    gallery, probes = gallery_probe_split(ids)
    res = identification_metrics(e.emb, ids, gallery, probes, ranks=tuple(proto.ranks),
                                 max_rank=proto.max_rank, valid=e.valid)
    extra_metrics, extra_details = record(cell, e, elapsed, time.perf_counter() - t1)
    metrics = {**res.metrics, **extra_metrics}
    details = {"cmc": [float(x) for x in res.curve], **extra_details}
    dataset = {"name": ids.name, "root": str(ids.root), "images": len(ids.images),
               "identities": len(ids.identities), "sha256": ids.checksum,
               "kind": proto.dataset.kind}
    return {"metrics": metrics, "details": details, "artifacts": {}, "dataset": {proto.id: dataset}}
