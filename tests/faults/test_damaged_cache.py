"""Issue 27, item 4: a damaged cache entry is recomputed and replaced, with a warning.

A clean run fills a cache (aligned crops, embeddings, an int8 model, an ONNX export). Each case
then copies that cache, damages one entry (truncated, one bit flipped, emptied, a value changed
inside a still valid file, a malformed record, a model swapped for another) and runs the same
cells again over the copy. Every rerun must exit 0 with its cells ok and give the clean run's
scores and metrics exactly; the cell's ``stderr.log`` must name the damaged file in one warning
line; and the entry must have been replaced by the clean one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from .conftest import Background
from .kit import (
    CPU,
    LFW,
    MFN,
    Ctx,
    cells_by_id,
    facebench,
    lfw_rows,
    model,
    scenario,
    scenario_name,
    stable,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

FP32 = "mfn@cpu@lfw"
INT8_CELL = "mfn@int8@lfw"
EXPORT = "zoo@cpu@eff"
INT8 = {**CPU, "id": "int8", "precision": "int8", "quantization": {"mode": "dynamic"}}
ZOO = {"id": "zoo", "source": "zoo", "arch": "mobilefacenet", "embedding_size": 128}
EFF = {"id": "eff", "kind": "efficiency", "warmup": 1, "min_iters": 3, "min_seconds": 0,
       "models": ["zoo"], "devices": ["cpu"]}
WARNING = "damaged cache entry"


# ---- ways to damage a file ---------------------------------------------------------------------

def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_a_bit(path: Path) -> None:
    """One bit in the middle of the file (inside the largest array's bytes)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def rewrite_npz(path: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    """A still valid ``.npz`` with one array changed, written by ``np.savez``."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def one_float_changed(path: Path) -> None:
    def change(a: dict[str, np.ndarray]) -> None:
        a["emb"][0, 0] += 0.5

    rewrite_npz(path, change)


def crop_upside_down(path: Path) -> None:
    def change(a: dict[str, np.ndarray]) -> None:
        assert a["crop"].size, "an entry with a face"
        a["crop"] = np.ascontiguousarray(a["crop"][::-1])

    rewrite_npz(path, change)


def malformed_json(path: Path) -> None:
    path.write_text("[]\n", encoding="utf-8")


def another_model(path: Path) -> None:
    """The int8 model swapped for the float MobileFaceNet: a valid model, other bytes."""
    shutil.copyfile(MFN, path)


# ---- the runs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rerun:
    """One rerun over a damaged copy of the clean cache."""

    rc: int
    stderr: str
    out: Path
    damaged: Path  # the damaged file, in the copy
    clean: Path  # the same entry in the clean cache
    cells: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Case:
    cells: tuple[str, ...]  # the cells rerun (``--only``) and compared
    pick: Callable[[Path], Path]  # the file to damage, in a cache folder
    damage: Callable[[Path], None]
    drop_embeddings: bool = False  # remove the embedding entries first (a miss, not damage)


def _only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def embeddings_npz(cache: Path) -> Path:
    return _only(sorted((cache / "embeddings").glob("*.npz")))


def embeddings_json(cache: Path) -> Path:
    return embeddings_npz(cache).with_suffix(".json")


def crop_entry(n: int) -> Callable[[Path], Path]:
    def pick(cache: Path) -> Path:
        return sorted((cache / "align").rglob("*.npz"))[n]

    return pick


def quantized_model(cache: Path) -> Path:
    return _only(sorted((cache / "quantized").glob("mobilefacenet_128d-*.onnx")))


def exported_model(cache: Path) -> Path:
    return _only(sorted((cache / "engines" / "onnx").glob("*.onnx")))


FP32_CASES = {
    "embeddings-truncated": Case((FP32,), embeddings_npz, truncate),
    "embeddings-bit-flipped": Case((FP32,), embeddings_npz, flip_a_bit),
    "embeddings-empty": Case((FP32,), embeddings_npz, empty),
    "embeddings-float-changed": Case((FP32,), embeddings_npz, one_float_changed),
    "embeddings-json-malformed": Case((FP32,), embeddings_json, malformed_json),
    "crop-truncated": Case((FP32,), crop_entry(0), truncate, drop_embeddings=True),
    "crop-bit-flipped": Case((FP32,), crop_entry(1), flip_a_bit, drop_embeddings=True),
    "crop-empty": Case((FP32,), crop_entry(2), empty, drop_embeddings=True),
    "crop-changed": Case((FP32,), crop_entry(3), crop_upside_down, drop_embeddings=True),
}
MODEL_CASES = {
    "int8-model-truncated": Case((FP32, INT8_CELL), quantized_model, truncate),
    "int8-model-swapped": Case((FP32, INT8_CELL), quantized_model, another_model),
    "onnx-export-truncated": Case((EXPORT,), exported_model, truncate),
}
CASES = FP32_CASES | MODEL_CASES


def run(ctx: Ctx, suite_file: Path, out: str, cache: Path, cells: tuple[str, ...]
        ) -> tuple[int, str, Path]:
    only = [arg for c in cells for arg in ("--only", c)]
    res = facebench(["run", str(suite_file), "--out", str(ctx.dir / out), "--no-progress",
                     *only], {**ctx.env, "FACEBENCH_CACHE": str(cache)}, ctx.dir)
    return res.returncode, res.stderr, ctx.dir / out


def damaged_reruns(ctx: Ctx, cases: dict[str, Case], models: list[dict[str, Any]],
                   protocols: list[dict[str, Any]]) -> dict[str, Any]:
    """The clean run (its own cache), then one rerun per case over a damaged copy."""
    d = ctx.dir
    spec = suite("damaged-cache", models, protocols)
    spec["devices"] = [CPU, INT8]
    suite_file = write_suite(d / "suite.yaml", spec)
    clean = d / "cache-clean"
    wanted = tuple(sorted({c for case in cases.values() for c in case.cells}))
    rc, err, out = run(ctx, suite_file, "out-clean", clean, wanted)
    assert rc == 0, err
    reruns = {}
    for name, case in cases.items():
        cache = d / f"cache-{name}"
        shutil.copytree(clean, cache)
        if case.drop_embeddings:
            shutil.rmtree(cache / "embeddings")
        damaged = case.pick(cache)
        case.damage(damaged)
        rc, err, rerun_out = run(ctx, suite_file, f"out-{name}", cache, case.cells)
        reruns[name] = Rerun(rc, err, rerun_out, damaged, clean / damaged.relative_to(cache),
                             cells_by_id(rerun_out) if (rerun_out / "results.json").is_file()
                             else {})
    return {"clean": out, "cells": cells_by_id(out), "reruns": reruns}


@scenario(order=2)
def damaged_fp32_entries(ctx: Ctx) -> dict[str, Any]:
    pairs = write_pair_csv(ctx.dir / "pairs.csv", lfw_rows(5, 2))  # 20 pairs, 33 images
    return damaged_reruns(ctx, FP32_CASES, [model("mfn")],
                          [verification("lfw", pairs, LFW / "images")])


@scenario(order=2)
def damaged_models(ctx: Ctx) -> dict[str, Any]:
    pairs = write_pair_csv(ctx.dir / "pairs.csv", lfw_rows(5, 2))
    return damaged_reruns(ctx, MODEL_CASES, [model("mfn"), ZOO],
                          [verification("lfw", pairs, LFW / "images", models=["mfn"]), EFF])


@pytest.fixture(scope="module")
def fp32(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(damaged_fp32_entries))


@pytest.fixture(scope="module")
def models(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(damaged_models))


@pytest.fixture
def case(request: pytest.FixtureRequest, fp32: dict[str, Any], models: dict[str, Any]
         ) -> tuple[dict[str, Any], Rerun, Case]:
    name = request.param
    runs = fp32 if name in FP32_CASES else models
    return runs, runs["reruns"][name], CASES[name]


def warnings_of(rerun: Rerun, cell: str) -> list[str]:
    log = (rerun.out / "cells" / cell / "stderr.log").read_text(errors="replace")
    return [ln for ln in log.splitlines() if WARNING in ln]


# ---- the cases -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CASES), indirect=True)
def test_rerun_over_a_damaged_entry_gives_the_clean_results(case: Any) -> None:
    runs, rerun, spec = case
    assert rerun.rc == 0, rerun.stderr[-2000:]
    for ident in spec.cells:
        got, want = rerun.cells[ident], runs["cells"][ident]
        assert got["status"] == "ok", got.get("error")
        assert stable(got["metrics"]) == stable(want["metrics"]), ident
        if "scores" in want["artifacts"]:
            assert (rerun.out / got["artifacts"]["scores"]).read_bytes() == \
                   (runs["clean"] / want["artifacts"]["scores"]).read_bytes(), ident


@pytest.mark.parametrize("case", list(CASES), indirect=True)
def test_one_warning_line_names_the_damaged_file(case: Any) -> None:
    runs, rerun, spec = case
    assert rerun.rc == 0, rerun.stderr[-2000:]
    found = [ln for ident in spec.cells for ln in warnings_of(rerun, ident)]
    assert len(found) == 1, found
    assert str(rerun.damaged) in found[0]
    assert "Traceback" not in "".join(
        (rerun.out / "cells" / c / "stderr.log").read_text() for c in spec.cells)


@pytest.mark.parametrize("case", [n for n in FP32_CASES if n.startswith("embeddings-")],
                         indirect=True)
def test_the_embedding_entry_is_replaced(case: Any) -> None:
    runs, rerun, spec = case
    assert rerun.cells[FP32]["details"]["acquire"]["embedding_cache"]["hit"] is False
    npz = rerun.damaged.with_suffix(".npz")
    with np.load(npz) as got, np.load(rerun.clean.with_suffix(".npz")) as want:
        for k in ("emb", "valid", "norms"):
            np.testing.assert_array_equal(got[k], want[k])
    record = json.loads(rerun.damaged.with_suffix(".json").read_text())
    assert record["fta"] == [] and isinstance(record["acquire"], dict)


@pytest.mark.parametrize("case", [n for n in FP32_CASES if n.startswith("crop-")],
                         indirect=True)
def test_the_crop_entry_is_replaced_and_only_it_recomputed(case: Any) -> None:
    runs, rerun, spec = case
    acquire = rerun.cells[FP32]["details"]["acquire"]
    assert acquire["cache_hits"] == runs["cells"][FP32]["metrics"]["images"] - 1
    with np.load(rerun.damaged) as got, np.load(rerun.clean) as want:
        assert sorted(got.files) == sorted(want.files)
        for k in want.files:
            np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parametrize("case", list(MODEL_CASES), indirect=True)
def test_the_model_is_made_again_and_matches_its_record(case: Any) -> None:
    runs, rerun, spec = case
    onnx.checker.check_model(onnx.load(str(rerun.damaged)))
    assert rerun.damaged.read_bytes() == rerun.clean.read_bytes()  # made the same again
    record = json.loads(rerun.damaged.with_suffix(".json").read_text())
    assert record["sha256"] == hashlib.sha256(rerun.damaged.read_bytes()).hexdigest()


def test_a_clean_cache_warns_of_nothing(fp32: dict[str, Any], models: dict[str, Any]) -> None:
    """Control: the clean runs (cold cache) log no damaged entry."""
    for runs in (fp32, models):
        for ident in runs["cells"]:
            log = (runs["clean"] / "cells" / ident / "stderr.log").read_text(errors="replace")
            assert WARNING not in log, ident
