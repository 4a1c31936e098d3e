"""The one metric catalog: every reported metric has an entry, and gates, report and docs read
their directions, units and formats from it."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from facebench.gates.spec import (
    Gate,
    infer_direction,
    machine_dependent,
    metric_kinds,
    parse_gate_expr,
)
from facebench.metrics import compute_verification_metrics
from facebench.metrics.catalog import CATALOG, catalog_markdown, metric_info, sign
from facebench.probes.efficiency import metric_names
from facebench.report import fmt
from facebench.report.compare import direction as compare_direction

ROOT = Path(__file__).resolve().parents[2]
REPORTS = sorted(ROOT.glob("reports/*/results.json"))
NEW = ["images_per_s", "time.decode_s", "time.detect_s", "time.align_s", "time.embed_s",
       "time.metrics_s", "time.total_s"]


def reported_names() -> list[str]:
    """Every metric name in the committed reports/*/results.json."""
    names: set[str] = set()
    for path in REPORTS:
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            names.update(cell.get("metrics") or {})
    return sorted(names)


def produced_names() -> list[str]:
    """Names the code writes: the committed reports, the efficiency probe's list for several
    batch sizes, every verification metric with CIs, identification and the per-stage timings."""
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], 40)
    scores = np.where(labels == 1, rng.normal(0.6, 0.1, 80), rng.normal(0.1, 0.1, 80))
    res = compute_verification_metrics(scores, labels, folds=np.tile([0, 1], 40),
                                       far_targets=(1e-1, 1e-2, 1.5e-3), bootstrap=100)
    ident = ["rank1", "rank5", "rank10", "probes", "gallery", "distractors", "fta_probes",
             "fta_gallery", "fta_images", "images"]
    cuda = ["memory.cuda_max_allocated_bytes", "memory.cuda_max_reserved_bytes"]
    return sorted({*reported_names(), *metric_names([1, 8, 32]), *res.metrics, *ident, *NEW,
                   *cuda})


def test_reports_are_committed() -> None:
    assert REPORTS, "no reports/*/results.json to check the catalog against"


@pytest.mark.parametrize("name", reported_names())
def test_every_reported_metric_has_an_entry(name: str) -> None:
    assert metric_info(name) is not None, f"{name} is reported but not in the catalog"


def test_every_produced_metric_has_an_entry() -> None:
    missing = [n for n in produced_names() if metric_info(n) is None]
    assert not missing, f"metrics without a catalog entry: {missing}"


@pytest.mark.parametrize("name", produced_names())
def test_gates_and_report_agree_with_the_catalog(name: str) -> None:
    info = metric_info(name)
    assert info is not None
    assert infer_direction(name) == (None if info.direction == "none" else info.direction)
    assert compare_direction(name) == sign(name) == info.sign
    assert fmt.metric_format(name) == info.format
    assert machine_dependent(name) == info.machine
    assert metric_kinds(name) == info.kinds


@pytest.mark.parametrize(
    ("name", "unit", "direction", "shown"),
    [
        ("accuracy", "fraction", "higher", "98.52 %"),
        ("accuracy_std", "fraction", "none", "98.52 %"),  # a spread, not a quality
        ("eer", "fraction", "lower", "98.52 %"),
        ("tar@far=1e-3", "fraction", "higher", "98.52 %"),
        ("tar@far=1e-3_ci_low", "fraction", "higher", "98.52 %"),
        ("far_achieved@far=1e-3", "fraction", "none", "98.52 %"),  # ≤ the target by design
        ("threshold@far=1e-3", "cosine", "none", "0.9852"),
        ("auc", "fraction", "higher", "0.9852"),
        ("tp", "pairs", "higher", "1"),
        ("fta_rate", "fraction", "lower", "98.52 %"),
        ("rank5", "fraction", "higher", "98.52 %"),
        ("latency.b8.p99_ms", "ms", "lower", "0.985 ms"),
        ("latency.b8.std_ms", "ms", "none", "0.985 ms"),
        ("latency.b8.samples", "samples", "none", "1"),
        ("throughput.b8", "images/s", "higher", "1.0 img/s"),
        ("memory.peak_rss_bytes", "bytes", "lower", "0.00 MB"),
        ("params", "parameters", "lower", "1"),
        ("gflops", "GFLOP", "lower", "0.9852"),
        ("pct_of_peak", "%", "higher", "1.0 %"),
        ("images_per_s", "images/s", "higher", "1.0 img/s"),
        ("time.decode_s", "s", "lower", "0.985 s"),
        ("time.total_s", "s", "lower", "0.985 s"),
    ],
)
def test_hand_checked_entries(name: str, unit: str, direction: str, shown: str) -> None:
    info = metric_info(name)
    assert info is not None
    assert (info.unit, info.direction) == (unit, direction)
    assert fmt.metric(name, 0.98517) == shown


def test_unknown_names_have_no_entry_and_no_direction() -> None:
    for name in ("foo", "latency.b0.p50_ms", "latency.foo_ms", "tar@far=", "rank"):
        assert metric_info(name) is None
        assert infer_direction(name) is None and compare_direction(name) == 0
    assert fmt.metric("foo", 1.23456) == "1.235"
    assert fmt.metric("accuracy", None) == fmt.metric("accuracy", math.nan) == fmt.NA


def test_timings_are_machine_dependent_and_gate_as_lower_is_better() -> None:
    assert parse_gate_expr("time.total_s <= 30") == {"metric": "time.total_s", "op": "<=",
                                                     "value": 30.0}
    assert parse_gate_expr("lfw.time.embed_s <= 30")["protocol"] == "lfw"
    assert Gate(metric="time.embed_s", max_regression=0.2).better == "lower"
    assert Gate(metric="images_per_s", max_regression=0.2).better == "higher"
    assert Gate(metric="rank1", max_drop=0.01).better == "higher"
    assert machine_dependent("images_per_s") and not machine_dependent("accuracy")
    assert "identification" in metric_kinds("time.total_s")


def test_entries_are_unique_and_complete() -> None:
    names = [m.name for m in CATALOG]
    assert len(names) == len(set(names))
    for m in CATALOG:
        assert m.unit and m.meaning and m.kinds
        assert m.format in fmt.FORMATS
        assert not (m.machine and m.deterministic)


def test_docs_table_is_the_catalog() -> None:
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- catalog:start[^>]*-->\n(.*?)<!-- catalog:end -->", text, re.S)
    assert found, "docs/results.md has no <!-- catalog:start --> … <!-- catalog:end --> table"
    assert found.group(1) == catalog_markdown(), (
        "docs/results.md's metric table differs from facebench.metrics.catalog; regenerate it "
        "with facebench.metrics.catalog.catalog_markdown()")
