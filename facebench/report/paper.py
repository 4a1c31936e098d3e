"""The data behind the report's paper table, its accuracy-vs-cost Pareto figures and the
precision-variants section, read from ``results.json`` alone: the suite's options and device
precisions come from its dump under ``results["suite"]``.

Plain data only (no formatting, no figures): :mod:`facebench.report.view` and
:mod:`facebench.report.figures` both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facebench.report.fmt import number
from facebench.report.summary import ok_cells, protocols
from facebench.results import device_precisions

#: Precisions in the order the variants section lists them.
PRECISIONS = ("fp32", "fp16", "int8")
#: The paper table's latency: batch-1 median (``latency.p50_ms`` is its older shortcut).
LATENCY = "latency.b1.p50_ms"
LATENCY_FALLBACK = "latency.p50_ms"


def paper_options(results: dict[str, Any]) -> dict[str, Any] | None:
    """``report.paper_table`` of the suite (None when the suite does not ask for it)."""
    report = (results.get("suite") or {}).get("report") or {}
    opts = report.get("paper_table") if isinstance(report, dict) else None
    return opts if isinstance(opts, dict) else None


def paper_protocols(results: dict[str, Any], options: dict[str, Any]) -> list[str]:
    """The verification protocols of the measured rows: ``paper_table.protocols``, else every
    verification protocol of the suite (else of the cells), in order."""
    given = options.get("protocols")
    if given:
        return [str(p) for p in given]
    suite = [str(p.get("id")) for p in (results.get("suite") or {}).get("protocols") or []
             if isinstance(p, dict) and p.get("kind") == "verification"]
    return suite or [p for p, kind in protocols(results) if kind == "verification"]


def precision_of(cell: dict[str, Any], precisions: dict[str, str]) -> str:
    return precisions.get(str(cell.get("device")), "fp32")


def _first(cells: list[dict[str, Any]], metric: str) -> float | None:
    return next((v for c in cells if (v := number((c.get("metrics") or {}).get(metric)))
                 is not None), None)


def _latency(cell: dict[str, Any]) -> float | None:
    m = cell.get("metrics") or {}
    v = number(m.get(LATENCY))
    return v if v is not None else number(m.get(LATENCY_FALLBACK))


@dataclass
class PaperModel:
    """One measured row: the model's verification cell (fp32 preferred, first of the paper
    protocols that ran it) and its cost from its fp32 efficiency cells."""

    model: str
    verification: dict[str, Any] | None
    reference: dict[str, Any] | None
    params: float | None = None
    gmac: float | None = None
    #: The fp32 efficiency cell with the lowest batch-1 p50 (latency and peak RSS come from it).
    fastest: dict[str, Any] | None = None

    def metric(self, name: str) -> Any:
        return ((self.verification or {}).get("metrics") or {}).get(name)

    @property
    def accuracy(self) -> float | None:
        return number(self.metric("accuracy"))

    @property
    def latency_ms(self) -> float | None:
        return None if self.fastest is None else _latency(self.fastest)

    @property
    def rss_delta(self) -> Any:
        return ((self.fastest or {}).get("metrics") or {}).get("memory.peak_rss_delta_bytes")


def paper_models(results: dict[str, Any], protocol_ids: list[str]) -> list[PaperModel]:
    """One :class:`PaperModel` per model (suite order) with an ok verification cell in
    ``protocol_ids`` or an ok fp32 efficiency cell."""
    precisions = device_precisions(results)
    suite_models = [m for m in (results.get("suite") or {}).get("models") or []
                    if isinstance(m, dict)]
    order = [str(m.get("id")) for m in suite_models]
    order += sorted({str(c.get("model")) for c in results.get("cells") or []} - set(order))
    refs = {str(m.get("id")): m.get("reference") for m in suite_models}
    rank = {p: i for i, p in enumerate(protocol_ids)}
    ver = [c for c in ok_cells(results, "verification") if str(c.get("protocol")) in rank]
    eff = [c for c in ok_cells(results, "efficiency") if precision_of(c, precisions) == "fp32"]
    out = []
    for model in order:
        mine = [c for c in ver if str(c.get("model")) == model]
        mine.sort(key=lambda c: (precision_of(c, precisions) != "fp32",
                                 rank[str(c.get("protocol"))]))
        costs = [c for c in eff if str(c.get("model")) == model]
        if not mine and not costs:
            continue
        timed = [c for c in costs if _latency(c) is not None]
        ref = refs.get(model)
        out.append(PaperModel(
            model, mine[0] if mine else None, ref if isinstance(ref, dict) else None,
            params=_first(costs, "params"), gmac=_first(costs, "gmac"),
            fastest=min(timed, key=lambda c: _latency(c) or 0.0, default=None)))
    return out


@dataclass
class VariantGroup:
    """The cells of one model × protocol when any of them runs at a precision other than fp32,
    as ``(precision, cell)`` in :data:`PRECISIONS` order (every status: skipped variants say
    why)."""

    model: str
    protocol: str
    kind: str
    cells: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def variant_groups(results: dict[str, Any]) -> list[VariantGroup]:
    """Model × protocol groups that hold a non-fp32 cell, in first-seen order."""
    precisions = device_precisions(results)
    groups: dict[tuple[str, str], VariantGroup] = {}
    for c in results.get("cells") or []:
        key = (str(c.get("model")), str(c.get("protocol")))
        group = groups.setdefault(key, VariantGroup(*key, str(c.get("kind"))))
        group.cells.append((precision_of(c, precisions), c))
    out = []
    for g in groups.values():
        if any(p != "fp32" for p, _ in g.cells):
            g.cells.sort(key=lambda pc: PRECISIONS.index(pc[0]) if pc[0] in PRECISIONS
                         else len(PRECISIONS))
            out.append(g)
    return out
