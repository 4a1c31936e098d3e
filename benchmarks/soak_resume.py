"""Soak: interrupted, resumed and concurrent runs of a 2-fold LFW suite lose nothing, also when
its input files change between resumes and its cache entries are damaged.

    python benchmarks/soak_resume.py [--minutes 20] [--pairs-per-fold 300] [--skip KIND]
                                     [--shared ../shared] [--seed 1] [--work DIR] [--json FILE]

For ``--minutes`` of wall time it repeats five kinds of round, chosen by a seeded RNG
(``--skip KIND`` leaves a kind out):

- **kill** — ``facebench run`` on a fresh folder, then ``kill -9`` at a random moment of either
  the driver (its orphaned worker then finishes or fails on its own) or a cell's worker process,
  then ``--resume`` (itself killed again with probability 1/2) until a resume finishes;
- **pair** — two runs at once on two distinct folders;
- **contend** — two runs at once on the same folder: one must finish, the other must either
  finish too (it waited) or stop at once with exit 2 and a message naming the holder;
- **edit** — a finished run, then one or two of its input files (the model, either pair list)
  replaced in place by their other version, keeping size, modification time and inode where
  the versions are the same size, then ``--resume`` (killed once first with probability 1/3);
  then, with probability 1/2, the files switched back and ``--resume`` again. Every cell must
  equal the reference of its inputs; after a resume that was not killed, exactly the cells
  that read a switched file ran again (naming it) and the others were reused;
- **corrupt** — cache entries damaged (every embeddings entry: ``.npz`` truncated, emptied or
  one bit flipped, or its ``.json`` made malformed; and some ``align/**/*.npz`` likewise),
  then a fresh run, which must equal the reference; the damaged entries are removed after a
  round that failed, so that one failure is counted once.

After every round each final ``results.json`` must equal an uninterrupted reference run on the
same inputs: the same cells, each ``ok``, byte-identical ``scores.csv`` and identical
verification metrics (timings excluded); every JSON file must parse and no temp file may be
left. The suite is the shared MobileFaceNet ONNX + YuNet on two folds of LFW View 2, a flip and
a no-flip cell, each with its own pair list: version a is the first ``--pairs-per-fold`` genuine
and impostor pairs of folds 1-2 (default 300: the 1,200 pairs of both folds), version b those of
folds 3-4; the model's version b is MobileFaceNet with seeded noise on one weight tensor (same
size). The references (each cell × model version × pair version, computed up front with a cache
of their own that is never damaged) start cold; all rounds share one warm cache so that a round
is a few seconds and a 20-minute soak runs many of them.

Prints one line per round and a JSON summary; exits 1 when anything was lost or corrupted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from facebench.metrics.catalog import metric_info

ROOT = Path(__file__).resolve().parents[1]

#: Details of a verification cell that describe the run, not its result.
VOLATILE = ("timings_s", "throughput_images_per_s", "images_per_s", "stage_timings_s")
PROTOCOLS = ("flip", "noflip")
#: The input files of the soak suite, and the cells that read each.
FILES = {"model.onnx": ("mfn@cpu@flip", "mfn@cpu@noflip"),
         "pairs-flip.txt": ("mfn@cpu@flip",), "pairs-noflip.txt": ("mfn@cpu@noflip",)}
ROUND_KINDS = ("kill", "kill", "pair", "contend", "edit", "corrupt")


# ---- inputs: two versions of each file, switched in place ----------------------------------


def pair_list(lfw: Path, per_fold: int, folds: tuple[int, int]) -> bytes:
    """An LFW pairs file of two folds: the first ``per_fold`` genuine and impostor pairs of
    View 2's folds ``folds`` (0-based)."""
    body = [ln for ln in (lfw / "pairs.txt").read_text().splitlines()[1:] if ln.strip()]
    lines = [f"2\t{per_fold}"]
    for f in folds:
        block = body[600 * f:600 * (f + 1)]
        lines += block[:per_fold] + block[300:300 + per_fold]
    return ("\n".join(lines) + "\n").encode()


