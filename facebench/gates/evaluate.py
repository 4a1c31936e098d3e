"""Evaluate gates over a results dict (and an optional baseline results dict). Pure."""

from __future__ import annotations

import fnmatch
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from facebench.gates.spec import Gate, MismatchPolicy, machine_dependent, metric_kinds
from facebench.gates.stats import MIN_SAMPLES, SampleComparison, compare_samples, sample_source
from facebench.metrics import far_key
from facebench.metrics.catalog import normalised

Status = Literal["pass", "fail", "error", "skip"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}


@dataclass
class GateOutcome:
    """The verdict of one gate on one cell (``cell_id`` is ``None`` when no cell matched)."""

    index: int
    gate: Gate
    status: Status
    cell_id: str | None
    metric: str
    message: str
    value: float | None = None
    op: str | None = None
    bound: float | None = None
    baseline: float | None = None
    stats: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``gates[i] <compact form>``."""
        return f"gates[{self.index}] {self.gate.describe()}"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {
            "index": self.index,
            "gate": self.gate.describe(),
            "status": self.status,
            "cell_id": self.cell_id,
            "metric": self.metric,
            "message": self.message,
            "value": self.value,
            "op": self.op,
            "bound": self.bound,
            "baseline": self.baseline,
            "stats": self.stats,
            "warnings": list(self.warnings),
        }


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _fmt(v: float | None) -> str:
    return "null" if v is None else f"{v:.6g}"


def _applies(cell: dict[str, Any], metric: str) -> bool:
    if metric in (cell.get("metrics") or {}):
        return True
    kind = cell.get("kind")
    return (kind is None or kind in metric_kinds(metric)) and cell.get("status") != "ok"


def _fingerprint_issue(results: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    cur = (results.get("environment") or {}).get("fingerprint")
    base = (baseline.get("environment") or {}).get("fingerprint")
    if cur and base and cur == base:
        return None
    if not cur or not base:
        return "cannot verify the baseline ran on the same machine (fingerprint missing)"
    base_id = (baseline.get("run") or {}).get("id")
    return (
        f"baseline {base_id} ran on another machine (fingerprint {str(base)[:12]}… vs "
        f"{str(cur)[:12]}…): machine-dependent metrics are not comparable"
    )


def _different_machines(results: dict[str, Any], baseline: dict[str, Any]) -> bool:
    """Both runs have a fingerprint and they differ."""
    cur = (results.get("environment") or {}).get("fingerprint")
    base = (baseline.get("environment") or {}).get("fingerprint")
    return bool(cur and base and cur != base)


def normalised_cell(cell: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """``cell`` with the latency ``metric`` replaced by its machine-normalised figure
    (``latency…_norm_ms``, docs/results.md) and its raw latency samples scaled the same way
    (× speed index / reference index), or None when the cell has no normalised figure."""
    name = normalised(metric)
    metrics, details = cell.get("metrics") or {}, cell.get("details") or {}
    index = details.get("speed_index") if isinstance(details.get("speed_index"), dict) else {}
    value, speed, ref = (_num(v) for v in (metrics.get(name) if name else None,
                                           index.get("value"), index.get("reference")))
    if value is None or not speed or not ref:
        return None
    latency = details.get("latency") if isinstance(details.get("latency"), dict) else {}
    scaled = {b: ({**lat, "samples_ms": [float(x) * speed / ref for x in lat["samples_ms"]]}
                  if isinstance(lat, dict) and isinstance(lat.get("samples_ms"), list) else lat)
              for b, lat in latency.items()}
    return {**cell, "metrics": {**metrics, metric: value},
            "details": {**details, "latency": scaled}}


def _normalised_pair(gate: Gate, cell: dict[str, Any], runs: _Runs
                     ) -> tuple[dict[str, Any], _Runs, str] | None:
    """For a relative latency gate across two machines: the cell and baseline with normalised
    latency, and the sentence that says so; None when either lacks a normalised figure."""
    bcell = (runs.bcells or {}).get(cell["id"])
    if bcell is None or runs.baseline is None:
        return None
    cur, base = normalised_cell(cell, gate.metric), normalised_cell(bcell, gate.metric)
    if cur is None or base is None:
        return None

    def index(c: dict[str, Any]) -> str:
        return f"{_fmt(_num(c['details']['speed_index'].get('value')))} GFLOP/s"

    note = (f"machine fingerprints differ: compared normalised latency "
            f"({normalised(gate.metric)} = latency × speed index / reference "
            f"{_fmt(_num(cell['details']['speed_index'].get('reference')))} GFLOP/s; speed index "
            f"current {index(cell)}, baseline {index(bcell)}), not raw ms")
    bcells = {**(runs.bcells or {}), cell["id"]: base}
    return cur, _Runs(runs.results, runs.baseline, bcells), note


def _samples(cell: dict[str, Any], batch: str) -> list[float] | None:
    lat = ((cell.get("details") or {}).get("latency") or {}).get(batch) or {}
    samples = lat.get("samples_ms")
    return samples if isinstance(samples, list) and len(samples) >= MIN_SAMPLES else None


def busy_reason(results: dict[str, Any], cell: dict[str, Any], role: str) -> str | None:
    """Why a cell's measurement counts as taken on a busy machine, or ``None``.

    The runner's per-cell ``details.busy`` decides when present (its rule discounts the
    benchmark's own threads); else ``environment.busy``; else a 1-minute load average
    (``load_avg``, ``load_avg_before``, ``load_avg_after``) above the logical cores.
    """
    details, env = cell.get("details") or {}, results.get("environment") or {}
    loads = [
        float(la[0])
        for src in (details, env)
        for key in ("load_avg", "load_avg_before", "load_avg_after")
        if isinstance(la := src.get(key), list) and la and _num(la[0]) is not None
    ]
    cores = _num(env.get("logical_cores"))
    flag = details.get("busy") if isinstance(details.get("busy"), bool) else env.get("busy")
    if flag is None:
        flag = bool(loads and cores and max(loads) > cores)
    if not flag:
        return None
    run_id = (results.get("run") or {}).get("id")
    load = f", 1-min load up to {max(loads):.1f} on {cores:.0f} cores" if loads and cores else ""
    return f"{role} run {run_id} measured {cell['id']} on a busy machine{load}"


@dataclass(frozen=True)
class _Runs:
    results: dict[str, Any]
    baseline: dict[str, Any] | None
    bcells: dict[str, dict[str, Any]] | None


def _threshold(
    gate: Gate, runs: _Runs, cell: dict, bcell: dict, warnings: list[str]
) -> float | None:
    """The effective ``max_regression``: raised to ``overload_threshold`` on a busy machine."""
    t, limit = gate.max_regression, gate.overload_threshold
    if t is None or limit is None or limit <= t or not machine_dependent(gate.metric):
        return t
    reasons = [busy_reason(runs.results, cell, "current")]
    if runs.baseline is not None:
        reasons.append(busy_reason(runs.baseline, bcell, "baseline"))
    busy = "; ".join(r for r in reasons if r)
    if not busy:
        return t
    warnings.append(f"{busy}: threshold raised from {t:.0%} to {limit:.0%}")
    return limit


def _relative_bound(gate: Gate, base: float, t: float | None) -> tuple[str, float]:
    if t is not None:
        bound = base * (1 + t if gate.better == "lower" else 1 - t)
    else:
        drop = float(gate.max_drop or 0.0)
        bound = base + drop if gate.better == "lower" else base - drop
    return ("<=" if gate.better == "lower" else ">="), bound


def _check_relative(
    idx: int,
    gate: Gate,
    cell: dict[str, Any],
    value: float,
    runs: _Runs,
) -> GateOutcome:
    cid, metric = cell["id"], gate.metric
    out = GateOutcome(idx, gate, "pass", cid, metric, "", value=value)
    bcell = (runs.bcells or {}).get(cid)
    if bcell is None:
        out.status, out.message = "skip", f"no cell {cid} in the baseline run"
        return out
    if bcell.get("status") != "ok":
        out.status, out.message = "skip", f"baseline cell {cid} is {bcell.get('status')}"
        return out
    base = _num((bcell.get("metrics") or {}).get(metric))
    if base is None:
        out.status, out.message = "skip", f"baseline cell {cid} has no value for {metric}"
        return out
    out.baseline = base
    t = _threshold(gate, runs, cell, bcell, out.warnings)
    out.op, out.bound = _relative_bound(gate, base, t)
    src = sample_source(metric) if t is not None else None
    cur_s = _samples(cell, src[0]) if src else None
    base_s = _samples(bcell, src[0]) if src else None
    if src and cur_s and base_s:
        cmp: SampleComparison = compare_samples(
            base_s,
            cur_s,
            float(t or 0.0),
            statistic=src[1],
            direction=gate.better,
            alpha=gate.alpha,
            n_boot=gate.bootstrap,
            seed=gate.seed,
            guard=gate.contention_guard,
        )
        out.stats = cmp.as_dict()
        verdict = "regressed beyond" if cmp.regressed else "within"
        out.status = "fail" if cmp.regressed else "pass"
        out.message = (
            f"{metric} = {_fmt(value)} vs baseline {_fmt(base)}: {verdict} {out.op} "
            f"{_fmt(out.bound)} (baseline {'+' if gate.better == 'lower' else '-'}"
            f"{t:.0%}); {cmp.describe()}"
        )
        return out
    if src:
        out.warnings.append(f"{cid}: no latency samples for {metric}; compared point values")
    ok = _OPS[out.op](value, out.bound) or math.isclose(value, out.bound, rel_tol=1e-9)
    out.status = "pass" if ok else "fail"
    out.message = (
        f"{metric} = {_fmt(value)} {'satisfies' if ok else 'violates'} {out.op} {_fmt(out.bound)} "
        f"(baseline {_fmt(base)}, {gate.describe()})"
    )
    return out


def _check_cell(
    idx: int,
    gate: Gate,
    cell: dict[str, Any],
    runs: _Runs,
) -> GateOutcome:
    cid, metric = cell["id"], gate.metric
    status = cell.get("status")
    if status == "failed":
        err = cell.get("error") or {}
        why = f"{err.get('type', 'error')}: {err.get('message', '')}".strip(": ")
        return GateOutcome(idx, gate, "fail", cid, metric, f"cell {cid} failed ({why})")
    if status == "skipped":
        return GateOutcome(
            idx,
            gate,
            "skip",
            cid,
            metric,
            f"cell {cid} skipped: {cell.get('reason') or 'no reason given'}",
        )
    raw = (cell.get("metrics") or {}).get(metric)
    value = _num(raw)
    if value is None:
        what = "undefined (null)" if raw is None else f"not a number ({raw!r})"
        return GateOutcome(idx, gate, "error", cid, metric, f"{metric} on {cid} is {what}")
    if gate.relative:
        if runs.bcells is None:
            return GateOutcome(
                idx,
                gate,
                "skip",
                cid,
                metric,
                "relative gate skipped: no baseline run",
                value=value,
            )
        return _check_relative(idx, gate, cell, value, runs)
    op, bound = str(gate.op), float(gate.value or 0.0)
    ok = _OPS[op](value, bound)
    word = "satisfies" if ok else "violates"
    return GateOutcome(
        idx,
        gate,
        "pass" if ok else "fail",
        cid,
        metric,
        f"{metric} = {_fmt(value)} {word} {op} {_fmt(bound)} on {cid}",
        value=value,
        op=op,
        bound=bound,
    )


def _difference(row: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """The comparison row's entry for ``metric`` (``accuracy`` or ``tar@far=X``)."""
    if metric == "accuracy":
        d = row.get("accuracy")
        return d if isinstance(d, dict) else None
    try:
        want = far_key(float(metric.removeprefix("tar@far=")))
    except ValueError:
        return None
    rows = row.get("tar_at_far")
    return next((t for t in rows if isinstance(t, dict) and t.get("key") == want), None) \
        if isinstance(rows, list) else None


