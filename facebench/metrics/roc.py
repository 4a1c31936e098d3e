"""ROC curve, AUC, EER and TAR@FAR (pure numpy, O(n log n) time, linear memory).

Conventions (docs/metrics.md): a pair is accepted when ``s >= t``. A failure-to-acquire (FtA) pair
is rejected at every threshold: it never counts as a true or false accept, is never a threshold
candidate, but is counted in ``N_gen``/``N_imp`` and so in every rate. With FtA pairs the ROC
therefore ends below (1, 1) and the AUC is the area under that attainable curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facebench.metrics._inputs import Pairs, as_pairs


@dataclass(frozen=True)
class Roc:
    """ROC at every distinct non-FtA score, thresholds descending.

    Point 0 is the reject-all point (threshold ``+inf``, FAR = TAR = 0). ``tp``/``fp`` are the
    numbers of genuine/impostor pairs with ``s >= threshold``; rates divide by ``n_genuine`` /
    ``n_impostor``, which include FtA pairs.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_genuine: int
    n_impostor: int

    @property
    def far(self) -> np.ndarray:
        return self.fp / self.n_impostor

    @property
    def tar(self) -> np.ndarray:
        return self.tp / self.n_genuine

    @property
    def frr(self) -> np.ndarray:
        return (self.n_genuine - self.tp) / self.n_genuine

    def __len__(self) -> int:
        return int(self.thresholds.shape[0])


#: Doddington's rule of 30: a rate is trusted to about +-30 % (90 % confidence) when at
#: least this many errors stand behind it.
RULE_OF_30 = 30


@dataclass(frozen=True)
class TarAtFar:
    """TAR at a FAR target; ``supported`` is False when ``n_impostor * far < 10``.
    ``false_accepts``/``false_rejects``: the errors behind the achieved FAR and behind
    1 - TAR (FtA genuine pairs included); ``rule_of_30`` is True when both are >= 30
    (Doddington's rule of 30)."""

    far: float
    tar: float | None
    far_achieved: float | None
    threshold: float | None
    n_impostor: int
    supported: bool
    false_accepts: int | None = None
    false_rejects: int | None = None

    @property
    def rule_of_30(self) -> bool | None:
        if self.false_accepts is None or self.false_rejects is None:
            return None
        return min(self.false_accepts, self.false_rejects) >= RULE_OF_30

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {
            "far": self.far,
            "tar": self.tar,
            "far_achieved": self.far_achieved,
            "threshold": self.threshold,
            "n_impostor": self.n_impostor,
            "supported": self.supported,
            "false_accepts": self.false_accepts,
            "false_rejects": self.false_rejects,
            "rule_of_30": self.rule_of_30,
        }


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two ascending arrays in O(n); return the merged values and a mask of ``b``'s items."""
    n = a.size + b.size
    merged = np.empty(n, dtype=np.result_type(a.dtype, b.dtype))
    small, big, small_is_b = (b, a, True) if b.size <= a.size else (a, b, False)
    pos = np.searchsorted(big, small, side="left")
    pos += np.arange(small.size, dtype=pos.dtype)
    mask = np.zeros(n, dtype=bool)
    mask[pos] = True
    merged[pos] = small
    merged[~mask] = big
    return merged, (mask if small_is_b else ~mask)