def noisy_model(path: Path, seed: int = 7) -> bytes:
    """The ONNX model at ``path`` with seeded noise added to its largest weight tensor: another
    model of the same architecture and file size."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    net = onnx.load(str(path))
    init = max(net.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = numpy_helper.to_array(init)
    noise = np.random.default_rng(seed).standard_normal(w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(w + 0.05 * w.std() * noise, init.name))
    return net.SerializeToString()


@dataclass
class Inputs:
    """The suite's input files in ``folder``, each in version ``a`` or ``b``."""

    folder: Path
    versions: dict[str, dict[str, bytes]]
    state: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, version: str) -> None:
        """Write ``version`` of ``name`` over the file in place (same inode), and give it back
        its modification time: an edit that only its content shows."""
        path = self.folder / name
        data = self.versions[name][version]
        if not path.exists():
            path.write_bytes(data)
        else:
            st = path.stat()
            with open(path, "r+b") as f:
                f.write(data)
                f.truncate()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.state[name] = version

    def switch(self, name: str) -> None:
        self.set(name, "b" if self.state[name] == "a" else "a")

    def key(self, cell: str) -> tuple[str, str, str]:
        """What a cell's result depends on: its protocol, model version and pair version."""
        proto = cell.rpartition("@")[2]
        return proto, self.state["model.onnx"], self.state[f"pairs-{proto}.txt"]


def make_inputs(shared: Path, folder: Path, per_fold: int) -> Inputs:
    lfw, mfn = shared / "data" / "lfw", shared / "models" / "mobilefacenet_128d.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = {"a": pair_list(lfw, per_fold, (0, 1)), "b": pair_list(lfw, per_fold, (2, 3))}
    inputs = Inputs(folder, {"model.onnx": {"a": mfn.read_bytes(), "b": noisy_model(mfn)},
                             "pairs-flip.txt": pairs, "pairs-noflip.txt": pairs})
    for name in FILES:
        inputs.set(name, "a")
    return inputs


def soak_suite(shared: Path, folder: Path, inputs: Path) -> Path:
    """The LFW suite: one model, one device, a flip and a no-flip cell, each with its own
    pair list; every input file lies in ``inputs``."""
    lfw = shared / "data" / "lfw"
    det = {"name": "yunet", "model": str(shared / "models" / "face_detection_yunet.onnx"),
           "select": "closest_to_center"}
    suite = {
        "name": "soak",
        "models": [{"id": "mfn", "source": "onnx", "path": str(inputs / "model.onnx"),
                    "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0,
                                   "input_size": [112, 112]}}],
        "devices": [{"id": "cpu", "engine": "onnxruntime", "device": "cpu",
                     "threads": {"intra_op": 1, "inter_op": 1}, "batch_sizes": [1]}],
        "protocols": [
            {"id": p, "kind": "verification", "detector": det, "flip": p == "flip",
             "dataset": {"kind": "lfw_pairs", "pairs": str(inputs / f"pairs-{p}.txt"),
                         "images": str(lfw / "images")},
             "far_targets": [0.1, 0.01], "bootstrap": 100}
            for p in PROTOCOLS
        ],
    }
    path = folder / "soak.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    return path


# ---- running and checking ----------------------------------------------------------------------


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


References = dict[tuple[str, str, str], Path]


def expected(inputs: Inputs, refs: References) -> dict[str, Path]:
    """Each cell id → the reference run made on the inputs as they are now."""
    return {f"mfn@cpu@{p}": refs[inputs.key(f"mfn@cpu@{p}")] for p in PROTOCOLS}


