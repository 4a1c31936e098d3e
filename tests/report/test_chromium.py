"""report.html in a real browser: headless Chromium over the DevTools protocol.

Checks that the tables and every figure render, that the page logs no error, makes no network
request and opens no dialog (the ``<script>alert(1)</script>`` model id stays text), that the
sort script sorts, and saves a full-page screenshot (``$FACEBENCH_ARTIFACTS/report/``).
Skipped only outside CI when Chromium or websocket-client is missing; in CI (``CI`` set) that
is a failure.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1400

INFO_JS = """(() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    title: document.title,
    h1: document.querySelector("h1").textContent,
    sections: [...document.querySelectorAll("main > section")].map(s => s.id),
    tables: Object.fromEntries([...document.querySelectorAll("table[id]")].map(t =>
      [t.id, {rows: t.tBodies[0].rows.length, size: box(t), open: !t.closest("details") ||
              t.closest("details").open}])),
    figures: [...document.querySelectorAll("figure")].map(f => {
      const s = f.querySelector("svg");
      return {id: f.id, size: s ? box(s) : [0, 0], shapes: s ? s.querySelectorAll(
        "path, use").length : 0, skipped: f.classList.contains("skipped")};
    }),
    scripts: document.scripts.length,
    resources: performance.getEntriesByType("resource").map(e => e.name),
  };
})()"""

SORT_JS = """(() => {
  const t = document.getElementById("verification-lfw");
  const th = [...t.tHead.rows[0].cells].find(h => h.textContent.startsWith("Precision"));
  const read = () => [...t.tBodies[0].rows].map(r => r.cells[th.cellIndex].dataset.sort);
  th.click(); const asc = read(); const ariaAsc = th.getAttribute("aria-sort");
  th.click(); const desc = read();
  return {asc, desc, ariaAsc, ariaDesc: th.getAttribute("aria-sort")};
})()"""


def _require(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI must install it (see .ci/run)")
    pytest.skip(why)


@contextlib.contextmanager
def opened(url: str, profile: Path) -> Iterator[Any]:
    """Headless Chromium at ``WIDTH`` with ``url`` loaded and the Page, Runtime, Log and Network
    events recorded (skipped outside CI without Chromium or websocket-client)."""
    _require(CHROMIUM.is_file(), f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        _require(False, "websocket-client not installed (pip install websocket-client)")
    from .cdp import chromium

    with chromium(profile) as page:
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=1000,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=url)
        page.wait("Page.loadEventFired")
        yield page


@pytest.fixture(scope="module")
def browser(rendered: dict[str, Path], artifacts_dir: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = rendered["html"].resolve().as_uri()
    with opened(url, tmp_path_factory.mktemp("chromium-profile")) as page:
        dialogs = [e for e in page.events if e["method"] == "Page.javascriptDialogOpening"]
        assert not dialogs, f"a dialog opened: {dialogs}"
        info = page.evaluate(INFO_JS)
        height = min(int(page.call("Page.getLayoutMetrics")["cssContentSize"]["height"]), 16000)
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        sort = page.evaluate(SORT_JS)
        events = list(page.events)
    png = base64.b64decode(shot["data"])
    (artifacts_dir / "report-screenshot.png").write_bytes(png)
    out = artifacts_dir / "rendered"
    shutil.copytree(rendered["html"].parent, out, dirs_exist_ok=True)
    return {"info": info, "sort": sort, "events": events, "png": png, "url": url,
            "height": height}


def test_no_console_errors_and_no_network(browser: dict[str, Any]) -> None:
    errors = []
    for e in browser["events"]:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"])
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append(p.get("args"))
        elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
            errors.append(p["entry"])
    assert not errors
    requests = [e["params"]["request"]["url"] for e in browser["events"]
                if e["method"] == "Network.requestWillBeSent"]
    assert requests == [browser["url"]], "only the report file itself may be loaded"
    assert not [e for e in browser["events"] if e["method"] == "Network.loadingFailed"]
    assert browser["info"]["resources"] == []
    assert browser["info"]["scripts"] == 1


def test_escaped_title_and_sections(browser: dict[str, Any]) -> None:
    info = browser["info"]
    assert info["h1"] == "<script>alert(1)</script>"  # shown as text
    assert info["title"] == "<script>alert(1)</script> — facebench report"
    assert info["sections"] == ["summary", "verification", "timings", "efficiency", "baseline",
                                "figures", "failures", "reproducibility"]


def test_tables_render(browser: dict[str, Any]) -> None:
    tables = browser["info"]["tables"]
    for tid in ("verification-lfw", "cost-speed-cpu-ort", "latency-speed-cpu-ort",
                "baseline-changes", "failures-table"):
        t = tables[tid]
        assert t["rows"] > 0 and t["open"], tid
        assert t["size"][0] > 300 and t["size"][1] > 40, (tid, t["size"])
    # the widest table fits the page: EER, AUC and FtA are not cut off
    assert tables["verification-lfw"]["size"][0] <= WIDTH


def test_every_figure_renders(browser: dict[str, Any]) -> None:
    figures = browser["info"]["figures"]
    assert len(figures) == 6 and not [f for f in figures if f["skipped"]]
    for f in figures:
        w, h = f["size"]
        assert w > 300 and h > 150, f
        assert f["shapes"] > 50, f  # axes, ticks, glyphs and data were drawn


def test_sort_script_sorts_with_undefined_last(browser: dict[str, Any]) -> None:
    s = browser["sort"]
    assert (s["ariaAsc"], s["ariaDesc"]) == ("ascending", "descending")
    for order, values in ((1, s["asc"]), (-1, s["desc"])):
        defined = [float(v) for v in values if v != ""]
        assert defined == sorted(defined, reverse=order < 0)
        assert values[len(defined):] == [""] * (len(values) - len(defined))  # n/a last
    assert "" in s["asc"]  # the all-FtA model's precision is undefined


def test_screenshot_saved(browser: dict[str, Any], artifacts_dir: Path) -> None:
    png = browser["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (WIDTH, browser["height"])
    assert (artifacts_dir / "report-screenshot.png").read_bytes() == png


FLAGSHIP = Path(__file__).resolve().parents[2] / "reports" / "paper" / "report.html"


@pytest.fixture(scope="module")
def flagship(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The committed flagship example report (reports/paper) opened in Chromium."""
    url = FLAGSHIP.resolve().as_uri()
    with opened(url, tmp_path_factory.mktemp("chromium-flagship")) as page:
        info = page.evaluate(INFO_JS)
        events = list(page.events)
    return {"info": info, "events": events, "url": url}


def test_flagship_example_renders_whole(flagship: dict[str, Any]) -> None:
    """reports/paper/report.html: paper table and variants sections, every figure drawn (the
    three Pareto figures included), no error, nothing loaded but the file itself."""
    info, events = flagship["info"], flagship["events"]
    errors = [e for e in events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert not errors
    requests = [e["params"]["request"]["url"] for e in events
                if e["method"] == "Network.requestWillBeSent"]
    assert requests == [flagship["url"]]
    assert "paper" in info["sections"] and "variants" in info["sections"]
    paper = info["tables"]["paper-table"]
    assert paper["rows"] >= 8 and paper["open"] and paper["size"][0] > 300, paper
    assert info["tables"]["variants-efficiency"]["rows"] >= 6
    ids = {f["id"] for f in info["figures"]}
    assert {"fig-paper-accuracy-latency", "fig-paper-accuracy-params",
            "fig-paper-accuracy-gmac"} <= ids, ids
    for f in info["figures"]:
        assert not f["skipped"] and f["size"][0] > 300 and f["shapes"] > 20, f
