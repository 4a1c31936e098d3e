"""Garbage given with an IJB set is never scored as valid (issue 27, item 3).

From one real IJB-format set (``make_ijb_from_lfw`` over the shared LFW images and YuNet):
landmarks 5,000 px outside every crop, every detector score 0 under ``detector_score``
weighting, a single gallery set whose scores are all 0, a hand-made mix of faces just inside
and just beyond the landmark tolerance, and an LFW pair list where every pair has a side
without a face. A landmark row that does not describe a face in its crop is a failure to
acquire with its reason; a template whose weights cannot pool is one too; a cell with nothing
left to score is failed with a reason, never ``ok``, and never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facebench.datasets.ijb import load_ijb
from facebench.datasets.make_ijb import make_ijb_from_lfw
from facebench.faces.acquire import GIVEN_MARGIN, given_problem

from .kit import (
    LFW,
    YUNET,
    facebench,
    lfw_rows,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)


def _landmarks(root: Path) -> Path:
    return next((root / "meta").glob("*_name_5pts_score.txt"))


def _edit(root: Path, edit: dict[str, tuple[np.ndarray | None, str | None]]) -> None:
    """Rewrite the landmark rows of the faces in ``edit``: ``name -> (points, score text)``
    (``None`` keeps a field)."""
    path = _landmarks(root)
    rows = []
    for line in path.read_text().splitlines():
        f = line.split()
        if f and f[0] in edit:
            pts, score = edit[f[0]]
            if pts is not None:
                f[1:11] = [f"{v:.3f}" for v in np.asarray(pts).reshape(-1)]
            if score is not None:
                f[11] = score
        rows.append(" ".join(f))
    path.write_text("\n".join(rows) + "\n")


def _rows(root: Path) -> dict[str, tuple[np.ndarray, float]]:
    out = {}
    for line in _landmarks(root).read_text().splitlines():
        f = line.split()
        out[f[0]] = (np.array(f[1:11], dtype=np.float64).reshape(5, 2), float(f[11]))
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def garbage_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ijb-garbage")
    make_ijb_from_lfw(LFW / "images", d / "ijb", detector_model=YUNET, subjects=6)
    ijb = load_ijb(d / "ijb")
    rows = _rows(d / "ijb")
    names = [p.name for p in ijb.images]

    far = _copy(d / "ijb", d / "far")  # every landmark 5,000 px right and below its crop
    _edit(far, {n: (pts + 5000.0, None) for n, (pts, _) in rows.items()})
    zero = _copy(d / "ijb", d / "zero")  # every detector score 0
    _edit(zero, {n: (None, "0") for n in rows})
    g1zero = _copy(d / "ijb", d / "g1zero")  # every face of gallery G1 with score 0
    g1 = set(ijb.galleries["G1"][0].tolist())
    _edit(g1zero, {n: (None, "0") for n, t in zip(names, ijb.template_ids.tolist(),
                                                   strict=True) if t in g1})

    # the hand-made mix: faces of templates other than the zero / negative-score ones
    mixed = _copy(d / "ijb", d / "mixed")
    tids, counts = np.unique(ijb.template_ids, return_counts=True)
    big = [int(t) for t in tids[counts >= 2]]
    t_zero, t_neg = big[0], big[1]
    faces_of = {t: [n for n, ti in zip(names, ijb.template_ids.tolist(), strict=True) if ti == t]
                for t in tids.tolist()}
    rest = [faces_of[t][0] for t in tids.tolist() if t not in (t_zero, t_neg)]
    inside, beyond, huge = rest[0], rest[1], rest[2]
    edit: dict[str, tuple[np.ndarray | None, str | None]] = {n: (None, "0")
                                                             for n in faces_of[t_zero]}
    edit[faces_of[t_neg][0]] = (None, "-0.5")
    for name, frac in ((inside, 0.2), (beyond, 0.3)):  # leftmost point at -frac x width
        pts = rows[name][0]
        w = cv2.imread(str(mixed / "loose_crop" / name)).shape[1]
        edit[name] = (pts - [pts[:, 0].min() + frac * w, 0.0], None)
    edit[huge] = (None, "1e39")  # finite in the file, inf as float32
    _edit(mixed, edit)

    # LFW: every pair has a side with no face (a real JPEG of noise)
    noise = d / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    lfw = lfw_rows(3, 2)  # two folds: a valid k-fold pair list
    for i, (a, _, _, _) in enumerate(lfw):
        shutil.copy(LFW / "images" / a, noise / f"f{i}.jpg")
        cv2.imwrite(str(noise / f"n{i}.jpg"), rng.integers(0, 256, (160, 160, 3), np.uint8))
    pairs = write_pair_csv(d / "nofacepairs.csv", [(f"f{i}.jpg", f"n{i}.jpg", y, f)
                                                    for i, (_, _, y, f) in enumerate(lfw)])

    def ijb_proto(ident: str, kind: str, root: Path, weighted: bool = False) -> dict:
        data = {"kind": "ijb", "root": str(root)}
        if weighted:
            data["templates"] = {"detector_score": True}
        extra = {"far_targets": [0.1]} if kind == "verification" else {}
        return {"id": ident, "kind": kind, "dataset": data, **extra}

    protocols = [
        ijb_proto("far11", "verification", far), ijb_proto("far1n", "identification", far),
        ijb_proto("zero11", "verification", zero, True),
        ijb_proto("zero1n", "identification", zero, True),
        ijb_proto("g1zero1n", "identification", g1zero, True),
        ijb_proto("mixed11", "verification", mixed, True),
        ijb_proto("mixed1n", "identification", mixed, True),
        verification("nofaces", pairs, noise)]
    path = write_suite(d / "suite.yaml", suite("ijbgarbage", [model("mfn")], protocols))
    env = {**os.environ, "FACEBENCH_CACHE": str(d / "cache")}
    res = facebench(["run", str(path), "--out", str(d / "out"), "--no-progress"], env, d)
    assert res.returncode == 3, res.stdout + res.stderr  # failed cells, the others ran
    cells = {c["protocol"]: c for c in json.loads((d / "out" / "results.json").read_text())
             ["cells"]}
    return {"cells": cells, "ijb": ijb, "out": d / "out", "stdout": res.stdout + res.stderr,
            "t_zero": t_zero, "t_neg": t_neg, "inside": inside, "beyond": beyond,
            "huge": huge, "n_faces": len(names), "lfw_pairs": len(lfw)}


def _fta(cell: dict) -> dict[str, str]:
    return {Path(f["image"]).name: f["reason"] for f in cell["details"]["fta_images_list"]}


def _failed_with(cell: dict, *words: str) -> str:
    """The cell failed with a one-line reason (no traceback), and keeps no metrics."""
    assert cell["status"] == "failed", cell.get("metrics")
    err = cell["error"]
    assert err["type"] == "NothingScored" and "traceback" not in err, err
    assert "nothing to score" in err["message"] and "\n" not in err["message"]
    for w in words:
        assert w in err["message"], err["message"]
    assert not cell.get("metrics")
    return err["message"]


@pytest.mark.parametrize("protocol", ["far11", "far1n"])
def test_landmarks_far_outside_every_crop_are_failures_to_acquire(garbage_run: dict,
                                                                   protocol: str) -> None:
    # before: status ok, 0 FtA, every score 1.0
    cell = garbage_run["cells"][protocol]
    _failed_with(cell, f"{garbage_run['n_faces']} of {garbage_run['n_faces']} images failed",
                 "lies outside the")
    fta = _fta(cell)
    assert len(fta) == garbage_run["n_faces"]
    assert all("given landmark 1 (50" in r and "by more than 25% of its size" in r
               for r in fta.values()), fta


def test_all_scores_zero_fail_the_1to1_cell_with_a_reason(garbage_run: dict) -> None:
    # before: status ok with every pair a failure to acquire
    cell = garbage_run["cells"]["zero11"]
    n_t = int(np.unique(garbage_run["ijb"].template_ids).size)
    _failed_with(cell, f"every one of the {garbage_run['ijb'].pairs.shape[0]} pairs",
                 f"{n_t} of {n_t} templates failed", "sum to 0")
    failed = cell["details"]["templates"]["fta_templates_list"]
    assert len(failed) == n_t == cell["details"]["templates"]["fta_templates"]
    assert all("weights of its acquired faces sum to 0" in f["reason"] for f in failed)


def test_all_scores_zero_fail_the_1toN_cell_without_a_traceback(garbage_run: dict) -> None:
    # before: IndexError: index 0 is out of bounds for axis 0 with size 0
    cell = garbage_run["cells"]["zero1n"]
    _failed_with(cell, "none of the", "searches", "sum to 0")
    assert "IndexError" not in garbage_run["stdout"]


def test_one_empty_gallery_is_searched_as_misses(garbage_run: dict) -> None:
    # before: IndexError (G1's gallery is empty once its templates fail)
    cell, ijb = garbage_run["cells"]["g1zero1n"], garbage_run["ijb"]
    assert cell["status"] == "ok", cell.get("error")
    splits = {s["name"]: s for s in cell["details"]["splits"]}
    assert splits["G1"]["fta_gallery"] == splits["G1"]["gallery"] == \
        np.unique(ijb.galleries["G1"][0]).size
    assert splits["G2"]["fta_gallery"] == 0
    assert cell["metrics"]["fta_gallery"] == splits["G1"]["gallery"]
    # G1's mated probes find nothing: rank-1 is at most G2's share of the mated searches
    assert cell["metrics"]["rank1"] <= splits["G2"]["mated"] / cell["metrics"]["mated_searches"]


def test_mixed_garbage_is_counted_with_reasons(garbage_run: dict) -> None:
    # before: the cell failed: ValueError detector scores[..] = -0.5 / inf (whole cell lost)
    r = garbage_run
    cell = r["cells"]["mixed11"]
    assert cell["status"] == "ok", cell.get("error")
    fta = _fta(cell)
    assert set(fta) == {r["beyond"], r["huge"]}, fta
    assert "lies outside the" in fta[r["beyond"]] and "25%" in fta[r["beyond"]]
    assert fta[r["huge"]] == "given detector score not finite (inf)"
    assert cell["metrics"]["fta_images"] == 2
    failed = {f["template"]: f["reason"]
              for f in cell["details"]["templates"]["fta_templates_list"]}
    assert "sum to 0" in failed[r["t_zero"]]
    assert "has detector score -0.5: a weight must be a finite number >= 0" in failed[r["t_neg"]]
    ijb = r["ijb"]
    touching = (np.isin(ijb.pairs, list(failed))).any(axis=1)
    assert cell["metrics"]["fta_pairs"] >= int(touching.sum()) > 0  # rejects, not dropped
    many = r["cells"]["mixed1n"]
    assert many["status"] == "ok", many.get("error")
    assert many["details"]["templates"]["fta_templates"] == len(failed)
    # the report lists both kinds of failure with their reasons
    md = (r["out"] / "report.md").read_text()
    assert "template(s) with no feature" in md and f"template {r['t_zero']} — " in md
    assert f"{r['beyond']} — given landmark" in md


def test_lfw_cell_where_every_pair_has_no_face_is_failed(garbage_run: dict) -> None:
    # before: status ok, fta_rate 1.0, metrics over nothing
    cell = garbage_run["cells"]["nofaces"]
    _failed_with(cell, f"every one of the {garbage_run['lfw_pairs']} pairs",
                 "no face detected")
    assert len(_fta(cell)) == garbage_run["lfw_pairs"]


def test_landmark_tolerance_by_hand() -> None:
    """The documented tolerance: a point up to GIVEN_MARGIN x the width (x) or height (y)
    outside the image is accepted; beyond it, the row is a failure to acquire."""
    assert GIVEN_MARGIN == 0.25
    w, h = 200, 100
    base = np.array([[60, 40], [140, 40], [100, 60], [70, 80], [130, 80]], np.float64)
    assert given_problem(base, 0.9, w, h) is None
    for point, ok in (((-49, 40), True), ((-51, 40), False),  # 25% of 200 left of x = 0
                      ((249, 40), True), ((251, 40), False),  # and right of x = 200
                      ((60, -24), True), ((60, -26), False),  # 25% of 100 above y = 0
                      ((60, 124), True), ((60, 126), False)):  # and below y = 100
        pts = base.copy()
        pts[0] = point
        problem = given_problem(pts, 0.9, w, h)
        assert (problem is None) == ok, (point, problem)
        if not ok:
            assert problem == (f"given landmark 1 ({point[0]:.1f}, {point[1]:.1f}) lies outside "
                               "the 200x100 image by more than 25% of its size")
    assert given_problem(base, float("nan"), w, h) == "given detector score not finite (nan)"
    bad = base.copy()
    bad[2, 1] = np.inf
    assert given_problem(bad, 0.9, w, h) == "given landmarks not finite (nan or inf)"