def problems(out: Path, reference: dict[str, Path]) -> list[str]:
    """What differs from the reference runs (``reference``: each cell's), or is corrupt or
    left over; empty when all is well."""
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
        got = cells(out)
        want = {ident: cells(ref)[ident] for ident, ref in reference.items()}
    except (OSError, ValueError) as exc:
        return [*found, f"results.json unreadable: {exc}"]
    if sorted(got) != sorted(want):
        found.append(f"cells {sorted(got)} != {sorted(want)}")
    for ident, ref in want.items():
        cell = got.get(ident)
        if cell is None:
            continue
        if cell["status"] != "ok":
            error = cell.get("error") or {}
            found.append(f"{ident}: {cell['status']} {error.get('type')}: "
                         f"{str(error.get('message'))[:200]}")
            continue
        scores = ref["artifacts"]["scores"]
        if (out / scores).read_bytes() != (reference[ident] / scores).read_bytes():
            found.append(f"{ident}: scores.csv differs")
        if essence(cell) != essence(ref):
            found.append(f"{ident}: metrics or details differ")
    return found


def worker_pids(driver: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(driver).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


# ---- rounds ------------------------------------------------------------------------------------


def kill_round(rng: random.Random, suite: Path, out: Path, env: dict[str, str],
               ref_seconds: float, resume: bool = False) -> dict[str, Any]:
    """Kill driver or worker at random moments, resume until a resume completes (``resume``:
    the first run is itself a resume of ``out``)."""
    kills: list[str] = []
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


def reruns(out: Path, switched: list[str], inputs: Inputs) -> list[str]:
    """After an uninterrupted ``--resume`` that followed switching the files ``switched``:
    what differs from "exactly the cells that read one of them ran again, naming it"."""
    found = []
    for ident, cell in cells(out).items():
        names = [n for n in switched if ident in FILES[n]]
        reason = cell.get("rerun_reason") or ""
        if not names and (not cell.get("resumed") or reason):
            found.append(f"{ident}: ran again though none of its files changed ({reason})")
        elif names and cell.get("resumed"):
            found.append(f"{ident}: reused after {', '.join(names)} changed")
        elif names and not all(str(inputs.folder / n) in reason for n in names):
            found.append(f"{ident}: rerun reason {reason!r} does not name {', '.join(names)}")
    return found


def edit_round(rng: random.Random, suite: Path, out: Path, env: dict[str, str],
               inputs: Inputs, refs: References, ref_seconds: float) -> dict[str, Any]:
    """A finished run; one or two input files switched to their other version; ``--resume``
    (killed once first, sometimes); then, half of the time, switched back and resumed again.
    Every step must equal the references of its inputs."""
    rec: dict[str, Any] = {"kind": "edit", "edits": [], "kills": []}
    found: list[str] = []
    rc, err = finish(start(suite, out, env, False))
    if rc != 0:
        return {**rec, "error": f"first run exit {rc}: {err[-400:]}"}
    found += problems(out, expected(inputs, refs))
    switched = rng.sample(sorted(FILES), rng.randint(1, 2))
    back = rng.random() < 0.5
    for step in ([switched, switched] if back else [switched]):
        for name in step:
            inputs.switch(name)
        rec["edits"].append({n: inputs.state[n] for n in step})
        killed = rng.random() < 1 / 3
        if killed:
            k = kill_round(rng, suite, out, env, ref_seconds, resume=True)
            rec["kills"] += k["kills"]
            if k.get("error"):
                found.append(k["error"])
        else:
            rc, err = finish(start(suite, out, env, True))
            if rc != 0:
                found.append(f"resume exit {rc}: {err[-400:]}")
            else:
                found += reruns(out, step, inputs)
        found += problems(out, expected(inputs, refs))
    return {**rec, **({"error": "; ".join(found)} if found else {})}


def cache_entries(cache: Path) -> tuple[list[Path], list[Path]]:
    """The embeddings entries (``.npz`` and ``.json`` pairs, by stem) and alignment entries."""
    emb = sorted((cache / "embeddings").glob("*.npz")) if (cache / "embeddings").is_dir() else []
    align = sorted((cache / "align").rglob("*.npz")) if (cache / "align").is_dir() else []
    return emb, align


def damage(rng: random.Random, path: Path) -> tuple[str, bytes]:
    """Damage one cache file in place: truncated, emptied, one bit flipped, or (JSON)
    malformed. Returns what was done, and the damaged bytes."""
    data = path.read_bytes()
    if path.suffix == ".json":
        how = rng.choice(["malformed", "truncated", "wrong type"])
        new = {"malformed": b'{"key": ', "truncated": data[: len(data) // 2],
               "wrong type": b"[1, 2, 3]"}[how]
    else:
        how = rng.choice(["truncated", "emptied", "bit flip"])
        if how == "truncated" and len(data) > 1:
            new = data[: rng.randrange(1, len(data))]
        elif how == "bit flip" and data:
            i = rng.randrange(len(data))
            new = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
        else:
            how, new = "emptied", b""
    path.write_bytes(new)
    return f"{how}: {path.name}", new


def corrupt_round(rng: random.Random, suite: Path, out: Path, env: dict[str, str], cache: Path,
                  inputs: Inputs, refs: References) -> dict[str, Any]:
    """Damage every embeddings entry (its arrays or its JSON) and a few alignment entries,
    then a fresh run: it must equal the reference. Entries still damaged afterwards (those of
    other inputs, which this run did not read, or ones it failed on) are removed, so that no
    later round meets this round's damage."""
    emb, align = cache_entries(cache)
    targets = [p if rng.random() < 0.5 else p.with_suffix(".json") for p in emb]
    targets += rng.sample(align, min(len(align), rng.randint(1, 8)))
    damaged = {p: damage(rng, p) for p in targets if p.is_file()}
    rc, err = finish(start(suite, out, env, False))
    found = [] if rc in (0, 3) else [f"exit {rc}: {err[-600:]}"]  # 3: a failed cell, below
    if (out / "results.json").is_file():
        found += problems(out, expected(inputs, refs))
    for p, (_, data) in damaged.items():
        try:
            still = p.read_bytes() == data
        except OSError:
            still = False
        if still:
            for stale in {p, p.with_suffix(".npz"), p.with_suffix(".json")}:
                stale.unlink(missing_ok=True)
    return {"kind": "corrupt", "damaged": [what for what, _ in damaged.values()],
            **({"error": "; ".join(found)} if found else {})}


# ---- main --------------------------------------------------------------------------------------


def make_references(suite: Path, work: Path, env: dict[str, str], inputs: Inputs
                    ) -> tuple[References, float]:
    """One uninterrupted run per model version × pair version (both pair lists alike), with a
    cache of their own: each cell's reference for each version of its inputs. Returns them and
    the seconds of the first (cold) run."""
    env = {**env, "FACEBENCH_CACHE": str(work / "reference-cache")}
    refs: References = {}
    cold_s = 0.0
    for model, pairs in itertools.product("ab", "ab"):
        inputs.set("model.onnx", model)
        for name in ("pairs-flip.txt", "pairs-noflip.txt"):
            inputs.set(name, pairs)
        out = work / f"reference-{model}{pairs}"
        t0 = time.perf_counter()
        rc, err = finish(start(suite, out, env, False))
        if rc != 0:
            raise RuntimeError(f"reference run {out.name} failed (exit {rc}):\n{err}")
        cold_s = cold_s or time.perf_counter() - t0
        for p in PROTOCOLS:
            refs[(p, model, pairs)] = out
    for name in FILES:
        inputs.set(name, "a")
    return refs, cold_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="how long to run rounds")
    ap.add_argument("--pairs-per-fold", type=int, default=300,
                    help="genuine (and impostor) pairs of each of the two folds (at most 300)")
    ap.add_argument("--skip", action="append", default=[], choices=sorted(set(ROUND_KINDS)),
                    help="leave out a kind of round (repeatable)")
    ap.add_argument("--shared", type=Path,
                    default=Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temp)")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here too")
    args = ap.parse_args(argv)
    if not 1 <= args.pairs_per_fold <= 300:
        ap.error("--pairs-per-fold must be 1 to 300")
    kinds = [k for k in ROUND_KINDS if k not in args.skip]
    if not kinds:
        ap.error("--skip leaves no kind of round")
    work = (args.work or Path(tempfile.mkdtemp(prefix="facebench-soak-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    shared = args.shared.resolve()
    inputs = make_inputs(shared, work / "inputs", args.pairs_per_fold)
    suite = soak_suite(shared, work, inputs.folder)
    cache = work / "cache"
    env = {**os.environ, "FACEBENCH_CACHE": str(cache),
           "FACEBENCH_HISTORY": f"sqlite:///{work / 'history.db'}", "PYTHONWARNINGS": "ignore"}

    t0 = time.perf_counter()
    try:
        refs, cold_s = make_references(suite, work, env, inputs)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    refs_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rc, _ = finish(start(suite, work / "warm", env, False))
    warm_s = time.perf_counter() - t1
    print(f"references: first (cold) {cold_s:.1f} s, all four {refs_s:.1f} s; warm run "
          f"{warm_s:.1f} s; load {os.getloadavg()}", flush=True)

    deadline = time.monotonic() + 60 * args.minutes
    rounds: list[dict[str, Any]] = []
    lost = 0
    n = 0
    while time.monotonic() < deadline:
        n += 1
        kind = rng.choice(kinds)
        base = work / f"r{n:04d}"
        outs = [base]
        state = dict(inputs.state)
        if kind == "kill":
            rec = kill_round(rng, suite, base, env, warm_s)
        elif kind == "pair":
            outs = [base / "a", base / "b"]
            rec = pair_round(suite, (outs[0], outs[1]), env)
        elif kind == "contend":
            rec = contend_round(suite, base, env)
        elif kind == "edit":
            outs = []  # checked step by step inside the round
            rec = edit_round(rng, suite, base, env, inputs, refs, warm_s)
        else:
            outs = []  # checked inside the round
            rec = corrupt_round(rng, suite, base, env, cache, inputs, refs)
        found = [f"{o.name}: {p}" for o in outs for p in problems(o, expected(inputs, refs))]
        if rec.get("error"):
            found.append(rec["error"])
        rec.update(round=n, inputs=state, problems=found)
        lost += bool(found)
        rounds.append(rec)
        note = ("  kills: " + ",".join(rec["kills"]) if rec.get("kills") else "") + (
            "  edits: " + json.dumps(rec["edits"]) if rec.get("edits") else "") + (
            f"  damaged: {len(rec['damaged'])}" if rec.get("damaged") else "")
        print(f"round {n:3d} {kind:8s} {'FAIL ' + '; '.join(found) if found else 'ok'}{note}",
              flush=True)

    summary = {
        "minutes": args.minutes, "pairs_per_fold": args.pairs_per_fold, "rounds": len(rounds),
        "failed_rounds": lost, "kills": sum(len(r.get("kills", [])) for r in rounds),
        "by_kind": {k: sum(r["kind"] == k for r in rounds) for k in sorted(set(ROUND_KINDS))},
        "failed_by_kind": {k: sum(r["kind"] == k and bool(r["problems"]) for r in rounds)
                           for k in sorted(set(ROUND_KINDS))},
        "input_edits": sum(len(r.get("edits", [])) for r in rounds),
        "damaged_cache_files": sum(len(r.get("damaged", [])) for r in rounds),
        "contenders_refused": sum(r.get("refused", 0) for r in rounds),
        "references_s": round(refs_s, 1), "reference_cold_s": round(cold_s, 1),
        "warm_run_s": round(warm_s, 1), "load_avg_end": os.getloadavg(),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "detail": rounds}, indent=2),
                             encoding="utf-8")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
