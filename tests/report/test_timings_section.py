"""The report's "Where the time went" section, from real ``facebench run``s over 100 LFW pairs
and a small LFW identification set (a fresh cache, then the same suite again: embedding cache
hits); and the "best" directions of the summary and the tables are the metric catalog's."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from faults.kit import (
    LFW,
    ROOT,
    YUNET,
    facebench,
    lfw_rows,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

from facebench.faces.align import BoxCropAlign, DlibChipAlign, NoAlign, SimilarityAlign
from facebench.metrics.catalog import metric_info
from facebench.report import fmt, render_report
from facebench.report.summary import (
    EFFICIENCY_BEST,
    VERIFICATION_BEST,
    best_per_metric,
    better_sign,
    catalog_name,
)
from facebench.report.view import COST_MARKED, VERIFICATION_MARKED, align_text

from .htmlscan import scan

EXAMPLE = ROOT / "reports" / "lfw-mobilefacenet"
#: Column label -> metric of the section's numeric columns.
COLUMNS = {"Images/s": "images_per_s", "Decode": "time.decode_s", "Detect": "time.detect_s",
           "Align": "time.align_s", "Embed": "time.embed_s", "Metrics": "time.metrics_s",
           "Total": "time.total_s"}
STAGES = ("time.decode_s", "time.detect_s", "time.align_s", "time.embed_s", "time.metrics_s")
ALIGN = {"mfn": "similarity arcface 112×112", "mfn-box": "box_crop +16 px 112×112"}
#: Which way is better for each metric the summary and the bold marks used before the catalog
#: (+1 higher, −1 lower): reading the catalog must not change any of them.
LANDED_SIGNS = {"accuracy": 1, "precision": 1, "recall": 1, "specificity": 1, "f1": 1, "auc": 1,
                "eer": -1, "fta_rate": -1, "tar@far=1e-3": 1, "latency.p50_ms": -1,
                "latency.p99_ms": -1, "throughput.max": 1, "cold_start_ms": -1, "params": -1,
                "gflops": -1, "gmac": -1, "model_size_bytes": -1, "memory.peak_rss_bytes": -1,
                "memory.peak_rss_delta_bytes": -1}


def _identities(root: Path, rows: list[tuple[str, str, int, int]], n: int) -> Path:
    """``root/<identity>/<file>``: both images of the first ``n`` genuine LFW pairs' people."""
    people: dict[str, tuple[str, str]] = {}
    for a, b, label, _ in rows:
        if label == 1:
            people.setdefault(a.split("/")[0], (a, b))
    for a, b in list(people.values())[:n]:
        for rel in (a, b):
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(LFW / "images" / rel, dst)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same suite run twice on one cache: two models (similarity and box_crop alignment)
    × 100-pair verification and 8-identity identification."""
    if not (LFW / "pairs.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"LFW is required in CI but missing at {LFW}")
        pytest.skip(f"LFW not found at {LFW} (set FACEBENCH_SHARED)")
    d = tmp_path_factory.mktemp("timings")
    rows = lfw_rows(25, 2)
    pairs = write_pair_csv(d / "pairs.csv", rows)
    people = _identities(d / "people", rows, 8)
    det = {"name": "yunet", "model": str(YUNET), "select": "closest_to_center"}
    suite_file = write_suite(d / "suite.yaml", suite(
        "timings", [model("mfn"), model("mfn-box", align={"method": "box_crop", "margin_px": 16})],
        [verification("lfw100", pairs, LFW / "images", workers=2),
         {"id": "people", "kind": "identification", "detector": det, "workers": 1,
          "dataset": {"kind": "identity_folder", "images": str(people)}}]))
    env = {**os.environ, "FACEBENCH_CACHE": str(d / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{d}/history.db"}
    outs = []
    for name in ("fresh", "cached"):
        res = facebench(["run", str(suite_file), "--out", str(d / name), "--no-progress"], env,
                        ROOT, timeout=900)
        assert res.returncode == 0, f"facebench run failed\n{res.stdout}\n{res.stderr}"
        outs.append(d / name)
    return outs[0], outs[1]


def _results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def _embedding_cells(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results["cells"]
            if c["status"] == "ok" and c["kind"] in ("verification", "identification")]


def _md_section(out: Path) -> str:
    md = (out / "report.md").read_text()
    return md[md.index("## Where the time went"):md.index("## Efficiency")]


def test_section_numbers_are_the_results_json_values(runs: tuple[Path, Path]) -> None:
    out = runs[0]
    cells = _embedding_cells(_results(out))
    assert len(cells) == 4 and {c["kind"] for c in cells} == {"verification", "identification"}
    s = scan((out / "report.html").read_text())
    assert s.ids.get("timings") == "section" and "#timings" in s.links
    head, rows = s.headers["time-by-stage"], s.tables["time-by-stage"]
    assert len(rows) == len(cells)
    by_key = {(r[0].text.strip(), r[1].text.strip()): r for r in rows}
    md_rows = [ln for ln in _md_section(out).splitlines() if ln.startswith("| mfn")]
    assert len(md_rows) == len(cells)
    for c in cells:
        m = c["metrics"]
        row = by_key[(c["model"], c["protocol"])]
        for label, metric in COLUMNS.items():
            td, value = row[head.index(label)], m[metric]
            assert fmt.number(value) is not None and value >= 0, (c["id"], metric)
            assert td.sort == repr(float(value)), (c["id"], metric)
            assert td.text.strip() == fmt.metric(metric, value), (c["id"], metric)
        # Markdown: each stage with its share of the five stages' sum
        line = next(ln for ln in md_rows
                    if ln.startswith(f"| {c['model']}<br>") and f"| {c['protocol']} |" in ln)
        total = sum(m[k] for k in STAGES)
        for k in STAGES:
            share = f"{m[k] / total * 100:.1f} %"
            assert f"| {fmt.metric(k, m[k])}<br><sub>{share}</sub> |" in line, (c["id"], k)
        par = c["details"]["acquire"]["parallel"]
        assert row[head.index("Parallel")].text.strip() == par["strategy"]
        assert f"{par['workers']} worker" in line and f"batch {par['batch_size']}" in line
        assert row[head.index("Alignment")].text.strip() == ALIGN[c["model"]]
    assert "Embeddings loaded from the embedding cache" not in _md_section(out)


def test_embedding_cache_hits_get_one_line_instead_of_empty_cells(
        runs: tuple[Path, Path]) -> None:
    out = runs[1]
    cells = _embedding_cells(_results(out))
    for c in cells:
        assert c["details"]["acquire"]["embedding_cache"]["hit"] is True
        assert all(c["metrics"][k] is None for k in STAGES[:4]), c["id"]
    s = scan((out / "report.html").read_text())
    assert "time-by-stage" not in s.tables
    lines = [ln for ln in _md_section(out).splitlines() if ln.strip()]
    assert lines[0] == "## Where the time went" and len(lines) == 2, lines
    assert lines[1].startswith("Embeddings loaded from the embedding cache")
    for c in cells:
        total = fmt.metric("time.total_s", c["metrics"]["time.total_s"])
        assert f"{c['model']} ({c['device']}) · {c['protocol']}: {total}" in lines[1]


def _without_timings(results: dict[str, Any]) -> dict[str, Any]:
    old = copy.deepcopy(results)
    for c in old["cells"]:
        c["metrics"] = {k: v for k, v in c["metrics"].items()
                        if not k.startswith("time.") and k != "images_per_s"}
    return old


def test_old_results_without_timings_render_one_line(runs: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    render_report(_without_timings(_results(runs[0])), tmp_path)
    lines = [ln for ln in _md_section(tmp_path).splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[1].startswith("No per-stage timings in this results.json")
    assert "time-by-stage" not in scan((tmp_path / "report.html").read_text()).tables


@pytest.mark.skipif(not (EXAMPLE / "results.json").is_file(), reason="no example report")
def test_committed_example_still_renders(tmp_path: Path) -> None:
    """reports/lfw-mobilefacenet/results.json predates the stage timings."""
    render_report(_results(EXAMPLE), tmp_path)
    section = _md_section(tmp_path)
    timed = any(k.startswith("time.") for c in _results(EXAMPLE)["cells"] for k in c["metrics"])
    assert ("No per-stage timings" in section) is not timed
    assert ("| mobilefacenet-128d<br>" in section) is timed


def test_alignment_text_of_each_method() -> None:
    assert align_text(SimilarityAlign(size=(112, 112)).settings()) == "similarity arcface 112×112"
    assert align_text(BoxCropAlign(margin_px=32, size=(160, 160)).settings()) == \
        "box_crop +32 px 160×160"
    assert align_text(BoxCropAlign(margin_fraction=0.2, size=(160, 160)).settings()) == \
        "box_crop +20 % 160×160"
    assert align_text(DlibChipAlign().settings()) == "dlib_chip 150"
    assert align_text(DlibChipAlign(padding=0.5).settings()) == "dlib_chip 150 padding 0.5"
    assert align_text(NoAlign(size=(112, 112)).settings()) == "none 112×112"
    assert align_text(None) == fmt.NA


def test_best_directions_are_the_catalogs() -> None:
    listed = ([m for m, _ in VERIFICATION_BEST + EFFICIENCY_BEST] + list(VERIFICATION_MARKED)
              + list(COST_MARKED) + ["tar@far=1e-3"])
    assert set(listed) == set(LANDED_SIGNS)
    for m in listed:
        info = metric_info(catalog_name(m))
        assert info is not None and info.direction != "none", m
        assert better_sign(m) == info.sign == LANDED_SIGNS[m], m
    with pytest.raises(ValueError, match="accuracy_std"):
        better_sign("accuracy_std")


def test_bold_and_summary_follow_the_catalog(runs: tuple[Path, Path]) -> None:
    """On the real run: the bold cell of each marked verification column, and the summary's
    winner, is the best value in the catalog's direction."""
    results = _results(runs[0])
    cells = [c for c in results["cells"] if c["status"] == "ok" and c["protocol"] == "lfw100"]
    s = scan((runs[0] / "report.html").read_text())
    head, rows = s.headers["verification-lfw100"], s.tables["verification-lfw100"]
    columns = {"accuracy": "Accuracy (%)", "eer": "EER (%)", "auc": "AUC",
               "f1": "F1 (%)", "fta_rate": "FtA (% pairs)"}
    winners = {b.metric: b for b in best_per_metric(results, "lfw100")}
    for metric, label in columns.items():
        values = [c["metrics"][metric] for c in cells]
        best = max(values) if metric_info(metric).direction == "higher" else min(values)
        bold = [r[0].text.strip() for r in rows if "best" in r[head.index(label)].cls]
        expected = [c["model"] for c in cells if c["metrics"][metric] == best]
        if len(set(values)) > 1:
            assert sorted(bold) == sorted(expected), metric
        assert sorted(c["model"] for c in winners[metric].cells) == sorted(expected), metric


def test_identification_summary_names_the_best_rank(runs: tuple[Path, Path]) -> None:
    """An identification protocol's summary lists its rank-k winners (higher is better, as the
    catalog says), not "No successful cell"."""
    results = _results(runs[0])
    cells = [c for c in results["cells"] if c["status"] == "ok" and c["protocol"] == "people"]
    bests = {b.metric: b for b in best_per_metric(results, "people")}
    # the protocol's default ranks; no FNIR winner: a closed-set split has no non-mated search
    assert list(bests) == ["rank1", "rank5", "rank10"]
    for metric, b in bests.items():
        assert better_sign(metric) == 1
        top = max(c["metrics"][metric] for c in cells)
        assert b.value == top
        assert {c["id"] for c in b.cells} == {c["id"] for c in cells
                                              if c["metrics"][metric] == top}
    md = (runs[0] / "report.md").read_text()
    people = md[md.index("### people"):md.index("## Verification")]
    assert "| rank-1 |" in people and "No successful cell" not in people
