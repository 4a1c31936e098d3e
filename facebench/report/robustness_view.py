"""The report's robustness section (:mod:`facebench.report.robustness`): per corruption, each
model's accuracy against severity (one row per model, with CI, TAR@FAR and FtA); a summary of
relative robustness and the first level below the accuracy floor; the ranking at each level."""

from __future__ import annotations

from typing import Any

from facebench.report import fmt
from facebench.report.cells import DASH, Cell, Column, Table, ci_text, text_cell
from facebench.report.robustness import (
    Line,
    Robustness,
    accuracy,
    first_below,
    line_robustness,
    mean_robustness,
    ranks,
    robustness,
)


def _tar_key(cell: dict[str, Any]) -> str | None:
    keys = sorted(k for k in (cell.get("metrics") or {})
                  if k.startswith("tar@far=") and "_ci_" not in k)
    return keys[-1] if keys else None


def _level_cell(cell: dict[str, Any] | None) -> Cell:
    """Accuracy (%) with its CI, TAR at the smallest FAR target and FtA pairs below."""
    if cell is None:
        return text_cell("")
    m = cell.get("metrics") or {}
    notes = [ci_text(cell, "accuracy")]
    tar = _tar_key(cell)
    if tar and fmt.number(m.get(tar)) is not None:
        notes.append(f"TAR@{tar.removeprefix('tar@far=')} {fmt.pct(m[tar])}")
    notes.append(f"FtA {m.get('fta_pairs', DASH)}/{m.get('pairs', DASH)} pairs")
    return text_cell(fmt.pct(m.get("accuracy")), m.get("accuracy"),
                     note=" · ".join(n for n in notes if n))


def _ratio(value: float | None) -> Cell:
    return text_cell("" if value is None else f"{value:.3f}", value)


def corruption_tables(data: Robustness) -> list[Table]:
    tables = []
    for corr in data.corruptions:
        cols = [Column("Model (protocol · device)", numeric=False), Column("clean")]
        cols += [Column(n) for n in corr.levels]
        cols.append(Column("Relative robustness", help="area under accuracy vs severity over "
                           "clean accuracy × levels (1 = unaffected)"))
        t = Table(f"robustness-{corr.name}", f"Robustness — {corr.name}: accuracy (%) by "
                  "level, mild → severe", cols)
        for line in data.lines:
            row = [Cell(line.label, line.label, "model"), _level_cell(line.clean)]
            row += [_level_cell(line.levels.get(n)) for n in corr.levels]
            row.append(_ratio(line_robustness(line, corr)))
            t.rows.append(row)
        t.notes.append("Each level is its own cell (protocol '<clean protocol>+<level>'); below "
                       "each accuracy: its bootstrap CI, TAR at the smallest FAR target, and "
                       "pairs with a side that failed to acquire (rejected: they count as "
                       "errors).")
        tables.append(t)
    return tables


def _below(line: Line, data: Robustness) -> str:
    found = []
    for corr in data.corruptions:
        name = first_below(accuracy(line.clean), corr.levels,
                           [accuracy(line.levels.get(n)) for n in corr.levels], data.floor)
        if name is not None:
            found.append(name)
    return "; ".join(found) if found else "none"


def summary_table(data: Robustness) -> Table:
    cols = [Column("Model (protocol · device)", numeric=False), Column("Clean accuracy (%)")]
    cols += [Column(f"RR {c.name}") for c in data.corruptions]
    cols += [Column("Mean RR"), Column(f"First level below {fmt.pct(data.floor, 0)} %",
                                       numeric=False)]
    t = Table("robustness-summary", "Relative robustness (RR) and the first level below the "
              "accuracy floor", cols)
    for line in data.lines:
        row = [Cell(line.label, line.label, "model"),
               text_cell(fmt.pct(accuracy(line.clean)), accuracy(line.clean))]
        row += [_ratio(line_robustness(line, c)) for c in data.corruptions]
        below = _below(line, data)
        row += [_ratio(mean_robustness(line, data)), Cell(below, below)]
        t.rows.append(row)
    t.notes.append("RR: area under the accuracy-vs-severity curve (clean at step 0, each level "
                   "one step) over the area at clean accuracy; 1 = unaffected, lower = "
                   "less robust. Mean RR averages the corruptions. First level below: per "
                   "corruption, the first level (mild → severe) whose accuracy is below the "
                   "suite's degrade.accuracy_floor.")
    return t


def ranking_table(data: Robustness) -> Table:
    t = Table("robustness-ranking", "Ranking of the models at each level (by accuracy)",
              [Column("Level", numeric=False), Column("Ranking", numeric=False),
               Column("Against clean", numeric=False)])

    def order(values: dict[str, float | None]) -> tuple[str, list[str]]:
        r = ranks(values)
        names = sorted(r, key=lambda k: (r[k], k))
        return " · ".join(f"{r[k]}. {k}" for k in names), names

    clean_text, clean_order = order({ln.label: accuracy(ln.clean) for ln in data.lines})
    t.rows.append([Cell("clean", "clean"), Cell(clean_text), Cell(DASH)])
    for corr in data.corruptions:
        for name in corr.levels:
            text, names = order({ln.label: accuracy(ln.levels.get(name)) for ln in data.lines})
            same = names == [k for k in clean_order if k in names]
            t.rows.append([Cell(name, name), Cell(text),
                           Cell("same" if same else "differs", cls="" if same else "best")])
    return t


def robustness_section(results: dict[str, Any]) -> dict[str, Any] | None:
    """The section's tables, or ``None`` when the run has no degraded cell."""
    data = robustness(results)
    if data is None:
        return None
    return {"tables": [summary_table(data), ranking_table(data), *corruption_tables(data)]}
