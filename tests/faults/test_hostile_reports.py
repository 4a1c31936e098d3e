"""Issue 16, items 11 and 12 (reports): the Markdown gate summary (the PR comment of docs/ci.md)
keeps text from data inert; ``facebench metrics`` on a header-only or one-fold score file
answers without a traceback; a run is never its own baseline (``report``, ``gate``,
``run --gate``), as docs/ci.md says.

The results documents are the committed example run (``reports/lfw-mobilefacenet``), copied and
edited the way a hostile data file would be; every command is the real CLI in its own process.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from .kit import (
    LFW,
    ROOT,
    facebench,
    lfw_rows,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

EXAMPLE = ROOT / "reports" / "lfw-mobilefacenet"
LFW_CELL = "mobilefacenet-128d@cpu-ort@lfw"

GATE_NAME = "acc`![x](http://evil.example/gate.png)`<script>alert(1)</script>"
ERROR = ("bad image <script>alert('err')</script> ![pwn](http://evil.example/e.png) "
         "[click](http://evil.example) | *not* _emphasis_ ~~gone~~\nsecond line "
         "https://evil.example/bare www.evil.example")


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of a run folder (results.json and reports), same run id."""
    shutil.copytree(src, dest)
    return dest


def edit_results(out: Path, fn: Any) -> dict[str, Any]:
    path = out / "results.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return doc


# ---- item 11: the Markdown gate summary -----------------------------------------------------

@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory, fb_env: dict[str, str]) -> str:
    """``facebench gate`` on a run whose gate name and failed cell's error carry markup."""
    d = tmp_path_factory.mktemp("gate-summary")
    out = copy_run(EXAMPLE, d / "run")

    def hostile(doc: dict[str, Any]) -> None:
        doc["suite"]["gates"] = [
            {"metric": "accuracy", "op": ">=", "value": 0.9, "protocol": "lfw",
             "name": GATE_NAME},
            {"metric": "params", "op": ">", "value": 0, "protocol": "efficiency",
             "name": "[params](http://evil.example/p) | split"},
        ]
        cell = next(c for c in doc["cells"] if c["id"] == LFW_CELL)
        cell["status"] = "failed"
        cell["error"] = {"type": "RuntimeError", "message": ERROR}

    edit_results(out, hostile)
    res = facebench(["gate", str(out), "--summary", str(d / "summary.md")], fb_env, d)
    assert res.returncode == 1, res.stderr  # the lfw gate fails: its cell failed
    return (d / "summary.md").read_text(encoding="utf-8")


def test_gate_summary_has_no_html_from_the_data(summary: str) -> None:
    assert "<script" not in summary.lower()
    html = MarkdownIt("commonmark").enable("table").render(summary)
    assert "<script" not in html and "<img" not in html


def test_gate_summary_has_no_link_or_image_from_the_data(summary: str) -> None:
    assert not re.search(r"(?<!\\)\]\(", summary), summary  # no `](` link/image syntax
    assert "`" not in summary.replace("\\`", "")  # no code span the data could close
    html = MarkdownIt("commonmark").enable("table").render(summary)
    assert "<a " not in html and "<img" not in html and "<em>" not in html
    # GFM turns bare URLs into links: their scheme colon and "www." are escaped
    assert "https://" not in summary and "www.evil" not in summary


def test_gate_summary_table_rows_stay_intact(summary: str) -> None:
    rows = [ln for ln in summary.splitlines() if ln.startswith("|")]
    assert len(rows) == 2 + 2  # header, rule, one row per gate outcome
    html = MarkdownIt("commonmark").enable("table").render(summary)
    body = html.split("<tbody>")[1]
    assert body.count("<tr>") == 2
    for tr in body.split("<tr>")[1:]:
        assert tr.count("<td") == 7, tr  # the "|" in names and messages split no cell
    # the text itself survives, escaped: the reader still sees what went wrong
    assert "second line" in summary and "bad image &lt;script&gt;" in summary


# ---- item 12: facebench metrics on degenerate score files ------------------------------------

