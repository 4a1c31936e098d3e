"""CI gates: absolute and baseline-relative, noise-aware pass/fail rules over results.json.

Names are imported on first use (PEP 562): the suite schema imports ``facebench.gates.spec`` in
every process, which must not pull in scipy.stats and SQLAlchemy (~1 s) with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "gate_command": "cli",
    "GateOutcome": "evaluate", "evaluate_gates": "evaluate", "exit_code": "evaluate",
    "write_junit": "junit",
    "Gate": "spec", "GateSpecError": "spec", "parse_gate_expr": "spec", "parse_gates": "spec",
    "SampleComparison": "stats", "compare_samples": "stats",
    "markdown_summary": "summary",
}

__all__ = [
    "Gate",
    "GateOutcome",
    "GateSpecError",
    "SampleComparison",
    "compare_samples",
    "evaluate_gates",
    "exit_code",
    "gate_command",
    "markdown_summary",
    "parse_gate_expr",
    "parse_gates",
    "write_junit",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"facebench.gates.{_WHERE[name]}"), name)


if TYPE_CHECKING:
    from facebench.gates.cli import gate_command
    from facebench.gates.evaluate import GateOutcome, evaluate_gates, exit_code
    from facebench.gates.junit import write_junit
    from facebench.gates.spec import Gate, GateSpecError, parse_gate_expr, parse_gates
    from facebench.gates.stats import SampleComparison, compare_samples
    from facebench.gates.summary import markdown_summary
