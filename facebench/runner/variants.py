"""Each precision variant (fp16, int8) against its fp32 baseline, after the cells of a run.

For every finished variant cell whose baseline (:func:`facebench.plan.precision_baseline`: same
model and protocol, same engine and device type, fp32) also finished in the same results:

- verification: ``accuracy_vs_fp32`` = variant − fp32 k-fold accuracy on the same pairs, read
  from both cells' ``scores.csv``, with its paired-bootstrap CI (``_ci_low``, ``_ci_high``);
- efficiency: ``latency.b{B}.p50_vs_fp32`` (variant p50 / fp32 p50, for every batch size both
  measured) and ``memory.peak_rss_delta_vs_fp32`` (ratio of the peak RSS deltas).

``details["precision_baseline"]`` names the baseline cell, or gives the reason there is no
comparison. Nothing here raises for one cell's data: a broken score file leaves the others
compared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from facebench.metrics.bootstrap import paired_kfold_accuracy_difference
from facebench.plan import Cell, precision_baseline
from facebench.scores import ScoreTable, read_scores

#: Replicates when the protocol asks for no bootstrap of its own (``bootstrap: 0``).
DEFAULT_REPLICATES = 1000
SEED = 0
SUFFIX = "_vs_fp32"
_P50 = re.compile(r"latency\.b([1-9][0-9]*)\.p50_ms")
RSS_DELTA = "memory.peak_rss_delta_bytes"


class NoComparison(Exception):
    """Why a variant cell cannot be compared with its baseline (a sentence for the record)."""


def attach_precision_comparisons(results: dict[str, Any], out: Path, cells: list[Cell]) -> None:
    """Add to every finished variant cell of ``results`` its comparison with its fp32 baseline
    (see the module docstring), in place: the closest fp32 cell that finished, else the reason
    naming the closest of the plan. ``cells`` is the suite's whole plan (before ``--only``), so
    a baseline the run left out is named. Comparisons from an earlier run (``--resume``) are
    dropped and recomputed from the current records and score files."""
    records = {r.get("id"): r for r in results.get("cells", [])}
    finished = [c for c in cells if (records.get(c.id) or {}).get("status") == "ok"]
    for cell in cells:
        rec = records.get(cell.id)
        if rec is None:
            continue
        _clear(rec)
        if (cell.device.precision == "fp32" or rec.get("status") != "ok"
                or cell.kind not in ("verification", "efficiency")):
            continue
        metrics, details = rec.setdefault("metrics", {}), rec.setdefault("details", {})
        # the closest fp32 cell that finished; else the closest of the plan, to say why not
        base = precision_baseline(cell, finished) or precision_baseline(cell, cells)
        try:
            if base is None:
                raise NoComparison(
                    f"the suite has no fp32 device with engine {cell.device.engine} on "
                    f"{cell.device.device} that runs {cell.model.id} on {cell.protocol.id}; add "
                    "one to compare this variant with fp32")
            base_rec = _finished(base, records.get(base.id))
            if cell.kind == "verification":
                replicates = getattr(cell.protocol, "bootstrap", 0) or DEFAULT_REPLICATES
                metrics.update(_accuracy(out, rec, base_rec, replicates))
                details["precision_baseline"] = {"cell": base.id, "precision": "fp32",
                                                 "bootstrap": replicates, "seed": SEED}
            else:
                metrics.update(_efficiency(metrics, base_rec.get("metrics") or {}))
                details["precision_baseline"] = {"cell": base.id, "precision": "fp32"}
        except NoComparison as exc:
            details["precision_baseline"] = {"cell": None, "reason": str(exc)}


def _clear(rec: dict[str, Any]) -> None:
    """Drop a comparison an earlier pass attached to ``rec``."""
    metrics = rec.get("metrics")
    if isinstance(metrics, dict):
        for name in [k for k in metrics if k.endswith(SUFFIX) or f"{SUFFIX}_ci_" in k]:
            del metrics[name]
    details = rec.get("details")
    if isinstance(details, dict):
        details.pop("precision_baseline", None)


def _finished(base: Cell, rec: dict[str, Any] | None) -> dict[str, Any]:
    """The baseline's record when it finished ok; else why there is no comparison."""
    if rec is None:
        raise NoComparison(f"fp32 baseline {base.id} did not run in this run (left out by "
                           "--only?); run it too, e.g. with --resume and no --only")
    status = rec.get("status")
    if status != "ok":
        why = rec.get("reason") or (rec.get("error") or {}).get("message") or ""
        raise NoComparison(f"fp32 baseline {base.id} {status}" + (f": {why}" if why else ""))
    return rec


