"""Cold LFW run of lfw-mobilefacenet: a landed version against this working tree, side by side.

    python benchmarks/bench_cold_lfw.py [--ref b959b44] [--folds 10] [--repeat 1] [--out FILE.json]

Checks ``--ref`` out as a git worktree in a temporary folder (removed at the end) and runs
``facebench run suites/lfw-mobilefacenet.yaml --only lfw`` from that worktree and from this
working tree, alternating (ref, new, new, ref, …) so drift of the shared machine hits both. Each
run gets a fresh empty ``FACEBENCH_CACHE``, output folder and history database, ``PYTHONPATH``
set to its tree and the same interpreter. Records each run's wall time, the cell's duration,
accuracy and failure-to-acquire counts (all runs must agree; a loud warning when they do not) and
the load average before and after.

Then the compute floor: the single-core cost of each stage (read, decode, YuNet detect + select,
align, embed image + flip with a one-thread onnxruntime session at the new run's batch size) on a
fixed sample of LFW images after a warm-up, summed and multiplied by the run's image count, ÷ the
cores. Prints a table with each run's ratio to the floor and the speed-up ref/new (median over
repeats).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench.datasets.lfw import load_lfw_pairs  # noqa: E402
from facebench.io import atomic_write_json, read_json  # noqa: E402

try:  # the face-image chain's package since issue 13; the landed layout before it
    from facebench.faces.align import align_face  # noqa: E402
    from facebench.faces.detect import create_detector, select_face  # noqa: E402
    from facebench.faces.images import decode_reduced, read_image_file  # noqa: E402
except ImportError:
    from facebench.align import align_face  # type: ignore[no-redef]  # noqa: E402
    from facebench.detect import create_detector, select_face  # type: ignore[no-redef]  # noqa: E402
    from facebench.images import decode_reduced, read_image_file  # type: ignore[no-redef]  # noqa: E402

SUITE = "suites/lfw-mobilefacenet.yaml"
CLI = "import sys; from facebench.cli import main; sys.exit(main())"
SELECT = "closest_to_center"  # the suite's policy
#: Fields of the lfw cell that every run must reproduce exactly.
AGREE = ("accuracy", "fta_images", "fta_pairs", "images")


def cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A detached git worktree of ``ref`` in a temporary folder, removed on exit."""
    parent = Path(tempfile.mkdtemp(prefix="bench-cold-lfw-ref-"))
    path = parent / "tree"
    git("worktree", "add", "--detach", str(path), ref)
    try:
        yield path
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT,
                       capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)


def run_env(tree: Path, shared: Path, folds: int, tmp: Path) -> dict[str, str]:
    """The environment of one run: nothing inherited from facebench's own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEBENCH_")}
    env.update(PYTHONPATH=str(tree), FACEBENCH_SHARED=str(shared),
               FACEBENCH_CACHE=str(tmp / "cache"),
               FACEBENCH_HISTORY=f"sqlite:///{tmp / 'history.db'}", LFW_FOLDS=str(folds))
    return env


def imported_from(tree: Path, env: dict[str, str]) -> str:
    """Where ``facebench`` comes from with ``env`` (must be ``tree``: PYTHONPATH wins)."""
    out = subprocess.run([sys.executable, "-c", "import facebench; print(facebench.__file__)"],
                         cwd=tree, env=env, check=True, capture_output=True, text=True)
    where = out.stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"facebench imports from {where}, not from the tree under test {tree}")
    return where


def find_key(obj: Any, key: str) -> Any:
    """The first value of ``key`` in nested dicts (breadth first), else ``None``."""
    level = [obj]
    while level:
        nxt = []
        for d in level:
            if isinstance(d, dict):
                if d.get(key) is not None:
                    return d[key]
                nxt.extend(v for v in d.values() if isinstance(v, dict))
        level = nxt
    return None


def cold_run(label: str, tree: Path, shared: Path, folds: int) -> dict[str, Any]:
    """One cold ``facebench run --only lfw`` from ``tree``, with its timings and lfw cell."""
    with tempfile.TemporaryDirectory(prefix=f"bench-cold-lfw-{label}-") as t:
        tmp = Path(t)
        env = run_env(tree, shared, folds, tmp)
        where = imported_from(tree, env)
        out = tmp / "out"
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CLI, "run", SUITE, "--only", "lfw",
                               "--out", str(out), "--no-progress"],
                              cwd=tree, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load_after = os.getloadavg()
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"{label}: facebench run exited {proc.returncode}")
        results = read_json(out / "results.json")
    (cell,) = [c for c in results["cells"] if c.get("protocol") == "lfw"]
    m, d = cell["metrics"], cell["details"]
    return {
        "tree": label, "facebench": where, "wall_s": round(wall, 3),
        "cell_s": cell.get("duration_s"), "status": cell.get("status"),
        **{k: m.get(k) for k in AGREE},
        "batch_size": d.get("batch_size") or find_key(d.get("engine") or {}, "batch_size"),
        "timings_s": d.get("timings_s"),
        "images_per_s": d.get("images_per_s"), "engine": d.get("engine"),
        "load_avg_before": load_before, "load_avg_after": load_after,
    }


def one_thread_session(model: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def to_input(crops: list[np.ndarray]) -> np.ndarray:
    """BGR crops → the model's input, image then its flip: RGB, (x − 127.5)/128, NCHW."""
    x = (np.stack(crops)[..., ::-1].astype(np.float32) - 127.5) / 128.0
    x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(np.concatenate([x, x[..., ::-1]]))


