"""report.html / report.md from a realistic results dict (see builders.py)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from facebench.report import render_report
from facebench.report.compare import compare
from facebench.report.fmt import pct

from .builders import build_results
from .conftest import XSS
from .htmlscan import column, row, scan

SECTIONS = ["summary", "verification", "efficiency", "baseline", "figures", "failures",
            "reproducibility"]
FIGURES = ["fig-roc-lfw", "fig-det-lfw", "fig-scores-lfw", "fig-accuracy-latency-lfw",
           "fig-latency", "fig-history"]


def _read(paths: dict[str, Path], key: str) -> str:
    return paths[key].read_text(encoding="utf-8")


def test_writes_html_md_and_figures(rendered: dict[str, Path]) -> None:
    assert rendered["html"].name == "report.html"
    assert rendered["md"].name == "report.md"
    out = rendered["html"].parent
    svgs = sorted(p for p in rendered if p.startswith("figures/"))
    assert svgs == sorted(f"figures/{f[4:]}.svg" for f in FIGURES)
    for rel in svgs:
        assert (out / rel).read_text().lstrip().startswith("<?xml")
    # atomic writes leave no temp files behind
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_html_has_every_section_table_and_figure(rendered: dict[str, Path],
                                                 results: dict[str, Any]) -> None:
    s = scan(_read(rendered, "html"))
    for sec in SECTIONS:
        assert s.ids.get(sec) == "section", sec
    for fig in FIGURES:
        assert s.svg_in.get(fig) == 1, f"{fig} has no inline SVG"
    tables = set(s.tables)
    assert {"verification-lfw", "cost-speed-cpu-ort", "latency-speed-cpu-ort",
            "cost-speed-cpu-numpy", "latency-speed-cpu-numpy", "failures-table",
            "datasets-table", "baseline-changes", "baseline-all"} <= tables
    # the source paper's layout first, then TAR@FAR, EER, AUC, FtA
    assert s.headers["verification-lfw"][:6] == [
        "Model", "Accuracy (%)", "Precision (%)", "Recall (%)", "Specificity (%)", "F1 (%)"]
    assert s.headers["verification-lfw"][-3:] == ["EER (%)", "AUC", "FtA (% pairs)"]
    ok_ver = [c for c in results["cells"] if c["kind"] == "verification" and c["status"] == "ok"]
    assert len(s.tables["verification-lfw"]) == len(ok_ver)
    for cell in ok_ver:
        r = row(s, "verification-lfw", cell["model"])
        acc = r[column(s, "verification-lfw", "Accuracy (%)")]
        m = cell["metrics"]
        assert acc.text.strip() == f"{pct(m['accuracy'])} ± {pct(m['accuracy_std'])}"
    lat = s.tables["latency-speed-cpu-ort"]
    assert {r[1].text for r in lat} == {"1", "4"}  # every batch size


def test_html_is_self_contained(rendered: dict[str, Path]) -> None:
    html = _read(rendered, "html")
    s = scan(html)
    assert not s.imgs, "no external images, stylesheets or frames"
    assert all(link.startswith("#") for link in s.links)
    assert not re.search(r"(?i)(src|href)\s*=\s*[\"']?\s*(https?:|//)", html)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", html)
    assert "default-src 'none'" in html  # the CSP forbids any fetch


def test_user_strings_are_escaped(rendered: dict[str, Path]) -> None:
    """A script tag as model id and suite name is text in both formats."""
    html, md = _read(rendered, "html"), _read(rendered, "md")
    s = scan(html)
    assert len(s.scripts) == 1 and "alert" not in s.scripts[0]  # only our sort script
    assert html.count("<script") == 1
    assert XSS not in html
    assert XSS in "".join(s.text)  # shown as text (title, tables, summary)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in md.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert md.startswith("# &lt;script&gt;alert(1)&lt;/script&gt; — facebench report")


def test_markdown_tables_and_figure_links(rendered: dict[str, Path]) -> None:
    md = _read(rendered, "md")
    assert "| Model | Accuracy (%) | Precision (%) | Recall (%) | Specificity (%) | F1 (%) |" \
        in md
    assert "**Cost — cpu-ort (onnxruntime, threads intra 1 / inter 1)**" in md
    assert "**Latency by batch size — cpu-ort**" in md
    for fig in FIGURES:
        assert f"](figures/{fig[4:]}.svg)" in md
        assert (rendered["md"].parent / "figures" / f"{fig[4:]}.svg").is_file()
    assert "<details><summary>Failures and skips (2)</summary>" in md
    assert "<details><summary>Reproducibility</summary>" in md
    assert "> [!WARNING]" in md  # busy machine
    # every table row has as many cells as its header
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, flags=re.M):
        lines = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, lines[:3]


def test_null_metrics_render_as_na(rendered: dict[str, Path], results: dict[str, Any]) -> None:
    """The all-FtA cell accepts nothing: precision and F1 are 0/0, AUC/EER undefined."""
    cell = next(c for c in results["cells"] if c["model"] == "all-fta")
    assert cell["metrics"]["precision"] is None and cell["metrics"]["auc"] is None
    s = scan(_read(rendered, "html"))
    r = row(s, "verification-lfw", "all-fta")
    for header in ("Precision (%)", "F1 (%)", "EER (%)", "AUC"):
        td = r[column(s, "verification-lfw", header)]
        assert td.text.strip() == "n/a" and "na" in td.cls.split(), header
        assert td.sort == ""
    md_row = next(line for line in _read(rendered, "md").splitlines()
                  if line.startswith("| all-fta"))
    cells = [c.strip() for c in md_row.strip("|").split("|")]
    assert cells[2] == "n/a" and cells[5] == "n/a"  # precision, F1
    assert cells[1].startswith("50.00 ± 0.00")  # accuracy is defined: half the pairs rejected


def test_baseline_deltas_are_marked(rendered: dict[str, Path], results: dict[str, Any],
                                    baseline: dict[str, Any]) -> None:
    """Baseline mobilefacenet scored lower genuine means and ran a wider MLP: both marked."""
    s = scan(_read(rendered, "html"))
    r = row(s, "verification-lfw", "mobilefacenet")
    acc = r[column(s, "verification-lfw", "Accuracy (%)")]
    assert [c for c, _ in acc.spans] == ["delta better"]
    assert acc.spans[0][1].startswith("+") and acc.spans[0][1].endswith("pp ▲")
    deltas = {(d.cell_id, d.metric): d for d in compare(results, baseline).deltas}
    p50 = deltas[("mobilefacenet@cpu-ort@speed", "latency.p50_ms")]
    assert p50.significant and p50.better and "Mann–Whitney" in p50.method
    marked = {(r[0].text, r[1].text) for r in s.tables["baseline-changes"]}
    assert ("mobilefacenet@cpu-ort@lfw", "accuracy") in marked
    assert ("mobilefacenet@cpu-ort@speed", "latency.p50_ms") in marked
    assert ("mobilefacenet@cpu-ort@speed", "params") in marked  # deterministic: exact rule
    every = s.tables["baseline-all"]
    assert len(every) == len(deltas)
    md = _read(rendered, "md")
    assert "## Changes vs baseline" in md
    md_row = next(line for line in md.splitlines() if line.startswith("| mobilefacenet<br>"))
    assert "<br>**+" in md_row and "pp ▲**" in md_row


def test_history_trend_and_repro(rendered: dict[str, Path], results: dict[str, Any]) -> None:
    html = _read(rendered, "html")
    s = scan(html)
    text = "".join(s.text)
    assert results["run"]["suite_sha256"] in text
    assert results["datasets"]["lfw"]["pairs_sha256"] in text
    assert results["environment"]["fingerprint"] in text
    assert results["run"]["git"]["commit"] in text
    assert "facebench run 'suites/lfw smoke.yaml' --out runs/x" in text  # shell-quoted command
    assert "protocols:" in text  # the suite file's text
    assert "InvalidProtobuf" in text and "Traceback (most recent call last)" in text
    assert "CUDA not available on this machine" in text
    assert "busy" in s.ids  # the busy-machine warning


def test_render_is_byte_identical_and_pure(results: dict[str, Any], baseline: dict[str, Any],
                                           history: list[dict[str, Any]],
                                           tmp_path: Path) -> None:
    before = json.dumps(results, sort_keys=True)
    a = render_report(results, tmp_path / "a", baseline=baseline, history=history)
    b = render_report(copy.deepcopy(results), tmp_path / "b", baseline=baseline,
                      history=history)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    assert json.dumps(results, sort_keys=True) == before  # the input is not modified


def test_missing_data_skips_figures_with_a_note(tmp_path: Path) -> None:
    r = build_results(seed=3, models=(("mobilefacenet", 0.62, 16),))
    r["cells"] = [c for c in r["cells"] if c["kind"] == "verification"]
    for c in r["cells"]:
        for key in ("roc", "score_hist"):
            (c.get("details") or {}).pop(key, None)
    paths = render_report(r, tmp_path)
    assert set(paths) == {"html", "md"}
    s = scan(paths["html"].read_text())
    assert "efficiency" in s.ids and "fig-roc-lfw" in s.ids and s.svg_in["fig-roc-lfw"] == 0
    text = "".join(s.text)
    assert "not drawn: no cell has details.roc" in text
    assert "not drawn: no model has both an accuracy here and a latency measurement" in text
    assert "No successful efficiency cell." in text


def test_empty_run_renders(tmp_path: Path) -> None:
    r = build_results(seed=4, models=(("m", 0.6, 8),))
    r["cells"] = []
    paths = render_report(r, tmp_path)
    assert "The run has no cells." in paths["html"].read_text()
    assert "No successful verification cell." in paths["md"].read_text()


@pytest.mark.parametrize("name", ["a|b*c_[d](e)`f`~g~", "x\ny"])
def test_markdown_escapes_table_breakers(name: str, tmp_path: Path) -> None:
    r = build_results(seed=5, models=((name, 0.6, 8),))
    md = render_report(r, tmp_path)["md"].read_text()
    line = next(li for li in md.splitlines() if li.startswith("| ") and "<sub>cpu-ort" in li
                and "%" not in li.split("|")[1])
    first = re.split(r"(?<!\\)\|", line)[1]
    assert "<br><sub>cpu-ort</sub>" in first
    assert "\n" not in first and "*" not in first.replace("\\*", "")
