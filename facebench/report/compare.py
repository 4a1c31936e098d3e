"""Compare two runs cell by cell, and decide which changes are larger than their noise.

Pure functions over ``results.json`` dicts (docs/results.md); reports and gates share them.
Cells are matched by ``id``; only cells that are ``ok`` in both runs are compared. Which way is
better, and which metrics are deterministic, come from ``facebench.metrics.catalog``.

When is a change "significant" (larger than its noise)? First rule that applies wins:

1. The current run has a CI for the metric (``<m>_ci_low``/``<m>_ci_high``): the baseline value
   lies outside it.
2. ``accuracy`` with fold stds in both runs: ``|Δ| > 2·SE``, SE = √(s₁²/k₁ + s₀²/k₀) (the
   standard error of the difference of two k-fold means; 2·SE ≈ a 95 % two-sided test).
3. A rate with a known number of trials (recall / TAR: genuine pairs; specificity, FAR:
   impostor pairs; precision: accepted pairs; accuracy, FtA rate: all pairs): the same
   ``2·SE`` rule with the binomial SE √(p(1−p)/n) of each run. EER uses the SE of
   (FAR + FRR)/2 and AUC the Hanley–McNeil SE.
4. Latency statistics (not the std), throughput and compute rate (at
   ``details.rate.metric_batch``) with ``details.latency`` samples for the batch in both runs:
   Mann–Whitney U (two-sided) p < 0.01 **and** a relative change of the metric itself > 5 %.
5. Deterministic properties (``deterministic`` in ``facebench.metrics.catalog``: params, GMAC,
   GFLOPs, model size, pair/image counts): any change.
6. Anything else (cold start, memory, counts, thresholds, F1): noise unknown -> ``None``.

CI bounds themselves are not compared (they are shown with their metric).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from facebench.metrics.catalog import metric_info, sign
from facebench.report.fmt import number

MW_ALPHA = 0.01
MIN_LATENCY_CHANGE = 0.05

_BATCH = re.compile(r"^(?:latency\.b(\d+)\.(?!samples$|std_ms$)|throughput\.b(\d+)$)")
_BATCH1 = re.compile(r"^latency\.p\d+_ms$")


@dataclass(frozen=True)
class Delta:
    """One metric of one cell in both runs. ``significant`` is None when noise is unknown."""

    cell_id: str
    metric: str
    baseline: float | None
    current: float | None
    diff: float | None
    rel: float | None
    significant: bool | None
    better: bool | None
    method: str


@dataclass(frozen=True)
class Comparison:
    deltas: list[Delta]
    added: list[str]
    removed: list[str]
    not_comparable: list[str]
    same_machine: bool | None


def direction(metric: str) -> int:
    """+1 when higher is better, −1 when lower is better, 0 when neither (the catalog's)."""
    return sign(metric)


def same_machine(current: dict[str, Any], baseline: dict[str, Any]) -> bool | None:
    """Whether the two environment fingerprints agree (None when either is missing)."""
    a = (current.get("environment") or {}).get("fingerprint")
    b = (baseline.get("environment") or {}).get("fingerprint")
    return None if not a or not b else a == b


def _two_se(se_cur: float, se_base: float, diff: float, what: str) -> tuple[bool, str]:
    se = math.hypot(se_cur, se_base)
    return abs(diff) > 2 * se, f"|Δ| vs 2·SE = {2 * se * 100:.2f} pp ({what})"


def _binomial_se(p: float, n: float | None) -> float | None:
    return None if not n or n <= 0 else math.sqrt(max(p * (1 - p), 0.0) / n)


def _trials(metric: str, m: dict[str, Any]) -> float | None:
    """How many pairs a rate is over, from the confusion counts and pair totals."""
    tp, fp, tn, fn = (number(m.get(k)) for k in ("tp", "fp", "tn", "fn"))
    genuine = None if tp is None or fn is None else tp + fn
    impostor = None if tn is None or fp is None else tn + fp
    if metric == "recall" or metric.startswith("tar@far="):
        return genuine
    if metric == "specificity" or metric.startswith("far_achieved@far="):
        return impostor
    if metric == "precision":
        return None if tp is None or fp is None else tp + fp
    if metric in ("accuracy", "fta_rate"):
        total = number(m.get("pairs"))
        return total if total else (genuine + impostor if genuine and impostor else None)
    return None


def _class_sizes(m: dict[str, Any]) -> tuple[float, float] | None:
    tp, fp, tn, fn = (number(m.get(k)) for k in ("tp", "fp", "tn", "fn"))
    if None in (tp, fp, tn, fn) or tp + fn <= 0 or tn + fp <= 0:
        return None
    return tp + fn, tn + fp


def _rate_se(metric: str, value: float, m: dict[str, Any]) -> float | None:
    if metric == "eer":
        sizes = _class_sizes(m)
        if sizes is None:
            return None
        ng, ni = sizes
        return math.sqrt(value * (1 - value) * (1 / ng + 1 / ni)) / 2
    if metric == "auc":
        sizes = _class_sizes(m)
        if sizes is None:
            return None
        ng, ni = sizes
        q1, q2 = value / (2 - value), 2 * value**2 / (1 + value)
        var = (value * (1 - value) + (ng - 1) * (q1 - value**2) + (ni - 1) * (q2 - value**2))
        return math.sqrt(max(var, 0.0) / (ng * ni))
    return _binomial_se(value, _trials(metric, m))


def _folds(cell: dict[str, Any]) -> int:
    folds = (cell.get("details") or {}).get("folds") or []
    return max(len(folds), 1)


def _samples(cell: dict[str, Any], batch: str) -> list[float]:
    lat = ((cell.get("details") or {}).get("latency") or {}).get(batch) or {}
    return [v for v in (number(x) for x in lat.get("samples_ms") or []) if v is not None]


def _latency_batch(metric: str, cell: dict[str, Any]) -> str | None:
    """The batch whose samples a metric derives from (compute rates: ``details.rate``)."""
    m = _BATCH.match(metric)
    if m:
        return m.group(1) or m.group(2)
    if metric in ("gflops_per_s", "pct_of_peak"):
        rate = (cell.get("details") or {}).get("rate") or {}
        return str(rate.get("metric_batch") or 1)
    return "1" if _BATCH1.match(metric) else None


def _verdict(metric: str, cur: dict[str, Any], base: dict[str, Any], c: float, b: float
             ) -> tuple[bool | None, str]:
    diff = c - b
    cm, bm = cur.get("metrics") or {}, base.get("metrics") or {}
    low, high = number(cm.get(f"{metric}_ci_low")), number(cm.get(f"{metric}_ci_high"))
    if low is not None and high is not None:
        return not low <= b <= high, f"baseline vs current CI [{low:.4g}, {high:.4g}]"
    if metric == "accuracy":
        sc, sb = number(cm.get("accuracy_std")), number(bm.get("accuracy_std"))
        if sc is not None and sb is not None:
            se_c, se_b = sc / math.sqrt(_folds(cur)), sb / math.sqrt(_folds(base))
            return _two_se(se_c, se_b, diff, "fold std/√k")
    se_c, se_b = _rate_se(metric, c, cm), _rate_se(metric, b, bm)
    if se_c is not None and se_b is not None:
        return _two_se(se_c, se_b, diff, "binomial" if metric not in ("auc", "eer") else metric)
    batch = _latency_batch(metric, cur)
    if batch is not None:
        xs, ys = _samples(cur, batch), _samples(base, batch)
        if len(xs) >= 3 and len(ys) >= 3:
            from scipy.stats import mannwhitneyu

            p = float(mannwhitneyu(xs, ys, alternative="two-sided").pvalue)
            rel = abs(diff) / abs(b) if b else math.inf
            return (p < MW_ALPHA and rel > MIN_LATENCY_CHANGE,
                    f"Mann–Whitney U p = {p:.2g} (n = {len(xs)}/{len(ys)}), |Δ| {rel:.1%}")
    info = metric_info(metric)
    if info is not None and info.deterministic:
        return diff != 0, "exact (deterministic)"
    return None, "noise unknown"


def compare_cells(cur: dict[str, Any], base: dict[str, Any]) -> list[Delta]:
    """Deltas for every metric the two (ok) cells share, in the current cell's metric order."""
    out = []
    bm = base.get("metrics") or {}
    for name, value in (cur.get("metrics") or {}).items():
        if name.endswith(("_ci_low", "_ci_high")) or name not in bm:
            continue
        c, b = number(value), number(bm[name])
        if c is None or b is None:
            same = c is None and b is None
            out.append(Delta(cur["id"], name, b, c, None, None, None if same else True, None,
                             "both undefined" if same else "defined in one run only"))
            continue
        diff = c - b
        significant, method = _verdict(name, cur, base, c, b)
        d = direction(name)
        better = None if diff == 0 or d == 0 else (diff > 0) == (d > 0)
        rel = diff / abs(b) if b else None
        out.append(Delta(cur["id"], name, b, c, diff, rel, significant, better, method))
    return out


def compare(current: dict[str, Any], baseline: dict[str, Any]) -> Comparison:
    """Match cells by id and compare every shared metric."""
    cur = {c["id"]: c for c in current.get("cells") or []}
    base = {c["id"]: c for c in baseline.get("cells") or []}
    deltas: list[Delta] = []
    not_comparable = []
    for cid, cell in cur.items():
        other = base.get(cid)
        if other is None:
            continue
        if cell.get("status") != "ok" or other.get("status") != "ok":
            not_comparable.append(cid)
            continue
        deltas.extend(compare_cells(cell, other))
    return Comparison(
        deltas=deltas,
        added=[c for c in cur if c not in base],
        removed=[c for c in base if c not in cur],
        not_comparable=not_comparable,
        same_machine=same_machine(current, baseline),
    )
