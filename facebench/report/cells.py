"""Table building blocks of the report's view model: cells, columns, tables, baseline deltas
and the catalog-formatted value cells every section uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from facebench.metrics.catalog import metric_info
from facebench.report import fmt
from facebench.report.compare import Comparison, Delta
from facebench.report.summary import better_sign
from facebench.results import metric_flag

DELTA_MARK = {"better": "▲", "worse": "▼", "changed": "●", "noise": "≈", "unknown": "?"}


@dataclass
class Cell:
    """A table cell: ``text`` shown, ``sort`` the sort key ("" = undefined, sorts last)."""

    text: str
    sort: str = ""
    cls: str = ""
    note: str = ""
    delta: str = ""
    delta_cls: str = ""
    title: str = ""


@dataclass
class Column:
    label: str
    numeric: bool = True
    help: str = ""


@dataclass
class Table:
    id: str
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def sort_key(value: Any) -> str:
    v = fmt.number(value)
    return "" if v is None else repr(v)


def delta_class(d: Delta) -> str:
    if d.significant is None:
        return "unknown"
    if not d.significant:
        return "noise"
    return "changed" if d.better is None else "better" if d.better else "worse"


class Deltas:
    """Baseline deltas by (cell id, metric), attached to table cells."""

    def __init__(self, comparison: Comparison | None) -> None:
        self.by_key = {(d.cell_id, d.metric): d for d in comparison.deltas} if comparison else {}

    def attach(self, cell: Cell, cell_id: str, metric: str) -> Cell:
        d = self.by_key.get((cell_id, metric))
        if d is not None and d.diff is not None:
            cls = delta_class(d)
            cell.delta = f"{fmt.delta(metric, d.diff, d.rel)} {DELTA_MARK[cls]}"
            cell.delta_cls = cls
            cell.title = f"baseline {fmt.metric(metric, d.baseline)}; {d.method}"
        return cell


#: What a table shows instead of a value that is a measurement error (results.metric_flag).
FLAGGED = "measurement error"


def value_cell(c: dict[str, Any], metric: str, render: Callable[[Any], str], deltas: Deltas,
           note: str = "") -> Cell:
    """A metric's value cell; a flagged value (:func:`facebench.results.metric_flag`) is never
    shown: the cell says :data:`FLAGGED` and why."""
    why = metric_flag(c, metric)
    if why:
        return Cell(FLAGGED, "", "num na flagged", why.removeprefix(f"{FLAGGED}: "))
    v = (c.get("metrics") or {}).get(metric)
    text = render(v)
    cell = Cell(text, sort_key(v), "num na" if text == fmt.NA else "num", note)
    return deltas.attach(cell, str(c.get("id")), metric)


def ci_text(c: dict[str, Any], metric: str) -> str:
    m = c.get("metrics") or {}
    lo, hi = m.get(f"{metric}_ci_low"), m.get(f"{metric}_ci_high")
    if fmt.number(lo) is None or fmt.number(hi) is None:
        return ""
    return f"CI [{fmt.pct(lo)}, {fmt.pct(hi)}]"


#: Marks a TAR@FAR with fewer than 30 errors behind it (Doddington's rule of 30 not met).
RULE_OF_30_MARK = "§"


def tar_row(c: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The ``details.tar_at_far`` entry of cell ``c`` for FAR ``key`` (``"1e-3"``), or None."""
    for row in (c.get("details") or {}).get("tar_at_far") or []:
        if isinstance(row, dict) and fmt.number(row.get("far")) == float(key):
            return row
    return None


def errors_text(row: dict[str, Any] | None) -> str:
    """``29 false accepts, 1,711 false rejects`` of a TAR@FAR row ("" when not recorded)."""
    if not row or row.get("false_accepts") is None:
        return ""
    return (f"{fmt.count(row.get('false_accepts'))} false accepts, "
            f"{fmt.count(row.get('false_rejects'))} false rejects")


_RESAMPLED = {"identity": "identities (an identity drawn brings all its pairs: the cluster "
                          "bootstrap of Bolle, Ratha & Pankanti 2004)",
              "pair": "pairs, as if independent"}


def bootstrap_note(cells: list[dict[str, Any]]) -> str | None:
    """One line on how the CIs of ``cells`` were resampled (None when no cell has CIs)."""
    by: dict[str, list[str]] = {}
    reps: set[int] = set()
    for c in cells:
        b = (c.get("details") or {}).get("bootstrap")
        if isinstance(b, dict):
            by.setdefault(str(b.get("resampling_method") or "pair"), []).append(
                str(c.get("model")))
            if isinstance(b.get("replicates"), int):
                reps.add(b["replicates"])
    if not by:
        return None
    n = f"{', '.join(fmt.count(r) for r in sorted(reps))} replicates, " if reps else ""
    if len(by) == 1:
        (method,) = by
        return f"CIs: 95 % percentile bootstrap, {n}resampling {_RESAMPLED.get(method, method)}."
    parts = [f"{_RESAMPLED.get(k, k)} for {', '.join(v)}" for k, v in sorted(by.items())]
    return f"CIs: 95 % percentile bootstrap, {n}resampling " + "; ".join(parts) + "."


def mark_best(table: Table, metric_by_col: dict[int, str]) -> None:
    """Bold the best defined value in each listed column (ties all bold); which way is better
    is the column's metric's direction in the catalog."""
    for col, metric in metric_by_col.items():
        sign = better_sign(metric)
        vals = [(float(r[col].sort), r[col]) for r in table.rows
                if r[col].sort and "unsupported" not in r[col].cls]
        if len(vals) < 2:
            continue
        top = max(sign * v for v, _ in vals)
        for v, cell in vals:
            if sign * v == top:
                cell.cls += " best"


def model_cell(c: dict[str, Any], note: str = "") -> Cell:
    return Cell(str(c.get("model")), str(c.get("model")), "model",
                note or str(c.get("device")), title=str(c.get("id")))



def meaning(metric: str) -> str:
    info = metric_info(metric)
    return "" if info is None else info.meaning


def catalog_value(c: dict[str, Any], metric: str, deltas: Deltas, note: str = "") -> Cell:
    """A value shown in the catalog's format and unit (``9.14 s``, ``84.9 img/s``)."""
    return value_cell(c, metric, functools.partial(fmt.metric, metric), deltas, note)


#: What the paper table and the variants section show for a value that is absent or undefined.
DASH = "—"


def dash(cell: Cell) -> Cell:
    if cell.text == fmt.NA:
        cell.text, cell.cls = DASH, f"{cell.cls} na".strip()
    return cell


def text_cell(text: str, sort: Any = None, cls: str = "num", note: str = "") -> Cell:
    """A computed value's cell: ``—`` when ``text`` is n/a (undefined) or empty."""
    return dash(Cell(text or fmt.NA, sort_key(sort), cls, note))


def latency_batches(cells: list[dict[str, Any]]) -> list[int]:
    """The batch sizes whose p50 latency any of ``cells`` measured, ascending."""
    keys = {k.split(".")[1][1:] for c in cells for k in (c.get("metrics") or {})
            if k.startswith("latency.b") and k.endswith(".p50_ms")}
    return sorted(int(b) for b in keys if b.isdigit())
