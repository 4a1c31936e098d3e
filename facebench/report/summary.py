"""What a reviewer asks first: which model is best on each metric, which models are worth
shipping on accuracy vs latency (the Pareto front), and whether the machine was busy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from facebench.environment import BUSY_LOAD_PER_CORE, is_busy
from facebench.metrics.catalog import sign as catalog_sign
from facebench.report.fmt import number
from facebench.results import device_precisions

#: Latency used for the Pareto front: batch-1 median.
PARETO_LATENCY = "latency.p50_ms"

#: Headline metrics of the summary, (metric, label); which way is better comes from the catalog.
VERIFICATION_BEST = [
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("specificity", "specificity"),
    ("f1", "F1"),
    ("auc", "AUC"),
    ("eer", "EER"),
    ("fta_rate", "FtA rate"),
]
EFFICIENCY_BEST = [
    ("latency.p50_ms", "latency p50 (batch 1)"),
    ("latency.p99_ms", "latency p99 (batch 1)"),
    ("throughput.max", "throughput (best batch)"),
    ("cold_start_ms", "cold start"),
    ("params", "parameters"),
    ("gflops", "GFLOPs"),
    ("memory.peak_rss_bytes", "peak memory"),
]
#: Report-only names and the catalog entry they take their direction and format from.
CATALOG_ALIASES = {"throughput.max": "throughput.b1"}  # the best batch's throughput.b{B}


def catalog_name(metric: str) -> str:
    """The catalog name behind a report-only metric name (``throughput.max``)."""
    return CATALOG_ALIASES.get(metric, metric)


def better_sign(metric: str) -> int:
    """+1 when higher is better, −1 when lower is better: the direction in
    ``facebench.metrics.catalog``. A metric the catalog does not rank has no "best"."""
    s = catalog_sign(catalog_name(metric))
    if s == 0:
        raise ValueError(f"metric {metric!r} has no better direction in "
                         "facebench.metrics.catalog; it cannot have a best value")
    return s


@dataclass(frozen=True)
class Best:
    """The winner(s) of one metric in one protocol; several on an exact tie."""

    metric: str
    label: str
    cells: list[dict[str, Any]]
    value: float


@dataclass
class ParetoPoint:
    """A model on one device: accuracy (from a verification cell) and latency (efficiency)."""

    label: str
    model: str
    device: str
    accuracy: float
    latency_ms: float
    dominated_by: list[str] = field(default_factory=list)
    #: Interleaved batch-1 p50 ÷ the protocol's first model's (``latency.b1.p50_vs_ref``) and
    #: its CI; None without ``interleave: true``.
    relative: float | None = None
    relative_ci: tuple[float, float] | None = None
    reference: str | None = None

    @property
    def on_front(self) -> bool:
        return not self.dominated_by


def ok_cells(results: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [c for c in results.get("cells") or []
            if c.get("status") == "ok" and (kind is None or c.get("kind") == kind)]


def protocols(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(protocol, kind) in first-seen order over all cells."""
    seen: dict[str, str] = {}
    for c in results.get("cells") or []:
        seen.setdefault(str(c.get("protocol")), str(c.get("kind")))
    return list(seen.items())


@dataclass(frozen=True)
class SummaryGroup:
    """Protocols whose cells scored the same pairs (``details.pairs_key``), summarised together:
    a verification protocol shares a group with every other that scored its pair list, whatever
    its detector; any other protocol is a group of its own."""

    protocols: tuple[str, ...]
    kind: str

    @property
    def title(self) -> str:
        return " · ".join(self.protocols)


def _pairs_key(results: dict[str, Any], protocol: str) -> str | None:
    """The ``pairs_key`` the ok verification cells of ``protocol`` scored (first found)."""
    for c in ok_cells(results, "verification"):
        key = (c.get("details") or {}).get("pairs_key")
        if c.get("protocol") == protocol and isinstance(key, str):
            return key
    return None


def summary_groups(results: dict[str, Any]) -> list[SummaryGroup]:
    """The summary's groups in first-seen protocol order: protocols by the pairs they scored."""
    groups: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for protocol, kind in protocols(results):
        key = _pairs_key(results, protocol) if kind == "verification" else None
        name = f"pairs:{key}" if key else f"protocol:{protocol}"
        groups.setdefault(name, []).append(protocol)
        kinds.setdefault(name, kind)
    return [SummaryGroup(tuple(ps), kinds[name]) for name, ps in groups.items()]


def _in(protocol: Any, selected: str | Sequence[str]) -> bool:
    return str(protocol) == selected if isinstance(selected, str) else str(protocol) in selected


def _target_keys(cells: list[dict[str, Any]], prefix: str) -> list[str]:
    """The target keys (``"1e-3"``) of the ``{prefix}{key}`` metrics of any cell, loosest
    first."""
    keys = {k[len(prefix):] for c in cells for k in (c.get("metrics") or {})
            if k.startswith(prefix) and not k.endswith(("_ci_low", "_ci_high"))}
    return sorted(keys, key=lambda k: -float(k))


