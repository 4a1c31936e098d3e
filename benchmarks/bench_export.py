"""Export every zoo architecture to ONNX and compare cost counters (not run in CI).

For each model: params (torch), fvcore GMAC, ONNX-graph GMAC and params of an unfolded export
(``fold_bn=False``: must equal fvcore) and of the deployable BN-folded export, the torch/ORT
parity of the folded export, and the export time. Prints a markdown table::

    python benchmarks/bench_export.py                     # all models (IResNet-200: ~0.5 GB file)
    python benchmarks/bench_export.py mobilefacenet mbf   # a subset
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from facebench.probes.compute import count_onnx, count_torch
from facebench.zoo import get_model, list_models
from facebench.zoo.export import export_onnx


def measure(name: str, workdir: Path) -> dict[str, object]:
    """One table row for ``name`` (exports into ``workdir`` and deletes the files)."""
    model = get_model(name)
    fv = count_torch(model)
    row: dict[str, object] = {"model": name, "params": fv["params"], "fvcore_gmac": fv["gmac"]}
    for fold in (False, True):
        path = workdir / f"{name}-{'folded' if fold else 'bn'}.onnx"
        t0 = time.perf_counter()
        record = export_onnx(model, path, fold_bn=fold)
        seconds = time.perf_counter() - t0
        graph = count_onnx(path)
        tag = "folded" if fold else "unfolded"
        row[f"{tag}_gmac"], row[f"{tag}_params"] = graph["gmac"], graph["params"]
        if fold:
            row["parity"], row["export_s"] = record["max_abs_diff"], seconds
        path.unlink()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="zoo names (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or [m.name for m in list_models()]
    print("| model | params | fvcore GMAC | ONNX GMAC (BN kept) | ONNX params (BN kept) "
          "| ONNX GMAC (BN folded) | ONNX params (folded) | parity | export s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = measure(name, Path(tmp))
            print(f"| {r['model']} | {r['params']:,} | {r['fvcore_gmac']:.4f} "
                  f"| {r['unfolded_gmac']:.4f} | {r['unfolded_params']:,} "
                  f"| {r['folded_gmac']:.4f} | {r['folded_params']:,} | {r['parity']:.1e} "
                  f"| {r['export_s']:.1f} |", flush=True)

if __name__ == "__main__":
    main()
