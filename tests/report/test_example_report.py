"""The example reports committed under reports/ are what the current code renders from their
results.json (regenerate with `facebench report reports/<name>`): the flagship suite's
(``reports/paper``), the LFW suite's (``reports/lfw-mobilefacenet``) and the IJB-style template
suite's (``reports/ijb-lfw``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebench.report import render_report

REPORTS = Path(__file__).resolve().parents[2] / "reports"
EXAMPLES = ("paper", "lfw-mobilefacenet", "ijb-lfw")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_report_matches_current_renderer(name: str, tmp_path: Path) -> None:
    example = REPORTS / name
    assert (example / "results.json").is_file(), f"reports/{name}/results.json is missing"
    results = json.loads((example / "results.json").read_text())
    shutil.copy(example / "results.json", tmp_path / "results.json")
    paths = render_report(results, tmp_path)
    for report in ("report.html", "report.md"):
        fresh = (tmp_path / report).read_text()
        committed = (example / report).read_text()
        assert fresh == committed, (
            f"reports/{name}/{report} is stale: run `facebench report reports/{name}` and "
            "commit the result")
    for key, path in paths.items():
        if key.startswith("figures/"):
            assert (example / key).read_bytes() == Path(path).read_bytes(), key
    committed_figures = {p.relative_to(example).as_posix()
                         for p in (example / "figures").glob("*.svg")}
    assert committed_figures == {k for k in paths if k.startswith("figures/")}, (
        f"reports/{name}/figures holds figures the report no longer draws (or lacks some)")


def test_flagship_example_has_the_paper_sections() -> None:
    """The flagship report shows all four trained models with accuracy, the paper's published
    rows and the int8 comparison (numbers: tests/report/test_paper_table.py)."""
    md = (REPORTS / "paper" / "report.md").read_text()
    results = json.loads((REPORTS / "paper" / "results.json").read_text())
    assert "## Paper table" in md and "## Precision variants" in md
    ok = {c["id"] for c in results["cells"] if c["status"] == "ok"}
    for cell in ("mobilefacenet@cpu-ort@lfw-retinaface", "sface-int8@cpu-ort@lfw-yunet",
                 "facenet@cpu-ort@lfw-mtcnn", "dlib-resnet@cpu-dlib@lfw-dlib",
                 "mobilefacenet@cpu-ort-int8@lfw-retinaface", "facenet@cpu-ort-int8@lfw-mtcnn"):
        assert cell in ok, f"reports/paper lacks a finished {cell}"
    for figure in ("paper-accuracy-latency", "paper-accuracy-params", "paper-accuracy-gmac"):
        assert (REPORTS / "paper" / "figures" / f"{figure}.svg").is_file()
