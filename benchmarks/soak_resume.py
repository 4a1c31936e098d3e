"""Soak: interrupted, resumed and concurrent runs of a 2-fold LFW suite lose nothing.

    python benchmarks/soak_resume.py [--minutes 20] [--shared ../shared] [--seed 1]
                                     [--work DIR] [--json FILE]

For ``--minutes`` of wall time it repeats three kinds of round, chosen by a seeded RNG:

- **kill** — ``facebench run`` on a fresh folder, then ``kill -9`` at a random moment of either
  the driver (its orphaned worker then finishes or fails on its own) or a cell's worker process,
  then ``--resume`` (itself killed again with probability 1/2) until a resume finishes;
- **pair** — two runs at once on two distinct folders;
- **contend** — two runs at once on the same folder: one must finish, the other must either
  finish too (it waited) or stop at once with exit 2 and a message naming the holder.

After every round each final ``results.json`` must equal an uninterrupted reference run's:
the same cells, each ``ok``, byte-identical ``scores.csv`` and identical verification metrics
(timings excluded); every JSON file must parse and no temp file may be left. The suite is the
shared MobileFaceNet ONNX + YuNet on the first two folds of LFW View 2 (1,200 pairs), a flip
and a no-flip cell; all rounds share one warm alignment cache (except the reference, which
starts cold) so that a round is a few seconds and a 20-minute soak runs many of them.

Prints one line per round and a JSON summary; exits 1 when anything was lost or corrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from facebench.metrics.catalog import metric_info

ROOT = Path(__file__).resolve().parents[1]

#: Details of a verification cell that describe the run, not its result.
VOLATILE = ("timings_s", "throughput_images_per_s", "images_per_s", "stage_timings_s")


def soak_suite(shared: Path, folder: Path) -> Path:
    """The 2-fold LFW suite: one model, one device, a flip and a no-flip cell."""
    lfw = shared / "data" / "lfw"
    det = {"name": "yunet", "model": str(shared / "models" / "face_detection_yunet.onnx"),
           "select": "closest_to_center"}
    dataset = {"kind": "lfw_pairs", "pairs": str(lfw / "pairs.txt"),
               "images": str(lfw / "images"), "max_folds": 2}
    suite = {
        "name": "soak",
        "models": [{"id": "mfn", "source": "onnx",
                    "path": str(shared / "models" / "mobilefacenet_128d.onnx"),
                    "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0,
                                   "input_size": [112, 112]}}],
        "devices": [{"id": "cpu", "engine": "onnxruntime", "device": "cpu",
                     "threads": {"intra_op": 1, "inter_op": 1}, "batch_sizes": [1]}],
        "protocols": [
            {"id": p, "kind": "verification", "dataset": dataset, "detector": det,
             "flip": p == "flip", "far_targets": [0.1, 0.01], "bootstrap": 100}
            for p in ("flip", "noflip")
        ],
    }
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


def start(suite: Path, out: Path, env: dict[str, str], resume: bool) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "facebench.cli", "run", str(suite), "--out", str(out),
            "--no-progress"] + (["--resume"] if resume else [])
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_group_gone(pgid: int, timeout: float = 300) -> None:
    """Wait until every process of ``pgid`` (an orphaned worker) exits; then make sure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)


