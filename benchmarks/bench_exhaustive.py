"""Exhaustive LFW from cached embeddings: scoring and metrics of all 29.6 M pairs of the 7,701
images, wall time and peak RSS.

    python benchmarks/bench_exhaustive.py [--suite suites/paper.yaml]
        [--protocol lfw-all-retinaface] [--model mobilefacenet] [--bootstrap 1000]

Step 1 (not timed): the embeddings of the protocol's cell through facebench's own pipeline and
embedding cache (the real MobileFaceNet ONNX on ../shared; computed once, then a cache hit).
Step 2 (timed, in a fresh child process so its peak RSS is its own): the pair layout, the
float32 scores of every pair from the embedding matrix in blocks, every metric of the exhaustive
protocol (ROC, AUC, EER, TAR@FAR with support / rule-of-30 counts, FNMR@FMR) with the identity-
bootstrap CIs of TAR@FAR, and the compact binary files (scores.npy + pairs.npz). Prints the wall
seconds and the child's peak RSS (ru_maxrss), with the issue's bounds (<= 60 s, < 3 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _embed(suite_path: Path, protocol: str, model: str, work: Path) -> None:
    from facebench.datasets.load import load_spec_identities
    from facebench.paths import default_cache_dir
    from facebench.pipeline.context import CellContext
    from facebench.pipeline.embeddings import embed_images
    from facebench.plan import plan
    from facebench.suite import load_suite

    suite = load_suite(suite_path)
    cells = [c for c in plan(suite) if c.protocol.id == protocol and c.model.id == model]
    if not cells:
        raise SystemExit(f"no cell of protocol {protocol} with model {model} in {suite_path}")
    cell = cells[0]
    ids = load_spec_identities(cell.protocol.dataset)
    ctx = CellContext(out_dir=work, cell_dir=work / "cell", cache_dir=default_cache_dir())
    t0 = time.perf_counter()
    e = embed_images(cell, ids.images, ids.root, ctx)
    hit = e.acquire.get("embedding_cache", {}).get("hit")
    print(f"embeddings: {cell.id}: {e.emb.shape[0]} images x {e.emb.shape[1]}, "
          f"{int(e.valid.sum())} acquired, cache {'hit' if hit else 'miss'} "
          f"({time.perf_counter() - t0:.1f} s, not part of the measurement)")
    np.save(work / "emb.npy", e.emb)
    np.save(work / "identity.npy", ids.labels)
    (work / "cell.json").write_text(json.dumps({"far": list(cell.protocol.far_targets)}))


def _measure(work: Path, bootstrap: int) -> None:
    """The timed part (child process)."""
    from facebench.metrics import far_key
    from facebench.metrics.exhaustive import exhaustive_metrics, layout, score_pairs

    emb = np.load(work / "emb.npy")
    identity = np.load(work / "identity.npy")
    far = json.loads((work / "cell.json").read_text())["far"]
    t0 = time.perf_counter()
    pairs = layout(identity)
    scores = score_pairs(emb, pairs)
    t_score = time.perf_counter() - t0
    result = exhaustive_metrics(scores, pairs, far, bootstrap=bootstrap, seed=0)
    t_metrics = time.perf_counter() - t0 - t_score
    np.save(work / "scores.npy", scores)
    np.savez(work / "pairs.npz", image_identity=identity.astype(np.int32))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    m, d = result.metrics, result.details
    print(json.dumps({"pairs": pairs.n_pairs, "genuine": d["n_genuine"],
                      "impostor": d["n_impostor"], "score_s": round(t_score, 2),
                      "metrics_s": round(t_metrics, 2), "wall_s": round(wall, 2),
                      "peak_rss_bytes": peak,
                      "eer": m["eer"], "auc": m["auc"],
                      "tar_at_far": {far_key(r["far"]): [r["tar"], r["supported"],
                                                         r["false_accepts"], r["false_rejects"],
                                                         r["rule_of_30"]]
                                     for r in d["tar_at_far"]},
                      "ci": {k: v for k, v in m.items() if "_ci_" in k}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", type=Path, default=ROOT / "suites" / "paper.yaml")
    ap.add_argument("--protocol", default="lfw-all-retinaface")
    ap.add_argument("--model", default="mobilefacenet")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _measure(args.child, args.bootstrap)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _embed(args.suite, args.protocol, args.model, work)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, __file__, "--child", str(work), "--bootstrap",
                              str(args.bootstrap)], env=env, check=True, capture_output=True,
                             text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
    gb = r["peak_rss_bytes"] / 1e9
    print(f"pairs: {r['pairs']:,} ({r['genuine']:,} genuine, {r['impostor']:,} impostor)")
    print(f"scoring: {r['score_s']:.1f} s, metrics + {args.bootstrap} identity-bootstrap "
          f"replicates: {r['metrics_s']:.1f} s")
    print(f"wall (scoring + metrics + binary files): {r['wall_s']:.1f} s (bound 60 s: "
          f"{'ok' if r['wall_s'] <= 60 else 'OVER'})")
    print(f"peak RSS of the measuring process: {gb:.2f} GB (bound 3 GB: "
          f"{'ok' if gb < 3 else 'OVER'})")
    print(f"EER {r['eer']:.5f}  AUC {r['auc']:.6f}")
    for x, (tar, sup, fa, fr, r30) in r["tar_at_far"].items():
        lo, hi = r["ci"].get(f"tar@far={x}_ci_low"), r["ci"].get(f"tar@far={x}_ci_high")
        print(f"  TAR@FAR={x}: {tar:.4f}  supported={sup}  false accepts {fa}, false rejects "
              f"{fr}, rule of 30: {r30}  CI {lo} .. {hi}")


if __name__ == "__main__":
    main()
