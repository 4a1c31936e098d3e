"""Verification metrics from pair scores (pure numpy, no I/O), as defined in docs/metrics.md.

A pair is accepted when ``s >= t``. A failure-to-acquire (FtA) pair is rejected at every threshold
(genuine -> FN, impostor -> TN), is never a threshold candidate, and is counted in every N.

Threshold policy of :func:`compute_verification_metrics`:

* ``folds`` given (>= 2 fold ids): k-fold cross-validation. For each fold the threshold is chosen
  on the other folds (:func:`best_threshold`) and applied to it; accuracy is the mean and std
  (ddof 0) over folds, confusion counts are summed over folds.
* ``folds=None``: one threshold chosen on *all* the data and applied to the same data
  (resubstitution; optimistic). ``accuracy_std`` is then ``None`` (undefined with one fold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facebench.metrics._inputs import Pairs, as_folds, as_pairs, far_key
from facebench.metrics.bootstrap import (
    RESAMPLING,
    Identities,
    kfold_accuracy_ci,
    method_of,
    tar_at_far_ci,
)
from facebench.metrics.roc import (
    Roc,
    TarAtFar,
    descending_counts,
    downsample_roc,
    eer,
    roc_auc,
    roc_from_pairs,
    tar_at_far,
)

DEFAULT_FAR_TARGETS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
#: Fixed score-histogram bin edges: 100 bins over the cosine range [-1, 1].
HIST_EDGES: np.ndarray = np.linspace(-1.0, 1.0, 101)

Metric = float | int | None


@dataclass(frozen=True)
class Confusion:
    """Counts of a threshold policy over genuine (positive) / impostor (negative) pairs."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn
        )


def confusion_at(
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | np.ndarray,
    fta: np.ndarray | None = None,
) -> Confusion:
    """Confusion counts accepting ``s >= threshold``; FtA pairs are always rejected.

    ``threshold`` is one number, or one per pair (e.g. each pair's fold threshold).
    """
    pairs = as_pairs(scores, labels, fta)
    t = np.asarray(threshold, dtype=np.float64)
    if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape != pairs.scores.shape):
        raise ValueError(
            f"threshold must be a number or one per pair ({pairs.n}), got shape {t.shape}"
        )
    if np.isnan(t).any():
        raise ValueError("threshold must not be NaN")
    return _confusion(pairs, t)


def _confusion(pairs: Pairs, t: np.ndarray | float) -> Confusion:
    with np.errstate(invalid="ignore"):
        accept = (pairs.scores >= t) & ~pairs.fta
    tp = int(np.count_nonzero(accept & pairs.genuine))
    fp = int(np.count_nonzero(accept)) - tp
    return Confusion(tp=tp, fp=fp, tn=pairs.n_impostor - fp, fn=pairs.n_genuine - tp)


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def confusion_ratios(c: Confusion) -> dict[str, float | None]:
    """accuracy, precision, recall (TAR), specificity (1 - FAR), F1; 0/0 -> ``None``.

    F1 = 2PR / (P + R); it is ``None`` when P or R is undefined or when P + R = 0.
    """
    precision = _ratio(c.tp, c.tp + c.fp)
    recall = _ratio(c.tp, c.tp + c.fn)
    f1 = None
    if precision is not None and recall is not None and precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    return {
        "accuracy": _ratio(c.tp + c.tn, c.n),
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "f1": f1,
    }


def best_threshold(scores: np.ndarray, labels: np.ndarray, fta: np.ndarray | None = None) -> float:
    """Threshold maximizing accuracy; candidates are the distinct non-FtA scores.

    Ties go to the smallest candidate. With no candidate at all (every pair is an FtA) every
    threshold rejects everything; ``inf`` is returned.
    """
    return _best_threshold(as_pairs(scores, labels, fta))


def _best_threshold(pairs: Pairs) -> float:
    return _best_from_counts(*descending_counts(pairs))


def _best_from_counts(thresholds: np.ndarray, tp: np.ndarray, fp: np.ndarray) -> float:
    """Best candidate from descending counts (index 0 is the ``+inf`` reject-all point)."""
    if thresholds.size < 2:
        return math.inf
    # accuracy * N = tp + (n_imp - fp) + const: maximize tp - fp over the candidates (index >= 1);
    # thresholds are descending, so the last maximum is the smallest candidate
    gain = tp[:0:-1] - fp[:0:-1]
    return float(thresholds[thresholds.size - 1 - int(np.argmax(gain))])


def _subset(pairs: Pairs, mask: np.ndarray) -> Pairs:
    return Pairs(pairs.scores[mask], pairs.genuine[mask], pairs.fta[mask])


