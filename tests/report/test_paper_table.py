"""The report's paper table, its Pareto figures and the precision-variants section, from a real
``facebench run``: 100 real LFW View 2 pairs and the shared MobileFaceNet ONNX, on an fp32 and an
int8 device, with a verification and an efficiency protocol; plus the pure Pareto front."""

from __future__ import annotations

import copy
import html
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from faults.kit import (
    CPU,
    LFW,
    facebench,
    lfw_rows,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

from facebench.report import fmt, render_report
from facebench.report.summary import pareto_front
from facebench.results import load_results

from .htmlscan import Scan, Td, scan

LABEL = "MobileFaceNet | <script>alert(1)</script> (paper)"
SOURCE = "Chen et al. 2018 <b>|x|</b>"
PUBLISHED = {"label": LABEL, "model": "mfn", "test_set": "LFW View 2 <i>", "training":
             "MS1M | refined", "source": "Table 2", "accuracy": 0.9955, "precision": 0.9961,
             "f1": 0.9954}
REFERENCE = {"lfw_accuracy": 0.9955, "source": SOURCE, "note": "another training"}
INT8 = {**CPU, "id": "cpu-int8", "precision": "int8",
        "quantization": {"mode": "static", "calibration_images": 16}}
DASH = "—"
FIGURES = ("paper-accuracy-latency", "paper-accuracy-params", "paper-accuracy-gmac")


# ---- a real run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("paper-run")
    pairs = write_pair_csv(tmp / "pairs.csv", lfw_rows(25, 2))
    spec = suite("paper-tiny", [model("mfn", reference=REFERENCE)], [
        verification("lfw", pairs, LFW / "images", flip=True, bootstrap=50),
        {"id": "speed", "kind": "efficiency", "warmup": 0, "min_iters": 1, "min_seconds": 0},
    ], report={"paper_table": {"published": [PUBLISHED]}})
    spec["devices"] = [CPU, INT8]
    env = {**os.environ, "FACEBENCH_SHARED": str(shared),
           "FACEBENCH_CACHE": str(tmp / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{tmp / 'history.db'}", "PYTHONWARNINGS": "ignore"}
    res = facebench(["run", str(write_suite(tmp / "suite.yaml", spec)), "--out",
                     str(tmp / "out"), "--no-progress", "--allow-failed-cells"], env, tmp,
                    timeout=900)
    assert res.returncode == 0, res.stderr
    return tmp / "out"


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict[str, Any]:
    return load_results(run_dir)


@pytest.fixture(scope="module")
def cells(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {c["id"]: c for c in results["cells"]}
    for fp32 in ("mfn@cpu@lfw", "mfn@cpu@speed"):
        assert out[fp32]["status"] == "ok", out[fp32]
    return out


# ---- reading the rendered tables ---------------------------------------------------------------

_NOTE = re.compile(r"<br><sub>(.*?)</sub>")


def _unmd(text: str) -> str:
    """Markdown cell text back to plain text (backslash escapes, then HTML entities)."""
    return html.unescape(re.sub(r"\\(.)", r"\1", text.strip()))


def md_table(md: str, heading: str) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """The first table after ``heading``: header labels and rows of (text, note)."""
    body = md.split(f"\n{heading}\n", 1)[1].splitlines()
    first = next(i for i, ln in enumerate(body) if ln.startswith("|"))
    lines = []
    for ln in body[first:]:
        if not ln.startswith("|"):
            break
        lines.append(ln)

    def split(line: str) -> list[str]:
        return re.split(r"(?<!\\)\|", line.strip())[1:-1]

    header = [_unmd(c) for c in split(lines[0])]
    rows = []
    for ln in lines[2:]:
        cols = split(ln)
        assert len(cols) == len(header), ln
        rows.append([(_unmd(_NOTE.sub("", c)), _unmd(" ".join(_NOTE.findall(c)))) for c in cols])
    return header, rows


def _pp(diff: float) -> str:
    """Measured − published as the paper table writes it, computed here."""
    return f"{'+' if diff > 0 else '−'}{abs(diff) * 100:.2f} pp" if diff else "±0"


def _five(m: dict[str, Any], key: str) -> str:
    v = fmt.pct(m.get(key))
    return DASH if v == fmt.NA else v


def expected_paper(cells: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The measured and the published row, column by column, from results.json."""
    ver = cells["mfn@cpu@lfw"]
    m = ver["metrics"]
    eff = cells["mfn@cpu@speed"]["metrics"]
    measured = [
        "mfn", "measured: lfw · cpu", f"{fmt.pct(m['accuracy'])} ± {fmt.pct(m['accuracy_std'])}",
        *(_five(m, k) for k in ("precision", "recall", "specificity", "f1")),
        fmt.metric("fta_pairs", m["fta_pairs"]), fmt.pct(REFERENCE["lfw_accuracy"]),
        _pp(m["accuracy"] - REFERENCE["lfw_accuracy"]),
        fmt.metric("params", eff["params"]), fmt.metric("gmac", eff["gmac"]),
        fmt.metric("latency.b1.p50_ms", eff["latency.b1.p50_ms"]),
        fmt.metric("memory.peak_rss_delta_bytes", eff["memory.peak_rss_delta_bytes"]),
    ]
    published = [LABEL, f"published: {PUBLISHED['test_set']}",
                 *(_five(PUBLISHED, k) for k in ("accuracy", "precision", "recall",
                                                 "specificity", "f1")),
                 *[DASH] * 7]
    return {"measured": measured, "published": published}


# ---- the paper table -------------------------------------------------------------------------

def test_markdown_paper_table_holds_the_numbers_of_results_json(
        run_dir: Path, cells: dict[str, dict[str, Any]]) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    header, rows = md_table(md, "## Paper table")
    assert header[:3] == ["Model", "Row", "Accuracy (%)"] and "Measured − published" in header
    want = expected_paper(cells)
    assert [t for t, _ in rows[0]] == want["measured"]
    assert [t for t, _ in rows[1]] == want["published"]  # right after its model's row
    assert len(rows) == 2
    m = cells["mfn@cpu@lfw"]["metrics"]
    assert rows[0][2][1] == f"CI [{fmt.pct(m['accuracy_ci_low'])}, " \
                           f"{fmt.pct(m['accuracy_ci_high'])}]"
    assert rows[0][8][1] == f"{SOURCE} (another training)"
    assert rows[0][12][1] == "on cpu"
    assert rows[1][0][1] == "trained on MS1M | refined; Table 2"
    # escaped: no tag from the suite reaches report.md, and the `|` did not split a cell
    assert "<script>alert" not in md and "<b>" not in md and "<i>" not in md
    assert "MobileFaceNet \\| &lt;script&gt;alert(1)&lt;/script&gt;" in md


def _html_row(r: list[Td]) -> list[str]:
    return [td.text.strip() for td in r]


def test_html_paper_table_is_the_same_and_escaped(run_dir: Path,
                                                  cells: dict[str, dict[str, Any]]) -> None:
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    s: Scan = scan(page)
    assert s.ids.get("paper") == "section"
    rows = s.tables["paper-table"]
    want = expected_paper(cells)
    assert [_html_row(r) for r in rows] == [want["measured"], want["published"]]
    # autoescaped: the label's and the source's markup is text, never markup
    assert "<script>alert" not in page and "<b>|x|</b>" not in page and "<i>" not in page
    assert any(LABEL in t for t in s.text) and any(SOURCE in t for t in s.text)
    for name in FIGURES:
        assert s.svg_in.get(f"fig-{name}") == 1, name
        assert f'href="#fig-{name}"' in page


def test_pareto_figures_are_svg_files(run_dir: Path) -> None:
    for name in FIGURES:
        root = ET.parse(run_dir / "figures" / f"{name}.svg").getroot()
        assert root.tag.endswith("svg"), name
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"(figures/{name}.svg)" in md


def test_paper_section_only_with_paper_table(results: dict[str, Any], tmp_path: Path) -> None:
    """The same results render the section with ``report.paper_table`` and not without it."""
    plain = copy.deepcopy(results)
    plain["suite"]["report"]["paper_table"] = None
    for name, data, present in (("with", results, True), ("without", plain, False)):
        paths = render_report(data, tmp_path / name)
        page = scan(paths["html"].read_text(encoding="utf-8"))
        assert ("paper" in page.ids, "paper-table" in page.tables) == (present, present), name
        assert ("## Paper table" in paths["md"].read_text(encoding="utf-8")) is present, name
        figures = sorted(p.stem for p in (tmp_path / name / "figures").glob("paper-*"))
        assert figures == (sorted(FIGURES) if present else []), name


# ---- precision variants ----------------------------------------------------------------------

def _metric_text(c: dict[str, Any], name: str) -> str:
    v = fmt.metric(name, (c.get("metrics") or {}).get(name))
    return DASH if v == fmt.NA else v


def test_variants_section_lists_each_precision_with_its_numbers(
        run_dir: Path, cells: dict[str, dict[str, Any]]) -> None:
    s = scan((run_dir / "report.html").read_text(encoding="utf-8"))
    assert s.ids.get("variants") == "section"
    lfw = s.tables["variants-lfw"]
    assert [(r[1].text, r[2].text) for r in lfw] == [("fp32", "cpu"), ("int8", "cpu-int8")]
    for r, ident in zip(lfw, ("mfn@cpu@lfw", "mfn@cpu-int8@lfw"), strict=True):
        c = cells[ident]
        assert r[3].text == c["status"]
        if c["status"] == "ok":
            assert r[4].text == fmt.pct(c["metrics"]["accuracy"])
        assert r[5].text == _metric_text(c, "accuracy_vs_fp32")
        how = (c.get("details") or {}).get("precision")
        if isinstance(how, dict) and how.get("mode"):
            assert r[-1].text.startswith(str(how["mode"])), r[-1].text
    speed = s.tables["variants-speed"]
    assert [r[1].text for r in speed] == ["fp32", "int8"]
    col = s.headers["variants-speed"]
    for r, ident in zip(speed, ("mfn@cpu@speed", "mfn@cpu-int8@speed"), strict=True):
        c = cells[ident]
        assert r[col.index("p50 b1")].text == _metric_text(c, "latency.b1.p50_ms")
        assert r[col.index("b1 ÷ fp32")].text == _metric_text(c, "latency.b1.p50_vs_fp32")
        assert r[col.index("Peak RSS")].text == _metric_text(c, "memory.peak_rss_bytes")
        assert r[col.index("RSS Δ ÷ fp32")].text == _metric_text(
            c, "memory.peak_rss_delta_vs_fp32")
    assert speed[0][col.index("Compared with")].text == "baseline"
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    header, rows = md_table(md, "## Precision variants")
    assert [r[1][0] for r in rows] == ["fp32", "int8"]


def test_variants_section_only_when_a_device_is_not_fp32(results: dict[str, Any],
                                                         tmp_path: Path) -> None:
    """The run without its int8 device renders no variants section; with it, one."""
    fp32 = copy.deepcopy(results)
    fp32["cells"] = [c for c in fp32["cells"] if c["device"] == "cpu"]
    fp32["suite"]["devices"] = [d for d in fp32["suite"]["devices"] if d["id"] == "cpu"]
    for name, data, present in (("int8", results, True), ("fp32", fp32, False)):
        paths = render_report(data, tmp_path / name)
        assert ("variants" in scan(paths["html"].read_text(encoding="utf-8")).ids) is present
        assert ("## Precision variants" in paths["md"].read_text(encoding="utf-8")) is present


# ---- the Pareto front ------------------------------------------------------------------------

def test_pareto_front_on_a_hand_made_set_with_ties() -> None:
    points = [
        (0.99, 10.0),   # on the front
        (0.99, 10.0),   # the same point again: equal points do not dominate each other
        (0.99, 12.0),   # as accurate, costlier: dominated
        (0.98, 5.0),    # cheaper, less accurate: on the front
        (0.97, 5.0),    # as cheap, less accurate: dominated
        (0.995, 50.0),  # most accurate: on the front
        (0.90, 100.0),  # worse on both: dominated
    ]
    assert pareto_front(points) == [True, True, False, True, False, True, False]
    assert pareto_front([]) == []
    assert pareto_front([(0.5, 1.0)]) == [True]
