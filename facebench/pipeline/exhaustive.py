"""Exhaustive verification cell (an identity dataset with ``pairs: all``): embed every image
once, score every genuine and every impostor pair (or a seeded impostor sample) from the
embedding matrix in blocks (:mod:`facebench.metrics.exhaustive`), metrics from sorted arrays,
and a compact binary score file (``scores.npy`` + ``pairs.npz``, docs/results.md) instead of a
CSV of tens of millions of rows. A set with one identity or one image per identity gives a
result whose ``details.undefined`` names the rates it cannot define; a set with no pair at all
fails with one line."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from facebench.datasets import load_spec_identities
from facebench.datasets.identity import IdentitySet
from facebench.datasets.pairs import relative_names
from facebench.io import atomic_path
from facebench.metrics.exhaustive import exhaustive_metrics, layout, score_pairs
from facebench.pipeline.context import CellContext
from facebench.pipeline.embeddings import embed_images, record
from facebench.pipeline.outcome import NothingScored
from facebench.plan import Cell
from facebench.scores import EXHAUSTIVE_PAIRS, EXHAUSTIVE_SCORES


def is_exhaustive(proto: Any) -> bool:
    """True for a verification protocol on an identity dataset with ``pairs: all``."""
    return getattr(proto.dataset, "pairs", "drawn") == "all"


def exhaustive_pairs_key(ids: IdentitySet, names: list[str], sample: int | None,
                         seed: int) -> str:
    """``details.pairs_key`` of an exhaustive list: the pairs are fixed by the ordered image
    list (rank r = (i, j), i < j, row-major) with each image's identity, so the canonical text
    is the kind, the rule, every image's relative path and identity, and the sample's size and
    seed when impostors are sampled."""
    h = hashlib.sha256(f"facebench-pairs-v1\nexhaustive\ni<j row-major\nsample={sample}"
                       f"\nseed={seed if sample else None}\n".encode())
    for name, code in zip(names, ids.labels.tolist(), strict=True):
        h.update(f"{name}\t{ids.identities[code]}\n".encode())
    return h.hexdigest()


def _write(ctx: CellContext, scores: np.ndarray, ids: IdentitySet, names: list[str],
           ranks: np.ndarray | None) -> None:
    with atomic_path(ctx.cell_dir / EXHAUSTIVE_SCORES, root=ctx.out_dir) as tmp, \
            open(tmp, "wb") as fh:
        np.save(fh, scores, allow_pickle=False)
    arrays: dict[str, np.ndarray] = {
        "image_identity": ids.labels.astype(np.int32),
        "identities": np.asarray(ids.identities, dtype=str),
        "images": np.asarray(names, dtype=str)}
    if ranks is not None:
        arrays["ranks"] = ranks
    with atomic_path(ctx.cell_dir / EXHAUSTIVE_PAIRS, root=ctx.out_dir) as tmp, \
            open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def run_exhaustive(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Run one exhaustive verification cell; returns ``metrics``, ``details``, ``artifacts``,
    ``dataset``."""
    proto = cell.protocol
    spec = proto.dataset
    ids = load_spec_identities(spec)
    pairs = layout(ids.labels, spec.impostor_sample, spec.seed)
    n_gen, n_imp = pairs.counts()
    dataset = {proto.id: {**ids.describe(), "pairs": pairs.n_pairs, "genuine": n_gen,
                          "impostor": n_imp, "exhaustive": True}}
    if pairs.n_pairs == 0:
        raise NothingScored(f"nothing to score: {ids.root} has {ids.n_images} image(s), so no "
                            "pair at all; exhaustive verification needs at least two images",
                            {"details": {}, "dataset": dataset})
    t0 = time.perf_counter()
    e = embed_images(cell, ids.images, ids.root, ctx)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = score_pairs(e.emb, pairs)
    result = exhaustive_metrics(scores, pairs, tuple(proto.far_targets), proto.bootstrap, 0,
                                proto.bootstrap_method)
    names = relative_names(ids.images, ids.root)
    _write(ctx, scores, ids, names, pairs.ranks)
    extra_metrics, extra_details = record(cell, e, elapsed, time.perf_counter() - t1)
    sample = spec.impostor_sample if pairs.ranks is not None else None
    details = {**result.details, **extra_details, "fta_policy": proto.fta_policy,
               "exhaustive": {"scores_file": EXHAUSTIVE_SCORES, "pairs_file": EXHAUSTIVE_PAIRS,
                              "order": "rank r = image pair (i, j), i < j, row-major over the "
                                       "image list (sorted by identity, then path)",
                              "impostor_sample": sample,
                              "seed": spec.seed if sample else None},
               "pairs_key": exhaustive_pairs_key(ids, names, sample, spec.seed)}
    rel = ctx.cell_dir.relative_to(ctx.out_dir)
    return {"metrics": {**result.metrics, **extra_metrics}, "details": details,
            "artifacts": {"scores": str(rel / EXHAUSTIVE_SCORES),
                          "pairs": str(rel / EXHAUSTIVE_PAIRS)},
            "dataset": dataset}