@dataclass(frozen=True)
class KFold:
    """Per-fold thresholds and accuracies (fold ids ascending), with mean and std (ddof 0)."""

    folds: np.ndarray
    thresholds: np.ndarray
    accuracies: np.ndarray
    sizes: np.ndarray
    confusion: Confusion

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


def kfold_accuracy(
    scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, fta: np.ndarray | None = None
) -> KFold:
    """k-fold accuracy: each fold's threshold is :func:`best_threshold` on the other folds."""
    pairs = as_pairs(scores, labels, fta)
    return _kfold(pairs, as_folds(folds, pairs.n))


def _kfold(pairs: Pairs, folds: np.ndarray) -> KFold:
    ids = np.unique(folds)
    thresholds = np.empty(ids.size)
    accuracies = np.empty(ids.size)
    sizes = np.empty(ids.size, dtype=np.int64)
    total = Confusion(0, 0, 0, 0)
    for j, k in enumerate(ids):
        test = folds == k
        thresholds[j] = _best_threshold(_subset(pairs, ~test))
        c = _confusion(_subset(pairs, test), thresholds[j])
        accuracies[j] = (c.tp + c.tn) / c.n
        sizes[j] = c.n
        total = total + c
    return KFold(ids, thresholds, accuracies, sizes, total)


def score_histogram(
    scores: np.ndarray,
    labels: np.ndarray,
    fta: np.ndarray | None = None,
    edges: np.ndarray = HIST_EDGES,
) -> dict[str, dict[str, Any]]:
    """Genuine and impostor histograms over fixed ``edges`` (FtA pairs left out and counted).

    Scores outside the edges are not clipped in: they are counted as ``below`` / ``above``.
    """
    return _histogram(as_pairs(scores, labels, fta), np.asarray(edges, dtype=np.float64))


