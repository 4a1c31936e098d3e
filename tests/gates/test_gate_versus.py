"""Model-vs-model gates (``better_than: <model>``, ``vs: <model>`` with a bound): parsing, the
suite check, and their verdicts on a run's comparisons (results["comparisons"])."""

from __future__ import annotations

from typing import Any

import pytest

from facebench.gates.evaluate import evaluate_gates, exit_code
from facebench.gates.spec import Gate, GateSpecError, parse_gates
from facebench.suite.references import gate_problems


def _cell(model: str, protocol: str, status: str = "ok") -> dict[str, Any]:
    return {"id": f"{model}@cpu@{protocol}", "model": model, "device": "cpu",
            "protocol": protocol, "kind": "verification", "status": status, "metrics": {},
            "details": {}}


def _diff(delta: float, lo: float, hi: float, winner: str | None = None, **extra: Any
          ) -> dict[str, Any]:
    return {"a": None, "b": None, "delta": delta, "ci_low": lo, "ci_high": hi,
            "winner": winner, **extra}


def _results() -> dict[str, Any]:
    """mfn beats raw (CI above 0); mfn vs sface: no real difference; TAR 1e-2 unsupported."""
    cells = [_cell("mfn", "p1"), _cell("raw", "p1"), _cell("sface", "p2")]
    rows = [
        {"a": "mfn@cpu@p1", "b": "raw@cpu@p1", "reason": None, "bootstrap": {"method": "identity"},
         "accuracy": _diff(0.40, 0.16, 0.57, "mfn"), "mcnemar": {"p_holm": 1e-9},
         "tar_at_far": [{"key": "1e-1", "far": 0.1, "supported": True,
                         **_diff(0.6, 0.2, 0.9, "mfn")},
                        {"key": "1e-2", "far": 0.01, "supported": False,
                         **_diff(0.6, 0.3, 0.9)}]},
        {"a": "mfn@cpu@p1", "b": "sface@cpu@p2", "reason": None, "bootstrap": {"method": "pair"},
         "accuracy": _diff(-0.004, -0.025, 0.031), "mcnemar": {"p_holm": 1.0},
         "tar_at_far": []},
        {"a": "raw@cpu@p1", "b": "sface@cpu@p2", "reason": "cannot read the scores of raw",
         "accuracy": None, "mcnemar": None, "tar_at_far": []},
    ]
    return {"cells": cells, "comparisons": {"pairwise": rows}}


def _outcomes(expr: str) -> list[Any]:
    return evaluate_gates(_results(), [Gate.model_validate(expr)])


@pytest.mark.parametrize("expr,fields", [
    ("mfn:accuracy better_than raw", {"model": "mfn", "better_than": "raw"}),
    ("mfn@cpu:tar@far=1e-1 better_than r*", {"device": "cpu", "better_than": "r*"}),
    ("p1.accuracy vs sface >= -0.5%", {"protocol": "p1", "vs": "sface", "op": ">=",
                                       "value": -0.005}),
    ("mfn:accuracy vs sface<0.01", {"vs": "sface", "op": "<", "value": 0.01}),
])
def test_compact_forms_parse_and_round_trip(expr: str, fields: dict[str, Any]) -> None:
    g = Gate.model_validate(expr)
    assert {k: getattr(g, k) for k in fields} == fields
    assert Gate.model_validate(g.describe()) == g


@pytest.mark.parametrize("item,needle", [
    ({"metric": "eer", "better_than": "raw"}, "compares accuracy or tar@far=X"),
    ({"metric": "accuracy", "better_than": "raw", "op": ">=", "value": 0}, "takes no op/value"),
    ({"metric": "accuracy", "vs": "raw", "max_drop": 0.01}, "takes no baseline bound"),
    ({"metric": "accuracy", "vs": "raw", "op": "==", "value": 0}, "not =="),
    ({"metric": "accuracy", "vs": "raw"}, "give op and value"),
    ({"metric": "accuracy", "vs": "raw", "better_than": "raw", "op": ">", "value": 0},
     "not both"),
    ("mfn:accuracy vs raw >= much", "needs a number bound"),
])
def test_bad_model_vs_model_gates_are_refused_with_the_reason(item: Any, needle: str) -> None:
    with pytest.raises(GateSpecError, match=needle):
        parse_gates([item])


