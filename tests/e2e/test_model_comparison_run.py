"""Models in different protocols (different detectors) on the same LFW pairs, end to end through
the CLI: run → results.json compares them → the report shows "Which differences are real" →
``better_than`` gates pass or fail as the stored CIs say.

A fixed real subset of LFW View 2 (first 6 genuine + 6 impostor pairs of folds 1-4, as an LFW
pairs file so the identities are known): MobileFaceNet and the same weights fed raw BGR pixels
(a broken preprocessing, clearly worse) behind YuNet, SFace behind RetinaFace. The same images
as an identity folder, every pair scored (exhaustive), make a second group: MobileFaceNet and
its broken twin again, read back from the compact binary score files.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from facebench.gates import Gate, evaluate_gates
from facebench.metrics import kfold_accuracy
from facebench.results import load_results
from facebench.runner import comparisons
from facebench.scores import load_pair_arrays
from tests.faults.kit import LFW, SHARED, facebench, model, suite, verification, write_suite

SFACE = SHARED / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
RETINAFACE = SHARED / "models" / "retinaface_mobilenet0.25.pth"
PER_FOLD, FOLDS = 6, 4


def _pairs_file(path: Path) -> Path:
    lines = (LFW / "pairs.txt").read_text(encoding="utf-8").splitlines()[1:]
    body = [ln for f in range(FOLDS) for ln in
            lines[600 * f:600 * f + PER_FOLD] + lines[600 * f + 300:600 * f + 300 + PER_FOLD]]
    path.write_text(f"{FOLDS}\t{PER_FOLD}\n" + "\n".join(body) + "\n", encoding="utf-8")
    return path


def _people(pairs: Path, root: Path) -> Path:
    """The images of ``pairs`` copied into an identity folder (one folder per person)."""
    for parts in (ln.split() for ln in pairs.read_text(encoding="utf-8").splitlines()[1:]):
        for name, number in ((parts[0], parts[1]), (parts[-2], parts[-1])) if len(parts) == 4 \
                else ((parts[0], parts[1]), (parts[0], parts[2])):
            src = LFW / "images" / name / f"{name}_{int(number):04d}.jpg"
            (root / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / name / src.name)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if not (SFACE.is_file() and RETINAFACE.is_file() and (LFW / "pairs.txt").is_file()):
        if os.environ.get("CI"):
            pytest.fail(f"real data missing under {SHARED}")
        pytest.skip(f"real data not found under {SHARED}")
    d = tmp_path_factory.mktemp("compare")
    pairs = _pairs_file(d / "pairs.txt")
    raw = model("mfn-raw", preprocess={"color": "BGR", "mean": 0.0, "std": 1.0,
                                       "input_size": [112, 112]})
    sface = {"id": "sface", "source": "onnx", "path": str(SFACE), "embedding_size": 128,
             "align": {"method": "similarity", "template": "arcface"},
             "normalize": {"color": "RGB", "mean": 0, "std": 1}}
    common = {"kind": "lfw_pairs", "bootstrap": 200, "far_targets": [0.1, 0.01]}
    yunet = {**verification("lfw-yunet", pairs, LFW / "images", **common),
             "models": ["mfn", "mfn-raw"]}
    retina = {**verification("lfw-retina", pairs, LFW / "images", **common),
              "models": ["sface"],
              "detector": {"name": "retinaface", "model": str(RETINAFACE),
                           "select": "closest_to_center"}}
    every = {**verification("all", pairs, LFW / "images", bootstrap=200,
                            far_targets=[0.01, 0.001]),
             "models": ["mfn", "mfn-raw"],
             "dataset": {"kind": "identity_folder", "images": str(_people(pairs, d / "people")),
                         "pairs": "all"}}
    s = write_suite(d / "suite.yaml", suite("compare", [model("mfn"), raw, sface],
                                            [yunet, retina, every]))
    env = {**os.environ, "FACEBENCH_SHARED": str(SHARED), "FACEBENCH_CACHE": str(d / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{d}/history.db", "PYTHONWARNINGS": "ignore"}
    res = facebench(["run", str(s), "--out", str(d / "out"), "--no-progress"], env, d,
                    timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return d / "out", env


def _rows(out: Path, exhaustive: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
    comparisons = load_results(out)["comparisons"]
    return {(r["model_a"], r["model_b"]): r for r in comparisons["pairwise"]
            if (r["protocol_a"] == "all") == exhaustive}


def test_results_compare_every_two_models_on_the_same_pairs(
        run: tuple[Path, dict[str, str]]) -> None:
    out, _ = run
    results = load_results(out)
    cells = {c["model"]: c for c in results["cells"] if c["protocol"] != "all"}
    assert len({c["details"]["pairs_key"] for c in cells.values()}) == 1
    group, every = results["comparisons"]["groups"]
    assert group["protocols"] == ["lfw-yunet", "lfw-retina"] and every["protocols"] == ["all"]
    rows = _rows(out)
    assert set(rows) == {("mfn", "mfn-raw"), ("mfn", "sface"), ("mfn-raw", "sface")}
    for (ma, mb), r in rows.items():
        assert r["reason"] is None and r["pairs"] == 2 * PER_FOLD * FOLDS
        assert r["bootstrap"]["method"] == "identity"  # LFW's pairs file names the people
        # each side's numbers are its own cell's
        assert r["accuracy"]["a"] == pytest.approx(cells[ma]["metrics"]["accuracy"], abs=1e-12)
        assert r["accuracy"]["b"] == pytest.approx(cells[mb]["metrics"]["accuracy"], abs=1e-12)
        for t in r["tar_at_far"]:
            assert t["a"] == pytest.approx(cells[ma]["metrics"][f"tar@far={t['key']}"])
            assert t["supported"] is False and t["winner"] is None  # 24 impostors
        # McNemar from the scores on disk at each model's own fold thresholds
        ok = {}
        for m in (ma, mb):
            p = load_pair_arrays(out / "cells" / cells[m]["id"], cells[m]["details"])
            kf = kfold_accuracy(p.score, p.label, p.fold, p.fta)
            t = kf.thresholds[np.searchsorted(kf.folds, p.fold)]
            ok[m] = ((np.nan_to_num(p.score, nan=-np.inf) >= t) & ~p.fta) == (p.label == 1)
        b, c = int(np.sum(ok[ma] & ~ok[mb])), int(np.sum(~ok[ma] & ok[mb]))
        assert (r["mcnemar"]["a_only"], r["mcnemar"]["b_only"]) == (b, c)
        expected = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        assert r["mcnemar"]["p_value"] == pytest.approx(expected, rel=1e-9)
    # Holm over the four tests of the run, by hand
    tests = [*rows.values(), *_rows(out, exhaustive=True).values()]
    ps = sorted((r["mcnemar"]["p_value"], i) for i, r in enumerate(tests))
    running = 0.0
    for rank, (p, i) in enumerate(ps):
        running = max(running, min(1.0, p * (4 - rank)))
        assert tests[i]["mcnemar"]["p_holm"] == pytest.approx(running)
    assert rows[("mfn", "mfn-raw")]["accuracy"]["winner"] == "mfn"
    assert rows[("mfn", "mfn-raw")]["accuracy"]["ci_low"] > 0


def test_exhaustive_cells_are_compared_from_their_binary_score_files(
        run: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    out, _ = run
    results = load_results(out)
    cells = {c["model"]: c for c in results["cells"] if c["protocol"] == "all"}
    assert all(c["artifacts"]["scores"].endswith("scores.npy") for c in cells.values())
    (row,) = _rows(out, exhaustive=True).values()
    n = cells["mfn"]["metrics"]["pairs"]
    assert row["pairs"] == n and row["bootstrap"]["method"] == "identity"
    assert row["mcnemar"]["thresholds"] == "all_data"
    tar = {t["key"]: t for t in row["tar_at_far"]}
    assert tar["1e-2"]["supported"] and not tar["1e-3"]["supported"]
    assert tar["1e-2"]["a"] == pytest.approx(cells["mfn"]["metrics"]["tar@far=1e-2"])
    assert tar["1e-2"]["winner"] == "mfn" and tar["1e-3"]["winner"] is None
    # above the accuracy limit (exhaustive LFW: 29.6 M pairs) only TAR@FAR is compared
    monkeypatch.setattr(comparisons, "MAX_ACCURACY_PAIRS", n - 1)
    comparisons.attach_model_comparisons(results, out)
    big = next(r for r in results["comparisons"]["pairwise"] if r["protocol_a"] == "all")
    assert big["accuracy"] is None and big["mcnemar"] is None
    assert [t["delta"] for t in big["tar_at_far"]] == [t["delta"] for t in row["tar_at_far"]]


def test_report_shows_which_differences_are_real(run: tuple[Path, dict[str, str]]) -> None:
    out, _ = run
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "### lfw-yunet · lfw-retina (verification, same pairs: 3 ok)" in md
    section = md.split("## Which differences are real", 1)[1].split("\n## ", 1)[0]
    assert f"lfw-yunet · lfw-retina ({2 * PER_FOLD * FOLDS} pairs)" in section
    assert "mfn (lfw-yunet) vs mfn-raw (lfw-yunet)" in section
    assert "mfn (lfw-yunet) vs sface (lfw-retina)" in section
    assert "| mfn (accuracy) |" in section
    assert '<section id="differences">' in html


def test_better_than_gates_follow_the_stored_cis(run: tuple[Path, dict[str, str]]) -> None:
    out, env = run
    rows = _rows(out)
    win = facebench(["gate", str(out), "--gate", "mfn@*@lfw-yunet:accuracy better_than mfn-raw",
                     "--gate", "mfn@*@all:tar@far=1e-2 vs mfn-r* > 0"], env, out.parent)
    assert win.returncode == 0, win.stdout + win.stderr
    tie = rows[("mfn", "sface")]["accuracy"]
    assert tie["ci_low"] <= 0  # no real difference between the two trained models here
    lose = facebench(["gate", str(out), "--gate", "mfn:accuracy better_than sface"], env,
                     out.parent)
    assert lose.returncode == 1 and "violates > 0" in lose.stdout + lose.stderr
    results = load_results(out)
    bound = evaluate_gates(results, [Gate.model_validate(
        f"sface:accuracy vs mfn >= {-tie['ci_high'] - 1e-9}"), Gate.model_validate(
        f"sface:accuracy vs mfn >= {-tie['ci_high'] + 1e-3}")])
    assert [o.status for o in bound] == ["pass", "fail"]
    assert json.loads(json.dumps([o.as_dict() for o in bound]))[0]["stats"]["other"] == \
        "mfn@cpu@lfw-yunet"
