"""Build realistic ``results.json`` dicts (docs/results.md) for the report tests.

Nothing is hard-coded: verification metrics are computed from synthetic normal score arrays
(sklearn ROC, the 10-fold CV threshold rule of docs/metrics.md), efficiency metrics by timing
real ONNX Runtime sessions and numpy forward passes of small MLPs, the environment from this
machine, and the failed cell's error from a real exception.
"""

from __future__ import annotations

import hashlib
import os
import resource
import time
import traceback
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.metrics import roc_curve
from threadpoolctl import threadpool_limits

from facebench.environment import fingerprint, is_busy

FAR_TARGETS = ["1e-1", "1e-2", "1e-3", "1e-4"]
FOLDS, PER_FOLD = 10, 300  # LFW View 2: 10 folds × (300 genuine + 300 impostor)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


def _cv_threshold(scores: np.ndarray, genuine: np.ndarray) -> float | None:
    """Max-accuracy threshold over the distinct scores, ties toward the smallest."""
    cand = np.unique(scores[np.isfinite(scores)])
    if cand.size == 0:
        return None
    g = np.sort(scores[genuine & np.isfinite(scores)])
    i = np.sort(scores[~genuine & np.isfinite(scores)])
    accepted_g = g.size - np.searchsorted(g, cand, side="left")
    rejected_i = np.searchsorted(i, cand, side="left") + np.count_nonzero(~genuine) - i.size
    correct = accepted_g + rejected_i
    return float(cand[int(np.argmax(correct))])


def verification_cell(model: str, device: str, protocol: str, genuine_mean: float, seed: int,
                      fta_pairs: int = 0, bootstrap: int = 0) -> dict[str, Any]:
    """A verification cell computed from synthetic cosine scores (``fta_pairs`` FtA pairs)."""
    rng = np.random.default_rng(seed)
    n = FOLDS * 2 * PER_FOLD
    fold = np.repeat(np.arange(FOLDS), 2 * PER_FOLD)
    genuine = np.tile(np.r_[np.ones(PER_FOLD, bool), np.zeros(PER_FOLD, bool)], FOLDS)
    scores = np.where(genuine, rng.normal(genuine_mean, 0.12, n), rng.normal(0.05, 0.1, n))
    scores = np.clip(scores, -1, 1)
    fta = np.zeros(n, bool)
    fta[rng.choice(n, size=fta_pairs, replace=False)] = True
    scores[fta] = np.nan
    t0 = time.perf_counter()
    folds, correct = [], np.zeros(n, bool)
    tp = fp = tn = fn = 0
    for k in range(FOLDS):
        test = fold == k
        t = _cv_threshold(scores[~test], genuine[~test])
        acc_pred = np.zeros(test.sum(), bool) if t is None else np.nan_to_num(
            scores[test], nan=-np.inf) >= t
        truth = genuine[test]
        correct[test] = acc_pred == truth
        tp += int(np.sum(acc_pred & truth))
        fp += int(np.sum(acc_pred & ~truth))
        tn += int(np.sum(~acc_pred & ~truth))
        fn += int(np.sum(~acc_pred & truth))
        folds.append({"fold": k, "threshold": t, "accuracy": float(correct[test].mean())})
    fold_acc = np.array([f["accuracy"] for f in folds])
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    metrics: dict[str, Any] = {
        "accuracy": float(fold_acc.mean()), "accuracy_std": float(fold_acc.std(ddof=0)),
        "precision": precision, "recall": recall, "specificity": _ratio(tn, tn + fp),
        "f1": None if not precision or not recall else 2 * precision * recall / (
            precision + recall),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }
    if bootstrap:
        means = [correct[rng.integers(0, n, n)].mean() for _ in range(bootstrap)]
        metrics["accuracy_ci_low"], metrics["accuracy_ci_high"] = (
            float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))
    details: dict[str, Any] = {"folds": folds, "tar_at_far": []}
    n_imp = int(np.count_nonzero(~genuine))
    valid = ~fta
    if valid.any():
        # FtA pairs are rejects at every threshold: score them below everything, drop that end.
        far, tar, thr = roc_curve(genuine, np.where(valid, scores, -10.0))
        keep = thr > -10.0
        far, tar, thr = far[keep], tar[keep], thr[keep]
        metrics["auc"] = float(np.trapezoid(tar, far))
        e = int(np.argmin(np.abs(far - (1 - tar))))
        metrics["eer"] = float((far[e] + 1 - tar[e]) / 2)
        metrics["eer_threshold"] = float(thr[e])
        for key in FAR_TARGETS:
            i = int(np.searchsorted(far, float(key), side="right")) - 1
            row = {"far": float(key), "tar": float(tar[i]), "far_achieved": float(far[i]),
                   "threshold": float(min(thr[i], 1.0)), "n_impostor": n_imp,
                   "supported": n_imp * float(key) >= 10}
            details["tar_at_far"].append(row)
            metrics[f"tar@far={key}"] = row["tar"]
            metrics[f"far_achieved@far={key}"] = row["far_achieved"]
            metrics[f"threshold@far={key}"] = row["threshold"]
        step = max(1, far.size // 1000)
        details["roc"] = {"far": far[::step].tolist(), "tar": tar[::step].tolist()}
        edges = np.linspace(-0.4, 1.0, 57)
        details["score_hist"] = {
            side: {"edges": edges.tolist(),
                   "counts": np.histogram(scores[valid & mask], edges)[0].tolist()}
            for side, mask in (("genuine", genuine), ("impostor", ~genuine))}
    else:
        metrics.update({"auc": None, "eer": None, "eer_threshold": None})
        for key in FAR_TARGETS:
            metrics[f"tar@far={key}"] = metrics[f"far_achieved@far={key}"] = None
            metrics[f"threshold@far={key}"] = None
    fta_idx = np.flatnonzero(fta)
    details["fta_images_list"] = [
        {"image": f"Person_{i % 97}/Person_{i % 97}_{i:04d}.jpg", "reason": "no face detected"}
        for i in fta_idx]
    metrics.update({"fta_images": int(fta.sum()), "fta_pairs": int(fta.sum()),
                    "fta_rate": float(fta.mean()), "pairs": n, "images": 7701})
    details.update({
        "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0, "input_size": [112, 112]},
        "detector": {"name": "yunet", "score_threshold": 0.6}, "flip": True,
        "align": {"estimator": "cv2.estimateAffinePartial2D", "size": 112},
    })
    return _cell(model, device, protocol, "verification", metrics, details,
                 time.perf_counter() - t0)


def _cell(model: str, device: str, protocol: str, kind: str, metrics: dict[str, Any] | None,
          details: dict[str, Any] | None, duration: float, status: str = "ok",
          reason: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    cid = f"{model}@{device}@{protocol}"
    slug = "".join(ch if ch.isalnum() or ch in "._+-" else "_" for ch in cid.replace("@", "__"))
    return {"id": cid, "slug": slug, "model": model, "device": device, "protocol": protocol,
            "kind": kind, "status": status, "reason": reason, "error": error,
            "started": "2026-11-28T01:02:03+00:00", "duration_s": duration,
            "metrics": metrics or {}, "details": details or {},
            "artifacts": {"scores": f"cells/{slug}/scores.csv"} if kind == "verification"
            else {}}


def _mlp_onnx(d_in: int, hidden: int, d_out: int, seed: int) -> tuple[bytes, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((d_in, hidden)) / np.sqrt(d_in)).astype(np.float32)
    w2 = (rng.standard_normal((hidden, d_out)) / np.sqrt(hidden)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", d_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", d_out])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), [w1, w2]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def efficiency_cell(model: str, device: str, protocol: str, hidden: int, seed: int,
                    batches: tuple[int, ...] = (1, 4), iters: int = 30) -> dict[str, Any]:
    """Time a real forward pass: ONNX Runtime on ``cpu-ort``, numpy otherwise (one thread
    each, like intra_op = 1: BLAS threads spin and thrash on a shared machine)."""
    with threadpool_limits(1):
        return _efficiency_cell(model, device, protocol, hidden, seed, batches, iters)