def test_suite_check_names_a_model_the_suite_lacks() -> None:
    suite = {"models": [{"id": "mfn"}, {"id": "raw"}], "devices": [{"id": "cpu"}],
             "protocols": [{"id": "p1", "kind": "verification", "models": ["mfn", "raw"]}],
             "gates": ["mfn:accuracy better_than rwa", {"metric": "accuracy", "vs": "sface",
                                                         "op": ">=", "value": 0}]}
    problems = gate_problems(suite)
    assert any(p.startswith("gates[0]: better_than 'rwa' matches no model") for p in problems)
    assert any(p.startswith("gates[1].vs: vs 'sface' matches no model") for p in problems)


def test_better_than_passes_only_when_the_ci_lies_above_zero() -> None:
    (win,) = _outcomes("mfn:accuracy better_than raw")
    assert (win.status, win.cell_id, win.value) == ("pass", "mfn@cpu@p1", 0.40)
    assert win.stats["ci_low"] == 0.16 and "CI [0.16, 0.57]" in win.message
    (tie,) = _outcomes("mfn:accuracy better_than sface")
    assert tie.status == "fail" and "violates > 0" in tie.message


def test_the_gated_model_may_be_either_side_of_the_comparison() -> None:
    (lose,) = _outcomes("raw@*@p1:accuracy better_than mfn")  # raw is side a of no row with mfn
    assert lose.status == "fail" and lose.value == pytest.approx(-0.40)
    assert (lose.stats["ci_low"], lose.stats["ci_high"]) == (-0.57, -0.16)
    (sface,) = _outcomes("sface:accuracy better_than mfn")
    assert sface.status == "fail" and sface.value == pytest.approx(0.004)


def test_a_difference_bound_reads_the_ci_end_on_its_side() -> None:
    assert [o.status for o in _outcomes("mfn:accuracy vs sface >= -0.03")] == ["pass"]
    assert [o.status for o in _outcomes("mfn:accuracy vs sface >= -0.02")] == ["fail"]
    assert [o.status for o in _outcomes("mfn:accuracy vs sface <= 0.04")] == ["pass"]
    assert [o.status for o in _outcomes("mfn:accuracy vs sface < 0.03")] == ["fail"]
    # seen from sface the difference and its CI change sign: [-0.031, 0.025]
    assert [o.status for o in _outcomes("sface:accuracy vs mfn >= -0.031")] == ["pass"]


def test_tar_gates_use_the_tar_row_and_refuse_an_unsupported_rate() -> None:
    assert [o.status for o in _outcomes("mfn:tar@far=0.1 better_than raw")] == ["pass"]
    (unsupported,) = _outcomes("mfn:tar@far=1e-2 better_than raw")
    assert unsupported.status == "error" and "unsupported" in unsupported.message


def test_no_comparison_or_a_failed_one_is_an_error_not_a_pass() -> None:
    (none,) = _outcomes("mfn:accuracy better_than dlib")
    assert none.status == "error" and "no comparison of a cell matching mfn@*@*" in none.message
    (broken,) = _outcomes("raw:accuracy vs sface >= -1")
    assert broken.status == "error" and "cannot read the scores of raw" in broken.message
    results = _results()
    del results["comparisons"]
    assert exit_code(evaluate_gates(results, [Gate.model_validate(
        "mfn:accuracy better_than raw")])) == 1


def test_a_glob_selects_every_matching_comparison() -> None:
    outcomes = _outcomes("mfn:accuracy better_than *")
    assert sorted((o.stats["other"], o.status) for o in outcomes) == [
        ("raw@cpu@p1", "pass"), ("sface@cpu@p2", "fail")]


def test_an_edited_comparison_is_an_error_not_a_traceback() -> None:
    results = _results()
    row = results["comparisons"]["pairwise"][0]
    row.update(bootstrap="x", mcnemar=[], tar_at_far="1e-1")
    gates = [Gate.model_validate(e) for e in ("mfn:accuracy better_than raw",
                                              "mfn:tar@far=1e-1 better_than raw")]
    assert [o.status for o in evaluate_gates(results, gates)] == ["pass", "error"]
