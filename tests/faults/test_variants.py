"""A precision variant (``precision: int8``) is compared with its fp32 baseline cell by the real
``facebench run`` on a real LFW subset: the paired accuracy difference with its CI, latency and
memory ratios; a baseline left out by ``--only`` or a score file that no longer matches gives a
reason instead of numbers, and ``--resume`` keeps or recomputes the comparison."""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.metrics.bootstrap import paired_kfold_accuracy_difference
from facebench.plan import plan
from facebench.runner.variants import attach_precision_comparisons
from facebench.scores import ScoreTable, read_scores, write_scores
from facebench.suite import load_suite

from .conftest import Background
from .kit import (
    CPU,
    LFW,
    Ctx,
    facebench,
    lfw_rows,
    model,
    scenario,
    scenario_name,
    verification,
    write_pair_csv,
    write_suite,
)

INT8 = {**CPU, "id": "cpu-int8", "precision": "int8",
        "quantization": {"calibration_images": 20}}
VAR = "mfn@cpu-int8@lfw"
BASE = "mfn@cpu@lfw"
VAR_EFF = "mfn@cpu-int8@eff"
BASE_EFF = "mfn@cpu@eff"
EFF = {"id": "eff", "kind": "efficiency", "warmup": 1, "min_iters": 5, "min_seconds": 0}


def variant_suite(d: Path, pairs: Path, devices: list[dict[str, Any]]) -> Path:
    """The trained MobileFaceNet on the LFW-100 pairs (``bootstrap: 0``: the comparison's
    bootstrap falls back to 1000 replicates) and a short efficiency probe, on ``devices``."""
    return write_suite(d / "variants.yaml", {
        "name": "variants", "models": [model("mfn")], "devices": devices,
        "protocols": [verification("lfw", pairs, LFW / "images", flip=False), EFF]})


def _run(ctx: Ctx, suite_file: Path, *extra: str) -> dict[str, Any]:
    res = facebench(["run", str(suite_file), "--out", str(ctx.dir / "out"), "--no-progress",
                     *extra], ctx.env, ctx.dir)
    assert res.returncode == 0, res.stderr
    return json.loads((ctx.dir / "out" / "results.json").read_text(encoding="utf-8"))


@scenario(order=3)
def variant_runs(ctx: Ctx) -> dict[str, Any]:
    """Four runs into one folder: the variant alone (``--only``), ``--resume`` of the whole
    suite, ``--resume`` again with nothing to do, and ``--resume`` after the baseline's score
    file was rewritten with a pair id changed. Returns each run's results.json."""
    pairs = ctx.lfw100.parent / "pairs.csv"
    suite_file = variant_suite(ctx.dir, pairs, [CPU, INT8])
    out = ctx.dir / "out"
    steps = {"only_variant": _run(ctx, suite_file, "--only", "*@cpu-int8@*"),
             "resumed": _run(ctx, suite_file, "--resume"),
             "again": _run(ctx, suite_file, "--resume")}
    scores = out / "cells" / BASE / "scores.csv"
    shutil.copyfile(scores, ctx.dir / "baseline_scores.csv")
    shutil.copyfile(out / "results.csv", ctx.dir / "resumed_results.csv")
    rows = list(csv.reader(scores.read_text(encoding="utf-8").splitlines()))
    rows[1][0] = "not-a-pair-of-the-variant"
    scores.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    steps["tampered"] = _run(ctx, suite_file, "--resume")
    return {"dir": ctx.dir, "suite": suite_file, "pairs": pairs, "steps": steps}


def _runs(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(variant_runs))


def _cells(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in results["cells"]}


def test_baseline_left_out_by_only_gives_a_reason(background: Background) -> None:
    cells = _cells(_runs(background)["steps"]["only_variant"])
    assert sorted(cells) == [VAR_EFF, VAR]
    for ident, base in ((VAR, BASE), (VAR_EFF, BASE_EFF)):
        cell = cells[ident]
        assert cell["status"] == "ok"
        got = cell["details"]["precision_baseline"]
        assert got["cell"] is None
        assert base in got["reason"] and "--only" in got["reason"]
        assert not [k for k in cell["metrics"] if "_vs_fp32" in k]


