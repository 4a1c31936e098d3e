"""Seeded percentile-bootstrap confidence intervals for k-fold accuracy and TAR@FAR, and for the
difference in k-fold accuracy of two score sets on the same pairs (paired resampling).

Each replicate resamples pairs with replacement *within strata*, so the protocol's design is kept:
for accuracy the strata are fold x label (LFW: every fold keeps 300 genuine + 300 impostor), for
TAR@FAR they are the two labels (N_gen and N_imp fixed). A replicate is a vector of
per-pair multiplicities; every statistic is recomputed on it exactly as on the data (thresholds
re-chosen per fold, ties toward the smallest candidate), vectorised over chunks of replicates
so memory stays linear in the number of pairs. The same seed gives the same interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from facebench.metrics._inputs import Pairs, as_folds, as_pairs

#: Replicates per chunk are chosen so that a chunk holds about this many per-pair counts.
CHUNK_ELEMENTS = 2_000_000


def _strata_members(codes: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def _weight_chunks(
    members: list[np.ndarray], n: int, replicates: int, seed: int, stream: int
) -> Iterator[np.ndarray]:
    """Yield (chunk, n) int32 multiplicity matrices; each stratum keeps its size."""
    rng = np.random.default_rng([seed, stream])
    per_chunk = max(1, CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < replicates:
        c = min(per_chunk, replicates - done)
        w = np.zeros((c, n), dtype=np.int32)
        for idx in members:
            m = idx.size
            draws = rng.integers(0, m, size=(c, m))
            draws += np.arange(c)[:, None] * m
            w[:, idx] = np.bincount(draws.ravel(), minlength=c * m).reshape(c, m)
        done += c
        yield w


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [a, 1.0 - a])
    return float(lo), float(hi)


@dataclass(frozen=True)
class _Fold:
    train: np.ndarray  # non-FtA training pairs, ascending score
    train_genuine: np.ndarray
    starts: np.ndarray  # group starts of distinct training scores
    values: np.ndarray  # distinct training scores (threshold candidates)
    test: np.ndarray
    test_scores: np.ndarray  # FtA -> -inf (never accepted by a finite threshold)
    test_genuine: np.ndarray


def _prepare_folds(pairs: Pairs, folds: np.ndarray | None) -> list[_Fold]:
    work = np.where(pairs.fta, -np.inf, pairs.scores)
    everything = np.ones(pairs.n, dtype=bool)
    splits = (
        [(everything, everything)]
        if folds is None
        else [(folds != k, folds == k) for k in np.unique(folds)]
    )
    out = []
    for train_mask, test_mask in splits:
        train = np.flatnonzero(train_mask & ~pairs.fta)
        train = train[np.argsort(pairs.scores[train], kind="stable")]
        s = pairs.scores[train]
        first = np.ones(min(s.size, 1), dtype=bool)
        starts = np.flatnonzero(np.concatenate((first, s[1:] != s[:-1])))
        test = np.flatnonzero(test_mask)
        out.append(
            _Fold(
                train,
                pairs.genuine[train],
                starts,
                s[starts],
                test,
                work[test],
                pairs.genuine[test],
            )
        )
    return out


def _kfold_stats(folds: list[_Fold], w: np.ndarray) -> np.ndarray:
    """Mean k-fold accuracy for each row of multiplicities ``w`` (replicates x pairs)."""
    total = np.zeros(w.shape[0])
    for f in folds:
        wt = w[:, f.train]
        signed = np.where(f.train_genuine, -wt, wt)  # impostor rejected: +1, genuine: -1
        prefix = np.cumsum(signed, axis=1, dtype=np.int64)
        gain = np.zeros((w.shape[0], f.starts.size), dtype=np.int64)
        gain[:, 1:] = prefix[:, f.starts[1:] - 1]
        present = (
            np.add.reduceat(wt, f.starts, axis=1) > 0
            if f.starts.size
            else np.zeros(gain.shape, dtype=bool)
        )
        gain[~present] = np.iinfo(np.int64).min
        # first max = smallest candidate; no candidate drawn -> reject everything
        t = np.full(w.shape[0], np.inf)
        drawn = present.any(axis=1)
        if drawn.any():
            t[drawn] = f.values[np.argmax(gain[drawn], axis=1)]
        wte = w[:, f.test]
        correct = (f.test_scores[None, :] >= t[:, None]) == f.test_genuine[None, :]
        total += (wte * correct).sum(axis=1) / wte.sum(axis=1)
    return total / len(folds)


def _accuracy_strata(pairs: Pairs, folds: np.ndarray | None) -> list[np.ndarray]:
    """The accuracy bootstrap's strata: fold x label (label alone without folds)."""
    codes = pairs.genuine.astype(np.int64)
    if folds is not None:
        codes = codes + 2 * np.unique(folds, return_inverse=True)[1]
    return _strata_members(codes)


