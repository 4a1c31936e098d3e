"""Identification (1:N) cell: embed → items (images or pooled templates) → search each split's
probes against its gallery (:mod:`facebench.search`) → closed-set CMC and open-set FNIR at FPIR
(:mod:`facebench.metrics.open_set`). A gallery whose every entry failed to acquire is empty: its
searches are misses; a cell where no search has both a probe and a gallery entry has nothing to
score and fails (:mod:`facebench.pipeline.outcome`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from facebench.datasets import load_search_set
from facebench.datasets.sets import SearchSet, Split, item_features
from facebench.metrics.open_set import Searches, open_set_metrics, searches_from_candidates
from facebench.pipeline.context import CellContext
from facebench.pipeline.embeddings import embed_images, flip_of, record
from facebench.pipeline.outcome import nothing_scored
from facebench.plan import Cell
from facebench.search import top_k


def search_split(split: Split, feats: np.ndarray, ok: np.ndarray, depth: int,
                 options: Any, threads: int | None) -> tuple[Searches, dict[str, Any]]:
    """Search one split's probes against its gallery; items without a feature (failures to
    acquire) are left out of the gallery and searched as misses."""
    g_ok = ok[split.gallery]
    p_ok = ok[split.probes]
    gallery_rows = split.gallery[g_ok]
    gallery_ids = split.gallery_ids[g_ok]
    counts = np.unique(gallery_ids, return_counts=True)[1] if gallery_ids.size else [1]
    k = min(depth * int(np.max(counts)), max(int(gallery_rows.size), 1))
    n = split.probes.size
    scores = np.full((n, k), -np.inf)
    index = np.full((n, k), -1, dtype=np.int64)
    info: dict[str, Any] = {}
    if gallery_rows.size and p_ok.any():
        found = top_k(feats[split.probes[p_ok]], feats[gallery_rows], k,
                      backend=options.backend, chunk_rows=options.chunk_rows, threads=threads)
        scores[p_ok], index[p_ok] = found.scores, found.index
        info = found.info
    searches = searches_from_candidates(scores, index, gallery_ids, split.probe_ids,
                                        enrolled_ids=split.gallery_ids, probe_valid=p_ok)
    row = {"name": split.name, "gallery": int(split.gallery.size),
           "fta_gallery": int(np.count_nonzero(~g_ok)), "probes": int(n),
           "mated": searches.n_mated, "nonmated": searches.n_nonmated,
           "distractors": split.distractors, "search_s": info.get("seconds")}
    searched = int(np.count_nonzero(p_ok)) if gallery_rows.size else 0
    return searches, {"split": row, "search": info, "searched": searched}


def _distinct(rows: list[np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def run_identification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Embed the protocol's images, pool them into items, search every split, score."""
    proto = cell.protocol
    data: SearchSet = load_search_set(proto)
    t0 = time.perf_counter()
    e = embed_images(cell, data.images, data.root, ctx, data.landmarks)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats, ok, pooled = item_features(data.templates, e.emb, e.valid, e.norms,
                                       flip_of(cell))
    depth = max(proto.max_rank, max(proto.ranks), proto.open_set_rank)
    parts, splits, search, searched = [], [], {}, 0
    for split in data.splits:
        ctx.progress("search", len(parts), len(data.splits))
        s, info = search_split(split, feats, ok, depth, proto.search,
                               cell.device.threads.intra_op)
        parts.append(s)
        splits.append(info["split"])
        searched += info["searched"]
        search = info["search"] or search
    ctx.progress("search", len(parts), len(data.splits))
    if not searched:
        details = record(cell, e, elapsed)[1] | {"splits": splits}
        if pooled is not None:
            details["templates"] = pooled
        raise nothing_scored(f"none of the {sum(r['probes'] for r in splits)} searches has "
                             "both an acquired probe and an acquired gallery entry", e.fta,
                             len(e.valid), details, {proto.id: data.describe()})
    metrics, details = open_set_metrics(
        Searches.concat(parts), ranks=tuple(proto.ranks), max_rank=proto.max_rank,
        fpir_targets=tuple(proto.fpir_targets), rank=proto.open_set_rank)
    probes = _distinct([s.probes for s in data.splits])
    metrics.update({
        "probes": int(probes.size), "gallery": sum(r["gallery"] for r in splits),
        "distractors": sum(r["distractors"] for r in splits),
        "fta_probes": int(np.count_nonzero(~ok[probes])),
        "fta_gallery": sum(r["fta_gallery"] for r in splits)})
    if pooled is not None:
        metrics["templates"] = pooled["templates"]
        details["templates"] = pooled
    extra_metrics, extra_details = record(cell, e, elapsed, time.perf_counter() - t1)
    search = {**search, "seconds": round(sum(r["search_s"] or 0.0 for r in splits), 3)}
    details.update({"splits": splits, "search": search, **extra_details})
    return {"metrics": {**metrics, **extra_metrics}, "details": details, "artifacts": {},
            "dataset": {proto.id: data.describe()}}
