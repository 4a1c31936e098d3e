"""Verification cell: acquire aligned faces → embed (flip-sum) → items (images, or templates
pooled from faces) → cosine scores of the pairs → metrics. A cell where every pair failed to
acquire has nothing to score and fails (:mod:`facebench.pipeline.outcome`)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from facebench.datasets import load_pairs
from facebench.datasets.pairs import PairSet, pairs_key, relative_names
from facebench.datasets.sets import TemplatePairSet, item_features
from facebench.metrics import compute_verification_metrics
from facebench.pipeline.context import CellContext
from facebench.pipeline.embed import cosine_scores
from facebench.pipeline.embeddings import (
    clean_cell,
    degrade_level,
    embed_images,
    flip_of,
    record,
)
from facebench.pipeline.exhaustive import is_exhaustive, run_exhaustive
from facebench.pipeline.outcome import nothing_scored
from facebench.plan import LEVEL_JOIN, Cell
from facebench.scores import IDENTITY_COLUMNS, ScoreTable, write_scores


def _item_names(pairs: PairSet | TemplatePairSet) -> list[str]:
    """What ``left``/``right`` index, by name: template ids, or image paths under the root."""
    if pairs.templates is not None:
        return [f"template:{t}" for t in pairs.templates.ids.tolist()]
    return relative_names(pairs.images, pairs.root)


def run_verification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Run one verification cell; returns ``metrics``, ``details``, ``artifacts``, ``dataset``."""

    proto = cell.protocol
    if is_exhaustive(proto):
        return run_exhaustive(cell, ctx)
    pairs = load_pairs(proto.dataset, ctx.cache_dir)
    level = degrade_level(proto)
    t0 = time.perf_counter()
    e = embed_images(cell, pairs.images, pairs.root, ctx, pairs.landmarks)
    clean = None
    if level is not None and level.sides == "probe":  # the first image of each pair is clean
        clean = embed_images(clean_cell(cell, proto.id.rsplit(LEVEL_JOIN, 1)[0]), pairs.images,
                             pairs.root, ctx, pairs.landmarks)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats, ok, pooled = item_features(pairs.templates, e.emb, e.valid, e.norms,
                                       flip_of(cell))
    left = pairs.left
    if clean is not None:  # left sides index the clean items, stacked after the degraded
        c_feats, c_ok, _ = item_features(pairs.templates, clean.emb, clean.valid, clean.norms,
                                         flip_of(cell))
        left = pairs.left + len(feats)
        feats, ok = np.concatenate([feats, c_feats]), np.concatenate([ok, c_ok])
    scores, fta_pairs = cosine_scores(feats, left, pairs.right, ok)
    if fta_pairs.all():
        details = {**record(cell, e, elapsed)[1], "fta_policy": proto.fta_policy}
        if pooled is not None:
            details["templates"] = pooled
        raise nothing_scored(f"every one of the {pairs.n_pairs} pairs has a side that failed to "
                             "acquire", e.fta, len(e.valid), details,
                             {proto.id: pairs.describe()})
    folds = None if pairs.folds is None else pairs.folds.astype(np.int64)
    names = getattr(pairs, "identities", None)
    side_names = None if names is None else (np.asarray(names, dtype=object)[pairs.left],
                                              np.asarray(names, dtype=object)[pairs.right])
    identities = None
    if side_names is not None and proto.bootstrap_method == "identity":
        _, codes = np.unique(np.concatenate(side_names).astype(str), return_inverse=True)
        identities = (codes[:pairs.n_pairs], codes[pairs.n_pairs:])
    result = compute_verification_metrics(
        scores, pairs.labels.astype(np.int64), folds=folds, fta=fta_pairs,
        far_targets=tuple(proto.far_targets), bootstrap=proto.bootstrap, seed=0,
        identities=identities,
    )
    scores_path = ctx.cell_dir / "scores.csv"
    write_scores(scores_path, ScoreTable.from_arrays(
        np.arange(pairs.n_pairs).astype(str), scores, pairs.labels,
        np.zeros(pairs.n_pairs, dtype=np.int64) if folds is None else folds, fta_pairs),
        root=ctx.out_dir,
        extra=None if side_names is None else dict(zip(IDENTITY_COLUMNS, side_names,
                                                       strict=True)))
    extra_metrics, extra_details = record(cell, e, elapsed, time.perf_counter() - t1)
    metrics = {**result.metrics, **extra_metrics}
    # A degraded level scores other images: its key says which, so it is compared only with
    # cells of the same corruption, level and sides (the clean protocol has no suffix).
    details = {**result.details, **extra_details, "fta_policy": proto.fta_policy,
               "pairs_key": pairs_key(proto.dataset.kind, _item_names(pairs), pairs.left,
                                      pairs.right, pairs.labels,
                                      variant=None if level is None else
                                      json.dumps(level.record(), sort_keys=True))}
    if level is not None:
        details["degrade"] = {**level.record(), "base": proto.id.rsplit(LEVEL_JOIN, 1)[0],
                              "accuracy_floor": proto.degrade.accuracy_floor,
                              "clean_side_fta_images": None if clean is None else len(clean.fta)}
    if pooled is not None:
        metrics["templates"] = pooled["templates"]
        details["templates"] = pooled
    return {
        "metrics": metrics,
        "details": details,
        "artifacts": {"scores": str(scores_path.relative_to(ctx.out_dir))},
        "dataset": {proto.id: pairs.describe()},
    }