def kfold_accuracy_replicates(
    pairs: Pairs, folds: np.ndarray | None, replicates: int, seed: int
) -> np.ndarray:
    """Bootstrap distribution of the k-fold (or all-data, ``folds=None``) accuracy."""
    prepared = _prepare_folds(pairs, folds)
    members = _accuracy_strata(pairs, folds)
    return np.concatenate(
        [_kfold_stats(prepared, w) for w in _weight_chunks(members, pairs.n, replicates, seed, 1)]
    )


@dataclass(frozen=True)
class _Ranked:
    order: np.ndarray  # non-FtA pairs, descending score
    genuine: np.ndarray
    ends: np.ndarray  # last position of each distinct score
    n_genuine: int
    n_impostor: int


def _prepare_ranked(pairs: Pairs) -> _Ranked:
    valid = np.flatnonzero(~pairs.fta)
    order = valid[np.argsort(-pairs.scores[valid], kind="stable")]
    s = pairs.scores[order]
    last = np.ones(min(s.size, 1), dtype=bool)
    ends = np.flatnonzero(np.concatenate((s[1:] != s[:-1], last)))
    return _Ranked(order, pairs.genuine[order], ends, pairs.n_genuine, pairs.n_impostor)


def _tar_stats(r: _Ranked, w: np.ndarray, targets: Sequence[float]) -> np.ndarray:
    """TAR@FAR (replicates x targets) for each row of multiplicities ``w``."""
    wv = w[:, r.order]
    gen = np.where(r.genuine, wv, 0)
    # column 0 is the reject-all point; column j + 1 is the j-th distinct score, descending
    tp = np.zeros((w.shape[0], r.ends.size + 1), dtype=np.int64)
    tp[:, 1:] = np.cumsum(gen, axis=1, dtype=np.int64)[:, r.ends]
    far = np.cumsum(wv - gen, axis=1, dtype=np.int64)[:, r.ends] / r.n_impostor
    rows = np.arange(w.shape[0])
    out = np.empty((w.shape[0], len(targets)))
    for j, x in enumerate(targets):
        k = np.count_nonzero(far <= x, axis=1)  # far is non-decreasing along each row
        out[:, j] = tp[rows, k] / r.n_genuine
    return out


def tar_at_far_replicates(
    pairs: Pairs, far_targets: Sequence[float], replicates: int, seed: int
) -> np.ndarray:
    """Bootstrap distribution of TAR@FAR: array (replicates, len(far_targets))."""
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError("TAR@FAR needs both genuine and impostor pairs")
    ranked = _prepare_ranked(pairs)
    members = _strata_members(pairs.genuine.astype(np.int64))
    return np.concatenate(
        [
            _tar_stats(ranked, w, far_targets)
            for w in _weight_chunks(members, pairs.n, replicates, seed, 2)
        ]
    )


def _check_replicates(replicates: int) -> None:
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")