def _scores(out: Path, rec: dict[str, Any]) -> tuple[ScoreTable, str]:
    rel = (rec.get("artifacts") or {}).get("scores") or f"cells/{rec['id']}/scores.csv"
    try:
        return read_scores(out / rel), rel
    except (OSError, ValueError) as exc:
        raise NoComparison(f"cannot read the scores of {rec['id']}: {exc}") from None


def _accuracy(out: Path, rec: dict[str, Any], base_rec: dict[str, Any],
              replicates: int) -> dict[str, float]:
    """Variant − fp32 k-fold accuracy on the pairs both cells scored, with its paired CI."""
    (var, var_file), (base, base_file) = _scores(out, rec), _scores(out, base_rec)
    i, j = _aligned(var, var_file, base, base_file)
    if (var.fold is None) != (base.fold is None):
        raise NoComparison(f"one of {var_file} and {base_file} has folds and the other not; "
                           "both cells must score the same protocol")
    for name, a, b in (("label", var.label, base.label), ("fold", var.fold, base.fold)):
        differ = np.flatnonzero(a[i] != b[j]) if a is not None and b is not None else []
        if len(differ):
            raise NoComparison(f"{var_file} and {base_file} give pair "
                               f"{var.pair_id[i][differ[0]]!r} different {name}s; both cells "
                               "must score the same protocol")
    folds = None if var.fold is None else var.fold[i]
    try:
        d = paired_kfold_accuracy_difference(var.score[i], base.score[j], var.label[i], folds,
                                             var.fta[i], base.fta[j], replicates=replicates,
                                             seed=SEED)
    except ValueError as exc:
        raise NoComparison(f"cannot compare {var_file} with {base_file}: {exc}") from None
    return {f"accuracy{SUFFIX}": d.delta, f"accuracy{SUFFIX}_ci_low": d.ci_low,
            f"accuracy{SUFFIX}_ci_high": d.ci_high}


def _aligned(var: ScoreTable, var_file: str, base: ScoreTable,
             base_file: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices putting both tables in the variant's pair order (its file's, the order its own
    accuracy CI resampled, so the paired bootstrap is a function of the saved scores alone and
    not of how pair ids sort); both must list the same pair ids once."""
    for table, name in ((var, var_file), (base, base_file)):
        ids, counts = np.unique(table.pair_id, return_counts=True)
        if (counts > 1).any():
            raise NoComparison(f"{name} lists pair {ids[counts > 1][0]!r} more than once")
    only_var = np.setdiff1d(var.pair_id, base.pair_id)
    only_base = np.setdiff1d(base.pair_id, var.pair_id)
    if only_var.size or only_base.size:
        examples = "; ".join(f"{ids.size} only in {name}, e.g. {ids[0]!r}" for ids, name in
                             ((only_var, var_file), (only_base, base_file)) if ids.size)
        raise NoComparison(f"{var_file} ({len(var)} pairs) and {base_file} ({len(base)} pairs) "
                           f"do not score the same pairs ({examples}); re-run both cells")
    row_of = {pair: row for row, pair in enumerate(base.pair_id.tolist())}
    return np.arange(len(var)), np.array([row_of[p] for p in var.pair_id.tolist()], dtype=np.int64)


def _ratio(a: Any, b: Any) -> float | None:
    """``a / b`` for two numbers with ``b > 0``; None (0/0 in the contract) otherwise."""
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
             for v in (a, b))
    return float(a) / float(b) if ok and b > 0 else None


def _efficiency(var: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    """Latency p50 ratios for each batch size both cells measured, and the peak RSS ratio."""
    out: dict[str, float | None] = {}
    for name in var:
        m = _P50.fullmatch(name)
        if m and name in base:
            out[f"latency.b{m.group(1)}.p50{SUFFIX}"] = _ratio(var[name], base[name])
    if RSS_DELTA in var and RSS_DELTA in base:
        out[f"memory.peak_rss_delta{SUFFIX}"] = _ratio(var[RSS_DELTA], base[RSS_DELTA])
    return out