def test_variant_is_compared_with_its_fp32_cell(background: Background) -> None:
    """After ``--resume`` ran the baseline: the numbers recompute from the two cells' own
    score files and metrics."""
    runs = _runs(background)
    out = runs["dir"] / "out"
    cells = _cells(runs["steps"]["resumed"])
    var, base = cells[VAR], cells[BASE]
    assert var.get("resumed") and not base.get("resumed")
    assert var["details"]["precision_baseline"] == {"cell": BASE, "precision": "fp32",
                                                    "bootstrap": 1000, "seed": 0}
    m = var["metrics"]
    assert m["accuracy_vs_fp32"] == pytest.approx(
        m["accuracy"] - base["metrics"]["accuracy"], abs=1e-12)
    assert m["accuracy_vs_fp32_ci_low"] <= m["accuracy_vs_fp32_ci_high"]
    a = read_scores(out / var["artifacts"]["scores"])
    b = read_scores(runs["dir"] / "baseline_scores.csv")  # as the run left it (step 4 edits)
    assert a.pair_id.tolist() == b.pair_id.tolist()
    want = paired_kfold_accuracy_difference(a.score, b.score, a.label, a.fold, a.fta, b.fta,
                                            replicates=1000, seed=0)
    assert (m["accuracy_vs_fp32"], m["accuracy_vs_fp32_ci_low"],
            m["accuracy_vs_fp32_ci_high"]) == (want.delta, want.ci_low, want.ci_high)
    assert "precision_baseline" not in base["details"]
    assert not [k for k in base["metrics"] if "_vs_fp32" in k]

    eff, eff_base = cells[VAR_EFF]["metrics"], cells[BASE_EFF]["metrics"]
    assert cells[VAR_EFF]["details"]["precision_baseline"] == {"cell": BASE_EFF,
                                                               "precision": "fp32"}
    assert eff["latency.b1.p50_vs_fp32"] == pytest.approx(
        eff["latency.b1.p50_ms"] / eff_base["latency.b1.p50_ms"])
    assert eff["memory.peak_rss_delta_vs_fp32"] == pytest.approx(
        eff["memory.peak_rss_delta_bytes"] / eff_base["memory.peak_rss_delta_bytes"])
    tidy = (runs["dir"] / "resumed_results.csv").read_text(encoding="utf-8")
    assert f"{VAR},mfn,cpu-int8,lfw,verification,ok,accuracy_vs_fp32," in tidy


def test_resume_with_nothing_to_do_keeps_the_comparison(background: Background) -> None:
    steps = _runs(background)["steps"]
    before, after = _cells(steps["resumed"]), _cells(steps["again"])
    for ident in (VAR, VAR_EFF):
        assert after[ident]["resumed"]
        keep = {k: v for k, v in before[ident]["metrics"].items() if "_vs_fp32" in k}
        assert keep and {k: after[ident]["metrics"][k] for k in keep} == keep
        assert (after[ident]["details"]["precision_baseline"]
                == before[ident]["details"]["precision_baseline"])


def test_scores_that_no_longer_match_give_a_reason(background: Background) -> None:
    """``--resume`` recomputes the comparison: the baseline's scores.csv now lists a pair the
    variant's does not, so there is a reason and no accuracy difference; the efficiency
    comparison is unaffected."""
    cells = _cells(_runs(background)["steps"]["tampered"])
    var = cells[VAR]
    got = var["details"]["precision_baseline"]
    assert got["cell"] is None
    assert "do not score the same pairs" in got["reason"]
    assert "not-a-pair-of-the-variant" in got["reason"]
    assert not [k for k in var["metrics"] if "_vs_fp32" in k]
    assert "latency.b1.p50_vs_fp32" in cells[VAR_EFF]["metrics"]


