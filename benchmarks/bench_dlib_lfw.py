"""dlib's ResNet on LFW View 2 through facebench's metrics (published: 99.38 % ± 0.27).

    python benchmarks/bench_dlib_lfw.py [--folds 10] [--cache DIR] [--out result.json]
    python benchmarks/bench_dlib_lfw.py --api-check 16     # descriptor API timings only

Runs the ``lfw`` cell of ``suites/dlib-lfw.yaml`` with the real ``facebench run`` CLI (detector
``dlib``: HOG → 5 landmarks; align ``dlib_chip`` 150×150; engine ``dlib``; no flip;
``--cnn-fallback`` adds dlib's MMOD detector where HOG finds nothing, a different cache key),
then prints the accuracy ± std (ddof 0), the gap to the published number, wall time, images/s
and the failures to acquire, read back from ``results.json``. A second run with the same
``--cache`` detects and embeds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "dlib-lfw.yaml"
PUBLISHED_LFW_ACCURACY = 0.9938


def suite_file(folder: Path, cnn_fallback: bool, workers: int) -> Path:
    """``suites/dlib-lfw.yaml``, or a copy in ``folder`` whose ``lfw`` protocol turns the CNN
    fallback on and/or sets ``workers``. The copy's shared paths come from FACEBENCH_SHARED."""
    if not cnn_fallback and not workers:
        return SUITE
    suite = yaml.safe_load(SUITE.read_text())
    for proto in suite["protocols"]:
        if proto["id"] == "lfw":
            if cnn_fallback:
                proto["detector"] = {**proto.get("detector", {}), "cnn_fallback": True}
            if workers:
                proto["workers"] = workers
    out = folder / SUITE.name
    out.write_text(yaml.safe_dump(suite, sort_keys=False))
    return out


def run_lfw(folds: int, cache: Path | None, workers: int, cnn_fallback: bool = False) -> dict:
    """Run the suite's ``lfw`` cell with ``facebench run`` and summarize its record."""
    shared = os.environ.get("FACEBENCH_SHARED", str((ROOT.parent / "shared").resolve()))
    env = dict(os.environ, LFW_FOLDS=str(folds), FACEBENCH_SHARED=shared)
    if cache is not None:
        env["FACEBENCH_CACHE"] = str(cache.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-dlib-") as tmp:
        suite = suite_file(Path(tmp), cnn_fallback, workers)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "facebench.cli", "run", str(suite), "--out", str(out),
               "--only", "*@*@lfw"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"facebench run failed (exit {proc.returncode})")
        results = json.loads((out / "results.json").read_text())
    (cell,) = [c for c in results["cells"] if c["protocol"] == "lfw"]
    m, d = cell["metrics"], cell["details"]
    acquire: dict[str, Any] = d.get("acquire", {})
    return {
        "pairs": m["pairs"], "images": m["images"], "folds": folds,
        "accuracy": m["accuracy"], "accuracy_std": m["accuracy_std"],
        "published": PUBLISHED_LFW_ACCURACY,
        "gap_points": 100 * (m["accuracy"] - PUBLISHED_LFW_ACCURACY),
        "fta_images": m["fta_images"], "fta_pairs": m["fta_pairs"],
        "fta_list": d.get("fta_images_list", []), "cache_hits": acquire.get("cache_hits"),
        "wall_s": wall, "images_per_s": m["images"] / wall, "workers": workers or "suite's",
        "metrics": m, "load_avg": list(os.getloadavg()), "acquire": acquire,
    }


def api_check(n: int) -> dict:
    """Per-face descriptor time of dlib's three APIs on the same faces (one process)."""
    import cv2
    import dlib

    from facebench.engines.dlib_engine import LANDMARKS_FILE, RESNET_FILE, default_model_dir

    models = default_model_dir()
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(models / LANDMARKS_FILE))
    net = dlib.face_recognition_model_v1(str(models / RESNET_FILE))
    images = sorted((ROOT.parent / "shared/data/lfw/images").glob("A*/*.jpg"))
    rgbs, shapes, chips = [], [], []
    for p in images:
        rgb = np.ascontiguousarray(cv2.imread(str(p))[..., ::-1])
        rects = det(rgb, 0)
        if len(rects):
            s = sp(rgb, rects[0])
            rgbs.append(rgb)
            shapes.append(s)
            chips.append(dlib.get_face_chip(rgb, s, size=150, padding=0.25))
        if len(chips) == n:
            break
    net.compute_face_descriptor(chips[0])

    def timed(fn: Any) -> tuple[float, float]:
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
    ap.add_argument("--cache", type=Path, default=None,
                    help="facebench cache root (FACEBENCH_CACHE; default: facebench's)")
    ap.add_argument("--workers", type=int, default=0,
                    help="the lfw protocol's workers (default: the suite's)")
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
    print(f"wall {r['wall_s']:.1f} s (whole CLI run), {r['images_per_s']:.2f} images/s, "
          f"cache hits {r['cache_hits']}")
    print(f"FtA {r['fta_images']} images / {r['fta_pairs']} pairs")
    for f in r["fta_list"]:
        print(f"  FtA {f['image']}: {f['reason']}")
    if args.out:
        args.out.write_text(json.dumps(r, indent=1, default=str))


if __name__ == "__main__":
    main()
