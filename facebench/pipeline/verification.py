"""Verification cell: acquire aligned faces → embed (flip-sum) → cosine scores → metrics."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from facebench.datasets import load_pairs
from facebench.metrics import compute_verification_metrics
from facebench.pipeline.context import CellContext
from facebench.pipeline.embed import cosine_scores
from facebench.pipeline.embeddings import embed_images, record
from facebench.plan import Cell
from facebench.scores import ScoreTable, write_scores


def run_verification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Run one verification cell; returns ``metrics``, ``details``, ``artifacts``, ``dataset``."""

    proto = cell.protocol
    pairs = load_pairs(proto.dataset, ctx.cache_dir)
    t0 = time.perf_counter()
    e = embed_images(cell, pairs.images, pairs.root, ctx)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores, fta_pairs = cosine_scores(e.emb, pairs.left, pairs.right, e.valid)
    result = compute_verification_metrics(
        scores, pairs.labels.astype(np.int64), folds=pairs.folds.astype(np.int64), fta=fta_pairs,
        far_targets=tuple(proto.far_targets), bootstrap=proto.bootstrap, seed=0,
    )
    scores_path = ctx.cell_dir / "scores.csv"
    write_scores(scores_path, ScoreTable.from_arrays(
        np.arange(pairs.n_pairs).astype(str), scores, pairs.labels, pairs.folds, fta_pairs))
    extra_metrics, extra_details = record(cell, e, elapsed, time.perf_counter() - t1)
    metrics = {**result.metrics, **extra_metrics}
    details = {**result.details, **extra_details, "fta_policy": proto.fta_policy}
    return {
        "metrics": metrics,
        "details": details,
        "artifacts": {"scores": str(scores_path.relative_to(ctx.out_dir))},
        "dataset": {proto.id: pairs.describe()},
    }