def _supported(cell: dict[str, Any], rows: str, field: str, key: str) -> bool | None:
    """``supported`` of the ``details[rows]`` entry whose ``field`` is ``key`` (None: absent)."""
    for row in (cell.get("details") or {}).get(rows) or []:
        if number(row.get(field)) == float(key):
            return bool(row.get("supported"))
    return None


def tar_targets(cells: list[dict[str, Any]]) -> list[str]:
    """FAR keys (``"1e-3"``) present in any cell, loosest first."""
    return _target_keys(cells, "tar@far=")


def tar_supported(cell: dict[str, Any], key: str) -> bool | None:
    """``supported`` of the details.tar_at_far entry for FAR ``key`` (None when absent)."""
    return _supported(cell, "tar_at_far", "far", key)


def fpir_targets(cells: list[dict[str, Any]]) -> list[str]:
    """FPIR keys (``"1e-2"``) of the ``fnir@fpir=`` metrics of any cell, loosest first."""
    return _target_keys(cells, "fnir@fpir=")


def fnir_supported(cell: dict[str, Any], key: str) -> bool | None:
    """``supported`` of the details.fnir_at_fpir entry for FPIR ``key`` (None when absent):
    N_nonmated × FPIR >= 10."""
    return _supported(cell, "fnir_at_fpir", "fpir", key)


def metric_value(cell: dict[str, Any], name: str) -> float | None:
    m = cell.get("metrics") or {}
    if name == "throughput.max":
        values = [number(v) for k, v in m.items() if k.startswith("throughput.b")]
        values = [v for v in values if v is not None]
        return max(values) if values else None
    return number(m.get(name))


def best(cells: list[dict[str, Any]], metric: str, label: str) -> Best | None:
    """The cell(s) with the best defined value of ``metric``; None when no cell has one."""
    sign = better_sign(metric)
    scored = [(v, c) for c in cells if (v := metric_value(c, metric)) is not None]
    if not scored:
        return None
    top = max(sign * v for v, _ in scored)
    winners = [c for v, c in scored if sign * v == top]
    return Best(metric, label, winners, sign * top)


def rank_keys(cells: list[dict[str, Any]]) -> list[str]:
    """Identification ``rank{k}`` metrics present in any cell, smallest k first."""
    ks = {int(k[4:]) for c in cells for k in (c.get("metrics") or {})
          if k.startswith("rank") and k[4:].isdigit()}
    return [f"rank{k}" for k in sorted(ks)]


def best_per_metric(results: dict[str, Any], protocol: str | Sequence[str]) -> list[Best]:
    """Winners of each headline metric among the ok cells of ``protocol`` (one id, or the
    protocols of a :class:`SummaryGroup`)."""
    cells = [c for c in ok_cells(results) if _in(c.get("protocol"), protocol)]
    if not cells:
        return []
    if cells[0].get("kind") == "identification":
        specs = [(k, f"rank-{k[4:]}") for k in rank_keys(cells)]
        specs += [(f"fnir@fpir={k}", f"FNIR @ FPIR = {k}") for k in fpir_targets(cells)]
        cells_for = {  # an unsupported FNIR@FPIR (N_nonmated × FPIR < 10) wins nothing
            m: [c for c in cells
                if not m.startswith("fnir@fpir=") or fnir_supported(c, m[10:]) is not False]
            for m, _ in specs
        }
    elif cells[0].get("kind") == "verification":
        tars = [(f"tar@far={k}", f"TAR @ FAR = {k}") for k in tar_targets(cells)]
        specs = VERIFICATION_BEST[:5] + tars + VERIFICATION_BEST[5:]
        cells_for = {  # an unsupported TAR@FAR (N_imp × FAR < 10) wins nothing
            m: [c for c in cells
                if not m.startswith("tar@far=") or tar_supported(c, m[8:]) is not False]
            for m, _ in specs
        }
    else:
        specs = EFFICIENCY_BEST
        cells_for = {m: cells for m, _ in specs}
    out = []
    for metric, label in specs:
        b = best(cells_for[metric], metric, label)
        if b is not None:
            out.append(b)
    return out


