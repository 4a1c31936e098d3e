"""Markdown summary of gate outcomes, e.g. for ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from facebench.gates.evaluate import GateOutcome
from facebench.markdown import md

_ICON = {"pass": "✅", "fail": "❌", "error": "⛔", "skip": "⏭️"}


def _cell(text: object) -> str:
    """Text from data (gate names, cell ids, run ids, messages) as inert Markdown: no HTML, no
    link or image, no code span, one table cell on one line."""
    return str(md(text))


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def markdown_summary(
    outcomes: list[GateOutcome],
    *,
    run_id: str | None = None,
    baseline_id: str | None = None,
    warnings: list[str] | tuple[str, ...] = (),
) -> str:
    """A heading with counts, warnings as a callout, and one table row per outcome."""
    counts = {s: sum(o.status == s for o in outcomes) for s in _ICON}
    bad = counts["fail"] + counts["error"]
    head = "❌ gates failed" if bad else "✅ gates passed"
    parts = [f"{counts[s]} {s}" for s in ("fail", "error", "pass", "skip") if counts[s]]
    lines = [f"## facebench: {head} ({', '.join(parts) or 'no gates'})", ""]
    if run_id or baseline_id:
        lines += [f"Run {_cell(run_id or '?')} vs baseline {_cell(baseline_id or 'none')}.", ""]
    all_warn = list(dict.fromkeys([*warnings, *(w for o in outcomes for w in o.warnings)]))
    if all_warn:
        lines += ["> [!WARNING]"] + [f"> {_cell(w)}" for w in all_warn] + [""]
    if outcomes:
        lines += [
            "| | gate | cell | value | bound | baseline | detail |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        order = {"fail": 0, "error": 1, "skip": 2, "pass": 3}
        for o in sorted(outcomes, key=lambda o: (order[o.status], o.index)):
            bound = f"{o.op} {_num(o.bound)}" if o.bound is not None else ""
            lines.append(
                f"| {_ICON[o.status]} | {_cell(o.gate.describe())} | {_cell(o.cell_id or '—')} "
                f"| {_num(o.value)} | {_cell(bound)} | {_num(o.baseline)} | {_cell(o.message)} |"
            )
    return "\n".join(lines) + "\n"
