"""Wall time of the flagship suite (suites/paper.yaml), cold and warm, on this machine.

    python benchmarks/bench_paper.py [--folds 10] [--out FILE.json] [--keep DIR]

Runs ``facebench run suites/paper.yaml`` twice with one fresh, empty ``FACEBENCH_CACHE``:

* **cold**: nothing cached — every image is read, detected (four detectors) and aligned (four
  alignments), the int8 models are calibrated and quantized, the zoo models exported to ONNX,
  every embedding computed;
* **warm**: the same cache, a fresh output folder — detections, crops, embeddings, exports and
  quantized models are reused; the cost probes (latency, memory) always run again, since they
  are the measurement.

Each run is a subprocess of this interpreter with ``PYTHONPATH`` set to this tree, its own output
folder and history database, and ``LFW_FOLDS`` as given. Records wall time, every cell's status
and duration, the LFW accuracies (which must agree between cold and warm — a loud warning when
they do not), the load average before and after, cores and CPU model, to JSON (``--out``) and a
table on stdout. ``--keep DIR`` keeps the warm run's output folder (report, results.json) there.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench.io import atomic_write_json, read_json  # noqa: E402

SUITE = "suites/paper.yaml"
CLI = "import sys; from facebench.cli import main; sys.exit(main())"


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_env(shared: Path, folds: int, cache: Path, tmp: Path) -> dict[str, str]:
    """One run's environment: nothing inherited from facebench's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEBENCH_")}
    env.update(PYTHONPATH=str(ROOT), FACEBENCH_SHARED=str(shared), FACEBENCH_CACHE=str(cache),
               FACEBENCH_HISTORY=f"sqlite:///{tmp / 'history.db'}", LFW_FOLDS=str(folds),
               IRSE100_WEIGHTS="", IRESNET100_WEIGHTS="")
    return env


def one_run(label: str, env: dict[str, str], out: Path) -> dict[str, Any]:
    """``facebench run suites/paper.yaml`` into ``out``; its timings and cells."""
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLI, "run", SUITE, "--out", str(out),
                           "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 1: a cell failed; its record says why
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{label}: facebench run exited {proc.returncode}")
    results = read_json(out / "results.json")
    cells = {
        c["id"]: {"status": c.get("status"), "duration_s": c.get("duration_s"),
                  "reason": c.get("reason"),
                  "accuracy": (c.get("metrics") or {}).get("accuracy")}
        for c in results["cells"]
    }
    return {"run": label, "wall_s": round(wall, 1), "exit_code": proc.returncode,
            "load_avg_before": load_before, "load_avg_after": os.getloadavg(), "cells": cells}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument("--keep", type=Path, default=None, help="copy the warm run's output here")
    args = ap.parse_args(argv)
    if not (args.shared / "data" / "lfw" / "pairs.txt").is_file():
        raise SystemExit(f"{args.shared}: no data/lfw/pairs.txt (pass --shared)")
    with tempfile.TemporaryDirectory(prefix="bench-paper-") as t:
        tmp = Path(t)
        env = run_env(args.shared.resolve(), args.folds, tmp / "cache", tmp)
        runs = [one_run(label, env, tmp / label) for label in ("cold", "warm")]
        if args.keep is not None:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(tmp / "warm", args.keep)
    cold, warm = runs
    disagree = [cid for cid, c in cold["cells"].items()
                if c["accuracy"] is not None
                and c["accuracy"] != warm["cells"].get(cid, {}).get("accuracy")]
    if disagree:
        print(f"WARNING: accuracy differs between cold and warm runs: {disagree}",
              file=sys.stderr)
    record = {"suite": SUITE, "folds": args.folds, "cores": cores(), "cpu": cpu_model(),
              "python": sys.version.split()[0], "runs": runs, "accuracy_agrees": not disagree,
              "warm_over_cold": round(warm["wall_s"] / cold["wall_s"], 3)}
    print(f"{'run':6} {'wall s':>8} {'cells ok':>9} {'skipped':>8} {'failed':>7}")
    for r in runs:
        statuses = [c["status"] for c in r["cells"].values()]
        print(f"{r['run']:6} {r['wall_s']:8.1f} {statuses.count('ok'):9d} "
              f"{statuses.count('skipped'):8d} {statuses.count('failed'):7d}")
    print(f"warm / cold = {record['warm_over_cold']}  ({cores()} cores, {record['cpu']})")
    slowest = sorted(cold["cells"].items(), key=lambda kv: -(kv[1]["duration_s"] or 0))[:8]
    for cid, c in slowest:
        print(f"  cold {c['duration_s'] or 0:7.1f} s  {cid}")
    if args.out is not None:
        atomic_write_json(args.out, record)
    return 1 if disagree else 0


if __name__ == "__main__":
    raise SystemExit(main())