def cells(out: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return {c["id"]: c for c in data["cells"]}


def essence(cell: dict[str, Any]) -> dict[str, Any]:
    details = {k: v for k, v in (cell.get("details") or {}).items() if k not in VOLATILE}
    acquire = details.get("acquire")
    if isinstance(acquire, dict):
        details["acquire"] = {k: v for k, v in acquire.items()
                              if k not in ("cache", "cache_hits", "embedding_cache")}
    metrics = {k: v for k, v in (cell.get("metrics") or {}).items()  # drop this run's timings
               if not ((info := metric_info(k)) is not None and info.machine)}
    return {"status": cell["status"], "metrics": metrics, "details": details}


def problems(out: Path, reference: Path) -> list[str]:
    """What differs from the reference run, or is corrupt or left over; empty when all is well."""
    found: list[str] = []
    for p in out.rglob("*"):
        if p.is_file() and p.name.startswith(".") and (
                p.name.endswith(".tmp") or p.name.startswith(".job.")):
            found.append(f"left over: {p.relative_to(out)}")
        elif p.suffix == ".json" and p.is_file() and not p.name.startswith("."):
            try:
                json.loads(p.read_text(encoding="utf-8"))
            except ValueError:
                found.append(f"corrupt JSON: {p.relative_to(out)}")
    try:
        got, want = cells(out), cells(reference)
    except (OSError, ValueError) as exc:
        return [*found, f"results.json unreadable: {exc}"]
    if sorted(got) != sorted(want):
        found.append(f"cells {sorted(got)} != {sorted(want)}")
    for ident, ref in want.items():
        cell = got.get(ident)
        if cell is None:
            continue
        if cell["status"] != "ok":
            found.append(f"{ident}: {cell['status']} {cell.get('error')}")
            continue
        scores = ref["artifacts"]["scores"]
        if (out / scores).read_bytes() != (reference / scores).read_bytes():
            found.append(f"{ident}: scores.csv differs")
        if essence(cell) != essence(ref):
            found.append(f"{ident}: metrics or details differ")
    return found


def worker_pids(driver: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(driver).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_round(rng: random.Random, suite: Path, out: Path, env: dict[str, str],
               ref_seconds: float) -> dict[str, Any]:
    """Kill driver or worker at random moments, resume until a resume completes."""
    kills: list[str] = []
    resume = False
    while True:
        proc = start(suite, out, env, resume)
        resume = True
        kill_now = len(kills) == 0 or rng.random() < 0.5
        if not kill_now:
            rc, err = finish(proc)
            if rc != 0:
                return {"kind": "kill", "kills": kills, "error": f"resume exit {rc}: {err[-400:]}"}
            return {"kind": "kill", "kills": kills}
        time.sleep(rng.uniform(0.0, max(0.5, ref_seconds)))
        if proc.poll() is not None:  # finished before the kill: that is a complete run
            rc, err = finish(proc)
            if rc not in (0, 3):  # 3: finished with a failed cell (a killed worker) → resume
                return {"kind": "kill", "kills": kills, "error": f"exit {rc}: {err[-400:]}"}
            if rc == 0:
                return {"kind": "kill", "kills": kills}
            continue
        target = rng.choice(["driver", "worker"])
        pids = worker_pids(proc.pid) if target == "worker" else []
        if target == "worker" and pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
            kills.append("worker")
            finish(proc)  # the driver records the failed cell and ends (exit 3)
        else:
            os.kill(proc.pid, signal.SIGKILL)
            kills.append("driver")
            proc.wait()
        wait_group_gone(proc.pid)


def pair_round(suite: Path, outs: tuple[Path, Path], env: dict[str, str]) -> dict[str, Any]:
    procs = [start(suite, o, env, False) for o in outs]
    codes = [finish(p) for p in procs]
    errors = [f"exit {rc}: {err[-400:]}" for rc, err in codes if rc != 0]
    return {"kind": "pair", **({"error": "; ".join(errors)} if errors else {})}


def contend_round(suite: Path, out: Path, env: dict[str, str]) -> dict[str, Any]:
    procs = [start(suite, out, env, False) for _ in range(2)]
    codes = [finish(p) for p in procs]
    ok = [rc for rc, _ in codes if rc == 0]
    refused = [err for rc, err in codes if rc == 2 and "in use by another facebench run" in err]
    if not ok or len(ok) + len(refused) != 2:
        return {"kind": "contend", "error": f"exits {[rc for rc, _ in codes]}: "
                                            f"{[err[-300:] for _, err in codes]}"}
    return {"kind": "contend", "refused": len(refused)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--shared", type=Path,
                    default=Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temp)")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here too")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="facebench-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    suite = soak_suite(args.shared.resolve(), work)
    env = {**os.environ, "FACEBENCH_CACHE": str(work / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{work / 'history.db'}", "PYTHONWARNINGS": "ignore"}

    t0 = time.perf_counter()
    reference = work / "reference"
    rc, err = finish(start(suite, reference, env, False))
    if rc != 0:
        print(f"reference run failed (exit {rc}):\n{err}", file=sys.stderr)
        return 1
    cold_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rc, _ = finish(start(suite, work / "warm", env, False))
    warm_s = time.perf_counter() - t1
    print(f"reference: cold {cold_s:.1f} s, warm {warm_s:.1f} s; load {os.getloadavg()}")

    deadline = time.monotonic() + 60 * args.minutes
    rounds: list[dict[str, Any]] = []
    lost = 0
    n = 0
    while time.monotonic() < deadline:
        n += 1
        kind = rng.choice(["kill", "kill", "pair", "contend"])
        base = work / f"r{n:04d}"
        if kind == "kill":
            outs = [base]
            rec = kill_round(rng, suite, base, env, warm_s)
        elif kind == "pair":
            outs = [base / "a", base / "b"]
            rec = pair_round(suite, (outs[0], outs[1]), env)
        else:
            outs = [base]
            rec = contend_round(suite, base, env)
        found = [f"{o.name}: {p}" for o in outs for p in problems(o, reference)]
        if rec.get("error"):
            found.append(rec["error"])
        rec.update(round=n, problems=found)
        lost += bool(found)
        rounds.append(rec)
        print(f"round {n:3d} {kind:8s} {'FAIL ' + '; '.join(found) if found else 'ok'}"
              f"{'  kills: ' + ','.join(rec['kills']) if rec.get('kills') else ''}", flush=True)

    summary = {
        "minutes": args.minutes, "rounds": len(rounds), "failed_rounds": lost,
        "kills": sum(len(r.get("kills", [])) for r in rounds),
        "by_kind": {k: sum(r["kind"] == k for r in rounds) for k in ("kill", "pair", "contend")},
        "contenders_refused": sum(r.get("refused", 0) for r in rounds),
        "reference_cold_s": round(cold_s, 1), "reference_warm_s": round(warm_s, 1),
        "load_avg_end": os.getloadavg(),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "detail": rounds}, indent=2),
                             encoding="utf-8")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