def _check_versus(idx: int, gate: Gate, row: dict[str, Any], cid: str, other: str,
                  sign: int) -> GateOutcome:
    """A model-vs-model gate on one comparison: the difference gated cell − other (``sign``
    −1 when the gated cell is the row's ``b``), judged by its CI."""
    metric = gate.metric
    out = GateOutcome(idx, gate, "error", cid, metric, "")
    if row.get("reason"):
        out.message = f"{cid} and {other} were not compared: {row['reason']}"
        return out
    d = _difference(row, metric)
    delta, lo, hi = (_num((d or {}).get(k)) for k in ("delta", "ci_low", "ci_high"))
    if d is None or delta is None or lo is None or hi is None:
        out.message = (f"{metric} of {cid} vs {other}: no difference with a CI in the run's "
                       "comparisons (the metric is undefined for one of them, or not compared)")
        return out
    if d.get("supported") is False:
        out.message = (f"{metric} of {cid} vs {other}: unsupported by the data (N_imp × FAR < "
                       "10), no difference can be called")
        return out
    delta, lo, hi = (delta, lo, hi) if sign > 0 else (-delta, -hi, -lo)
    if gate.better_than is not None:
        op, bound, end = ">", 0.0, lo
    else:
        op, bound = str(gate.op), float(gate.value or 0.0)
        end = lo if op in (">=", ">") else hi
    ok = _OPS[op](end, bound)
    boot, test = (v if isinstance(v, dict) else {} for v in (row.get("bootstrap"),
                                                              row.get("mcnemar")))
    method = boot.get("method") or "?"
    side = "low" if end == lo else "high"
    out.status = "pass" if ok else "fail"
    out.value, out.op, out.bound = delta, op, bound
    out.stats = {"other": other, "delta": delta, "ci_low": lo, "ci_high": hi,
                 "bootstrap": method,
                 "mcnemar_p_holm": test.get("p_holm") if metric == "accuracy" else None}
    out.message = (f"{metric}: {cid} − {other} = {_fmt(delta)}, CI [{_fmt(lo)}, {_fmt(hi)}] "
                   f"(paired {method} bootstrap, same pairs); its {side} end "
                   f"{'satisfies' if ok else 'violates'} {op} {_fmt(bound)}")
    return out


