"""Helpers for the fault-injection tests: the CLI in a subprocess, suites as dicts, small real
LFW pair lists, tiny bad ONNX models, and checks over an output folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from facebench.metrics.catalog import metric_info

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Ctx:
    """What a scenario gets: a fresh folder, the CLI environment, the LFW-100 suite file."""

    dir: Path
    env: dict[str, str]
    lfw100: Path


@dataclass(frozen=True)
class Scenario:
    name: str
    modules: tuple[str, ...]  # test modules (file stems) whose cases check it
    order: int
    fn: Callable[[Ctx], Any]


#: Every scenario by name (``module.function``); conftest runs them in the background.
SCENARIOS: dict[str, Scenario] = {}


def scenario(order: int, modules: tuple[str, ...] = ()
             ) -> Callable[[Callable[[Ctx], Any]], Callable[[Ctx], Any]]:
    """Register a function that prepares and runs ``facebench`` for the cases of ``modules``
    (default: the module defining it); lower ``order`` starts first (longest runs first)."""
    def register(fn: Callable[[Ctx], Any]) -> Callable[[Ctx], Any]:
        name = scenario_name(fn)
        SCENARIOS[name] = Scenario(name, modules or (fn.__module__.rpartition(".")[2],), order,
                                   fn)
        return fn

    return register


def scenario_name(fn: Callable[[Ctx], Any]) -> str:
    return f"{fn.__module__}.{fn.__name__}"


def shared_dir() -> Path:
    """``$FACEBENCH_SHARED`` or ``../shared`` beside the repository (as tests/conftest.py)."""
    return Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")).resolve()


SHARED = shared_dir()
LFW = SHARED / "data" / "lfw"
MFN = SHARED / "models" / "mobilefacenet_128d.onnx"
YUNET = SHARED / "models" / "face_detection_yunet.onnx"


def facebench(args: Iterable[str], env: dict[str, str], cwd: Path,
              timeout: float = 300, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``python -m facebench.cli ARGS`` as a user runs it (its own process, real files)."""
    return subprocess.run([sys.executable, "-m", "facebench.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout, **popen)


def facebench_many(jobs: dict[str, list[str]], env: dict[str, str], cwd: Path,
                   parallel: int = 4) -> dict[str, subprocess.CompletedProcess[str]]:
    """Several CLI calls at once (each still its own process): ``{name: result}``."""
    with ThreadPoolExecutor(parallel) as pool:
        futures = {k: pool.submit(facebench, argv, env, cwd) for k, argv in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


def lines(stream: str) -> list[str]:
    """Non-empty lines, stripped (rich soft-wraps nothing with ``soft_wrap=True``)."""
    return [ln.strip() for ln in stream.splitlines() if ln.strip()]


def write_suite(path: Path, suite: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def model(ident: str, path: Path | str = MFN, **extra: Any) -> dict[str, Any]:
    """An ONNX model entry with the trained MobileFaceNet's preprocessing."""
    return {"id": ident, "source": "onnx", "path": str(path),
            "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0,
                           "input_size": [112, 112]}, **extra}


CPU = {"id": "cpu", "engine": "onnxruntime", "device": "cpu",
       "threads": {"intra_op": 1, "inter_op": 1}, "batch_sizes": [1]}


def verification(ident: str, pairs: Path | str, images: Path | str, *, kind: str = "pair_csv",
                 detector: bool = True, **extra: Any) -> dict[str, Any]:
    """A verification protocol over a pair list, YuNet alignment, one acquisition process."""
    det = ({"name": "yunet", "model": str(YUNET), "select": "closest_to_center"} if detector
           else {"name": "none"})
    return {"id": ident, "kind": "verification",
            "dataset": {"kind": kind, "pairs": str(pairs), "images": str(images)},
            "detector": det, "workers": 1, "far_targets": [0.1], **extra}


def suite(name: str, models: list[dict], protocols: list[dict], **extra: Any) -> dict[str, Any]:
    return {"name": name, "models": models, "devices": [CPU], "protocols": protocols, **extra}


# ---- real LFW subsets ------------------------------------------------------------------------

def lfw_rows(per_fold: int, folds: int) -> list[tuple[str, str, int, int]]:
    """The first ``per_fold`` genuine and impostor pairs of each of the first ``folds`` folds of
    LFW View 2 (``pairs.txt`` order), as ``(path1, path2, label, fold)`` under ``images/``."""
    body = [ln.split() for ln in (LFW / "pairs.txt").read_text().splitlines()[1:] if ln.strip()]
    rows = []
    for f in range(folds):
        block = body[600 * f:600 * (f + 1)]
        for p in block[:per_fold]:
            rows.append((_img(p[0], p[1]), _img(p[0], p[2]), 1, f))
        for p in block[300:300 + per_fold]:
            rows.append((_img(p[0], p[1]), _img(p[2], p[3]), 0, f))
    return rows


def _img(name: str, number: str) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def write_pair_csv(path: Path, rows: Iterable[tuple[str, str, int, int]]) -> Path:
    text = "path1,path2,label,fold\n" + "".join(f"{a},{b},{y},{f}\n" for a, b, y, f in rows)
    path.write_text(text, encoding="utf-8")
    return path


def make_lfw100(d: Path) -> Path:
    """A real LFW subset: 100 pairs of View 2 (folds 1-2: 25 genuine + 25 impostor each), and
    a suite of two verification cells over it (flip and no flip); returns the suite file."""
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(25, 2))
    return write_suite(d / "suite.yaml", suite("lfw100", [model("mfn")], [
        verification("flip", pairs, LFW / "images", flip=True),
        verification("noflip", pairs, LFW / "images", flip=False),
    ]))


@dataclass(frozen=True)
class Run:
    """A finished ``facebench run``: its output folder and wall time."""

    out: Path
    seconds: float


@scenario(order=1, modules=("test_determinism", "test_kill_resume"))
def reference(ctx: Ctx) -> Run:
    """An uninterrupted run of the LFW-100 suite with a cold alignment cache of its own."""
    env = {**ctx.env, "FACEBENCH_CACHE": str(ctx.dir / "cache")}
    t0 = time.perf_counter()
    out = run_suite(ctx, ctx.lfw100, env=env)
    return Run(out, time.perf_counter() - t0)


def run_suite(ctx: Ctx, suite_file: Path, *extra: str, out: str = "out",
              env: dict[str, str] | None = None) -> Path:
    """``facebench run SUITE --out DIR/out`` expected to succeed; returns the output folder."""
    res = facebench(["run", str(suite_file), "--out", str(ctx.dir / out), "--no-progress",
                     *extra], env or ctx.env, ctx.dir)
    assert res.returncode == 0, res.stderr
    return ctx.dir / out


# ---- tiny bad ONNX models (input ``input`` [N,3,112,112] → ``embeddings``) --------------------

def _onnx(path: Path, nodes: list[Any], inits: list[Any], out_shape: list[Any]) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])
    y = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, out_shape)
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32 if k != "shape" else np.int64),
                                     k) for k, v in inits]
    graph = helper.make_graph(nodes, path.stem, [x], [y], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def _embed_nodes(last: Any) -> tuple[list[Any], list[tuple[str, Any]]]:
    """``ReduceMean`` over H, W → ``MatMul`` [3, 128] → ``last`` (a node producing
    ``embeddings`` from ``feat``)."""
    import numpy as np
    from onnx import helper

    nodes = [helper.make_node("ReduceMean", ["input"], ["pooled"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["feat"]), last]
    w = np.random.default_rng(0).standard_normal((3, 128))
    return nodes, [("w", w)]


def nan_model(path: Path) -> Path:
    """Returns NaN embeddings (``feat × NaN``)."""
    from onnx import helper

    nodes, inits = _embed_nodes(helper.make_node("Mul", ["feat", "bad"], ["embeddings"]))
    return _onnx(path, nodes, [*inits, ("bad", [float("nan")])], ["N", 128])


def inf_model(path: Path) -> Path:
    """Returns +Inf embeddings (``feat + Inf``)."""
    from onnx import helper

    nodes, inits = _embed_nodes(helper.make_node("Add", ["feat", "bad"], ["embeddings"]))
    return _onnx(path, nodes, [*inits, ("bad", [float("inf")])], ["N", 128])


def wrong_shape_model(path: Path) -> Path:
    """Returns ``[N, 3, 112]`` (a row mean), not ``[N, D]`` embeddings."""
    from onnx import helper

    node = helper.make_node("ReduceMean", ["input"], ["embeddings"], axes=[3], keepdims=0)
    return _onnx(path, [node], [], ["N", 3, 112])


def raising_model(path: Path) -> Path:
    """Raises at run time: ``Reshape`` of ``[N, 3, 112, 112]`` to the impossible ``[5, 5]``."""
    from onnx import helper

    node = helper.make_node("Reshape", ["input", "shape"], ["embeddings"], name="boom")
    return _onnx(path, [node], [("shape", [5, 5])], [5, 5])


# ---- checks over an output folder -----------------------------------------------------------

def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def cells_by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in results(out)["cells"]}


def leftovers(out: Path) -> list[str]:
    """Temp and job files of interrupted writes (``.NAME.*.tmp``, ``.job.*.json``)."""
    return sorted(str(p.relative_to(out)) for p in out.rglob(".*")
                  if p.is_file() and (p.name.endswith(".tmp") or p.name.startswith(".job.")))


def unparsable_json(out: Path) -> list[str]:
    """Every ``*.json`` under ``out`` that does not parse (the empty list when all do)."""
    bad = []
    for p in out.rglob("*.json"):
        if p.name.startswith("."):
            continue
        try:
            json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            bad.append(str(p.relative_to(out)))
    return bad


#: Details of a verification cell that describe this run, not its result.
VOLATILE_DETAILS = ("timings_s", "throughput_images_per_s", "images_per_s")
VOLATILE_ACQUIRE = ("cache", "detect_cache", "cache_hits")


def stable(metrics: dict[str, Any]) -> dict[str, Any]:
    """A cell's metrics without the machine-dependent ones (the catalog's ``machine`` flag: for
    a verification cell, its per-stage seconds and images/s)."""
    return {k: v for k, v in metrics.items()
            if not ((info := metric_info(k)) is not None and info.machine)}


def verification_result(cell: dict[str, Any]) -> dict[str, Any]:
    """What must be identical between two runs of a verification cell: status, metrics and
    details, minus timings and cache bookkeeping."""
    details = {k: v for k, v in cell["details"].items() if k not in VOLATILE_DETAILS}
    details["acquire"] = {k: v for k, v in details["acquire"].items()
                          if k not in VOLATILE_ACQUIRE}
    return {"status": cell["status"], "metrics": stable(cell["metrics"]), "details": details}


def tidy_without_run_id(out: Path) -> str:
    """results.csv without its run_id column (the run's own name) and without the rows that
    time this run (see :func:`stable`)."""
    rows = [row.partition(",")[2].split(",")
            for row in (out / "results.csv").read_text(encoding="utf-8").splitlines()]
    # columns now: cell_id, model, device, protocol, kind, status, metric, value, flag
    return "\n".join(",".join(r) for r in rows if len(r) < 7 or stable({r[6]: None}))


def assert_same_results(out: Path, reference: Path) -> None:
    """Byte-identical per-cell scores.csv, identical verification results and tidy CSV."""
    got, want = cells_by_id(out), cells_by_id(reference)
    assert sorted(got) == sorted(want)
    for ident, cell in want.items():
        assert cell["status"] == "ok", cell["error"]
        scores = cell["artifacts"]["scores"]
        assert got[ident]["artifacts"]["scores"] == scores
        assert (out / scores).read_bytes() == (reference / scores).read_bytes(), ident
        assert verification_result(got[ident]) == verification_result(cell), ident
    assert tidy_without_run_id(out) == tidy_without_run_id(reference)
