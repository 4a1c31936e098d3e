"""The report's "Identification (1:N)" section: rank-k and FNIR@FPIR table, CMC and DET (1:N)
figures, from identification cells computed on seeded vectors (brute-force search, metrics by
facebench.metrics.open_set, CMC cross-checked against facebench.metrics.identification.cmc),
plus the template note on an IJB-style verification table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.metrics import cmc
from facebench.metrics.open_set import open_set_metrics, searches_from_candidates
from facebench.report import render_report
from facebench.report.fmt import pct
from facebench.report.summary import best_per_metric

from .builders import _cell, environment, verification_cell
from .conftest import XSS
from .htmlscan import column, row, scan

GALLERY, MATED_PER_ID, NONMATED, DIM, MAX_RANK, RANKS = 100, 2, 120, 64, 20, (1, 5, 10)
FPIRS = (1e-2, 1e-1)  # with 120 non-mated searches: 1e-1 is supported (12 >= 10), 1e-2 not
POOLING = {"media": "mean", "detector_score": False, "norm": True, "flip": True}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def identification_cell(model: str, protocol: str, noise: float, seed: int,
                        nonmated: int = NONMATED, templates: bool = False) -> dict[str, Any]:
    """One identification cell from seeded vectors: a gallery of GALLERY identities, noisy
    mated probes of them and ``nonmated`` probes of identities outside it, searched by brute
    force; metrics and details by facebench.metrics.open_set (the pipeline's own)."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((GALLERY + nonmated, DIM)))
    gallery = _unit(centres[:GALLERY] + noise * rng.standard_normal((GALLERY, DIM)) / 8)
    ids = np.r_[np.repeat(np.arange(GALLERY), MATED_PER_ID), GALLERY + np.arange(nonmated)]
    probes = _unit(centres[ids] + noise * rng.standard_normal((ids.size, DIM)) / 8)
    scores = probes @ gallery.T
    order = np.argsort(-scores, axis=1, kind="stable")
    searches = searches_from_candidates(np.take_along_axis(scores, order, axis=1), order,
                                        np.arange(GALLERY), ids, np.arange(GALLERY))
    metrics, details = open_set_metrics(searches, RANKS, MAX_RANK, FPIRS, rank=1)
    mated = ids < GALLERY
    closed = cmc(probes[mated], np.arange(GALLERY), ids[mated], MAX_RANK, gallery=gallery)
    assert np.allclose(details["cmc"], closed.curve)  # the two CMC implementations agree
    metrics.update({"probes": int(ids.size), "gallery": GALLERY, "distractors": 0,
                    "fta_probes": seed % 3, "fta_gallery": 0})
    details["search"] = {"backend": "numpy"}
    if templates:
        metrics["templates"] = int(GALLERY + ids.size)
        details["templates"] = POOLING
        details["galleries"] = [{"name": "G1", "gallery": 60, "mated": 120, "nonmated": 60},
                                {"name": "G2", "gallery": 40, "mated": 80, "nonmated": 60}]
    return _cell(model, "cpu-ort", protocol, "identification", metrics, details, 0.1)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    """An IJB-style run (1:1 over templates, open-set 1:N) and a closed-set-only 1:N protocol."""
    ijb = [identification_cell(m, "ijb-1n", noise, seed, templates=True)
           for seed, (m, noise) in enumerate((("mobilefacenet", 1.3), ("arcface-r18", 1.1),
                                               (XSS, 1.5)))]
    closed = [identification_cell(m, "lfw-ids", noise, 10 + i, nonmated=0)
              for i, (m, noise) in enumerate((("mobilefacenet", 1.3), ("arcface-r18", 1.1)))]
    ver = verification_cell("mobilefacenet", "cpu-ort", "ijb-1v1", 0.62, 0)
    ver["details"]["templates"] = POOLING
    return {"schema_version": 1, "facebench_version": "0.1.0",
            "run": {"id": "20261128T000203Z-1n", "started": "2026-11-28T00:02:03+00:00"},
            "suite": {"name": "ijb-small"}, "environment": environment(busy=False),
            "datasets": {}, "cells": [ver, *ijb, *closed]}


@pytest.fixture(scope="module")
def rendered(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
             ) -> dict[str, Path]:
    return render_report(results, tmp_path_factory.mktemp("report-1n"))


def _cells(results: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    return [c for c in results["cells"] if c["protocol"] == protocol]


def test_section_follows_verification_with_its_columns(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text()
    s = scan(html)
    assert s.ids.get("identification") == "section"
    assert html.index('id="verification"') < html.index('id="identification"') \
        < html.index('id="timings"')
    assert '<a href="#identification">Identification (1:N)</a>' in html
    assert s.headers["identification-ijb-1n"] == [
        "Model", "Rank-1 (%)", "Rank-5 (%)", "Rank-10 (%)", "FNIR @ FPIR=1e-1 (%)",
        "FNIR @ FPIR=1e-2 (%)", "Searches (mated / non-mated)", "Gallery", "FtA (probes)"]
    md = rendered["md"].read_text()
    assert md.index("## Verification") < md.index("## Identification (1:N)") \
        < md.index("## Where the time went")
    assert ("| Model | Rank-1 (%) | Rank-5 (%) | Rank-10 (%) | FNIR @ FPIR=1e-1 (%) | "
            "FNIR @ FPIR=1e-2 (%) | Searches (mated / non-mated) | Gallery | FtA (probes) |") in md


def test_values_dagger_and_bold(rendered: dict[str, Path], results: dict[str, Any]) -> None:
    """Values are the cells' numbers; the unsupported FPIR (120 × 1e-2 < 10) carries † and wins
    no bold; the best rank-1 (higher) and FNIR@FPIR=1e-1 (lower) are bold."""
    s = scan(rendered["html"].read_text())
    t = "identification-ijb-1n"
    cells = _cells(results, "ijb-1n")
    for c in cells:
        r = row(s, t, c["model"])
        m = c["metrics"]
        assert r[column(s, t, "Rank-1 (%)")].text.strip() == pct(m["rank1"])
        assert r[column(s, t, "FNIR @ FPIR=1e-1 (%)")].text.strip() == pct(m["fnir@fpir=1e-1"])
        unsup = r[column(s, t, "FNIR @ FPIR=1e-2 (%)")]
        assert unsup.text.strip() == f"{pct(m['fnir@fpir=1e-2'])} †"
        assert "unsupported" in unsup.cls.split() and "best" not in unsup.cls.split()
        assert r[column(s, t, "Searches (mated / non-mated)")].text.strip() == "200 / 120"
    for header, metric, pick in (("Rank-1 (%)", "rank1", max),
                                 ("FNIR @ FPIR=1e-1 (%)", "fnir@fpir=1e-1", min)):
        top = pick(c["metrics"][metric] for c in cells)
        assert len({c["metrics"][metric] for c in cells}) > 1, metric  # a real contest
        bold = {r[0].text.strip() for r in s.tables[t] if "best" in r[column(s, t, header)].cls}
        assert bold == {c["model"] for c in cells if c["metrics"][metric] == top}, header
    md = rendered["md"].read_text()
    assert "† unsupported by the data: N_nonmated × FPIR &lt; 10" in md or \
        "† unsupported by the data: N\\_nonmated × FPIR &lt; 10" in md
    arc = next(line for line in md.splitlines() if line.startswith("| arcface-r18")
               and "200 / 120" in line)
    best = next(c for c in cells if c["model"] == "arcface-r18")
    assert f"**{pct(best['metrics']['rank1'])}**" in arc


def test_closed_set_only_cell_renders_na(rendered: dict[str, Path],
                                         results: dict[str, Any]) -> None:
    """Open-set keys None (no non-mated searches): n/a, no dagger, no DET (1:N) drawn."""
    s = scan(rendered["html"].read_text())
    t = "identification-lfw-ids"
    for c in _cells(results, "lfw-ids"):
        assert c["metrics"]["fnir@fpir=1e-1"] is None
        r = row(s, t, c["model"])
        for header in ("FNIR @ FPIR=1e-1 (%)", "FNIR @ FPIR=1e-2 (%)"):
            td = r[column(s, t, header)]
            assert td.text.strip() == "n/a" and "na" in td.cls.split() and td.sort == ""
        assert r[column(s, t, "Rank-1 (%)")].text.strip() == pct(c["metrics"]["rank1"])
    assert s.svg_in.get("fig-cmc-lfw-ids") == 1
    assert s.svg_in.get("fig-det-1n-lfw-ids") == 0  # a "not drawn" figure, with its reason
    assert "no non-mated searches" in rendered["html"].read_text()


def test_both_figures_are_svg_and_linked(rendered: dict[str, Path]) -> None:
    html = rendered["html"].read_text()
    s = scan(html)
    for fig in ("cmc-ijb-1n", "det-1n-ijb-1n", "cmc-lfw-ids"):
        assert s.svg_in.get(f"fig-{fig}") == 1, fig
        assert (rendered["html"].parent / "figures" / f"{fig}.svg").read_text().lstrip() \
            .startswith("<?xml")
        assert f"](figures/{fig}.svg)" in rendered["md"].read_text()
    section = html[html.index('id="identification"'):html.index('id="timings"')]
    assert '<a href="#fig-cmc-ijb-1n">CMC — ijb-1n</a>' in section
    assert '<a href="#fig-det-1n-ijb-1n">DET (1:N) — ijb-1n</a>' in section
    svg = (rendered["html"].parent / "figures" / "det-1n-ijb-1n.svg").read_text()
    assert "FPIR &lt; 10/N_nonmated" in svg or "FPIR < 10/N_nonmated" in svg  # legend (path text)


def test_template_notes_and_galleries(rendered: dict[str, Path]) -> None:
    md = rendered["md"].read_text()
    html = rendered["html"].read_text()
    pooling = "media mean, detector_score off, norm on, flip on"
    for text in (html, md):
        ver = text[text.index("Verification — ijb-1v1"):]
        assert "Scores are template-to-template" in ver and pooling in ver.replace("\\_", "_")
    assert "Galleries: G1 60 (searched by 120 mated / 60 non-mated probes)" in html
    assert "rank 1" in html  # the open-set rank of the FNIR note


def test_hostile_model_id_is_escaped(rendered: dict[str, Path]) -> None:
    html, md = rendered["html"].read_text(), rendered["md"].read_text()
    s = scan(html)
    assert XSS not in html and html.count("<script") == 1
    assert row(s, "identification-ijb-1n", XSS)  # shown as text
    section = md[md.index("## Identification (1:N)"):md.index("## Where the time went")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in section
    assert "<script" not in md.lower()


def test_summary_lists_rank_and_supported_fnir(results: dict[str, Any],
                                               rendered: dict[str, Path]) -> None:
    """The 1:N summary names the rank-k and FNIR@FPIR winners; an unsupported FPIR wins
    nothing, and a closed-set-only protocol has no FNIR line."""
    assert [b.metric for b in best_per_metric(results, "ijb-1n")] == [
        "rank1", "rank5", "rank10", "fnir@fpir=1e-1"]
    assert [b.metric for b in best_per_metric(results, "lfw-ids")] == [
        "rank1", "rank5", "rank10"]
    md = rendered["md"].read_text()
    block = md[md.index("### ijb-1n"):md.index("## Verification")]
    assert re.search(r"\| FNIR @ FPIR = 1e-1 \| \*\*.+\*\* \| [0-9.]+ % \|", block), block
