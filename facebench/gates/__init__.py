"""CI gates: absolute and baseline-relative, noise-aware pass/fail rules over results.json."""

from facebench.gates.cli import gate_command
from facebench.gates.evaluate import GateOutcome, evaluate_gates, exit_code
from facebench.gates.junit import write_junit
from facebench.gates.spec import Gate, GateSpecError, parse_gate_expr, parse_gates
from facebench.gates.stats import SampleComparison, compare_samples
from facebench.gates.summary import markdown_summary

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