def kfold_accuracy_ci(
    pairs: Pairs, folds: np.ndarray | None, replicates: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the k-fold accuracy for validated inputs."""
    _check_replicates(replicates)
    return _interval(kfold_accuracy_replicates(pairs, folds, replicates, seed), level)


def tar_at_far_ci(
    pairs: Pairs, far_targets: Sequence[float], replicates: int, seed: int, level: float = 0.95
) -> dict[float, tuple[float, float]]:
    """Percentile CI of TAR at each FAR target for validated inputs."""
    _check_replicates(replicates)
    stats = tar_at_far_replicates(pairs, far_targets, replicates, seed)
    return {float(x): _interval(stats[:, j], level) for j, x in enumerate(far_targets)}


def bootstrap_kfold_accuracy(
    scores: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray | None = None,
    fta: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Seeded percentile ``level`` CI (low, high) of the k-fold accuracy."""
    pairs = as_pairs(scores, labels, fta)
    k = None if folds is None else as_folds(folds, pairs.n)
    return kfold_accuracy_ci(pairs, k, replicates, seed, level)


def bootstrap_tar_at_far(
    scores: np.ndarray,
    labels: np.ndarray,
    far_targets: Sequence[float],
    fta: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[float, tuple[float, float]]:
    """Seeded percentile ``level`` CI (low, high) of TAR at each FAR target."""
    return tar_at_far_ci(as_pairs(scores, labels, fta), far_targets, replicates, seed, level)


@dataclass(frozen=True)
class PairedDifference:
    """k-fold accuracy of score set a minus that of b on the same pairs, with its percentile CI.

    ``a`` and ``b`` are the two accuracies (fractions), ``delta = a - b``; ``ci_low``/``ci_high``
    bound ``delta`` over ``replicates`` paired resamples."""

    delta: float
    ci_low: float
    ci_high: float
    replicates: int
    a: float
    b: float


def _paired_replicates(
    a: Pairs, b: Pairs, folds: np.ndarray | None, weights: Iterable[np.ndarray]
) -> np.ndarray:
    """Accuracy(a) - accuracy(b) for each row of each (replicates x pairs) multiplicity matrix
    in ``weights``: one resample weighs both score sets, thresholds re-chosen per fold for each.
    The hook through which the tests feed explicit weights."""
    prepared_a, prepared_b = _prepare_folds(a, folds), _prepare_folds(b, folds)
    return np.concatenate(
        [_kfold_stats(prepared_a, w) - _kfold_stats(prepared_b, w) for w in weights]
    )


def paired_kfold_accuracy_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray | None,
    fta_a: np.ndarray | None = None,
    fta_b: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDifference:
    """k-fold accuracy of ``scores_a`` minus that of ``scores_b``, both scoring the same pairs
    (``labels``, ``folds``; ``folds=None``: one threshold on all the data), with the seeded
    percentile ``level`` CI of the difference.

    Paired: each replicate draws one vector of pair multiplicities (within fold x label strata,
    as :func:`bootstrap_kfold_accuracy`, with the same stream, so a replicate of ``a`` here is
    the replicate of its own accuracy CI) and applies it to both score sets, so the interval
    reflects the two models' disagreement on pairs, not the sampling of pairs each sees alike.
    Identical score sets give exactly [0, 0]."""
    _check_replicates(replicates)
    a = as_pairs(scores_a, labels, fta_a)
    b = as_pairs(scores_b, labels, fta_b)
    k = None if folds is None else as_folds(folds, a.n)
    ones = np.ones((1, a.n), dtype=np.int32)
    acc_a = float(_kfold_stats(_prepare_folds(a, k), ones)[0])
    acc_b = float(_kfold_stats(_prepare_folds(b, k), ones)[0])
    draws = _weight_chunks(_accuracy_strata(a, k), a.n, replicates, seed, 1)
    lo, hi = _interval(_paired_replicates(a, b, k, draws), level)
    return PairedDifference(acc_a - acc_b, lo, hi, replicates, acc_a, acc_b)