def dominates(q: tuple[float, float], p: tuple[float, float]) -> bool:
    """For ``(benefit, cost)`` points (higher benefit, lower cost are better): ``q`` is at least
    as good as ``p`` on both and strictly better on one."""
    return q[0] >= p[0] and q[1] <= p[1] and (q[0] > p[0] or q[1] < p[1])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Whether each ``(benefit, cost)`` point is on the Pareto front (no point dominates it).
    Equal points do not dominate each other, so ties are all on the front."""
    return [not any(dominates(q, p) for q in points) for p in points]


def pareto_points(results: dict[str, Any], protocol: str | Sequence[str]) -> list[ParetoPoint]:
    """Join ``protocol``'s verification cells (one id, or a group's) with efficiency cells by
    model and precision (same device preferred; an int8 latency never takes an fp32 cell's
    accuracy), and mark each point's dominators (at least as accurate and as fast, better in
    one)."""
    ver = [c for c in ok_cells(results, "verification") if _in(c.get("protocol"), protocol)]
    eff = ok_cells(results, "efficiency")
    precision = device_precisions(results)
    points: list[ParetoPoint] = []
    seen: set[tuple[str, str]] = set()
    for e in eff:
        key = (str(e.get("model")), str(e.get("device")))
        latency = number((e.get("metrics") or {}).get(PARETO_LATENCY))
        ran = precision.get(key[1], "fp32")
        same = [v for v in ver if v.get("model") == key[0]
                and precision.get(str(v.get("device")), "fp32") == ran]
        same.sort(key=lambda v: v.get("device") != key[1])
        acc = number((same[0].get("metrics") or {}).get("accuracy")) if same else None
        if key in seen or latency is None or acc is None:
            continue
        seen.add(key)
        points.append(ParetoPoint(f"{key[0]} ({key[1]})", key[0], key[1], acc, latency,
                                  **_relative(e)))
    for p in points:
        p.dominated_by = [q.label for q in points if q is not p and dominates(
            (q.accuracy, q.latency_ms), (p.accuracy, p.latency_ms))]
    return points


#: The interleaved ratio the Pareto figures use (batch 1, as :data:`PARETO_LATENCY`).
PARETO_RELATIVE = "latency.b1.p50_vs_ref"


def _relative(cell: dict[str, Any]) -> dict[str, Any]:
    """An efficiency cell's interleaved batch-1 ratio, CI and reference model, when it has one."""
    m = cell.get("metrics") or {}
    ratio = number(m.get(PARETO_RELATIVE))
    if ratio is None:
        return {}
    lo, hi = number(m.get(f"{PARETO_RELATIVE}_ci_low")), number(m.get(f"{PARETO_RELATIVE}_ci_high"))
    ref = ((cell.get("details") or {}).get("interleave") or {}).get("reference")
    return {"relative": ratio, "relative_ci": None if lo is None or hi is None else (lo, hi),
            "reference": str(ref).split("@", 1)[0] if ref else None}


def busy_warning(results: dict[str, Any]) -> str | None:
    """A sentence when the machine was busy: the runner's flags (``environment.busy``, each
    efficiency cell's ``details.busy``), else :func:`facebench.environment.is_busy` applied to
    the load before the run (the load after it includes the run itself)."""
    env = results.get("environment") or {}
    reasons = []
    if "busy" in env:
        busy = bool(env["busy"])
        rule = env.get("busy_rule") or f"1-min load of other work > {BUSY_LOAD_PER_CORE} × cores"
    else:
        before = env.get("load_avg_before") or env.get("load_avg")
        cores = int(number(env.get("cores_used")) or number(env.get("logical_cores")) or 1)
        busy = bool(is_busy(before, None, cores))
        rule = f"1-min load {before[0]:.2f} before the run on {cores} cores" if busy else ""
    if busy:
        reasons.append(f"at the start ({rule})")
    cells = [str(c.get("id")) for c in ok_cells(results, "efficiency")
             if (c.get("details") or {}).get("busy")]
    if cells:
        reasons.append("while measuring " + ", ".join(cells))
    if not reasons:
        return None
    return ("The machine was busy " + "; ".join(reasons) + ": latency, throughput and memory "
            "numbers may be inflated and are not comparable with quiet runs.")


def history_entry(results: dict[str, Any]) -> dict[str, Any]:
    """A run as a history point: ``{run_id, started, commit, fingerprint, metrics: {cell_id:
    {...}}}``."""
    run = results.get("run") or {}
    return {
        "run_id": run.get("id"),
        "started": run.get("started"),
        "commit": (run.get("git") or {}).get("commit"),
        "fingerprint": (results.get("environment") or {}).get("fingerprint"),
        "metrics": {str(c.get("id")): dict(c.get("metrics") or {}) for c in ok_cells(results)},
    }


def history_series(history: list[dict[str, Any]], current: dict[str, Any]) -> list[dict[str, Any]]:
    """History points oldest first, ending with the current run.

    An entry is either a point as made by :func:`history_entry` (``git_commit`` is accepted for
    ``commit``) or a whole ``results.json`` dict.
    """
    points = []
    for e in history:
        p = history_entry(e) if "cells" in e else dict(e)
        p.setdefault("commit", p.get("git_commit"))
        points.append(p)
    now = history_entry(current)
    if now["run_id"] is None or all(p.get("run_id") != now["run_id"] for p in points):
        points.append(now)
    return sorted(points, key=lambda p: str(p.get("started") or ""))
