"""The foundation's promise, on real data: LFW View 2 + the trained MobileFaceNet ONNX + YuNet +
flip gives 98.5 % ± 0.3 10-fold accuracy, every image is accounted for, and every reported
number agrees with an independent computation from the exported scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

from tests.e2e.conftest import ROOT, facebench
from tests.faults.kit import stable

pytestmark = pytest.mark.slow


def cell(results: dict, protocol: str) -> dict:
    (c,) = [c for c in results["cells"] if c["protocol"] == protocol]
    return c


@pytest.fixture(scope="module")
def results(lfw_run: Path) -> dict:
    return json.loads((lfw_run / "results.json").read_text())


def test_accuracy_matches_the_published_pipeline(results: dict) -> None:
    c = cell(results, "lfw")
    assert c["status"] == "ok", c.get("error")
    m = c["metrics"]
    assert m["pairs"] == 6000 and len(c["details"]["folds"]) == 10
    assert abs(m["accuracy"] - 0.985) <= 0.003, m["accuracy"]
    lo, hi = m["accuracy_ci_low"], m["accuracy_ci_high"]
    assert lo <= m["accuracy"] <= hi


def test_every_image_accounted_for(results: dict) -> None:
    c = cell(results, "lfw")
    m, d = c["metrics"], c["details"]
    assert m["images"] == 7701 == results["datasets"]["lfw"]["images"]
    assert d["acquire"]["acquired"] + m["fta_images"] == 7701
    assert len(d["fta_images_list"]) == m["fta_images"]
    assert all(f["reason"] for f in d["fta_images_list"])


def test_confusion_metrics_match_sklearn_on_exported_scores(results: dict, lfw_run: Path) -> None:
    c = cell(results, "lfw")
    scores = pd.read_csv(lfw_run / c["artifacts"]["scores"])
    assert len(scores) == 6000
    thresholds = {f["fold"]: f["threshold"] for f in c["details"]["folds"]}
    t = scores["fold"].map(thresholds).to_numpy()
    fta = scores["fta"].astype(bool).to_numpy()
    pred = (scores["score"].fillna(-np.inf).to_numpy() >= t) & ~fta
    y = scores["label"].to_numpy()
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    m = c["metrics"]
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    assert m["precision"] == pytest.approx(precision_score(y, pred), abs=1e-12)
    assert m["recall"] == pytest.approx(recall_score(y, pred), abs=1e-12)
    assert m["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-12)
    assert m["f1"] == pytest.approx(f1_score(y, pred), abs=1e-12)
    per_fold = [np.mean(pred[scores["fold"] == k] == y[scores["fold"] == k]) for k in range(10)]
    assert m["accuracy"] == pytest.approx(np.mean(per_fold), abs=1e-12)
    assert m["accuracy_std"] == pytest.approx(np.std(per_fold), abs=1e-12)


def test_metrics_recomputed_from_scores_are_identical(results: dict, lfw_run: Path) -> None:
    c = cell(results, "lfw")
    far = [str(x) for x in results["suite"]["protocols"][0]["far_targets"]]
    args = ["metrics", str(lfw_run / c["artifacts"]["scores"]), "--json"]
    for x in far:
        args += ["--far", x]
    res = facebench(*args)
    again = json.loads(res.stdout)["metrics"]
    for key, value in again.items():
        if key.endswith(("_ci_low", "_ci_high")):
            continue  # the run computed CIs (bootstrap), the re-run did not ask for them
        assert c["metrics"][key] == value, key


def test_results_csv_is_tidy(results: dict, lfw_run: Path) -> None:
    frame = pd.read_csv(lfw_run / "results.csv")
    assert list(frame.columns) == ["run_id", "cell_id", "model", "device", "protocol", "kind",
                                   "status", "metric", "value", "flag"]
    assert not frame.duplicated(["cell_id", "metric"]).any()
    lfw = frame[frame.protocol == "lfw"].set_index("metric")["value"]
    assert float(lfw["accuracy"]) == cell(results, "lfw")["metrics"]["accuracy"]


def test_results_json_records_environment_and_suite(results: dict) -> None:
    assert results["schema_version"] == 1
    env = results["environment"]
    assert env["cpu_model"] and env["logical_cores"] >= 1 and env["libraries"]["onnxruntime"]
    assert results["run"]["suite_sha256"] and "lfw" in results["run"]["suite_text"]
    assert results["suite"]["models"][0]["path"].endswith("mobilefacenet_128d.onnx")
    assert results["datasets"]["lfw"]["sha256"]
    eff = cell(results, "efficiency")
    assert eff["status"] == "ok", eff.get("error")
    assert eff["metrics"]["latency.b1.p50_ms"] > 0 and eff["metrics"]["params"] > 0
    assert eff["details"]["threads"]


def test_second_run_does_no_detection(lfw_run: Path, run_env: dict, tmp_path: Path) -> None:
    """The same suite again: embeddings come from the cache, no model or detector is built."""
    facebench("run", "suites/lfw-mobilefacenet.yaml", "--out", str(tmp_path), "--only", "lfw",
              "--no-progress", env=run_env)
    again = json.loads((tmp_path / "results.json").read_text())
    first = json.loads((lfw_run / "results.json").read_text())
    a, b = cell(again, "lfw"), cell(first, "lfw")
    assert b["details"]["acquire"]["embedding_cache"]["hit"] is False
    assert a["details"]["acquire"]["embedding_cache"]["hit"] is True
    assert "model_load" not in a["details"]["timings_s"]
    assert stable(a["metrics"]) == stable(b["metrics"])


def test_alignment_cache_is_shared_across_models(lfw_run: Path, run_env: dict,
                                                 tmp_path: Path) -> None:
    """Another model (the same ONNX read by a different suite with embedding caching off) on the
    same images and detector settings reuses every aligned crop of the first run."""
    text = (ROOT / "suites" / "lfw-mobilefacenet.yaml").read_text()
    text = text.replace("    flip: true\n", "    flip: true\n    cache_embeddings: false\n")
    text = text.replace("bootstrap: 1000", "bootstrap: 0")
    suite = tmp_path / "suite.yaml"
    suite.write_text(text.replace("../../shared", str(Path(run_env["FACEBENCH_SHARED"]))))
    out = tmp_path / "out"
    facebench("run", str(suite), "--out", str(out), "--only", "lfw", "--no-progress",
              env={**run_env, "LFW_FOLDS": "2"})
    c = cell(json.loads((out / "results.json").read_text()), "lfw")
    assert "embedding_cache" not in c["details"]["acquire"]  # embeddings were computed
    assert c["details"]["acquire"]["cache_hits"] == c["metrics"]["images"] > 1000


def test_report_rendered(lfw_run: Path) -> None:
    html = (lfw_run / "report.html").read_text()
    md = (lfw_run / "report.md").read_text()
    assert "mobilefacenet-128d" in html and "mobilefacenet-128d" in md
    facebench("report", str(lfw_run))
    assert (lfw_run / "report.html").read_text() == html