def embed_cost(sess: ort.InferenceSession, crops: list[np.ndarray], batch: int,
               passes: int = 2) -> float:
    """Seconds per image to embed ``crops`` (image + flip, with preprocessing) at ``batch``:
    the fastest of ``passes`` timed passes after an untimed one (every batch shape warm)."""
    name = sess.get_inputs()[0].name
    best = float("inf")
    for p in range(passes + 1):
        t0 = time.perf_counter()
        for i in range(0, len(crops), batch):
            sess.run(None, {name: to_input(crops[i:i + batch])})
        if p:
            best = min(best, time.perf_counter() - t0)
    return best / len(crops)


def stage_costs(shared: Path, images: list[Path], warmup: int, batch: int) -> dict[str, Any]:
    """Single-core seconds per image of each stage over ``images[warmup:]``."""
    cv2.setNumThreads(1)
    det = create_detector("yunet", model=shared / "models" / "face_detection_yunet.onnx",
                          threads=1)
    sess = one_thread_session(shared / "models" / "mobilefacenet_128d.onnx")
    spent = dict.fromkeys(("read", "decode", "detect", "align"), 0.0)
    crops: list[np.ndarray] = []
    for k, path in enumerate(images):
        t0 = time.perf_counter()
        data = read_image_file(path)
        t1 = time.perf_counter()
        image, _ = decode_reduced(data, str(path))
        t2 = time.perf_counter()
        face = select_face(det.detect(image), image.shape, SELECT)
        t3 = time.perf_counter()
        crop = align_face(image, face.landmarks, 112) if face is not None else None
        t4 = time.perf_counter()
        if k < warmup:
            continue
        for stage, dt in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[stage] += dt
        if crop is not None:
            crops.append(crop)
    n = len(images) - warmup
    per_image = {stage: s / n for stage, s in spent.items()}
    embed_at = {b: embed_cost(sess, crops, b) for b in sorted({1, 8, 32, batch})}
    per_image["embed"] = embed_at[batch] * len(crops) / n  # images without a face embed nothing
    return {"sample": n, "warmup": warmup, "faces": len(crops), "batch_size": batch,
            "s_per_image": per_image, "embed_s_per_image_by_batch": embed_at,
            "total_s_per_image": sum(per_image.values())}


def check_agreement(runs: list[dict[str, Any]]) -> bool:
    seen = {tuple(r[k] for k in AGREE) for r in runs}
    if len(seen) == 1:
        return True
    bar = "!" * 78
    lines = [f"  {r['tree']:>4}: " + ", ".join(f"{k}={r[k]}" for k in AGREE) for r in runs]
    sys.stderr.write(f"\n{bar}\n!!! WARNING: the runs DISAGREE on the lfw cell's results:\n"
                     + "\n".join(lines) + f"\n{bar}\n\n")
    return False


def speedup(runs: list[dict[str, Any]], key: str) -> float:
    """Median over repeats of ref's ``key`` over new's."""
    by = {(r["repeat"], r["tree"]): r[key] for r in runs}
    ratios = [by[i, "ref"] / by[i, "new"] for i in sorted({r["repeat"] for r in runs})
              if by[i, "ref"] and by[i, "new"]]
    return statistics.median(ratios) if ratios else float("nan")


