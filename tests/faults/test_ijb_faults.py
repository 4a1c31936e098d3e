"""Hostile IJB inputs: a broken loose crop is one failure to acquire (its template pools the
faces left, a template with none left is a reject / a miss), a dataset without the lists a
protocol needs fails that cell with a clear message while the others finish, and suite fields
that cannot apply to an ijb dataset are refused at validation."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets.ijb import load_ijb
from facebench.datasets.make_ijb import make_ijb_from_lfw

from .kit import LFW, YUNET, facebench, model, suite, write_suite


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "FACEBENCH_CACHE": str(tmp / "cache")}


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ijb-faults")
    make_ijb_from_lfw(LFW / "images", d / "ijb", detector_model=YUNET, subjects=6)
    ijb = load_ijb(d / "ijb")
    tids, counts = np.unique(ijb.template_ids, return_counts=True)
    lonely = int(tids[np.flatnonzero(counts == 1)[0]])  # a one-face template: it loses its face
    crowded = int(tids[np.flatnonzero(counts >= 2)[0]])  # keeps at least one face
    broken = [int(np.flatnonzero(ijb.template_ids == t)[0]) for t in (lonely, crowded)]
    for i in broken:
        ijb.images[i].write_bytes(b"not a jpeg")
    shutil.copytree(d / "ijb", d / "no-pairs")
    next((d / "no-pairs" / "meta").glob("*_template_pair_label.txt")).unlink()
    protocols = [
        {"id": "one", "kind": "verification", "dataset": {"kind": "ijb", "root": str(d / "ijb")},
         "far_targets": [0.1]},
        {"id": "many", "kind": "identification",
         "dataset": {"kind": "ijb", "root": str(d / "ijb")}},
        {"id": "nopairs", "kind": "verification",
         "dataset": {"kind": "ijb", "root": str(d / "no-pairs")}}]
    path = write_suite(d / "suite.yaml", suite("ijbfaults", [model("mfn")], protocols))
    res = facebench(["run", str(path), "--out", str(d / "out"), "--no-progress"], _env(d), d)
    assert res.returncode == 3, res.stderr  # one failed cell, the others ran
    cells = {c["protocol"]: c for c in json.loads((d / "out" / "results.json").read_text())
             ["cells"]}
    return {"cells": cells, "ijb": ijb, "broken": broken, "lonely": lonely}


def test_broken_crop_is_one_failure_to_acquire(broken_run: dict) -> None:
    one, ijb = broken_run["cells"]["one"], broken_run["ijb"]
    assert one["status"] == "ok", one.get("error")
    names = {ijb.images[i].name for i in broken_run["broken"]}
    listed = {Path(f["image"]).name for f in one["details"]["fta_images_list"]}
    assert listed == names and one["metrics"]["fta_images"] == 2
    lonely = broken_run["lonely"]
    touching = int(np.count_nonzero((ijb.pairs == lonely).any(axis=1)))
    assert touching > 0 and one["metrics"]["fta_pairs"] == touching  # rejected, not dropped
    assert one["metrics"]["pairs"] == ijb.pairs.shape[0]
    assert one["details"]["templates"]["valid_templates"] == \
        one["details"]["templates"]["templates"] - 1


def test_broken_template_is_a_miss_in_1n(broken_run: dict) -> None:
    many, ijb = broken_run["cells"]["many"], broken_run["ijb"]
    assert many["status"] == "ok", many.get("error")
    lonely = broken_run["lonely"]
    in_probes = lonely in set(ijb.probes[0].tolist())
    in_gallery = any(lonely in set(t.tolist()) for t, _ in ijb.galleries.values())
    assert many["metrics"]["fta_probes"] == int(in_probes)
    assert many["metrics"]["fta_gallery"] == int(in_gallery)


def test_missing_pair_file_fails_only_its_cell(broken_run: dict) -> None:
    cell = broken_run["cells"]["nopairs"]
    assert cell["status"] == "failed"
    assert "template_pair_label.txt" in cell["error"]["message"]
    assert "1:1 verification needs them" in cell["error"]["message"]


@pytest.mark.parametrize(("extra", "message"), [
    ({"kind": "verification", "detector": {"name": "yunet", "model": str(YUNET)}},
     "its faces come with five landmarks"),
    ({"kind": "identification", "distractors": ["."]}, "for identity datasets only"),
    ({"kind": "identification", "unenrolled": 0.2}, "for identity datasets only"),
])
def test_ijb_fields_that_cannot_apply_are_refused(tmp_path: Path, extra: dict,
                                                  message: str) -> None:
    (tmp_path / "ijb").mkdir()
    proto = {"id": "p", "dataset": {"kind": "ijb", "root": str(tmp_path / "ijb")}, **extra}
    path = write_suite(tmp_path / "s.yaml", suite("bad", [model("mfn")], [proto]))
    res = facebench(["validate", str(path)], _env(tmp_path), tmp_path)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr and "protocols[0]" in res.stdout + res.stderr