def _versus_outcomes(idx: int, gate: Gate, results: dict[str, Any]) -> list[GateOutcome]:
    """One outcome per comparison of a cell the gate selects with a cell of ``gate.versus``;
    one ``error`` when there is none."""
    cells = {c.get("id"): c for c in results.get("cells") or []}
    comparisons = results.get("comparisons")
    rows = comparisons.get("pairwise") if isinstance(comparisons, dict) else None
    outcomes = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        for mine, theirs, sign in (("a", "b", 1), ("b", "a", -1)):
            cell, other = cells.get(row.get(mine)), cells.get(row.get(theirs))
            if (cell is not None and other is not None
                    and gate.matches(cell.get("model", ""), cell.get("device", ""),
                                     cell.get("protocol", ""))
                    and fnmatch.fnmatchcase(str(other.get("model")), str(gate.versus))):
                outcomes.append(_check_versus(idx, gate, row, str(cell["id"]),
                                              str(other["id"]), sign))
    if not outcomes:
        outcomes.append(GateOutcome(
            idx, gate, "error", None, gate.metric,
            f"no comparison of a cell matching {gate.selector} with model {gate.versus} in "
            "this run: both must finish ok, score the same pairs (details.pairs_key) and run "
            "at the same precision (results.json comparisons)"))
    return outcomes


