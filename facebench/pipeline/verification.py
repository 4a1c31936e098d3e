"""Verification cell: acquire aligned faces → embed (flip-sum) → cosine scores → metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from facebench.acquire import AcquireConfig, acquire
from facebench.datasets import load_pairs
from facebench.embed import cosine_scores, embed_batch
from facebench.pipeline.context import CellContext, engine_parts
from facebench.plan import Cell


def make_embedder(cell: Cell, ctx: CellContext) -> tuple[Any, dict[str, Any]]:
    """``infer(batch) -> embeddings`` for the cell's model on its device, and its info."""
    from facebench.engines import create_engine

    source, cfg = engine_parts(cell.model, cell.device)
    engine = create_engine(source, cfg, cache_dir=ctx.cache_dir / "engines" if ctx.cache_dir
                           else None)
    return engine.infer, engine.info()


def embed_dataset(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
                  infer: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict]]:
    """Embeddings of every image (rows of FtA images are NaN), a valid mask, the acquisition
    record and the FtA list (image paths relative to ``root``)."""
    proto = cell.protocol
    pre = cell.model.preprocess
    size = proto.align_size or pre.input_size[0]
    det = proto.detector
    options: dict[str, Any] = {}
    if det.name != "none":
        options["model"] = det.model
        if det.score_threshold is not None:
            options["score_threshold"] = det.score_threshold
    cfg = AcquireConfig(detector=det.name, detector_options=options, select=det.select,
                        size=(size, size), cache_dir=ctx.cache_dir)
    faces, record = acquire(images, cfg, workers=proto.workers)
    n = len(images)
    emb: np.ndarray | None = None
    valid = np.zeros(n, dtype=bool)
    fta: list[dict] = []
    batch: list[tuple[int, np.ndarray]] = []
    done = cached = 0

    def flush() -> None:
        nonlocal emb
        if not batch:
            return
        out = embed_batch(infer, [c for _, c in batch], pre, proto.flip)
        if emb is None:
            emb = np.full((n, out.shape[1]), np.nan, dtype=np.float32)
        idx = [i for i, _ in batch]
        emb[idx] = out
        valid[idx] = True
        batch.clear()

    for face in faces:
        done += 1
        cached += face.cached
        if face.crop is None:
            fta.append({"image": _rel(images[face.index], root), "reason": face.reason})
        else:
            batch.append((face.index, face.crop))
            if len(batch) >= proto.batch_size:
                flush()
        ctx.progress("images", done, n)
    flush()
    if emb is None:
        raise RuntimeError(f"no face acquired in any of the {n} images; check the detector "
                           "settings and the image root")
    record["cache_hits"] = cached
    record["acquired"] = int(valid.sum())
    return emb, valid, record, fta


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def run_verification(cell: Cell, ctx: CellContext) -> dict[str, Any]:
    """Run one verification cell; returns ``metrics``, ``details``, ``artifacts``, ``dataset``."""
    from facebench.metrics import compute_verification_metrics
    from facebench.scores import ScoreTable, write_scores

    proto = cell.protocol
    pairs = load_pairs(proto.dataset, ctx.cache_dir)
    t0 = time.perf_counter()
    infer, engine_info = make_embedder(cell, ctx)
    t_model = time.perf_counter() - t0
    emb, valid, record, fta = embed_dataset(cell, pairs.images, pairs.root, ctx, infer)
    t_embed = time.perf_counter() - t0 - t_model
    scores, fta_pairs = cosine_scores(emb, pairs.left, pairs.right, valid)
    result = compute_verification_metrics(
        scores, pairs.labels.astype(np.int64), folds=pairs.folds.astype(np.int64), fta=fta_pairs,
        far_targets=tuple(proto.far_targets), bootstrap=proto.bootstrap, seed=0,
    )
    scores_path = ctx.cell_dir / "scores.csv"
    write_scores(scores_path, ScoreTable.from_arrays(
        np.arange(pairs.n_pairs).astype(str), scores, pairs.labels, pairs.folds, fta_pairs))
    metrics = dict(result.metrics)
    metrics["fta_images"] = len(fta)
    metrics["images"] = len(pairs.images)
    details = dict(result.details)
    details.update({
        "fta_images_list": fta,
        "acquire": record,
        "preprocess": cell.model.preprocess.model_dump(mode="json"),
        "flip": proto.flip,
        "fta_policy": proto.fta_policy,
        "engine": engine_info,
        "timings_s": {"model_load": round(t_model, 3), "acquire_and_embed": round(t_embed, 3)},
        "throughput_images_per_s": round(len(pairs.images) / t_embed, 2) if t_embed else None,
    })
    return {
        "metrics": metrics,
        "details": details,
        "artifacts": {"scores": str(scores_path.relative_to(ctx.out_dir))},
        "dataset": {proto.id: pairs.describe()},
    }
