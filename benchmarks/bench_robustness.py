"""The robustness must-show: suites/robustness.yaml run twice (cold, then warm), checked equal.

    python benchmarks/bench_robustness.py [--out runs/robustness] [--cache DIR]
        [--pairs-per-fold N] [--models ID,ID] [--levels GLOB,GLOB]

Full (default): the four models × (clean + resolution 64/32/16/8 + mask + sunglasses + JPEG
50/20/10) on LFW View 2, 10 folds, 6,000 pairs. ``--pairs-per-fold N`` runs the first N genuine
and N impostor pairs of each of the 10 folds instead (a ``pair_csv`` subset, still 10-fold);
``--models`` keeps some models, ``--levels`` some levels (globs on the level name, e.g.
``resolution-*,jpeg-10``; the clean protocol always runs). The second run must reuse every
cache (no detection, no embedding) and give byte-identical ``scores.csv`` and identical
metrics; the script prints both wall times and, per level, each model's accuracy with its
bootstrap CI, FtA and rank, and exits 1 when the runs differ.

Measured on the 2-core development machine while other work loaded it (load average ~10):
``--pairs-per-fold 15 --models mobilefacenet,sface-int8 --levels
'resolution-*,occlusion-mask,jpeg-10'`` (300 pairs, 463 images, 14 cells) took 992 s cold (clean
crops already cached; each degraded cell 40–110 s) and 56 s warm, identical. The full run
degrades 7,701 images per level and model (36 level cells + 4 clean): expect roughly 8–15 hours
cold on 2 cores, minutes warm.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "robustness.yaml"


def shared() -> Path:
    return Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")).resolve()


def subset_rows(per_fold: int) -> list[str]:
    """The first ``per_fold`` genuine and impostor pairs of each LFW View 2 fold as pair_csv."""
    body = [ln.split() for ln in (shared() / "data" / "lfw" / "pairs.txt").read_text()
            .splitlines()[1:] if ln.strip()]

    def img(name: str, n: str) -> str:
        return f"{name}/{name}_{int(n):04d}.jpg"

    rows = ["path1,path2,label,fold"]
    for f in range(10):
        block = body[600 * f:600 * (f + 1)]
        rows += [f"{img(p[0], p[1])},{img(p[0], p[2])},1,{f}" for p in block[:per_fold]]
        rows += [f"{img(p[0], p[1])},{img(p[2], p[3])},0,{f}"
                 for p in block[300:300 + per_fold]]
    return rows


def make_suite(out: Path, per_fold: int | None) -> Path:
    """suites/robustness.yaml, with the pair subset when asked, written into ``out``."""
    text = SUITE.read_text(encoding="utf-8").replace("${FACEBENCH_SHARED:-../../shared}",
                                                     str(shared()))
    data = yaml.safe_load(text)
    if per_fold:
        pairs = out / "pairs.csv"
        pairs.write_text("\n".join(subset_rows(per_fold)) + "\n", encoding="utf-8")
        for p in data["protocols"]:
            p["dataset"] = {"kind": "pair_csv", "pairs": str(pairs),
                            "images": str(shared() / "data" / "lfw" / "images")}
    path = out / "robustness.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def only_args(suite: Path, models: list[str] | None, levels: list[str] | None) -> list[str]:
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    args = []
    for p in data["protocols"]:
        names = [f"{c['name']}-{v if isinstance(v, str) else format(v, 'g')}"
                 for c in p["degrade"]["corruptions"] for v in c["levels"]]
        keep = [n for n in names if levels is None or any(fnmatch.fnmatch(n, g) for g in levels)]
        for m in p["models"]:
            if models is None or m in models:
                args += ["--only", f"{m}@*@{p['id']}"]
                args += [a for n in keep for a in ("--only", f"{m}@*@{p['id']}+{n}")]
    return args


def run(suite: Path, out: Path, only: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "facebench.cli", "run", str(suite), "--out",
                          str(out), "--no-progress", *only], env=env, cwd=ROOT)
    if res.returncode not in (0, 3):
        raise SystemExit(f"facebench run exited {res.returncode}")
    return time.perf_counter() - t0


def cells(out: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in json.loads((out / "results.json").read_text())["cells"]}


def compare(a: Path, b: Path) -> list[str]:
    """Differences between two runs: scores.csv bytes, accuracy/TAR/FtA, cache use."""
    problems = []
    ca, cb = cells(a), cells(b)
    for ident, c in ca.items():
        d = cb.get(ident)
        if d is None or c["status"] != "ok" or d["status"] != "ok":
            problems.append(f"{ident}: not ok in both runs")
            continue
        s = c["artifacts"]["scores"]
        if (a / s).read_bytes() != (b / d["artifacts"]["scores"]).read_bytes():
            problems.append(f"{ident}: scores.csv differs")
        for k in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "fta_pairs", "auc"):
            if c["metrics"].get(k) != d["metrics"].get(k):
                problems.append(f"{ident}: {k} {c['metrics'].get(k)} vs {d['metrics'].get(k)}")
        if d["details"]["acquire"].get("embedding_cache", {}).get("hit") is not True:
            problems.append(f"{ident}: second run missed the embedding cache")
    return problems


def table(out: Path) -> str:
    """Per level: each model's accuracy [CI], FtA pairs and rank by accuracy."""
    by_level: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for c in cells(out).values():
        if c["status"] != "ok":
            continue
        level = c["protocol"].partition("+")[2] or "clean"
        by_level.setdefault(level, []).append((c["model"], c["metrics"]))
    lines = []
    for level, rows in by_level.items():
        rows.sort(key=lambda r: -r[1]["accuracy"])
        for model, m in rows:  # equal accuracies share a rank
            rank = 1 + sum(1 for _, o in rows if o["accuracy"] > m["accuracy"])
            ci = (f"[{m['accuracy_ci_low']:.4f}, {m['accuracy_ci_high']:.4f}]"
                  if m.get("accuracy_ci_low") is not None else "")
            lines.append(f"{level:24s} {rank} {model:14s} acc {m['accuracy']:.4f} {ci} "
                         f"FtA pairs {m['fta_pairs']}/{m['pairs']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "robustness")
    ap.add_argument("--cache", type=Path, default=None,
                    help="cache folder (default: $FACEBENCH_CACHE or ~/.cache/facebench)")
    ap.add_argument("--pairs-per-fold", type=int, default=None)
    ap.add_argument("--models", default=None)
    ap.add_argument("--levels", default=None)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    suite = make_suite(args.out, args.pairs_per_fold)
    only = only_args(suite, args.models.split(",") if args.models else None,
                     args.levels.split(",") if args.levels else None)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FACEBENCH_SHARED": str(shared())}
    if args.cache:
        env["FACEBENCH_CACHE"] = str(args.cache)
    cold = run(suite, args.out / "run1", only, env)
    warm = run(suite, args.out / "run2", only, env)
    print(table(args.out / "run1"))
    problems = compare(args.out / "run1", args.out / "run2")
    print(f"cold {cold:.0f} s, warm {warm:.0f} s; second run "
          + ("identical (scores.csv byte-identical, metrics equal, embedding cache hit)"
             if not problems else "DIFFERS:\n  " + "\n  ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
