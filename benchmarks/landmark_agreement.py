"""Landmark agreement of RetinaFace (MobileNet-0.25) and YuNet on every LFW image of pairs.txt.

For each image both detectors run at their default thresholds (RetinaFace 0.9, YuNet 0.6); one
face per detector is picked by ``--policy`` (default ``highest_score``; ``closest_to_center`` is
reported alongside); ``--mtcnn`` adds MTCNN against RetinaFace the same way. The per-image gap
is the mean over the five points of the distance between the two detectors' points, divided by
the inter-ocular distance of RetinaFace's points. Reported: mean, median, p95 and max of the
gap, per-landmark means, signed mean offsets, and how many images either detector found nothing
in. ``--timing`` adds RetinaFace's single-image latency at 250×250
on one thread and its batched throughput (measured before the pool starts).

    python benchmarks/landmark_agreement.py --lfw ../shared/data/lfw --models ../shared/models \\
        --out runs/landmark_agreement.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LANDMARKS = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
POLICIES = ("highest_score", "closest_to_center")
RETINA_FILE = "retinaface_mobilenet0.25.pth"
YUNET_FILE = "face_detection_yunet.onnx"
#: RetinaFace runs this low internally so the report can show how FtA moves with the threshold;
#: detections at >= the default are identical to a run at the default (greedy NMS never lets a
#: lower-scored box suppress a higher one).
PROBE_THRESHOLD = 0.02
SCORE_CUTS = (0.02, 0.1, 0.3, 0.5, 0.7, 0.9)


def pair_images(pairs_txt: Path) -> list[str]:
    """Relative paths ``Name/Name_NNNN.jpg`` of the distinct images in an LFW pairs file."""
    seen: dict[str, None] = {}
    for lineno, line in enumerate(pairs_txt.read_text().splitlines()[1:], start=2):
        parts = line.split()
        if len(parts) == 3:
            items = [(parts[0], parts[1]), (parts[0], parts[2])]
        elif len(parts) == 4:
            items = [(parts[0], parts[1]), (parts[2], parts[3])]
        elif not parts:
            continue
        else:
            raise SystemExit(f"{pairs_txt}:{lineno}: expected 'name i j' or 'name1 i name2 j'")
        for name, num in items:
            seen[f"{name}/{name}_{int(num):04d}.jpg"] = None
    return list(seen)


# ---- worker ----------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init(models: str, batch: int, mtcnn: bool = False) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    from facebench.faces.detect.retinaface import RetinaFace
    from facebench.faces.detect.yunet import YuNet

    _W["retina"] = RetinaFace(
        Path(models) / RETINA_FILE, score_threshold=PROBE_THRESHOLD, threads=1, batch_size=batch
    )
    _W["yunet"] = YuNet(Path(models) / YUNET_FILE, threads=1)
    if mtcnn:
        from facebench.faces.detect.mtcnn import MTCNN

        _W["mtcnn"] = MTCNN(threads=1)


def _pick(dets: list[Any], shape: tuple[int, ...]) -> dict[str, Any]:
    from facebench.faces.detect import select_face

    out: dict[str, Any] = {"n": len(dets)}
    for policy in POLICIES:
        d = select_face(dets, shape, policy)  # type: ignore[arg-type]
        out[policy] = None if d is None else (d.landmarks.tolist(), d.score)
    return out


def _work(job: tuple[str, list[str], float]) -> list[dict[str, Any]]:
    from facebench.faces.images import ImageError, load_image

    images_dir, rel_paths, threshold = job
    loaded, rows = [], []
    for rel in rel_paths:
        try:
            loaded.append(load_image(Path(images_dir) / rel))
            rows.append({"image": rel})
        except ImageError as exc:
            rows.append({"image": rel, "error": str(exc)})
    ok = [r for r in rows if "error" not in r]
    retina = _W["retina"].detect_batch(loaded)
    for row, image, dets in zip(ok, loaded, retina, strict=True):
        row["retina_max"] = dets[0].score if dets else 0.0
        row["retina"] = _pick([d for d in dets if d.score >= threshold], image.shape)
        row["yunet"] = _pick(_W["yunet"].detect(image), image.shape)
        if "mtcnn" in _W:
            row["mtcnn"] = _pick(_W["mtcnn"].detect(image), image.shape)
    return rows


# ---- statistics ------------------------------------------------------------------------------


def _summary(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def agreement(rows: list[dict[str, Any]], policy: str, other: str = "yunet") -> dict[str, Any]:
    """Gap statistics between RetinaFace's and ``other``'s selected faces under ``policy``."""
    gaps, per_point, signed = [], [], []
    for row in rows:
        r, y = row["retina"][policy], row[other][policy]
        if r is None or y is None:
            continue
        rl, yl = np.asarray(r[0]), np.asarray(y[0])
        iod = float(np.linalg.norm(rl[1] - rl[0]))
        if iod < 1e-6:
            continue
        dist = np.linalg.norm(rl - yl, axis=1) / iod
        gaps.append(dist.mean())
        per_point.append(dist)
        signed.append((rl - yl) / iod)
    g = np.asarray(gaps)
    pp = np.asarray(per_point).reshape(-1, 5)
    sg = np.asarray(signed).reshape(-1, 5, 2)
    return {
        "images_compared": int(g.size),
        "gap": _summary(g),
        "gap_over_0.2": int((g > 0.2).sum()),
        "gap_over_0.5": int((g > 0.5).sum()),
        "per_landmark_mean": {k: float(v) for k, v in zip(LANDMARKS, pp.mean(0), strict=True)},
        f"signed_mean_retina_minus_{other}": {
            k: [float(v[0]), float(v[1])] for k, v in zip(LANDMARKS, sg.mean(0), strict=True)
        },
    }


# ---- timing ----------------------------------------------------------------------------------


def timing(models: Path, images: list[Path]) -> dict[str, Any]:
    """RetinaFace latency (one 250×250 image, 1 thread) and batched throughput."""
    import torch

    from facebench.faces.detect.retinaface import RetinaFace
    from facebench.faces.images import load_image

    torch.set_num_threads(1)
    det = RetinaFace(models / RETINA_FILE, threads=1)
    batch = [load_image(p) for p in images[:64]]
    one = batch[0]
    for _ in range(10):
        det.detect(one)
    samples: list[int] = []
    start = time.perf_counter()
    while len(samples) < 100 or time.perf_counter() - start < 5.0:
        t0 = time.perf_counter_ns()
        det.detect(one)
        samples.append(time.perf_counter_ns() - t0)
    ms = np.asarray(samples) / 1e6
    out: dict[str, Any] = {
        "image": f"{one.shape[1]}x{one.shape[0]}",
        "threads": torch.get_num_threads(),
        "single_ms": {
            "mean": float(ms.mean()),
            "std": float(ms.std()),
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "min": float(ms.min()),
            "samples": int(ms.size),
        },
        "batched": {},
    }
    for size in (1, 8, 16, 32):
        det.batch_size = size
        det.detect_batch(batch[:size])
        reps, start = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - start < 3.0:
            det.detect_batch(batch)
            reps += 1
        wall = time.perf_counter() - start
        out["batched"][str(size)] = {
            "images_per_s": reps * len(batch) / wall,
            "ms_per_image": wall / (reps * len(batch)) * 1e3,
        }
    return out


# ---- driver ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, required=True, help="folder with pairs.txt and images/")
    ap.add_argument("--models", type=Path, required=True, help="folder with both detectors")
    ap.add_argument("--out", type=Path, required=True, help="JSON results file")
    ap.add_argument("--policy", choices=POLICIES, default="highest_score")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16, help="RetinaFace images per forward")
    ap.add_argument("--chunk", type=int, default=64, help="images per worker task")
    ap.add_argument("--limit", type=int, default=None, help="first N images only (smoke runs)")
    ap.add_argument("--timing", action="store_true", help="also time RetinaFace (single, batch)")
    ap.add_argument("--mtcnn", action="store_true",
                    help="also compare MTCNN (facenet-pytorch weights) with RetinaFace")
    args = ap.parse_args(argv)

    pairs = args.lfw / "pairs.txt"
    if not pairs.is_file():
        ap.error(f"{pairs} not found; --lfw must hold pairs.txt and images/")
    for name in (RETINA_FILE, YUNET_FILE):
        if not (args.models / name).is_file():
            ap.error(f"{args.models / name} not found; --models must hold {name}")
    rel = pair_images(pairs)[: args.limit]
    images_dir = args.lfw / "images"
    load_before = os.getloadavg()

    from facebench.faces.detect.retinaface import DEFAULT_SCORE_THRESHOLD as threshold

    timed = timing(args.models, [images_dir / r for r in rel]) if args.timing else None

    jobs = [
        (str(images_dir), rel[i : i + args.chunk], threshold)
        for i in range(0, len(rel), args.chunk)
    ]
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, _init, (str(args.models), args.batch, args.mtcnn)) as pool:
        for part in pool.imap(_work, jobs):
            rows.extend(part)
            print(f"\r{len(rows)}/{len(rel)} images", end="", file=sys.stderr, flush=True)
    wall = time.perf_counter() - start
    print(file=sys.stderr)

    good = [r for r in rows if "error" not in r]
    retina_none = sum(r["retina"]["n"] == 0 for r in good)
    yunet_none = sum(r["yunet"]["n"] == 0 for r in good)
    both_none = sum(r["retina"]["n"] == 0 and r["yunet"]["n"] == 0 for r in good)
    best = np.asarray([r["retina_max"] for r in good])
    _init(str(args.models), args.batch, args.mtcnn)  # for settings only
    import cv2
    import torch

    result = {
        "benchmark": "landmark_agreement",
        "images": len(rel),
        "unreadable": [r for r in rows if "error" in r],
        "policy": args.policy,
        "normalizer": "inter-ocular distance of RetinaFace's selected face",
        "retina_none": retina_none,
        "yunet_none": yunet_none,
        "both_none": both_none,
        "either_none": sum(r["retina"]["n"] == 0 or r["yunet"]["n"] == 0 for r in good),
        "retina_multi": sum(r["retina"]["n"] > 1 for r in good),
        "yunet_multi": sum(r["yunet"]["n"] > 1 for r in good),
        "agreement": agreement(good, args.policy),
        "agreement_other_policies": {p: agreement(good, p) for p in POLICIES if p != args.policy},
        "retina_images_without_face_at_threshold": {
            str(t): int((best < t).sum()) for t in SCORE_CUTS
        },
        "detectors": {
            "retinaface": {**_W["retina"].settings(), "score_threshold": threshold},
            "yunet": _W["yunet"].settings(),
        },
        "mtcnn": None if not args.mtcnn else {
            "none": sum(r["mtcnn"]["n"] == 0 for r in good),
            "multi": sum(r["mtcnn"]["n"] > 1 for r in good),
            "settings": _W["mtcnn"].settings(),
            "agreement_with_retinaface": {p: agreement(good, p, "mtcnn") for p in POLICIES},
        },
        "wall_s": wall,
        "workers": args.workers,
        "threads_per_worker": 1,
        "retina_batch": args.batch,
        "timing": timed,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "opencv": cv2.__version__,
            "cpus": os.cpu_count(),
            "load_avg_before": list(load_before),
            "load_avg_after": list(os.getloadavg()),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    a = result["agreement"]
    print(
        f"{len(rel)} images in {wall:.1f}s; RetinaFace none {retina_none}, YuNet none {yunet_none};"
        f" gap ({args.policy}) mean {a['gap'].get('mean', float('nan')):.4f}"
        f" median {a['gap'].get('median', float('nan')):.4f}"
        f" p95 {a['gap'].get('p95', float('nan')):.4f} → {args.out}"
    )
    if args.mtcnn:
        m = result["mtcnn"]
        g = m["agreement_with_retinaface"][args.policy]["gap"]
        print(f"MTCNN none {m['none']}; gap to RetinaFace ({args.policy}) mean "
              f"{g.get('mean', float('nan')):.4f} median {g.get('median', float('nan')):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