def print_table(report: dict[str, Any]) -> None:
    f = report["floor"]
    print(f"\ncompute floor (single core, {f['sample']} LFW images after {f['warmup']} warm-up)")
    for stage, s in f["s_per_image"].items():
        what = f"embed (batch {f['batch_size']}, +flip)" if stage == "embed" else stage
        what = "detect + select" if stage == "detect" else what
        print(f"  {what:<24} {s * 1e3:8.3f} ms/image")
    print(f"  {'total':<24} {f['total_s_per_image'] * 1e3:8.3f} ms/image")
    by_batch = "  ".join(f"batch {b}: {s * 1e3:.3f}"
                         for b, s in f["embed_s_per_image_by_batch"].items())
    print(f"  embed + flip ms/image at {by_batch}")
    print(f"  floor = {f['total_s_per_image'] * 1e3:.3f} ms × {f['images']} images ÷ "
          f"{report['cores']} cores = {f['floor_s']:.2f} s "
          f"(with the fastest embed batch: {f['floor_best_batch_s']:.2f} s)\n")
    print(f"{'#':>2} {'tree':<4} {'wall s':>8} {'cell s':>8} {'wall/floor':>10} {'cell/floor':>10}"
          f" {'accuracy':>9} {'fta img':>7} {'fta pairs':>9}  load 1m before→after")
    for r in report["runs"]:
        cell = r["cell_s"] or float("nan")
        print(f"{r['repeat']:>2} {r['tree']:<4} {r['wall_s']:8.2f} {cell:8.2f} "
              f"{r['wall_s'] / f['floor_s']:10.2f} {cell / f['floor_s']:10.2f} "
              f"{r['accuracy']:9.5f} {r['fta_images']:>7} {r['fta_pairs']:>9}  "
              f"{r['load_avg_before'][0]:.2f}→{r['load_avg_after'][0]:.2f}")
    s = report["speedup_ref_over_new"]
    print(f"\nspeed-up ref/new (median over {report['repeat']} repeat(s)): "
          f"wall {s['wall']:.2f}×, cell {s['cell']:.2f}×"
          + ("" if report["results_agree"] else "   (RESULTS DISAGREE: see the warning)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="b959b44", help="landed version to compare (git ref)")
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--sample", type=int, default=300, help="images for the stage costs")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    shared = args.shared.resolve()
    ref_sha = git("rev-parse", "--verify", f"{args.ref}^{{commit}}")
    runs: list[dict[str, Any]] = []
    with worktree(ref_sha) as ref_tree:
        trees = {"ref": ref_tree, "new": ROOT}
        for r in range(args.repeat):
            for label in (("ref", "new") if r % 2 == 0 else ("new", "ref")):
                print(f"repeat {r + 1}/{args.repeat}: {label} …", flush=True)
                runs.append({"repeat": r + 1, **cold_run(label, trees[label], shared,
                                                         args.folds)})
    agree = check_agreement(runs)

    new = [r for r in runs if r["tree"] == "new"]
    batch = int(new[0]["batch_size"] or 1)
    lfw = shared / "data" / "lfw"
    pairs = load_lfw_pairs(lfw / "pairs.txt", lfw / "images", max_folds=args.folds)
    images = [Path(p) for p in pairs.images]
    floor = stage_costs(shared, images[: args.warmup + args.sample], args.warmup, batch)
    n_images = int(new[0]["images"] or len(images))
    best = floor["total_s_per_image"] - floor["s_per_image"]["embed"] + min(
        floor["embed_s_per_image_by_batch"].values()) * floor["faces"] / floor["sample"]
    floor.update(images=n_images, floor_s=floor["total_s_per_image"] * n_images / cores(),
                 floor_best_batch_s=best * n_images / cores())

    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    report = {
        "suite": SUITE, "folds": args.folds, "repeat": args.repeat, "cores": cores(),
        "cpu_count": os.cpu_count(), "python": sys.executable,
        "ref": {"ref": args.ref, "commit": ref_sha},
        "new": {"tree": str(ROOT), "head": git("rev-parse", "HEAD"), "dirty": dirty},
        "runs": runs, "results_agree": agree, "floor": floor,
        "speedup_ref_over_new": {"wall": speedup(runs, "wall_s"), "cell": speedup(runs, "cell_s")},
    }
    print_table(report)
    if args.out:
        atomic_write_json(args.out, report)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
