"""The report's "Which differences are real" section and the summary grouped by the pairs scored
(protocols whose cells share ``details.pairs_key``), on hand-built results."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from facebench.report import render_report
from facebench.report.differences_view import differences_tables
from facebench.report.summary import best_per_metric, summary_groups
from facebench.report.view import summary

XSS = "<script>alert(1)</script>"
KEY = "ab" * 32


def _cell(model: str, protocol: str, accuracy: float, key: str | None = KEY,
          kind: str = "verification") -> dict[str, Any]:
    details = {"pairs_key": key} if key else {}
    return {"id": f"{model}@cpu@{protocol}", "slug": f"{model}@cpu@{protocol}", "model": model,
            "device": "cpu", "protocol": protocol, "kind": kind, "status": "ok",
            "metrics": {"accuracy": accuracy}, "details": details, "artifacts": {}}


def _diff(delta: float, lo: float, hi: float, winner: str | None, **extra: Any
          ) -> dict[str, Any]:
    return {"a": 0.99, "b": 0.99 - delta, "delta": delta, "ci_low": lo, "ci_high": hi,
            "winner": winner, **extra}


def _results(model: str = "mfn") -> dict[str, Any]:
    cells = [_cell(model, "lfw-yunet", 0.99), _cell("sface", "lfw-retina", 0.97),
             _cell("dlib", "lfw-dlib", 0.98), _cell("other", "cplfw", 0.9, key="cd" * 32)]
    row = {"pairs_key": KEY, "model_a": model, "model_b": "sface", "protocol_a": "lfw-yunet",
           "protocol_b": "lfw-retina", "a": f"{model}@cpu@lfw-yunet", "b": "sface@cpu@lfw-retina",
           "precision": "fp32", "pairs": 6000, "reason": None,
           "bootstrap": {"method": "identity", "replicates": 1000},
           "accuracy": _diff(0.02, 0.01, 0.03, model),
           "mcnemar": {"a_only": 90, "b_only": 30, "p_value": 1e-8, "p_holm": 3e-8},
           "tar_at_far": [{"far": 0.1, "key": "1e-1", "supported": True,
                           **_diff(-0.01, -0.02, -0.001, "sface")},
                          {"far": 0.001, "key": "1e-3", "supported": False,
                           **_diff(0.2, 0.1, 0.3, None)}]}
    tie = {**row, "model_b": "dlib", "protocol_b": "lfw-dlib", "b": "dlib@cpu@lfw-dlib",
           "accuracy": _diff(0.001, -0.002, 0.004, None),
           "mcnemar": {"a_only": 10, "b_only": 9, "p_value": 1.0, "p_holm": 1.0},
           "tar_at_far": []}
    broken = {**row, "model_a": "sface", "protocol_a": "lfw-retina", "a": "sface@cpu@lfw-retina",
              "model_b": "dlib", "b": "dlib@cpu@lfw-dlib", "accuracy": None, "mcnemar": None,
              "tar_at_far": [], "reason": "cannot read the scores of dlib@cpu@lfw-dlib"}
    return {"run": {"id": "r1"}, "suite": {"name": "s"}, "cells": cells, "comparisons": {
        "alpha": 0.05, "level": 0.95,
        "groups": [{"pairs_key": KEY, "protocols": ["lfw-yunet", "lfw-retina", "lfw-dlib"],
                    "cells": [c["id"] for c in cells[:3]]}],
        "pairwise": [row, tie, broken]}}


def test_summary_groups_protocols_by_the_pairs_they_scored() -> None:
    results = _results()
    results["cells"].append(_cell("eff", "speed", 0.0, key=None, kind="efficiency"))
    groups = summary_groups(results)
    assert [(g.protocols, g.kind) for g in groups] == [
        (("lfw-yunet", "lfw-retina", "lfw-dlib"), "verification"),
        (("cplfw",), "verification"), (("speed",), "efficiency")]
    assert [b.cells[0]["model"] for b in best_per_metric(results, groups[0].protocols)] == ["mfn"]
    entry = summary(results)[0]
    assert entry["protocol"] == "lfw-yunet · lfw-retina · lfw-dlib" and entry["same_pairs"]
    assert entry["bests"][0]["winners"] == "mfn (cpu · lfw-yunet)"


def test_a_protocol_without_pairs_key_stays_on_its_own() -> None:
    results = _results()
    for c in results["cells"]:
        c["details"].pop("pairs_key")
    assert [g.protocols for g in summary_groups(results)] == [
        ("lfw-yunet",), ("lfw-retina",), ("lfw-dlib",), ("cplfw",)]


def test_one_row_per_pair_of_models_the_winner_only_where_the_ci_excludes_zero() -> None:
    (table,) = differences_tables(_results())
    assert table.title == ("Which differences are real — lfw-yunet · lfw-retina · lfw-dlib "
                           "(6,000 pairs)")
    labels = [c.label for c in table.columns]
    assert labels[2:6] == ["Δ accuracy", "McNemar p (Holm)", "Δ TAR @ FAR=1e-1",
                           "Δ TAR @ FAR=1e-3"]
    win, tie, broken = table.rows
    assert win[0].text == "mfn (lfw-yunet) vs sface (lfw-retina)"
    assert (win[2].text, win[2].cls) == ("+2.00 pp", "num better")
    assert win[2].note.startswith("CI [+1.00 pp, +3.00 pp]")
    assert (win[3].text, win[3].note) == ("3e-08 *", "unadjusted 1e-08; discordant 90 : 30")
    assert (win[4].text, win[4].cls) == ("−1.00 pp", "num worse")
    assert win[5].text == "+20.00 pp †" and "unsupported" in win[5].cls
    # sface is ahead at FAR 1e-1; the unsupported FAR 1e-3 names no winner
    assert win[6].text == "mfn (accuracy); sface (TAR@FAR=1e-1)"
    assert (tie[2].cls, tie[3].text, tie[6].text) == ("num", "1", "no real difference")
    assert tie[4].text == "—"  # not measured
    assert broken[6].text == "not compared" and "cannot read the scores" in broken[6].note
    assert any("identity bootstrap" in n for n in table.notes)
    assert any("N_imp × FAR < 10" in n for n in table.notes)


def test_no_comparisons_no_section() -> None:
    results = _results()
    del results["comparisons"]
    assert differences_tables(results) == []
    results["comparisons"] = {"groups": "junk", "pairwise": [None, 3]}
    assert differences_tables(results) == []


def test_the_section_renders_escaped_in_html_and_markdown(tmp_path: Path) -> None:
    results = copy.deepcopy(_results(model=XSS))
    render_report(results, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert '<section id="differences">' in html and 'href="#differences"' in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt; (lfw-yunet) vs sface" in html
    assert "## Which differences are real" in md and XSS not in md
    assert "no real difference" in md and "+2.00 pp" in md


def test_an_edited_comparisons_block_renders_dashes_not_a_traceback(tmp_path: Path) -> None:
    results = _results()
    results["comparisons"]["groups"][0]["protocols"] = "lfw"
    row = results["comparisons"]["pairwise"][0]
    row.update(bootstrap="identity", accuracy=[1], mcnemar="p", tar_at_far=7, pairs="many")
    (table,) = differences_tables(results)
    assert [c.text for c in table.rows[0][2:5]] == ["—", "—", "no real difference"]
    render_report(results, tmp_path)
    assert "Which differences are real" in (tmp_path / "report.md").read_text(encoding="utf-8")