def test_metrics_on_a_header_only_csv_is_a_clear_error(tmp_path: Path,
                                                      fb_env: dict[str, str]) -> None:
    csv = tmp_path / "header.csv"
    csv.write_text("pair_id,score,label,fold,fta\n", encoding="utf-8")
    res = facebench(["metrics", str(csv)], fb_env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert str(csv) in res.stderr and "no pairs" in res.stderr


def test_metrics_on_a_one_fold_csv_reports_with_one_threshold(
        tmp_path: Path, fb_env: dict[str, str]) -> None:
    """One fold cannot cross-validate: accuracy uses one threshold on all pairs (as a file
    without a fold column), said on stderr; the fold-free metrics are the same either way."""
    rows = [(i, 0.2 + 0.6 * (i % 2) + 0.01 * (i % 7), i % 2) for i in range(40)]
    one = tmp_path / "one-fold.csv"
    one.write_text("pair_id,score,label,fold,fta\n"
                   + "".join(f"p{i},{s},{y},3,0\n" for i, s, y in rows), encoding="utf-8")
    nofold = tmp_path / "no-fold.csv"
    nofold.write_text("pair_id,score,label\n" + "".join(f"p{i},{s},{y}\n" for i, s, y in rows),
                      encoding="utf-8")
    res = facebench(["metrics", str(one), "--json"], fb_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert str(one) in res.stderr and "at least 2 folds" in res.stderr
    got = json.loads(res.stdout)
    assert got["details"]["threshold_policy"] == "all_data"
    ref = json.loads(facebench(["metrics", str(nofold), "--json"], fb_env, tmp_path).stdout)
    assert got["metrics"] == ref["metrics"]


# ---- item 12: a run is never its own baseline ------------------------------------------------

@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_run(EXAMPLE, tmp_path_factory.mktemp("own-baseline") / "run")


@pytest.mark.parametrize("ref", ["same", "dot-slash", "results.json", "copy"])
def test_report_refuses_the_run_itself_as_baseline(own_run: Path, fb_env: dict[str, str],
                                                   ref: str) -> None:
    base = {"same": own_run, "dot-slash": Path(f"./{own_run.name}/"),
            "results.json": own_run / "results.json",
            "copy": own_run.parent / "copy-of-run"}[ref]
    if ref == "copy" and not base.exists():
        copy_run(own_run, base)  # another folder, the same run (same run id)
    before = (own_run / "report.md").read_bytes()
    res = facebench(["report", str(own_run), "--baseline", str(base)], fb_env, own_run.parent)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "never its own baseline" in res.stderr and str(base) in res.stderr
    assert (own_run / "report.md").read_bytes() == before  # nothing re-rendered


def test_report_accepts_another_run_as_baseline(own_run: Path, fb_env: dict[str, str],
                                                tmp_path: Path) -> None:
    other = copy_run(own_run, tmp_path / "other")
    edit_results(other, lambda doc: doc["run"].update(id="20261127T000000Z-000000"))
    res = facebench(["report", str(own_run), "--baseline", str(other)], fb_env, tmp_path)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("ref", ["same", "results.json", "copy"])
def test_gate_refuses_the_run_itself_as_baseline(own_run: Path, fb_env: dict[str, str],
                                                 tmp_path: Path, ref: str) -> None:
    base = {"same": own_run, "results.json": own_run / "results.json",
            "copy": tmp_path / "copy"}[ref]
    if ref == "copy":
        copy_run(own_run, base)
    res = facebench(["gate", str(own_run), "--baseline", str(base),
                     "--gate", "lfw.accuracy >= baseline - 0.002"], fb_env, tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "never its own baseline" in res.stderr and "PASS" not in res.stdout


def test_run_gate_refuses_its_own_output_folder_as_baseline(tmp_path: Path,
                                                            fb_env: dict[str, str]) -> None:
    """``facebench run --gate --baseline OUT`` with OUT its own ``--out``: by the time the gates
    run, OUT/results.json is this run's."""
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(2, 2))
    suite_file = write_suite(tmp_path / "suite.yaml", suite(
        "own-baseline", [model("mfn")],
        [verification("lfw", pairs, LFW / "images", detector=False)],
        gates=["lfw.accuracy >= baseline - 0.5"]))
    out = tmp_path / "out"
    res = facebench(["run", str(suite_file), "--out", str(out), "--no-progress", "--gate",
                     "--baseline", str(out)], fb_env, tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "never its own baseline" in res.stderr
    assert (out / "results.json").is_file()  # the run itself completed and was kept


@pytest.mark.parametrize("flag", ["--baseline", "--junit", "--summary"])
def test_run_refuses_gate_options_without_gate(tmp_path: Path, fb_env: dict[str, str],
                                               flag: str) -> None:
    """``run --baseline X`` without ``--gate`` was silently ignored: the user believed the run
    was gated. It is a usage error (exit 2) before any work."""
    suite_file = write_suite(tmp_path / "suite.yaml", suite(
        "no-gate", [model("mfn")],
        [verification("lfw", write_pair_csv(tmp_path / "pairs.csv", lfw_rows(2, 2)),
                      LFW / "images", detector=False)]))
    out = tmp_path / "out"
    res = facebench(["run", str(suite_file), "--out", str(out), "--no-progress", flag,
                     str(tmp_path / "x")], fb_env, tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{flag} only apply with --gate" in res.stderr
    assert not out.exists()
