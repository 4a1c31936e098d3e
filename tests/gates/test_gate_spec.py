"""Gate specs: dict and compact forms, validation messages, suite embedding."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from facebench.gates.spec import (
    Gate,
    GateSpecError,
    error_lines,
    infer_direction,
    parse_gate_expr,
    parse_gates,
)


class Suite(BaseModel):
    """How the suite schema embeds gates."""

    model_config = ConfigDict(extra="forbid")
    name: str
    gates: list[Gate] = []


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        (
            "lfw.accuracy >= 0.985",
            {"protocol": "lfw", "metric": "accuracy", "op": ">=", "value": 0.985},
        ),
        ("latency.p90_ms <= 40", {"metric": "latency.p90_ms", "op": "<=", "value": 40.0}),
        ("lfw.latency.b8.p50_ms<30", {"protocol": "lfw", "metric": "latency.b8.p50_ms", "op": "<"}),
        ("accuracy >= 98.5%", {"metric": "accuracy", "value": 0.985}),
        ("tar@far=1e-3 > 0.9", {"metric": "tar@far=1e-3", "op": ">", "value": 0.9}),
        (
            "mobilefacenet@cpu-*:params == 989952",
            {"model": "mobilefacenet", "device": "cpu-*", "metric": "params", "op": "=="},
        ),
        ("latency.p50_ms <= baseline + 10%", {"max_regression": 0.10, "direction": "lower"}),
        ("lfw.accuracy >= baseline - 0.002", {"max_drop": 0.002, "direction": "higher"}),
        ("throughput.b1 >= baseline - 5%", {"max_regression": 0.05, "direction": "higher"}),
    ],
)
def test_compact_form(expr: str, fields: dict) -> None:
    gate = Gate.model_validate(expr)
    assert gate.model_dump(include=set(fields)) == pytest.approx(fields)
    assert Gate.model_validate(gate.describe()) == gate  # describe() round-trips


def test_dict_form_and_defaults() -> None:
    gate = Gate.model_validate({"metric": "latency.p90_ms", "max_regression": 0.1})
    assert (gate.model, gate.device, gate.protocol) == ("*", "*", "*")
    assert gate.relative and gate.better == "lower" and gate.alpha == 0.01
    assert gate.matches("mobilefacenet", "cpu-ort", "lfw")
    sel = Gate(metric="accuracy", op=">=", value=0.9, model="mobile*", device="cpu-ort")
    assert sel.matches("mobilefacenet", "cpu-ort", "lfw")
    assert not sel.matches("mobilefacenet", "cuda", "lfw")
    assert not sel.matches("dlib", "cpu-ort", "lfw")


@pytest.mark.parametrize(
    ("metric", "better"),
    [
        ("accuracy", "higher"),
        ("tar@far=1e-4", "higher"),
        ("auc", "higher"),
        ("throughput.b8", "higher"),
        ("latency.b8.p99_ms", "lower"),
        ("memory.peak_rss_bytes", "lower"),
        ("params", "lower"),
        ("gmac", "lower"),
        ("eer", "lower"),
        ("accuracy_ci_low", "higher"),
        ("eer_threshold", None),
    ],
)
def test_direction_inference(metric: str, better: str | None) -> None:
    assert infer_direction(metric) == better


def test_direction_override_and_unknown_metric() -> None:
    assert Gate(metric="eer", max_drop=0.01, direction="higher").better == "higher"
    with pytest.raises(ValidationError, match="cannot infer whether lower or higher is better"):
        Gate(metric="eer_threshold", max_regression=0.1)


def test_bad_expression_message_names_index_and_expectation() -> None:
    with pytest.raises(GateSpecError) as info:
        parse_gates(["lfw.accuracy >= 0.985", "latency.p90_ms <= 40", "accuracy >>= 1"])
    msg = str(info.value)
    assert msg.startswith("gates[2]: cannot parse 'accuracy >>= 1': expected ")
    assert "'>>=' is not an operator" in msg


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("accuracy", "no comparison operator"),
        (">= 3", "no metric before '>='"),
        ("accuracy >= high", "bad bound 'high'"),
        ("accuracy <= baseline - 1%", "'<= baseline + X'"),
        ("a@b@c@d:accuracy > 1", "must be model[@device[@protocol]]"),
        ("acc uracy > 1", "bad metric name"),
    ],
)
def test_bad_expressions(bad: str, needle: str) -> None:
    with pytest.raises(ValueError, match="cannot parse") as info:
        parse_gate_expr(bad)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"metric": "accuracy"}, "needs exactly one of op+value, max_regression, max_drop"),
        (
            {"metric": "accuracy", "op": ">=", "value": 1, "max_drop": 0.1},
            "found: op/value, max_drop",
        ),
        ({"metric": "accuracy", "op": ">="}, "op and value must be given together"),
        ({"metric": "accuracy", "op": "=>", "value": 1}, "gates[0].op: Input should be"),
        ({"metric": "accuracy", "op": ">=", "value": 1, "treshold": 2}, "gates[0].treshold: Extra"),
        ({"metric": "latency.p50_ms", "max_regression": -0.1}, "gates[0].max_regression: Input"),
    ],
)
def test_dict_validation_messages(spec: dict, needle: str) -> None:
    with pytest.raises(GateSpecError) as info:
        parse_gates([spec])
    assert needle in str(info.value)


def test_embedded_in_suite_schema() -> None:
    suite = Suite.model_validate(
        {
            "name": "ci",
            "gates": ["lfw.accuracy >= 0.985", {"metric": "params", "op": "<=", "value": 2e6}],
        }
    )
    assert [g.metric for g in suite.gates] == ["accuracy", "params"]
    with pytest.raises(ValidationError) as info:
        Suite.model_validate({"name": "ci", "gates": ["eer < 1", "params < 2", "accuracy >>= 1"]})
    assert error_lines(info.value)[0].startswith(
        "gates[2]: cannot parse 'accuracy >>= 1': expected"
    )


def test_json_schema_accepts_both_forms() -> None:
    gate = Suite.model_json_schema()["$defs"]["Gate"]
    string, mapping = gate["anyOf"]
    assert string["type"] == "string" and mapping["additionalProperties"] is False
    assert {"metric", "op", "value", "max_regression", "max_drop"} <= set(mapping["properties"])
