"""pct_of_peak on the real models: every efficiency cell of suites/paper.yaml against the peaks
the same run measured (docs/results.md, "Measured peaks").

Runs ``facebench run suites/paper.yaml --only '*@efficiency*'`` into OUT (or reads an OUT a run
already wrote, ``--no-run``), prints the measured peaks with their method, then each cell's
precision, achieved rate, the peak it was divided by, pct_of_peak and batch-1 p50 with its
normalised figure, and exits 1 when a cell's pct_of_peak is above 100 % or flagged::

    python benchmarks/bench_pct_of_peak.py --out /tmp/paper-eff
    python benchmarks/bench_pct_of_peak.py --out /tmp/paper-eff --no-run   # read only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from facebench.results import load_results, metric_flag

ROOT = Path(__file__).resolve().parents[1]


def run(out: Path) -> None:
    subprocess.run([sys.executable, "-m", "facebench.cli", "run", str(ROOT / "suites/paper.yaml"),
                    "--only", "*@efficiency*", "--out", str(out), "--no-progress"], check=True)


def table(out: Path) -> int:
    """Print the peaks and the cells; the number of cells above 100 % or flagged."""
    results = load_results(out)
    env = results["environment"]
    print(f"load average before {env.get('load_avg')} after {env.get('load_avg_after')}")
    for key, p in (env.get("peaks") or {}).items():
        value = f"{p['gflops']:.1f} {p['unit']}" if p.get("gflops") else f"none ({p.get('error')})"
        print(f"peak {key:28s} {value:>14s}  {p.get('method')}")
    nominal = env.get("peak_nominal_upper_bound") or {}
    print(f"nominal (formula, not divided by): {nominal.get('how')}")
    bad = 0
    print(f"{'cell':46s} {'prec':5s} {'achieved':>9s} {'peak':>8s} {'% peak':>7s} "
          f"{'p50 ms':>9s} {'norm ms':>9s}")
    for c in results["cells"]:
        if c["kind"] != "efficiency" or c["status"] != "ok":
            continue
        m, rate = c["metrics"], c["details"]["rate"]["peak"]
        flag = metric_flag(c, "pct_of_peak")
        pct = m.get("pct_of_peak")
        bad += bool(flag) or (pct is not None and pct > 100)
        shown = "FLAGGED" if flag else "n/a" if pct is None else f"{pct:.1f}"
        print(f"{c['id']:46s} {rate['precision']:5s} {m['gflops_per_s'] or 0:9.1f} "
              f"{rate['measured'].get('gflops') or 0:8.1f} {shown:>7s} "
              f"{m['latency.p50_ms']:9.2f} {m.get('latency.p50_norm_ms') or 0:9.2f}")
    print(f"{bad} cell(s) above 100 % or flagged")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-run", action="store_true", help="read OUT, run nothing")
    args = ap.parse_args()
    if not args.no_run:
        run(args.out)
    return 1 if table(args.out) else 0


if __name__ == "__main__":
    sys.exit(main())