def _histogram(pairs: Pairs, edges: np.ndarray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, cls in (("genuine", pairs.genuine), ("impostor", ~pairs.genuine)):
        s = pairs.scores[cls & ~pairs.fta]
        counts, _ = np.histogram(s, bins=edges)
        out[name] = {
            "edges": [float(e) for e in edges],
            "counts": [int(c) for c in counts],
            "below": int(np.count_nonzero(s < edges[0])),
            "above": int(np.count_nonzero(s > edges[-1])),
            "fta": int(np.count_nonzero(cls & pairs.fta)),
            "n": int(np.count_nonzero(cls)),
        }
    return out


@dataclass
class VerificationResult:
    """Flat ``metrics`` (docs/results.md names; ``None`` = undefined) and structured ``details``."""

    metrics: dict[str, Metric]
    details: dict[str, Any] = field(default_factory=dict)


def _finite_or_none(t: float) -> float | None:
    return t if math.isfinite(t) else None


def _threshold_policy(pairs: Pairs, folds: np.ndarray | None, roc: Roc | None) -> dict[str, Any]:
    """Accuracy, its std, summed confusion and per-fold rows of the threshold policy."""
    if folds is None:
        counts = (roc.thresholds, roc.tp, roc.fp) if roc is not None else descending_counts(pairs)
        t = _best_from_counts(*counts)
        c = _confusion(pairs, t)
        acc = (c.tp + c.tn) / c.n
        rows = [{"fold": None, "threshold": _finite_or_none(t), "accuracy": acc, "pairs": pairs.n}]
        return {"accuracy": acc, "accuracy_std": None, "confusion": c, "folds": rows}
    kf = _kfold(pairs, folds)
    rows = [
        {
            "fold": int(k),
            "threshold": _finite_or_none(float(t)),
            "accuracy": float(a),
            "pairs": int(m),
        }
        for k, t, a, m in zip(kf.folds, kf.thresholds, kf.accuracies, kf.sizes, strict=True)
    ]
    return {"accuracy": kf.mean, "accuracy_std": kf.std, "confusion": kf.confusion, "folds": rows}


def _check_targets(far_targets: Sequence[float]) -> list[float]:
    targets = [float(x) for x in far_targets]
    for x in targets:
        far_key(x)  # finite and > 0
        if x > 1:
            raise ValueError(f"FAR target must be in (0, 1], got {x!r}")
    return targets


def _roc_metrics(
    roc: Roc | None, targets: list[float], n_impostor: int
) -> tuple[dict[str, Metric], list[dict[str, Any]]]:
    """auc, eer, eer_threshold and the three TAR@FAR keys per target; plus the TAR rows."""
    m: dict[str, Metric] = {"auc": roc_auc(roc) if roc is not None else None}
    e = eer(roc) if roc is not None and len(roc) > 1 else None
    m["eer"] = e.eer if e else None
    m["eer_threshold"] = e.threshold if e else None
    rows = []
    for x in targets:
        if roc is None:
            row = TarAtFar(x, None, None, None, n_impostor, False).to_dict()
        else:
            row = tar_at_far(roc, x).to_dict()
        rows.append(row)
        key = far_key(x)
        m[f"tar@far={key}"] = row["tar"]
        m[f"far_achieved@far={key}"] = row["far_achieved"]
        m[f"threshold@far={key}"] = row["threshold"]
    return m, rows


def compute_verification_metrics(
    scores: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray | None = None,
    fta: np.ndarray | None = None,
    far_targets: Sequence[float] = DEFAULT_FAR_TARGETS,
    bootstrap: int = 0,
    seed: int = 0,
    identities: Identities | None = None,
) -> VerificationResult:
    """All verification metrics of docs/results.md for one set of pair scores.

    ``folds``: per-pair fold ids for k-fold CV, or ``None`` for one threshold chosen on all
    the data (see module docstring). ``bootstrap`` > 0 adds seeded percentile 95% CIs
    (``accuracy_ci_low/high``, ``tar@far=X_ci_low/high``), resampling identities when
    ``identities`` (per-pair codes of both sides) are given, else pairs
    (:mod:`facebench.metrics.bootstrap`). ROC-based metrics are ``None`` when a class is empty.
    """
    pairs = as_pairs(scores, labels, fta)
    if pairs.n == 0:
        raise ValueError("no pairs: scores is empty")
    fold_ids = None if folds is None else as_folds(folds, pairs.n)
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 replicates, got {bootstrap}")
    targets = _check_targets(far_targets)

    roc = roc_from_pairs(pairs) if pairs.n_genuine and pairs.n_impostor else None
    policy = _threshold_policy(pairs, fold_ids, roc)
    c: Confusion = policy["confusion"]
    m: dict[str, Metric] = {"accuracy": policy["accuracy"], "accuracy_std": policy["accuracy_std"]}
    ratios = confusion_ratios(c)
    m.update({k: ratios[k] for k in ("precision", "recall", "specificity", "f1")})
    m.update(tp=c.tp, fp=c.fp, tn=c.tn, fn=c.fn)
    roc_m, tar_rows = _roc_metrics(roc, targets, pairs.n_impostor)
    m.update(roc_m)
    n_fta = int(np.count_nonzero(pairs.fta))
    m.update(fta_pairs=n_fta, fta_rate=n_fta / pairs.n, pairs=pairs.n)

    details: dict[str, Any] = {
        "threshold_policy": "kfold" if fold_ids is not None else "all_data",
        "folds": policy["folds"],
        "tar_at_far": tar_rows,
        "roc": _roc_details(roc),
        "score_hist": _histogram(pairs, HIST_EDGES),
        "n_genuine": pairs.n_genuine,
        "n_impostor": pairs.n_impostor,
    }
    if bootstrap > 0:
        m.update(_bootstrap_metrics(pairs, fold_ids, targets, roc is not None, bootstrap, seed,
                                    identities))
        details["bootstrap"] = bootstrap_record(bootstrap, seed, identities)
    return VerificationResult(metrics=m, details=details)


def bootstrap_record(replicates: int, seed: int, identities: Identities | None
                     ) -> dict[str, Any]:
    """``details.bootstrap``: replicates, seed, level, the interval method (percentile) and
    the resampling method (``resampling_method``: identity or pair) with its description."""
    how = method_of(identities)
    return {"replicates": replicates, "seed": seed, "level": 0.95, "method": "percentile",
            "resampling_method": how, "resampling": RESAMPLING[how]}


def _roc_details(roc: Roc | None) -> dict[str, list[float]] | None:
    if roc is None:
        return None
    idx = downsample_roc(roc, 1000)
    return {
        "far": [float(v) for v in roc.fp[idx] / roc.n_impostor],
        "tar": [float(v) for v in roc.tp[idx] / roc.n_genuine],
    }


def _bootstrap_metrics(
    pairs: Pairs,
    folds: np.ndarray | None,
    targets: list[float],
    has_roc: bool,
    replicates: int,
    seed: int,
    identities: Identities | None = None,
) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    lo, hi = kfold_accuracy_ci(pairs, folds, replicates, seed, identities=identities)
    out["accuracy_ci_low"], out["accuracy_ci_high"] = lo, hi
    cis = (tar_at_far_ci(pairs, targets, replicates, seed, identities=identities)
           if has_roc else {})
    for x in targets:
        key = far_key(x)
        lo_hi = cis.get(x, (None, None))
        out[f"tar@far={key}_ci_low"], out[f"tar@far={key}_ci_high"] = lo_hi
    return out
