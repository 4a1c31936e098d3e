"""The shipped suites/ijb-lfw.yaml end to end: `facebench make-ijb` writes an IJB-format set
from real LFW identities (YuNet landmarks), `facebench run` measures the shared MobileFaceNet on
it — 1:1 template verification (plain and weighted pooling) and 1:N over two gallery sets — and
the report has both sections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets import load_spec_ijb
from facebench.datasets.specs import IjbDataset
from tests.e2e.conftest import facebench

FAR = ["1e-6", "1e-5", "1e-4", "1e-3", "1e-2", "1e-1"]


@pytest.fixture(scope="module")
def ijb_run(lfw_dir: Path, models_dir: Path, run_env: dict[str, str],
            tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ijb-suite")
    facebench("make-ijb", str(lfw_dir / "images"), str(d / "ijb"), "--subjects", "30",
              "--detector-model", str(models_dir / "face_detection_yunet.onnx"), env=run_env)
    env = {**run_env, "FACEBENCH_IJB": str(d / "ijb")}
    facebench("run", "suites/ijb-lfw.yaml", "--out", str(d / "out"), "--no-progress", env=env)
    results = json.loads((d / "out" / "results.json").read_text())
    cells = {c["protocol"]: c for c in results["cells"]}
    return {"dir": d, "out": d / "out", "cells": cells,
            "ijb": load_spec_ijb(IjbDataset(kind="ijb", root=d / "ijb"))}


def test_one_to_one_templates(ijb_run: dict) -> None:
    cell, ijb = ijb_run["cells"]["ijb-1to1"], ijb_run["ijb"]
    assert cell["status"] == "ok", cell.get("error")
    m, d = cell["metrics"], cell["details"]
    assert m["pairs"] == ijb.pairs.shape[0] and m["templates"] == np.unique(ijb.template_ids).size
    assert m["images"] == len(ijb.images) and m["fta_images"] == 0
    n_imp = int((ijb.pair_labels == 0).sum())
    assert d["n_impostor"] == n_imp and d["threshold_policy"] == "all_data"
    rows = {f"{r['far']:.0e}": r for r in d["tar_at_far"]}
    for x in FAR:
        assert m[f"tar@far={x}"] is not None and 0 <= m[f"far_achieved@far={x}"] <= float(x)
        # support rule: N_imp × FAR >= 10 (docs/metrics.md)
        assert rows[f"{float(x):.0e}"]["supported"] == (n_imp * float(x) >= 10)
    assert m["tar@far=1e-1"] >= 0.9  # trained model, LFW identities (chance: 0.1)
    assert d["roc"] and len(d["roc"]["far"]) >= 2
    assert d["templates"]["media"] == "mean" and not d["templates"]["norm"]
    assert d["acquire"]["detector"]["name"] == "given"
    assert d["align"]["method"] == "similarity"

    weighted = ijb_run["cells"]["ijb-1to1-weighted"]
    assert weighted["status"] == "ok"
    assert weighted["details"]["templates"]["detector_score"] is True
    assert weighted["details"]["templates"]["norm"] is True
    # the same faces, embedded once: the weighted cell reads the first cell's embeddings
    assert weighted["details"]["acquire"]["embedding_cache"]["hit"] is True
    assert weighted["details"]["acquire"]["embedding_cache"]["key"] == \
        d["acquire"]["embedding_cache"]["key"]


def test_one_to_n_two_galleries(ijb_run: dict) -> None:
    cell, ijb = ijb_run["cells"]["ijb-1toN"], ijb_run["ijb"]
    assert cell["status"] == "ok", cell.get("error")
    m, d = cell["metrics"], cell["details"]
    n_probes = np.unique(ijb.probes[0]).size
    # every probe subject is enrolled in exactly one of G1, G2: mated there, non-mated in the other
    assert m["probes"] == n_probes
    assert m["mated_searches"] == m["nonmated_searches"] == n_probes
    assert [s["name"] for s in d["splits"]] == ["G1", "G2"]
    assert m["gallery"] == sum(np.unique(t).size for t, _ in ijb.galleries.values())
    assert 0.8 <= m["rank1"] <= m["rank5"] <= m["rank10"] <= 1.0
    assert len(d["cmc"]) == 20 and d["cmc"][0] == m["rank1"] and d["cmc"][9] == m["rank10"]
    for x in ("1e-2", "1e-1"):
        assert 0.0 <= m[f"fnir@fpir={x}"] <= 1.0
        assert m[f"fpir_achieved@fpir={x}"] <= float(x)
    assert m["fnir@fpir=1e-2"] >= m["fnir@fpir=1e-1"]
    assert d["det_1n"]["fpir"] and len(d["det_1n"]["fpir"]) == len(d["det_1n"]["fnir"])
    assert d["search"]["backend"] in ("faiss", "numpy") and d["search"]["threads"] == 2


def test_report_sections(ijb_run: dict) -> None:
    out = ijb_run["out"]
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for text in (html, md):
        assert "Identification (1:N)" in text and "ijb-1toN" in text
        assert "Verification — ijb-1to1" in text and "TAR @ FAR=1e-6" in text
        assert "FNIR @ FPIR=" in text
        assert "DET — ijb-1to1" in text  # drawn, or "not drawn" with its reason
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"cmc-ijb-1toN.svg", "det-1n-ijb-1toN.svg", "roc-ijb-1to1.svg"} <= figures
