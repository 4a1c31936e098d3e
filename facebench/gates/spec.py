"""Gate specifications: pydantic models the suite embeds as ``gates: list[Gate]``.

A gate is either **absolute** (``metric op value``) or **relative** to a baseline run
(``max_regression`` as a fraction, or ``max_drop`` in the metric's own units). The compact string
form is parsed into the same model; its grammar (see ``docs/ci.md``)::

    gate     := target OP rhs
    target   := [cells ":"] metric | protocol "." metric
    cells    := model ["@" device ["@" protocol]]          (each part an exact id or a glob)
    OP       := ">=" | "<=" | ">" | "<" | "=="
    rhs      := number ["%"]                               absolute bound
              | "baseline" ("+" | "-") number ["%"]        relative bound

``protocol.metric`` applies when the first dotted part is not a metric family (``latency``,
``throughput``, ``memory``, ``time``): ``lfw.accuracy`` is metric ``accuracy`` on protocol ``lfw``.
Which way is better for a metric comes from ``facebench.metrics.catalog``.
``metric <= baseline + 10%`` is ``max_regression: 0.10`` with lower-is-better;
``metric >= baseline - 0.002`` is ``max_drop: 0.002`` with higher-is-better.

A **model-vs-model** gate reads the run's comparisons of models that scored the same pairs
(``results["comparisons"]``): ``better_than: <model>`` passes when the paired CI of
``metric(gated cell) − metric(<model>)`` lies above 0; ``vs: <model>`` with ``op``/``value``
bounds that difference by the CI's end on the bound's side (``>=``/``>``: the CI's low end,
``<=``/``<``: its high end). Compact forms::

    gate     := target "better_than" model
              | target "vs" model OP number ["%"]
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from facebench.bounds import MAX_BOOTSTRAP, Count, NonNegative, Ratio, Real, Seed
from facebench.crosscheck import CrossChecked, cross_check
from facebench.metrics.catalog import CATALOG, dotted_heads, metric_info

Op = Literal[">=", "<=", ">", "<", "=="]
Direction = Literal["lower", "higher"]
MismatchPolicy = Literal["warn", "fail"]

OPS: tuple[str, ...] = (">=", "<=", "==", ">", "<")
#: Dotted first parts that belong to a metric name, not to a protocol selector (the catalog's:
#: ``latency``, ``throughput``, ``memory``, ``time``).
METRIC_FAMILIES = dotted_heads()

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RHS_ABS = re.compile(rf"^(?P<num>{_NUMBER})\s*(?P<pct>%?)$")
_RHS_REL = re.compile(rf"^baseline\s*(?P<sign>[+-])\s*(?P<num>{_NUMBER})\s*(?P<pct>%?)$")
_OP = re.compile(r"(>=|<=|==|>|<)")
_BETTER_THAN = re.compile(r"^(?P<target>\S+)\s+better_than\s+(?P<model>\S+)$")
_VS = re.compile(r"^(?P<target>\S+)\s+vs\s+(?P<model>[^\s<>=]+)\s*(?P<op>>=|<=|==|>|<)"
                 r"\s*(?P<rhs>.*)$")
#: Metrics a model-vs-model gate can bound: those ``results["comparisons"]`` holds.
COMPARED = re.compile(r"^(accuracy|tar@far=[0-9][0-9.eE+-]*)$")
_NAME = re.compile(r"^[A-Za-z0-9_.@=*?\[\]+-]+$")

_EXPECTED = (
    "expected '[cells:]metric OP number[%]' or '[cells:]metric OP baseline ± number[%]' with OP "
    "one of >=, <=, >, <, == (e.g. 'lfw.accuracy >= 0.985', 'latency.p90_ms <= baseline + 10%')"
)


def _known_metric(name: str) -> str:
    """``name`` when the catalog knows it; else ``ValueError`` with the nearest names."""
    if metric_info(name) is None:
        near = difflib.get_close_matches(name, [m.name for m in CATALOG], n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
        raise ValueError(f"unknown metric {name!r}; {hint}see docs/results.md for the metrics "
                         "facebench reports")
    return name


#: A metric name of the catalog (exact, or a family such as ``latency.b8.p50_ms``).
MetricName = Annotated[str, Field(min_length=1), AfterValidator(_known_metric)]


def infer_direction(metric: str) -> Direction | None:
    """Which way is better for a metric name (the catalog's), or ``None`` when neither or
    unknown."""
    info = metric_info(metric)
    return None if info is None or info.direction == "none" else info.direction


def metric_kinds(metric: str) -> tuple[str, ...]:
    """Which cell kinds report a metric name (the catalog's; ``verification`` when unknown)."""
    info = metric_info(metric)
    return ("verification",) if info is None else info.kinds


def machine_dependent(metric: str) -> bool:
    """True for metrics whose value depends on the machine (latency, memory, timings…)."""
    info = metric_info(metric)
    return info is not None and info.machine


class Gate(CrossChecked):
    """One pass/fail rule over a metric of every matching cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: MetricName = Field(description="flat metric name, e.g. accuracy, latency.p90_ms")
    op: Op | None = Field(default=None, description="absolute comparison (with value)")
    value: Real | None = Field(default=None, description="absolute bound (with op)")
    max_regression: Ratio | None = Field(
        default=None, description="relative: allowed worsening as a fraction (0.10 = 10 %)"
    )
    max_drop: NonNegative | None = Field(
        default=None, description="relative: allowed worsening in the metric's own units"
    )
    direction: Direction | None = Field(
        default=None, description="which way is better; inferred from the metric name if unset"
    )
    better_than: str | None = Field(
        default=None, description="model-vs-model: the model (id or glob) this cell must beat "
        "on the same pairs, the paired CI of the difference above 0")
    vs: str | None = Field(
        default=None, description="model-vs-model: the model (id or glob) whose difference "
        "with this cell op/value bound, by the CI's end on the bound's side")
    model: str = "*"
    device: str = "*"
    protocol: str = "*"
    alpha: Real = Field(default=0.01, gt=0, lt=0.5, description="significance for sample tests")
    bootstrap: Count = Field(default=2000, ge=100, le=MAX_BOOTSTRAP,
                             description="bootstrap resamples")
    seed: Seed = 0
    overload_threshold: Ratio | None = Field(
        default=0.25,
        description="max_regression used instead when either run was measured on an overloaded "
        "machine (load average above its logical cores); null keeps max_regression",
    )
    contention_guard: bool = Field(
        default=True, description="also require the fastest sample to regress (load-robust)"
    )
    on_fingerprint_mismatch: MismatchPolicy | None = Field(
        default=None, description="warn|fail when the baseline ran on another machine"
    )
    name: str | None = None

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        """JSON Schema: the mapping form, or a compact string."""
        compact = {"type": "string", "description": "compact form, e.g. 'lfw.accuracy >= 0.985'"}
        return {"anyOf": [compact, handler(core_schema)]}

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_gate_expr(data)
        return data

    @cross_check("metric", "op", "value", "max_regression", "max_drop", "better_than", "vs")
    def _check_versus(self) -> None:
        if self.better_than is None and self.vs is None:
            return
        what = "better_than" if self.better_than is not None else "vs"
        if self.better_than is not None and self.vs is not None:
            raise ValueError(f"gate on {self.metric!r}: give better_than or vs, not both")
        if not COMPARED.fullmatch(self.metric):
            raise ValueError(f"gate on {self.metric!r}: {what} compares accuracy or "
                             "tar@far=X of two models on the same pairs, not "
                             f"{self.metric!r}")
        if self.max_regression is not None or self.max_drop is not None:
            raise ValueError(f"gate on {self.metric!r}: {what} compares two models of this "
                             "run; it takes no baseline bound (max_regression, max_drop)")
        if self.better_than is not None and (self.op is not None or self.value is not None):
            raise ValueError(f"gate on {self.metric!r}: better_than takes no op/value (for a "
                             "bound on the difference use vs with op and value)")
        if self.vs is not None and (self.op is None or self.value is None):
            raise ValueError(f"gate on {self.metric!r}: vs {self.vs!r} bounds the difference: "
                             "give op and value (e.g. op: '>=', value: -0.002)")
        if self.vs is not None and self.op == "==":
            raise ValueError(f"gate on {self.metric!r}: vs bounds a difference with its CI; "
                             "use >=, >, <= or <, not ==")

    @cross_check("metric", "op", "value", "max_regression", "max_drop", "direction",
                 "better_than", "vs")
    def _check(self) -> None:
        if self.better_than is not None or self.vs is not None:
            return  # _check_versus
        kinds = [
            k
            for k, on in (
                ("op/value", self.op is not None or self.value is not None),
                ("max_regression", self.max_regression is not None),
                ("max_drop", self.max_drop is not None),
            )
            if on
        ]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"gate on {self.metric!r} needs exactly one of op+value, max_regression, "
                f"max_drop (found: {found})"
            )
        if kinds[0] == "op/value" and (self.op is None or self.value is None):
            raise ValueError(f"gate on {self.metric!r}: op and value must be given together")
        relative = self.max_regression is not None or self.max_drop is not None
        if relative and self.direction is None and infer_direction(self.metric) is None:
            raise ValueError(
                f"gate on {self.metric!r}: cannot infer whether lower or higher is better; "
                "set direction: lower|higher"
            )

    @property
    def versus(self) -> str | None:
        """The other model of a model-vs-model gate (``better_than`` or ``vs``), else None."""
        return self.better_than if self.better_than is not None else self.vs

    @property
    def relative(self) -> bool:
        """True for a gate that compares against a baseline run."""
        return self.max_regression is not None or self.max_drop is not None

    @property
    def better(self) -> Direction:
        """The effective direction (explicit or inferred; absolute gates follow their op)."""
        if self.direction is not None:
            return self.direction
        inferred = infer_direction(self.metric)
        if inferred is not None:
            return inferred
        return "higher" if self.op in (">=", ">") else "lower"

    def matches(self, model: str, device: str, protocol: str) -> bool:
        """Whether a cell's ids match the selectors (exact id or ``fnmatch`` glob)."""
        return all(
            fnmatch.fnmatchcase(str(v), pat)
            for v, pat in ((model, self.model), (device, self.device), (protocol, self.protocol))
        )

    @property
    def selector(self) -> str:
        """``model@device@protocol`` pattern of the cells this gate applies to."""
        return f"{self.model}@{self.device}@{self.protocol}"

    def describe(self) -> str:
        """The gate in compact form (round-trips through :func:`parse_gate_expr`)."""
        if self.better_than is not None:
            op, rhs = "better_than", self.better_than
        elif self.vs is not None:
            op, rhs = "vs", f"{self.vs} {self.op} {_fmt(float(self.value or 0.0))}"
        elif self.max_regression is not None:
            op, sign = ("<=", "+") if self.better == "lower" else (">=", "-")
            rhs = f"baseline {sign} {_fmt(self.max_regression * 100)}%"
        elif self.max_drop is not None:
            op, sign = ("<=", "+") if self.better == "lower" else (">=", "-")
            rhs = f"baseline {sign} {_fmt(self.max_drop)}"
        else:
            op, rhs = str(self.op), _fmt(float(self.value or 0.0))
        if self.selector == "*@*@*":
            target = self.metric
        elif self.model == self.device == "*" and re.fullmatch(r"[\w-]+", self.protocol):
            target = f"{self.protocol}.{self.metric}"
        else:
            target = f"{self.selector}:{self.metric}"
        return self.name or f"{target} {op} {rhs}"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _bad(expr: str, problem: str) -> ValueError:
    return ValueError(f"cannot parse {expr!r}: {_EXPECTED}; {problem}")


def _split_target(target: str, expr: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ":" in target:
        cells, metric = target.split(":", 1)
        parts = cells.split("@")
        if len(parts) > 3 or not all(parts):
            raise _bad(expr, f"cell selector {cells!r} must be model[@device[@protocol]]")
        out.update(zip(("model", "device", "protocol")[: len(parts)], parts, strict=True))
    else:
        metric = target
        head, dot, rest = target.partition(".")
        if dot and rest and head not in METRIC_FAMILIES and not re.search(r"[@=]", head):
            out["protocol"], metric = head, rest
    if not metric or not _NAME.match(metric):
        raise _bad(expr, f"bad metric name {metric!r}")
    out["metric"] = metric
    return out


def parse_gate_expr(expr: str) -> dict[str, Any]:
    """Parse the compact form into :class:`Gate` fields; ``ValueError`` says what was expected."""
    text = expr.strip()
    if b := _BETTER_THAN.match(text):
        return {**_split_target(b["target"], expr), "better_than": b["model"]}
    if v := _VS.match(text):
        a = _RHS_ABS.match(v["rhs"].strip())
        if a is None:
            raise _bad(expr, f"'vs {v['model']}' needs a number bound, e.g. "
                       f"'{v['target']} vs {v['model']} >= -0.002'")
        value = float(a["num"]) / (100.0 if a["pct"] else 1.0)
        return {**_split_target(v["target"], expr), "vs": v["model"], "op": v["op"],
                "value": value}
    m = _OP.search(text)
    if m is None:
        raise _bad(expr, "no comparison operator found")
    target, op, rhs = text[: m.start()].strip(), m.group(1), text[m.end() :].strip()
    if not target:
        raise _bad(expr, f"no metric before {op!r}")
    run = re.match(r"[<>=!]+", text[m.start() :])
    if run is not None and run.group(0) not in OPS:
        raise _bad(expr, f"{run.group(0)!r} is not an operator")
    out = _split_target(target, expr)
    if a := _RHS_ABS.match(rhs):
        value = float(a["num"]) / (100.0 if a["pct"] else 1.0)
        return {**out, "op": op, "value": value}
    if r := _RHS_REL.match(rhs):
        want = {"<=": "+", ">=": "-"}.get(op)
        if want != r["sign"]:
            raise _bad(
                expr,
                "a baseline bound reads '<= baseline + X' (lower is better) "
                "or '>= baseline - X' (higher is better)",
            )
        amount = float(r["num"])
        if amount < 0:
            raise _bad(expr, "the allowed change must be ≥ 0")
        direction = "lower" if op == "<=" else "higher"
        key = "max_regression" if r["pct"] else "max_drop"
        return {**out, key: amount / (100.0 if r["pct"] else 1.0), "direction": direction}
    raise _bad(expr, f"bad bound {rhs!r}")


def error_lines(exc: ValidationError, prefix: str = "") -> list[str]:
    """Render a ``ValidationError`` as ``gates[2]: message`` lines."""
    lines = []
    for err in exc.errors():
        loc = prefix
        for part in err["loc"]:
            if isinstance(part, int):
                loc += f"[{part}]"
            else:
                loc += f".{part}" if loc else str(part)
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


class GateList(BaseModel):
    """Helper container so a bare list of gates validates with ``gates[i]`` locations."""

    model_config = ConfigDict(extra="forbid")

    gates: list[Gate] = Field(default_factory=list)


class GateSpecError(ValueError):
    """Bad gate specification; ``str()`` is one ``gates[i]: …`` line per problem."""


def parse_gates(items: list[Any], prefix: str = "gates") -> list[Gate]:
    """Validate a list of gate dicts/strings; raise :class:`GateSpecError` with located messages."""
    try:
        return GateList.model_validate({"gates": list(items)}).gates
    except ValidationError as exc:
        lines = error_lines(exc)
        lines = [prefix + line.removeprefix("gates") for line in lines]
        raise GateSpecError("\n".join(lines)) from None
