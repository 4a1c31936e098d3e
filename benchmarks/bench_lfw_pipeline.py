"""LFW View 2 end to end: facebench vs a naive per-image loop, and the cached second run.

    python benchmarks/bench_lfw_pipeline.py [--shared ../shared] [--folds 10] [--out FILE.json]

Times, in one process run on the same machine:
1. a naive loop: for each image read → decode → YuNet → align → embed (image + flip, batch 1,
   onnxruntime with all cores), then cosine scores and the same metrics;
2. ``facebench run suites/lfw-mobilefacenet.yaml --only lfw`` with an empty cache (cold);
3. the same command again (alignment + embedding caches warm).
Prints accuracies (all three must agree closely) and the ratios naive/cold and cold/cached.
Records the machine's load average before and after, since the box may be shared.
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

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]


def naive(shared: Path, folds: int) -> dict:
    from facebench.datasets.lfw import load_lfw_pairs
    from facebench.faces.align import align_face
    from facebench.faces.detect import create_detector, select_face
    from facebench.faces.images import ImageError, load_image
    from facebench.metrics import compute_verification_metrics

    lfw = shared / "data" / "lfw"
    pairs = load_lfw_pairs(lfw / "pairs.txt", lfw / "images", max_folds=folds)
    t0 = time.perf_counter()
    det = create_detector("yunet", model=shared / "models" / "face_detection_yunet.onnx",
                          threads=None)
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    sess = ort.InferenceSession(str(shared / "models" / "mobilefacenet_128d.onnx"), so,
                                providers=["CPUExecutionProvider"])
    emb = np.full((len(pairs.images), 128), np.nan, np.float32)
    for i, path in enumerate(pairs.images):
        try:
            img = load_image(path)
        except ImageError:
            continue
        face = select_face(det.detect(img), img.shape, "closest_to_center")
        if face is None:
            continue
        crop = align_face(img, face.landmarks, 112)
        x = ((crop[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        e = sess.run(None, {"input": np.ascontiguousarray(x)})[0][0]
        e = e + sess.run(None, {"input": np.ascontiguousarray(x[..., ::-1])})[0][0]
        emb[i] = e / np.linalg.norm(e)
    elapsed = time.perf_counter() - t0
    valid = ~np.isnan(emb[:, 0])
    fta = ~(valid[pairs.left] & valid[pairs.right])
    scores = np.einsum("ij,ij->i", emb[pairs.left], emb[pairs.right]).astype(np.float64)
    scores[fta] = np.nan
    m = compute_verification_metrics(scores, pairs.labels.astype(np.int64),
                                     pairs.folds.astype(np.int64), fta=fta).metrics
    return {"seconds": elapsed, "accuracy": m["accuracy"], "images": len(pairs.images)}


def facebench_run(shared: Path, folds: int, cache: Path, out: Path) -> dict:
    env = {**os.environ, "FACEBENCH_SHARED": str(shared), "FACEBENCH_CACHE": str(cache),
           "LFW_FOLDS": str(folds)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "facebench.cli", "run", "suites/lfw-mobilefacenet.yaml",
                    "--only", "lfw", "--out", str(out), "--no-progress"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    cell = json.loads((out / "results.json").read_text())["cells"][0]
    return {"seconds": elapsed, "accuracy": cell["metrics"]["accuracy"],
            "images": cell["metrics"]["images"], "timings_s": cell["details"]["timings_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold = facebench_run(args.shared, args.folds, cache, Path(tmp) / "cold")
        cached = facebench_run(args.shared, args.folds, cache, Path(tmp) / "cached")
    slow = naive(args.shared, args.folds)
    report = {
        "naive_loop": slow, "facebench_cold": cold, "facebench_cached": cached,
        "naive_over_cold": slow["seconds"] / cold["seconds"],
        "cold_over_cached": cold["seconds"] / cached["seconds"],
        "cores": os.cpu_count(), "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
