"""Write a realistic results.json (docs/results.md) from REAL measurements, in a fresh process.

A fast stand-in for ``facebench run`` (≈1 s instead of ≈5 s) for the tests that need many fresh
runs; the environment block and busy flag come from the runner's own ``facebench.environment``.
The efficiency cell times a real
onnxruntime session of ``mobilefacenet_128d.onnx`` (warm-up, then ``--samples`` timed calls,
``time.perf_counter_ns``); ``--work N`` makes every timed call embed a batch of N images
(2 = the image and its flip), i.e. a genuine TTA-style slowdown of the measured operation. With
``--verify-pairs K`` a verification cell scores K same + K different pairs from each LFW fold
(centre crop, no detector) and reports the real 10-fold accuracy.

    python tests/gates/make_run.py OUT --run-id ID [--branch main] [--threads 2] [--samples 150]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from facebench import environment

SHARED = Path(os.environ.get("FACEBENCH_SHARED", Path(__file__).resolve().parents[3] / "shared"))
MODEL = SHARED / "models" / "mobilefacenet_128d.onnx"


def environment_block(salt: str) -> dict:
    """The runner's own environment block; ``salt`` simulates another machine."""
    env = environment.fingerprint()
    if salt:
        env["fingerprint"] = hashlib.sha256((env["fingerprint"] + salt).encode()).hexdigest()
    return env


