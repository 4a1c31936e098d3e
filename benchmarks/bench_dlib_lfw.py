"""dlib's ResNet on LFW View 2 through facebench's metrics (published: 99.38 % ± 0.27).

    python benchmarks/bench_dlib_lfw.py [--folds 10] [--cache DIR] [--out result.json]
    python benchmarks/bench_dlib_lfw.py --api-check 16     # descriptor API timings only

Runs the ``lfw`` cell of ``suites/dlib-lfw.yaml`` (HOG → 5 landmarks → 150×150 chip →
descriptor, no flip; ``--cnn-fallback`` adds dlib's MMOD detector where HOG finds nothing, a
different cache key) with 2 worker processes, then cosine scores → 10-fold accuracy. Prints the
accuracy ± std (ddof 0), the gap to the published number, wall time, images/s and FtA.
A second run with the same ``--cache`` loads every descriptor from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench.datasets import load_pairs  # noqa: E402
from facebench.metrics import compute_verification_metrics  # noqa: E402
from facebench.models_dlib import (  # noqa: E402
    PUBLISHED_LFW_ACCURACY,
    config_from_cell,
    embed_images_dlib,
)
from facebench.pipeline.context import CellContext  # noqa: E402
from facebench.pipeline.embed import cosine_scores  # noqa: E402
from facebench.plan import plan  # noqa: E402
from facebench.suite.load import load_suite  # noqa: E402


def progress(stage: str, done: int, total: int) -> None:
    if done % 500 == 0 or done == total:
        print(f"  {stage} {done}/{total}  {time.strftime('%H:%M:%S')}", flush=True)


def run_lfw(folds: int, cache: Path | None, workers: int, cnn_fallback: bool = False) -> dict:
    os.environ.setdefault("LFW_FOLDS", str(folds))
    suite = load_suite(ROOT / "suites" / "dlib-lfw.yaml")
    (cell,) = [c for c in plan(suite) if c.kind == "verification"]
    cell = cell.__class__(cell.model, cell.device,
                          cell.protocol.model_copy(update={"workers": workers}))
    pairs = load_pairs(cell.protocol.dataset)
    ctx = CellContext(out_dir=Path("."), cell_dir=Path("."), cache_dir=cache, progress=progress)
    t0 = time.perf_counter()
    cfg = config_from_cell(cell, cnn_fallback=cnn_fallback)
    e = embed_images_dlib(cell, pairs.images, pairs.root, ctx, config=cfg)
    wall = time.perf_counter() - t0
    scores, fta_pairs = cosine_scores(e.emb, pairs.left, pairs.right, e.valid)
    res = compute_verification_metrics(
        scores, pairs.labels.astype(np.int64), folds=pairs.folds.astype(np.int64),
        fta=fta_pairs, far_targets=(0.1, 0.01, 0.001))
    m = res.metrics
    return {
        "pairs": pairs.n_pairs, "images": len(pairs.images), "folds": folds,
        "accuracy": m["accuracy"], "accuracy_std": m["accuracy_std"],
        "published": PUBLISHED_LFW_ACCURACY,
        "gap_points": 100 * (m["accuracy"] - PUBLISHED_LFW_ACCURACY),
        "fta_images": len(e.fta), "fta_pairs": int(fta_pairs.sum()), "fta_list": e.fta,
        "upsampled": e.acquire["upsampled"], "multiple_faces": e.acquire["multiple_faces"],
        "cnn_fallback": e.acquire["cnn_fallback"],
        "cache_hits": e.acquire["cache_hits"], "wall_s": wall,
        "images_per_s": len(pairs.images) / wall, "workers": workers,
        "metrics": {k: v for k, v in m.items() if isinstance(v, int | float) or v is None},
        "load_avg": list(os.getloadavg()), "settings": e.acquire,
    }


def api_check(n: int) -> dict:
    """Per-face descriptor time of dlib's three APIs on the same faces (one process)."""
    import dlib

    from facebench.faces.images import load_image
    from facebench.models_dlib import DlibConfig

    cfg = DlibConfig.default()
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(cfg.landmarks))
    net = dlib.face_recognition_model_v1(str(cfg.resnet))
    images = sorted((ROOT.parent / "shared/data/lfw/images").glob("A*/*.jpg"))
    rgbs, shapes, chips = [], [], []
    for p in images:
        rgb = np.ascontiguousarray(load_image(p)[..., ::-1])
        rects = det(rgb, 0)
        if len(rects):
            s = sp(rgb, rects[0])
            rgbs.append(rgb)
            shapes.append(s)
            chips.append(dlib.get_face_chip(rgb, s, size=150, padding=0.25))
        if len(chips) == n:
            break
    net.compute_face_descriptor(chips[0])

    def timed(fn) -> float:
        t, c = time.perf_counter(), time.process_time()
        fn()
        return (time.perf_counter() - t) / n * 1e3, (time.process_time() - c) / n * 1e3

    out = {
        "image_and_shape": timed(lambda: [net.compute_face_descriptor(r, s)
                                          for r, s in zip(rgbs, shapes, strict=True)]),
        "chip": timed(lambda: [net.compute_face_descriptor(c) for c in chips]),
        "chip_batch": timed(lambda: net.compute_face_descriptor(chips)),
    }
    a = np.array(net.compute_face_descriptor(rgbs[0], shapes[0]))
    b = np.array(net.compute_face_descriptor(chips[0]))
    return {"n": n, "ms_per_face_wall_cpu": out, "image_vs_chip_max_abs_diff": float(
        np.abs(a - b).max()), "load_avg": list(os.getloadavg())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=None, help="facebench cache root")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--api-check", type=int, default=0, metavar="N")
    ap.add_argument("--cnn-fallback", action="store_true",
                    help="try dlib's MMOD CNN detector where HOG finds no face")
    args = ap.parse_args()
    if args.api_check:
        print(json.dumps(api_check(args.api_check), indent=1))
        return
    r = run_lfw(args.folds, args.cache, args.workers, args.cnn_fallback)
    print(f"dlib ResNet, LFW View 2 ({r['folds']} folds, {r['pairs']} pairs, "
          f"{r['images']} images)")
    print(f"accuracy {100 * r['accuracy']:.2f} % ± {100 * r['accuracy_std']:.2f} "
          f"(published 99.38; gap {r['gap_points']:+.2f} points)")
    print(f"wall {r['wall_s']:.1f} s, {r['images_per_s']:.2f} images/s, {r['workers']} workers, "
          f"cache hits {r['cache_hits']}")
    print(f"FtA {r['fta_images']} images / {r['fta_pairs']} pairs; upsampled "
          f"{r['upsampled']}; several faces {r['multiple_faces']}; "
          f"CNN fallback {r['cnn_fallback']}")
    for f in r["fta_list"]:
        print(f"  FtA {f['image']}: {f['reason']}")
    if args.out:
        args.out.write_text(json.dumps(r, indent=1, default=str))


if __name__ == "__main__":
    main()
