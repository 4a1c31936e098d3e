"""HTML/JS in everything a user controls that can reach a report is escaped in report.html and
report.md. Ids cannot hold markup (``ID_PATTERN``: test_suites' ``id_with_html``), so the
payloads ride on what can: the report title, the suite description (shown in the suite text),
an image file name (FtA list), a model file name (error message) and the pair file's name.
The model's folder name holds rich markup (``[/]``), which must not break the console."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from markupsafe import escape

from .conftest import Background
from .kit import (
    LFW,
    Ctx,
    cells_by_id,
    facebench,
    lfw_rows,
    model,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

TITLE = '</title><script>alert("title")</script>'
DESCRIPTION = '<img src=x onerror=alert("description")>'
IMAGE = "<svg onload=alert('image')>.jpg"
MODEL_FILE = "]<iframe srcdoc=alert('model')>.onnx"  # in a folder named "m[": path ".../m[/]<…"
PAIRS_FILE = "<b onmouseover=alert('pairs')>.csv"
PAYLOADS = [TITLE, DESCRIPTION, IMAGE, MODEL_FILE, PAIRS_FILE.removesuffix(".csv")]


class Scan(HTMLParser):
    """Every start tag and attribute name of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [name for name, _ in attrs]


@scenario(order=5)
def escaping(ctx: Ctx) -> dict[str, Any]:
    d = ctx.dir
    bad = d / "m[" / MODEL_FILE
    bad.parent.mkdir()
    bad.write_bytes(b"not an onnx model")
    pairs = write_pair_csv(d / PAIRS_FILE, [*lfw_rows(2, 2), (IMAGE, lfw_rows(1, 1)[0][1], 0, 1)])
    write_suite(d / "suite.yaml", suite(
        "escaping", [model("mfn"), model("bad", bad)],
        [verification("lfw", pairs, LFW / "images")],
        description=DESCRIPTION, report={"title": TITLE}))
    res = facebench(["run", str(d / "suite.yaml"), "--out", str(d / "out"), "--no-progress"],
                    ctx.env, d)
    assert res.returncode == 3, res.stderr  # finished, with a failed cell
    return {"out": d / "out", "bad": bad, "stderr": res.stderr}


@pytest.fixture(scope="module")
def run(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(escaping))


def test_the_payloads_reach_the_results(run: dict) -> None:
    cells = cells_by_id(run["out"])
    assert cells["mfn@cpu@lfw"]["status"] == "ok"
    assert [f["image"] for f in cells["mfn@cpu@lfw"]["details"]["fta_images_list"]] == [IMAGE]
    bad = cells["bad@cpu@lfw"]
    assert bad["status"] == "failed" and str(run["bad"]) in bad["error"]["message"]
    # the console line of the failed cell shows the path verbatim ([/] read as text)
    assert f"failed bad@cpu@lfw  {bad['error']['message'][:160]}" in run["stderr"]


def test_html_report_escapes_every_payload(run: dict) -> None:
    html = (run["out"] / "report.html").read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in html, payload
    for shown in (TITLE, DESCRIPTION, IMAGE, MODEL_FILE):
        assert str(escape(shown)) in html, shown
    scan = Scan()
    scan.feed(html)
    assert scan.tags.count("script") == 1  # the report's own sort script (CSP-hashed)
    assert {"iframe", "img", "b"}.isdisjoint(scan.tags)
    assert not [a for a in scan.attrs if a.startswith("on")]


def test_markdown_report_escapes_every_payload(run: dict) -> None:
    from facebench.report.fmt import md as md_escape

    md = (run["out"] / "report.md").read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in md, payload
    assert str(md_escape(TITLE)) in md and str(md_escape(IMAGE)) in md
    assert str(escape(DESCRIPTION)) in md  # inside the suite text's <pre>
    tags = {t.lower() for t in re.findall(r"<\s*/?\s*([A-Za-z][\w-]*)", md)}
    assert tags <= {"br", "sub", "details", "summary", "pre"}, tags