def session(threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    # Spinning worker threads collapse (3-4x slower, bimodal) when another process holds a core
    # of this shared 2-core machine; blocking threads keep identical runs comparable.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(MODEL), opts, providers=["CPUExecutionProvider"])


def latency_cell(threads: int, samples: int, work: int, seed: int) -> dict:
    """Real timings of one embedding call (``work`` images per call)."""
    load_before, t_cell = environment.load_avg(), time.monotonic()
    t0 = time.perf_counter_ns()
    sess = session(threads)
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(seed).uniform(-1, 1, (work, 3, 112, 112)).astype(np.float32)
    sess.run(None, {name: x})
    cold = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(10):
        sess.run(None, {name: x})
    ms = []
    wall0 = time.perf_counter_ns()
    for _ in range(samples):
        s = time.perf_counter_ns()
        sess.run(None, {name: x})
        ms.append((time.perf_counter_ns() - s) / 1e6)
    wall = (time.perf_counter_ns() - wall0) / 1e9
    a = np.asarray(ms)
    stats = {
        "mean_ms": a.mean(),
        "std_ms": a.std(),
        "min_ms": a.min(),
        **{f"p{q}_ms": np.percentile(a, q) for q in (50, 90, 95, 99)},
    }
    params = sum(int(np.prod(t.dims)) for t in onnx.load(str(MODEL)).graph.initializer)
    metrics: dict = {
        "params": params,
        "model_size_bytes": MODEL.stat().st_size,
        "cold_start_ms": cold,
    }
    metrics |= {f"latency.b1.{k}": float(v) for k, v in stats.items()}
    metrics |= {"latency.b1.samples": samples, "throughput.b1": samples / wall}
    metrics |= {f"latency.{q}_ms": float(stats[f"{q}_ms"]) for q in ("p50", "p90", "p99")}
    metrics |= {"gmac": None, "gflops": None, "gflops_per_s": None, "pct_of_peak": None}
    return {
        "id": "mobilefacenet@cpu-ort@efficiency",
        "slug": "mobilefacenet__cpu-ort__efficiency",
        "model": "mobilefacenet",
        "device": "cpu-ort",
        "protocol": "efficiency",
        "kind": "efficiency",
        "status": "ok",
        "reason": None,
        "error": None,
        "metrics": metrics,
        "details": {
            "threads": {"intra_op": threads, "inter_op": 1, "spinning": False},
            "engine": "onnxruntime",
            "work_per_call": work,
            "latency": {"1": {"samples_ms": ms}},
            "load_avg_before": load_before,
            "load_avg_after": environment.load_avg(),
            "busy": environment.is_busy(
                load_before,
                environment.load_avg(),
                environment.cores_used(),
                own_threads=threads,
                duration_s=time.monotonic() - t_cell,
            ),
        },
        "artifacts": {},
    }


def lfw_pairs(k: int) -> list[tuple[str, str, int, int]]:
    """K same + K different pairs from each of the 10 folds: (img1, img2, label, fold)."""
    lines = (SHARED / "data" / "lfw" / "pairs.txt").read_text().splitlines()[1:]
    out = []
    for fold in range(10):
        block = lines[fold * 600 : (fold + 1) * 600]
        for ln in block[:k] + block[300 : 300 + k]:
            p = ln.split("\t")
            if len(p) == 3:
                a, b, label = (p[0], int(p[1])), (p[0], int(p[2])), 1
            else:
                a, b, label = (p[0], int(p[1])), (p[2], int(p[3])), 0
            out.append((*(f"{n}/{n}_{i:04d}.jpg" for n, i in (a, b)), label, fold))
    return out


def cv_accuracy(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> list[float]:
    """Per-fold accuracy with the threshold chosen on the other folds (docs/metrics.md)."""
    accs = []
    for k in range(10):
        tr, te = folds != k, folds == k
        cands = np.unique(scores[tr])
        acc = [((scores[tr] >= t) == labels[tr]).mean() for t in cands]
        t = cands[int(np.argmax(acc))]
        accs.append(float(((scores[te] >= t) == labels[te]).mean()))
    return accs


def verification_cell(k: int, threads: int) -> dict:
    import cv2

    pairs = lfw_pairs(k)
    names = sorted({n for p in pairs for n in p[:2]})
    root = SHARED / "data" / "lfw" / "images"
    crops = []
    for n in names:
        img = cv2.imread(str(root / n))[61:189, 61:189]  # central 128 px of 250
        rgb = cv2.cvtColor(cv2.resize(img, (112, 112)), cv2.COLOR_BGR2RGB)
        crops.append(((rgb.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1))
    sess = session(threads)
    name = sess.get_inputs()[0].name
    x = np.stack(crops)
    emb = np.concatenate([sess.run(None, {name: x[i : i + 64]})[0] for i in range(0, len(x), 64)])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    idx = {n: i for i, n in enumerate(names)}
    scores = np.array([emb[idx[a]] @ emb[idx[b]] for a, b, _, _ in pairs])
    labels = np.array([p[2] for p in pairs], dtype=bool)
    folds = np.array([p[3] for p in pairs])
    accs = cv_accuracy(scores, labels, folds)
    return {
        "id": "mobilefacenet@cpu-ort@lfw",
        "slug": "mobilefacenet__cpu-ort__lfw",
        "model": "mobilefacenet",
        "device": "cpu-ort",
        "protocol": "lfw",
        "kind": "verification",
        "status": "ok",
        "reason": None,
        "error": None,
        "metrics": {
            "accuracy": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs)),
            "pairs": len(pairs),
            "images": len(names),
            "eer": None,
        },
        "details": {
            "folds": [{"fold": i, "accuracy": a} for i, a in enumerate(accs)],
            "preprocess": {"crop": "center 128 -> 112", "detector": None},
            "flip": False,
        },
        "artifacts": {},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--run-id", required=True)
    ap.add_argument("--branch", default="main")
    ap.add_argument("--commit", default="0" * 40)
    ap.add_argument("--suite", default="ci-smoke")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--work", type=int, default=1, help="images per timed call (2 = with flip)")
    ap.add_argument("--verify-pairs", type=int, default=0)
    ap.add_argument("--machine-salt", default="")
    ap.add_argument("--gates", default="[]", help="JSON list stored as suite.gates")
    ap.add_argument("--fail-cell", action="store_true", help="add a failed cell (real exception)")
    args = ap.parse_args(argv)

    started = datetime.now(UTC)
    env = environment_block(args.machine_salt)
    cells = [latency_cell(args.threads, args.samples, args.work, seed=0)]
    if args.verify_pairs:
        cells.append(verification_cell(args.verify_pairs, args.threads))
    if args.fail_cell:
        try:
            session(1).run(None, {"input": np.zeros((1, 3, 64, 64), np.float32)})
            raise AssertionError("wrong input shape was accepted")
        except Exception as exc:  # a real ORT error, recorded as the runner would
            cells.append(
                {
                    "id": "mobilefacenet@cpu-ort@broken",
                    "slug": "mobilefacenet__cpu-ort__broken",
                    "model": "mobilefacenet",
                    "device": "cpu-ort",
                    "protocol": "broken",
                    "kind": "verification",
                    "status": "failed",
                    "reason": None,
                    "error": {
                        "type": type(exc).__name__,
                        "message": str(exc)[:300],
                        "traceback": "",
                    },
                    "metrics": {},
                    "details": {},
                    "artifacts": {},
                }
            )
    env["load_avg_after"] = environment.load_avg()
    suite_text = f"name: {args.suite}\n"
    results = {
        "schema_version": 1,
        "facebench_version": "0.1.0",
        "run": {
            "id": args.run_id,
            "started": started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "command": [sys.executable, *sys.argv],
            "suite_path": f"/suites/{args.suite}.yaml",
            "suite_sha256": hashlib.sha256(suite_text.encode()).hexdigest(),
            "suite_text": suite_text,
            "git": {"commit": args.commit, "branch": args.branch, "dirty": False},
        },
        "suite": {"name": args.suite, "gates": json.loads(args.gates)},
        "environment": env,
        "datasets": {},
        "cells": cells,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = args.out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, args.out / "results.json")


if __name__ == "__main__":
    main()