def descending_counts(pairs: Pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds ``+inf`` then every distinct non-FtA score, descending, with the numbers of
    non-FtA genuine (``tp``) and impostor (``fp``) pairs ``>=`` each.

    Each class is sorted on its own (``np.sort``, no argsort) and the two are merged in O(n).
    The results are reversed views of ascending buffers, so nothing is copied to reverse them.
    """
    valid = ~pairs.fta
    gen = np.sort(pairs.scores[valid & pairs.genuine])
    imp = np.sort(pairs.scores[valid & ~pairs.genuine])
    n_gen_valid = gen.size
    merged, is_gen = _merge_sorted(imp, gen)
    del imp, gen, valid
    n = merged.size
    change = np.empty(n, dtype=bool)
    change[:1] = True
    np.not_equal(merged[1:], merged[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    del change
    m = starts.size
    thresholds = np.empty(m + 1, dtype=np.result_type(merged.dtype, np.float32))
    np.take(merged, starts, out=thresholds[:m])
    thresholds[m] = np.inf
    del merged
    gen_before = np.cumsum(is_gen, dtype=np.int32 if n < 2**31 - 1 else np.int64)
    del is_gen
    tp = np.zeros(m + 1, dtype=np.int64)
    if m > 1:
        tp[1:m] = gen_before[starts[1:] - 1]  # genuine strictly below each group start
    del gen_before
    np.subtract(n_gen_valid, tp[:m], out=tp[:m])
    tp[m] = 0
    fp = np.zeros(m + 1, dtype=np.int64)
    np.subtract(n, starts, out=fp[:m])
    fp[:m] -= tp[:m]
    return thresholds[::-1], tp[::-1], fp[::-1]


def roc_curve(scores: np.ndarray, labels: np.ndarray, fta: np.ndarray | None = None) -> Roc:
    """ROC over all thresholds (every distinct non-FtA score), thresholds descending.

    Raises ``ValueError`` when either class is empty (FAR or TAR would be 0/0).
    """
    return roc_from_pairs(as_pairs(scores, labels, fta))


def roc_from_pairs(pairs: Pairs) -> Roc:
    """:func:`roc_curve` for already-validated :class:`Pairs`."""
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError(
            f"ROC needs both genuine and impostor pairs; got {pairs.n_genuine} genuine and "
            f"{pairs.n_impostor} impostor"
        )
    thresholds, tp, fp = descending_counts(pairs)
    return Roc(thresholds, tp, fp, pairs.n_genuine, pairs.n_impostor)


def auc(far: np.ndarray, tar: np.ndarray) -> float:
    """Area under a curve by the trapezoid rule (``far`` must be monotone)."""
    x = np.asarray(far, dtype=np.float64)
    y = np.asarray(tar, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"far and tar must be 1-D of equal length, got {x.shape} and {y.shape}")
    if x.size < 2:
        raise ValueError("AUC needs at least 2 points")
    dx = np.diff(x)
    if not (np.all(dx >= 0) or np.all(dx <= 0)):
        raise ValueError("far must be monotone for the trapezoid AUC")
    return float(abs(np.sum(dx * (y[1:] + y[:-1])) / 2.0))


def roc_auc(roc: Roc) -> float:
    """Trapezoid AUC of ``roc`` computed exactly in integer counts, divided once at the end."""
    dfp = np.diff(roc.fp)
    tp_sum = roc.tp[1:] + roc.tp[:-1]
    twice_area = int(np.dot(dfp, tp_sum))
    return twice_area / (2.0 * roc.n_impostor * roc.n_genuine)


@dataclass(frozen=True)
class Eer:
    """Equal error rate, its threshold and the FAR/FRR there."""

    eer: float
    threshold: float
    far: float
    frr: float


def eer(roc: Roc) -> Eer:
    """Threshold minimizing ``|FAR - FRR|`` over the data's thresholds; EER = (FAR + FRR) / 2.

    Ties (equal ``|FAR - FRR|``) go to the smallest threshold. Raises ``ValueError`` when there
    is no threshold candidate (every pair is an FtA).
    """
    if len(roc) < 2:
        raise ValueError("EER needs at least one non-FtA score")
    fn = roc.n_genuine - roc.tp[1:]
    # |FAR - FRR| * N_imp * N_gen, in exact integers so that equal gaps tie exactly
    gap = roc.fp[1:] * np.int64(roc.n_genuine)
    fn *= np.int64(roc.n_impostor)
    gap -= fn
    del fn
    np.abs(gap, out=gap)
    # thresholds are descending: the last minimum is the smallest threshold
    i = gap.size - 1 - int(np.argmin(gap[::-1]))
    far = roc.fp[i + 1] / roc.n_impostor
    frr = (roc.n_genuine - roc.tp[i + 1]) / roc.n_genuine
    return Eer(
        eer=float((far + frr) / 2.0),
        threshold=float(roc.thresholds[i + 1]),
        far=float(far),
        frr=float(frr),
    )


def is_supported(n_impostor: int, far: float) -> bool:
    """True when ``n_impostor * far >= 10`` (relative slack 1e-9 for binary rounding)."""
    return n_impostor * far >= 10.0 * (1.0 - 1e-9)


def _just_above(top: float) -> float:
    """The next float32 above ``top`` when ``top`` is a float32 value, else the next float64.

    It rejects ``top`` whether scores are compared in float32 or float64, and is the same
    number for float32 scores and for the same scores stored as float64 (e.g. in a CSV).
    """
    as32 = np.float32(top)
    if np.isfinite(as32) and float(as32) == top:
        return float(np.nextafter(as32, np.float32(np.inf)))
    return float(np.nextafter(top, np.inf))


def _max_false_accepts(far: float, n_impostor: int) -> int:
    """Largest count k with ``k / n_impostor <= far`` evaluated in floating point."""
    k = int(np.floor(far * n_impostor))
    while (k + 1) / n_impostor <= far:
        k += 1
    while k > 0 and k / n_impostor > far:
        k -= 1
    return k


def tar_at_far(roc: Roc, far: float) -> TarAtFar:
    """TAR at the smallest threshold whose empirical FAR = #{imp s >= t} / N_imp is ``<= far``.

    When even the highest score gives FAR > ``far``, the threshold is the float just above the
    highest score (everything rejected: TAR = FAR = 0). ``supported`` flags ``N_imp * far >= 10``.
    """
    far = float(far)
    if not 0.0 < far <= 1.0:
        raise ValueError(f"FAR target must be in (0, 1], got {far!r}")
    i = int(np.searchsorted(roc.fp, _max_false_accepts(far, roc.n_impostor), side="right")) - 1
    if i == 0:
        threshold = _just_above(float(roc.thresholds[1])) if len(roc) > 1 else None
    else:
        threshold = float(roc.thresholds[i])
    return TarAtFar(
        far=far,
        tar=float(roc.tp[i] / roc.n_genuine),
        far_achieved=float(roc.fp[i] / roc.n_impostor),
        threshold=threshold,
        n_impostor=roc.n_impostor,
        supported=is_supported(roc.n_impostor, far),
        false_accepts=int(roc.fp[i]),
        false_rejects=int(roc.n_genuine - roc.tp[i]),
    )


def _corner_indices(fp: np.ndarray, tp: np.ndarray) -> np.ndarray:
    """Indices of points where the ROC changes direction (collinear runs dropped; exact)."""
    n = fp.size
    if n <= 2:
        return np.arange(n)
    dfp = np.diff(fp)
    dtp = np.diff(tp)
    flat = dtp == 0
    steep = dfp == 0
    drop = (flat[:-1] & flat[1:]) | (steep[:-1] & steep[1:])
    keep = np.ones(n, dtype=bool)
    keep[1:-1] = ~drop
    return np.flatnonzero(keep)


def downsample_roc(roc: Roc, max_points: int = 1000) -> np.ndarray:
    """Indices of at most ``max_points`` ROC points that keep its shape, endpoints included.

    A curve that fits is returned whole. Otherwise collinear runs are dropped (lossless); if
    still too many, half the budget is spread evenly along the curve's length in linear
    (FAR, TAR) space and half evenly in log10(FAR), so both the overall shape and the low-FAR
    region survive.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4, got {max_points}")
    if len(roc) <= max_points:
        return np.arange(len(roc))
    idx = _corner_indices(roc.fp, roc.tp)
    if idx.size <= max_points:
        return idx
    far = roc.fp[idx] / roc.n_impostor
    tar = roc.tp[idx] / roc.n_genuine
    budget = (max_points - 2) // 2
    length = np.concatenate(([0.0], np.cumsum(np.diff(far) + np.diff(tar))))
    along = np.searchsorted(length, np.linspace(0.0, length[-1], budget))
    positive = far[far > 0]
    picks = [np.array([0, idx.size - 1]), np.minimum(along, idx.size - 1)]
    if positive.size:
        grid = np.logspace(np.log10(positive[0]), np.log10(far[-1]), budget)
        picks.append(np.minimum(np.searchsorted(far, grid, side="left"), idx.size - 1))
    chosen = np.unique(np.concatenate(picks))
    return idx[chosen]