def test_failed_baseline_and_no_baseline_give_reasons(background: Background) -> None:
    """On the real results: a failed baseline cell is named with its error, and a suite with
    no fp32 device says what to add; nothing raises."""
    runs = _runs(background)
    out = runs["dir"] / "out"
    results = copy.deepcopy(runs["steps"]["resumed"])
    for rec in results["cells"]:
        if rec["id"] == BASE:
            rec.update(status="failed", error={"message": "model returned NaN or Inf"})
    cells = plan(load_suite(runs["suite"]))
    attach_precision_comparisons(results, out, cells)
    got = _cells(results)
    assert got[VAR]["details"]["precision_baseline"] == {
        "cell": None, "reason": f"fp32 baseline {BASE} failed: model returned NaN or Inf"}
    assert "accuracy_vs_fp32" not in got[VAR]["metrics"]
    assert got[VAR_EFF]["details"]["precision_baseline"]["cell"] == BASE_EFF

    alone = runs["dir"] / "alone"
    alone.mkdir(exist_ok=True)
    only_int8 = variant_suite(alone, runs["pairs"], [INT8])
    attach_precision_comparisons(results, out, plan(load_suite(only_int8)))
    reason = _cells(results)[VAR]["details"]["precision_baseline"]["reason"]
    assert "no fp32 device with engine onnxruntime on cpu" in reason


def test_a_finished_fp32_cell_is_preferred_to_a_failed_closer_one(background: Background) -> None:
    """Two fp32 devices: the one with the variant's threads failed, so the variant is compared
    with the other (whose record here reuses the real baseline's scores)."""
    runs = _runs(background)
    results = copy.deepcopy(runs["steps"]["resumed"])
    cells = _cells(results)
    other = {**copy.deepcopy(cells[BASE]), "id": "mfn@cpu-2t@lfw", "device": "cpu-2t"}
    other["artifacts"]["scores"] = "../baseline_scores.csv"
    cells[BASE].update(status="failed", error={"message": "killed by signal SIGKILL (9)"})
    results["cells"].append(other)
    d = runs["dir"] / "two"
    d.mkdir(exist_ok=True)
    two = variant_suite(d, runs["pairs"], [CPU, {**CPU, "id": "cpu-2t",
                                                 "threads": {"intra_op": 2, "inter_op": 1}},
                                           INT8])
    attach_precision_comparisons(results, runs["dir"] / "out", plan(load_suite(two)))
    var = _cells(results)[VAR]
    assert var["details"]["precision_baseline"]["cell"] == "mfn@cpu-2t@lfw"
    assert var["metrics"]["accuracy_vs_fp32"] == pytest.approx(
        var["metrics"]["accuracy"] - other["metrics"]["accuracy"], abs=1e-12)


def _score_file(path: Path, ids: list[str], scores: np.ndarray, labels: np.ndarray,
                folds: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_scores(path, ScoreTable(np.array(ids, dtype=object), scores, labels.astype(np.int8),
                                  folds.astype(np.int64), np.zeros(len(ids), dtype=bool)))


def test_the_comparison_is_a_function_of_the_variants_file_order(tmp_path: Path) -> None:
    """Issue 27 item 14: the interval must not depend on how pair ids sort as strings ("10"
    before "2") — that made the reported CI differ from one recomputed from the saved files
    wherever the int8 kernels (AVX2 vs AVX-512) changed which pairs disagree. The comparison
    resamples the variant's pairs in its own file order (the order of its accuracy CI), and
    the baseline's row order does not matter."""
    rng = np.random.default_rng(7)
    n = 200
    ids = [str(k) for k in range(n)]
    labels = np.tile(np.repeat([1, 0], 50), 2)
    folds = np.repeat([0, 1], 100)
    base = np.where(labels == 1, 0.6, 0.3) + rng.normal(0, 0.2, n)
    var = base + rng.normal(0, 0.1, n)
    out = tmp_path / "out"
    _score_file(out / "cells" / VAR / "scores.csv", ids, var, labels, folds)
    shuffled = rng.permutation(n)
    _score_file(out / "cells" / BASE / "scores.csv", [ids[k] for k in shuffled], base[shuffled],
                labels[shuffled], folds[shuffled])
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(1, 1))
    cells = plan(load_suite(variant_suite(tmp_path, pairs, [CPU, INT8])))
    results = {"cells": [{"id": c, "status": "ok", "metrics": {}, "details": {},
                          "artifacts": {"scores": f"cells/{c}/scores.csv"}} for c in (VAR, BASE)]}
    attach_precision_comparisons(results, out, cells)
    m = _cells(results)[VAR]["metrics"]
    want = paired_kfold_accuracy_difference(var, base, labels, folds, replicates=1000, seed=0)
    assert (m["accuracy_vs_fp32"], m["accuracy_vs_fp32_ci_low"],
            m["accuracy_vs_fp32_ci_high"]) == (want.delta, want.ci_low, want.ci_high)