def evaluate_gates(
    results: dict[str, Any],
    gates: list[Gate],
    baseline: dict[str, Any] | None = None,
    *,
    on_fingerprint_mismatch: MismatchPolicy = "warn",
) -> list[GateOutcome]:
    """One outcome per gate × matching cell, plus an ``error`` for a gate that matched nothing.

    A cell is matched when its model/device/protocol match the selectors and it reports the
    metric (or, when failed/skipped, is of the kind that would). Failed cells fail, skipped cells
    skip, a null metric is an error. Relative gates without a baseline skip. Relative gates on
    machine-dependent metrics whose baseline ran on another machine warn, or fail when the
    gate's (else the global) policy is ``fail``; under ``warn``, a latency gate whose two cells
    both have a normalised figure (``latency…_norm_ms``) compares those instead, raw samples
    scaled by each cell's speed index (:func:`normalised_cell`), and says so. When either cell
    was measured on a busy machine (:func:`busy_reason`), a ``max_regression`` on a
    machine-dependent metric is raised to the gate's ``overload_threshold`` (with a warning). A
    model-vs-model gate (``better_than``, ``vs``) is judged on each comparison of the run between
    a cell it selects and a cell of the other model (:func:`_versus_outcomes`).
    """
    cells = results.get("cells") or []
    bcells = {c["id"]: c for c in baseline.get("cells") or []} if baseline is not None else None
    issue = _fingerprint_issue(results, baseline) if baseline is not None else None
    runs = _Runs(results, baseline, bcells)
    outcomes: list[GateOutcome] = []
    for idx, gate in enumerate(gates):
        if gate.versus is not None:
            outcomes += _versus_outcomes(idx, gate, results)
            continue
        matched = [
            c
            for c in cells
            if gate.matches(c.get("model", ""), c.get("device", ""), c.get("protocol", ""))
            and _applies(c, gate.metric)
        ]
        if not matched:
            outcomes.append(
                GateOutcome(
                    idx,
                    gate,
                    "error",
                    None,
                    gate.metric,
                    f"no cell matching {gate.selector} reports {gate.metric}",
                )
            )
            continue
        for cell in matched:
            policy = gate.on_fingerprint_mismatch or on_fingerprint_mismatch
            pair = (_normalised_pair(gate, cell, runs)
                    if gate.relative and policy == "warn" and baseline is not None
                    and _different_machines(results, baseline) else None)
            if pair is not None:
                out = _check_cell(idx, gate, pair[0], pair[1])
                out.message = f"{pair[2]}: {out.message}"
                out.warnings.append(pair[2])
                outcomes.append(out)
                continue
            out = _check_cell(idx, gate, cell, runs)
            compared = gate.relative and out.baseline is not None
            if issue and compared and machine_dependent(gate.metric):
                if policy == "fail":
                    out.status = "fail"
                    out.message = f"{issue} (on_fingerprint_mismatch: fail); {out.message}"
                else:
                    out.warnings.append(issue)
            outcomes.append(out)
    return outcomes


def uncovered_failed_cells(results: dict[str, Any], outcomes: list[GateOutcome]) -> list[str]:
    """Ids of failed cells that no gate outcome reported on."""
    covered = {o.cell_id for o in outcomes}
    return [
        c["id"]
        for c in results.get("cells") or []
        if c.get("status") == "failed" and c["id"] not in covered
    ]


def exit_code(outcomes: list[GateOutcome]) -> int:
    """0 when nothing failed or errored, else 1."""
    return 1 if any(o.status in ("fail", "error") for o in outcomes) else 0