def _efficiency_cell(model: str, device: str, protocol: str, hidden: int, seed: int,
                     batches: tuple[int, ...], iters: int) -> dict[str, Any]:
    d_in, d_out = 3 * 112 * 112, 128  # an aligned face crop in, a 128-d embedding out
    rss0 = _rss_bytes()
    t0 = time.perf_counter()
    blob, (w1, w2) = _mlp_onnx(d_in, hidden, d_out, seed)
    x1 = np.random.default_rng(seed).standard_normal((1, d_in)).astype(np.float32)
    if device == "cpu-ort":
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        sess = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> Any:
            return sess.run(None, {"x": x})
        engine = "onnxruntime"
    else:
        def run(x: np.ndarray) -> Any:
            return np.maximum(x @ w1, 0) @ w2
        engine = "numpy"
    run(x1)
    cold = (time.perf_counter() - t0) * 1e3
    gmac = (d_in * hidden + hidden * d_out) / 1e9
    metrics: dict[str, Any] = {
        "params": int(w1.size + w2.size), "gmac": gmac, "gflops": 2 * gmac,
        "model_size_bytes": len(blob), "cold_start_ms": cold}
    details: dict[str, Any] = {"threads": {"intra_op": 1, "inter_op": 1}, "engine": engine,
                               "latency": {}, "compute": {"skipped_ops": {}, "counter": "shapes"}}
    for b in batches:
        x = np.repeat(x1, b, axis=0)
        for _ in range(3):
            run(x)
        samples = []
        wall0 = time.perf_counter()
        for _ in range(iters):
            s = time.perf_counter_ns()
            run(x)
            samples.append((time.perf_counter_ns() - s) / 1e6)
        wall = time.perf_counter() - wall0
        arr = np.array(samples)
        p = f"latency.b{b}."
        metrics.update({p + "mean_ms": float(arr.mean()), p + "std_ms": float(arr.std()),
                        p + "min_ms": float(arr.min()), p + "samples": len(samples),
                        f"throughput.b{b}": b * iters / wall})
        for q in (50, 90, 95, 99):
            metrics[f"{p}p{q}_ms"] = float(np.percentile(arr, q))
        details["latency"][str(b)] = {"samples_ms": samples}
    for q in (50, 90, 99):
        metrics[f"latency.p{q}_ms"] = metrics[f"latency.b1.p{q}_ms"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    top = batches[-1]  # like the runner: the compute rate at the largest batch
    metrics.update({"memory.peak_rss_bytes": peak,
                    "memory.peak_rss_delta_bytes": max(0, _rss_bytes() - rss0),
                    "gflops_per_s": metrics["gflops"] * top / (
                        metrics[f"latency.b{top}.p50_ms"] / 1e3),
                    "pct_of_peak": None})
    details["rate"] = {"metric_batch": top, "latency": "p50", "peak": None}
    details["busy"] = is_busy(list(os.getloadavg()), None, 1)
    return _cell(model, device, protocol, "efficiency", metrics, details,
                 time.perf_counter() - t0)


def failed_cell(model: str, device: str, protocol: str) -> dict[str, Any]:
    """A cell whose model file does not load (a real ONNX Runtime error)."""
    try:
        ort.InferenceSession(b"not an onnx model", providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 — we record whatever the engine raised
        error = {"type": type(exc).__name__, "message": str(exc),
                 "traceback": traceback.format_exc()}
    return _cell(model, device, protocol, "verification", None, None, 0.01, "failed",
                 error=error)


def environment(busy: bool | None = None) -> dict[str, Any]:
    """This machine's real fingerprint (as the runner records it); ``busy`` overrides the flag."""
    env = fingerprint()
    env["load_avg_before"], env["load_avg_after"] = env["load_avg"], list(os.getloadavg())
    if busy is not None:
        env["busy"] = busy
    return env


SUITE_TEXT = """name: {name}
models:
  - {{id: mobilefacenet, source: onnx, path: mobilefacenet_128d.onnx}}
devices:
  - {{id: cpu-ort, engine: onnxruntime, batch_sizes: [1, 4]}}
protocols:
  - {{id: lfw, kind: verification, dataset: {{pairs: pairs.txt, images: images}}}}
  - {{id: speed, kind: efficiency, min_iters: 30}}
"""


def build_results(seed: int = 0, suite_name: str = "lfw-smoke",
                  models: tuple[tuple[str, float, int], ...] = (
                      ("mobilefacenet", 0.62, 24), ("arcface-r18", 0.66, 64),
                      ("<script>alert(1)</script>", 0.45, 8)),
                  busy: bool | None = None) -> dict[str, Any]:
    """A whole run: ``models`` are (id, genuine score mean, MLP hidden width) triples."""
    cells = []
    for i, (model, mean, _) in enumerate(models):
        cells.append(verification_cell(model, "cpu-ort", "lfw", mean, seed * 100 + i,
                                       fta_pairs=3 * i, bootstrap=200 if i == 0 else 0))
    cells.append(verification_cell("all-fta", "cpu-ort", "lfw", 0.6, seed, fta_pairs=6000))
    cells.append(failed_cell("broken-onnx", "cpu-ort", "lfw"))
    for i, (model, _, hidden) in enumerate(models):
        for device in ("cpu-ort", "cpu-numpy"):
            cells.append(efficiency_cell(model, device, "speed", hidden, seed * 100 + i))
    cells.append(_cell("mobilefacenet", "cuda-trt", "speed", "efficiency", None, None, 0.0,
                       "skipped", reason="CUDA not available on this machine"))
    text = SUITE_TEXT.format(name=suite_name)
    pairs_bytes = f"{FOLDS}\t{PER_FOLD}\n".encode()
    return {
        "schema_version": 1, "facebench_version": "0.1.0",
        "run": {"id": f"20261128T0{seed}0203Z-3f2a9{seed}",
                "started": f"2026-11-28T0{seed}:02:03+00:00",
                "finished": f"2026-11-28T0{seed}:09:41+00:00",
                "command": ["facebench", "run", "suites/lfw smoke.yaml", "--out", "runs/x"],
                "suite_path": "/abs/suites/lfw smoke.yaml",
                "suite_sha256": hashlib.sha256(text.encode()).hexdigest(), "suite_text": text,
                "git": {"commit": hashlib.sha1(str(seed).encode()).hexdigest(), "branch": "main",
                        "dirty": False}},
        "suite": {"name": suite_name, "report": {"title": None}},
        "environment": environment(busy),
        "datasets": {"lfw": {"kind": "lfw_pairs", "images": 7701, "pairs": FOLDS * 2 * PER_FOLD,
                             "pairs_sha256": hashlib.sha256(pairs_bytes).hexdigest()}},
        "cells": cells,
    }
