"""Seeded percentile-bootstrap confidence intervals for k-fold accuracy and TAR@FAR, and for the
differences in k-fold accuracy and in TAR@FAR of two score sets on the same pairs (paired).

Two resampling methods (every public function takes ``identities``):

* **pair** (``identities=None``): each replicate resamples pairs with replacement *within strata*,
  so the protocol's design is kept: for accuracy the strata are fold x label (LFW: every fold
  keeps 300 genuine + 300 impostor), for TAR@FAR the two labels (N_gen and N_imp fixed).
* **identity** (``identities=(id_a, id_b)``, integer identity codes of each pair's two sides):
  the cluster ("subsets") bootstrap of Bolle, Ratha & Pankanti (2004). Each replicate draws the
  identities with replacement (within folds for accuracy when the folds are identity-disjoint,
  as LFW's are); identity ``A`` drawn ``m_A`` times brings all its pairs: a same-identity pair of
  ``A`` counts ``m_A`` times, a pair of ``A`` and ``B != A`` counts ``m_A * m_B`` times (both
  subjects must be drawn). Pairs sharing a subject move together, so the interval reflects the
  correlation the pair bootstrap ignores; N_gen and N_imp vary between replicates and every rate
  divides by the replicate's own totals.

A replicate is a vector of per-pair multiplicities; every statistic is recomputed on it exactly
as on the data (thresholds re-chosen per fold, ties toward the smallest candidate), vectorised
over chunks of replicates so memory stays linear in the number of pairs. TAR@FAR under the
identity method never builds the multiplicities of every impostor: see
:func:`tar_at_far_identity_replicates`. The same seed gives the same interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facebench.metrics._inputs import Pairs, as_folds, as_pairs
from facebench.metrics.roc import eer, roc_from_pairs, tar_at_far

#: Replicates per chunk are chosen so that a chunk holds about this many per-pair counts.
CHUNK_ELEMENTS = 2_000_000

#: Per-pair identity codes of side a and side b (same length as the scores), or None.
Identities = tuple[np.ndarray, np.ndarray]
Method = Literal["pair", "identity"]
#: How each method resamples, for the results (``details.bootstrap.resampling``).
RESAMPLING: dict[str, str] = {
    "pair": "pairs with replacement within each fold x label stratum (accuracy) / within each "
            "label (TAR@FAR)",
    "identity": "identities with replacement (within each fold when the folds are "
                "identity-disjoint); an identity drawn m times brings all its pairs: a "
                "same-identity pair counts m times, a pair of identities A and B m_A x m_B "
                "times (cluster / subsets bootstrap, Bolle, Ratha & Pankanti 2004)",
}


def method_of(identities: Identities | None) -> Method:
    """The resampling method a call with these ``identities`` uses."""
    return "pair" if identities is None else "identity"


def _strata_members(codes: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return np.split(order, bounds)


def _stratified_counts(rng: np.random.Generator, members: list[np.ndarray], n: int,
                       replicates: int, per_chunk: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n) int32 multiplicity matrices, ``per_chunk`` replicates at a time: each
    stratum (an index array of ``members``) resampled with replacement, keeping its size."""
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


def _weight_chunks(
    members: list[np.ndarray], n: int, replicates: int, seed: int, stream: int
) -> Iterator[np.ndarray]:
    """Yield (chunk, n) int32 pair multiplicity matrices; each stratum keeps its size."""
    return _stratified_counts(np.random.default_rng([seed, stream]), members, n, replicates,
                              max(1, CHUNK_ELEMENTS // max(n, 1)))


def _interval(stats: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval; replicates where the statistic is undefined (NaN: e.g. a replicate
    that drew no genuine pair) are left out."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a = (1.0 - level) / 2.0
    finite = stats[~np.isnan(stats)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [a, 1.0 - a])
    return float(lo), float(hi)


# ---- identity (cluster) resampling -------------------------------------------------------------


@dataclass(frozen=True)
class _Ids:
    """Per-pair identity codes 0..k-1 of both sides (recoded jointly, so equal names share one
    code) and which pairs join one identity with itself."""

    a: np.ndarray
    b: np.ndarray
    k: int
    same: np.ndarray


def _recode(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Joint codes 0..k-1 of two integer arrays, in O(n) when their values are small
    non-negative integers (the usual identity codes), else by sorting."""
    lo = min(int(x.min()), int(y.min())) if x.size else 0
    hi = max(int(x.max()), int(y.max())) if x.size else 0
    if lo >= 0 and hi < 2**27:
        present = np.zeros(hi + 1, dtype=bool)
        present[x] = True
        present[y] = True
        table = (np.cumsum(present) - 1).astype(np.int32)
        return table[x], table[y], int(present.sum())
    codes, inverse = np.unique(np.concatenate((x, y)), return_inverse=True)
    inverse = inverse.astype(np.int32)
    return inverse[: x.size], inverse[x.size:], int(codes.size)


def _as_ids(identities: Identities, n: int) -> _Ids:
    if not (isinstance(identities, tuple | list) and len(identities) == 2):
        raise ValueError("identities must be a pair (id_a, id_b) of per-pair identity codes")
    a, b = (np.asarray(x) for x in identities)
    for name, x in (("id_a", a), ("id_b", b)):
        if x.shape != (n,):
            raise ValueError(f"identities: {name} shape {x.shape} does not match scores ({n},)")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"identities: {name} must be integer identity codes, got {x.dtype}")
    ca, cb, k = _recode(a, b)
    return _Ids(ca, cb, k, ca == cb)


def _identity_strata(ids: _Ids, folds: np.ndarray | None) -> list[np.ndarray]:
    """Identity codes drawn together: one stratum per fold when every identity's pairs lie in
    one fold (identity-disjoint folds, as LFW View 2's), else all identities."""
    everyone = [np.arange(ids.k)]
    if folds is None:
        return everyone
    fold_of = np.full(ids.k, -1, dtype=np.int64)
    f = np.concatenate((folds, folds)).astype(np.int64)
    who = np.concatenate((ids.a, ids.b))
    fold_of[who] = f
    if np.any(fold_of[who] != f):  # an identity in two folds: draw identities over all folds
        return everyone
    return [np.flatnonzero(fold_of == v) for v in np.unique(fold_of)]


def _identity_draws(strata: list[np.ndarray], k: int, replicates: int, seed: int, stream: int,
                    per_chunk: int) -> Iterator[np.ndarray]:
    """Yield (chunk, k) int32 identity multiplicities; each stratum keeps its size."""
    return _stratified_counts(np.random.default_rng([seed, stream, 7]), strata, k, replicates,
                              per_chunk)


def _pair_weights(ids: _Ids, m: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Multiplicity of each pair (or of ``rows`` only) under identity multiplicities ``m``."""
    a, b, same = (ids.a, ids.b, ids.same) if rows is None else (
        ids.a[rows], ids.b[rows], ids.same[rows])
    w = m[:, a].astype(np.int64)
    if not same.all():
        w = np.where(same[None, :], w, w * m[:, b])
    return w


class _ClassTotal:
    """Sum of pair multiplicities over one set of pairs, for identity multiplicities ``m``:
    ``same`` pairs add ``m_A`` (a bincount dot), cross pairs ``m_A m_B`` (a quadratic form over
    the identity-pair count matrix, dense when it is small, sparse otherwise)."""

    DENSE_MAX = 8192

    def __init__(self, ids: _Ids, members: np.ndarray) -> None:
        """``members``: boolean mask of the pairs summed."""
        same = members & ids.same
        self.linear = np.bincount(ids.a[same], minlength=ids.k).astype(np.float64)
        del same
        cross = members & ~ids.same
        a, b = ids.a[cross], ids.b[cross]
        del cross
        lo = np.minimum(a, b).astype(np.int64)
        hi = np.maximum(a, b)
        del a, b
        self.matrix: object | None = None
        if lo.size == 0:
            return
        if ids.k <= self.DENSE_MAX:
            lo *= ids.k
            lo += hi
            flat = np.bincount(lo, minlength=ids.k * ids.k)
            self.matrix = flat.reshape(ids.k, ids.k).astype(np.float64)
        else:
            from scipy.sparse import coo_matrix  # optional heavy dependency, large sets only

            ones = np.ones(lo.size, dtype=np.float64)
            self.matrix = coo_matrix((ones, (lo, hi)), shape=(ids.k, ids.k)).tocsr()

    def __call__(self, m: np.ndarray) -> np.ndarray:
        mf = m.astype(np.float64)
        total = mf @ self.linear
        if self.matrix is not None:
            total += np.einsum("ck,kc->c", mf, self.matrix @ mf.T)  # type: ignore[operator]
        return np.rint(total).astype(np.int64)


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
        with np.errstate(invalid="ignore", divide="ignore"):  # a fold drawn empty: NaN
            total += (wte * correct).sum(axis=1) / wte.sum(axis=1)
    return total / len(folds)


def _row_blocks(rows: int, width: int) -> Iterator[slice]:
    """Slices of ``rows`` replicates whose (block x width) matrices hold ~CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    for lo in range(0, rows, step):
        yield slice(lo, min(rows, lo + step))


#: Identity multiplicities are drawn this many replicates at a time (a fixed number, so that a
#: seed gives the same replicates whatever the data's size).
IDENTITY_CHUNK = 64


def _identity_accuracy(prepared: list[_Fold], ids: _Ids, m: np.ndarray) -> np.ndarray:
    return np.concatenate([_kfold_stats(prepared, _pair_weights(ids, m[blk]))
                           for blk in _row_blocks(m.shape[0], ids.a.size)])


def _accuracy_strata(pairs: Pairs, folds: np.ndarray | None) -> list[np.ndarray]:
    """The accuracy bootstrap's strata: fold x label (label alone without folds)."""
    codes = pairs.genuine.astype(np.int64)
    if folds is not None:
        codes = codes + 2 * np.unique(folds, return_inverse=True)[1]
    return _strata_members(codes)


def kfold_accuracy_replicates(
    pairs: Pairs, folds: np.ndarray | None, replicates: int, seed: int,
    identities: Identities | None = None,
) -> np.ndarray:
    """Bootstrap distribution of the k-fold (or all-data, ``folds=None``) accuracy."""
    prepared = _prepare_folds(pairs, folds)
    if identities is not None:
        ids = _as_ids(identities, pairs.n)
        draws = _identity_draws(_identity_strata(ids, folds), ids.k, replicates, seed, 1,
                                IDENTITY_CHUNK)
        return np.concatenate([_identity_accuracy(prepared, ids, m) for m in draws])
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


def _tar_stats(r: _Ranked, w: np.ndarray, targets: Sequence[float],
               totals: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """TAR@FAR (replicates x targets) for each row of multiplicities ``w``; ``totals``: each
    row's (genuine, impostor) multiplicity sums, FtA pairs included (default: the data's)."""
    wv = w[:, r.order]
    gen = np.where(r.genuine, wv, 0)
    n_gen, n_imp = (r.n_genuine, r.n_impostor) if totals is None else (
        totals[0][:, None], totals[1][:, None])
    # column 0 is the reject-all point; column j + 1 is the j-th distinct score, descending
    tp = np.zeros((w.shape[0], r.ends.size + 1), dtype=np.int64)
    tp[:, 1:] = np.cumsum(gen, axis=1, dtype=np.int64)[:, r.ends]
    with np.errstate(invalid="ignore", divide="ignore"):
        far = np.cumsum(wv - gen, axis=1, dtype=np.int64)[:, r.ends] / n_imp
        rows = np.arange(w.shape[0])
        out = np.empty((w.shape[0], len(targets)))
        for j, x in enumerate(targets):
            k = np.count_nonzero(far <= x, axis=1)  # far is non-decreasing along each row
            out[:, j] = tp[rows, k] / (n_gen if totals is None else totals[0])
    return out


def _eer_from_counts(tp: np.ndarray, fp: np.ndarray, n_gen: np.ndarray,
                     n_imp: np.ndarray) -> np.ndarray:
    """EER per row from cumulative weighted counts at each candidate (columns: candidates in
    descending score order): (FAR + FRR) / 2 where |FAR - FRR| is smallest, ties to the
    smallest threshold (the last column among the minima), as :func:`roc.eer`."""
    g, i = n_gen[:, None], n_imp[:, None]
    gap = np.abs(fp * g - (g - tp) * i)  # |FAR - FRR| x N_gen x N_imp, exact integers
    last = gap.shape[1] - 1 - np.argmin(gap[:, ::-1], axis=1)
    rows = np.arange(gap.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        far = fp[rows, last] / n_imp
        frr = (n_gen - tp[rows, last]) / n_gen
        out = (far + frr) / 2.0
    out[(n_gen == 0) | (n_imp == 0)] = np.nan
    return out


def _eer_stats(r: _Ranked, w: np.ndarray, totals: tuple[np.ndarray, np.ndarray] | None = None
               ) -> np.ndarray:
    """EER for each row of multiplicities ``w`` (every pair weighed)."""
    wv = w[:, r.order]
    gen = np.where(r.genuine, wv, 0)
    if totals is None:
        totals = (np.full(w.shape[0], r.n_genuine), np.full(w.shape[0], r.n_impostor))
    tp = np.cumsum(gen, axis=1, dtype=np.int64)[:, r.ends]
    fp = np.cumsum(wv - gen, axis=1, dtype=np.int64)[:, r.ends]
    if r.ends.size == 0:
        return np.full(w.shape[0], np.nan)
    return _eer_from_counts(tp, fp, totals[0].astype(np.int64), totals[1].astype(np.int64))


class _TarSide:
    """One score set prepared for the identity bootstrap of TAR@FAR without the multiplicities
    of every impostor: the valid genuine pairs ascending, and on demand the ``t`` highest
    valid impostor scores (every tie of the last one included) descending."""

    def __init__(self, pairs: Pairs) -> None:
        valid = ~pairs.fta
        g = np.flatnonzero(valid & pairs.genuine)
        self.g_rows = g[np.argsort(pairs.scores[g], kind="stable")]
        self.g_scores = pairs.scores[self.g_rows]
        self.pairs = pairs
        self.imp_mask = valid & ~pairs.genuine
        self.n_imp_valid = int(np.count_nonzero(self.imp_mask))
        self._top: tuple[int, np.ndarray, np.ndarray, bool] | None = None

    def top(self, t: int) -> tuple[np.ndarray, np.ndarray, bool]:
        """(rows descending by score, last position of each distinct score, all included)."""
        if self._top is not None and self._top[0] == t:
            return self._top[1:]
        s = self.pairs.scores
        if t >= self.n_imp_valid:
            rows = np.flatnonzero(self.imp_mask)
        else:
            values = s[self.imp_mask]
            kth = np.partition(values, values.size - t)[values.size - t]
            del values
            rows = np.flatnonzero(self.imp_mask & (s >= kth))
        rows = rows[np.argsort(-s[rows], kind="stable")]
        v = s[rows]
        ends = np.flatnonzero(np.concatenate((v[1:] != v[:-1], np.ones(min(v.size, 1), bool))))
        self._top = (t, rows, ends, rows.size == self.n_imp_valid)
        return rows, ends, rows.size == self.n_imp_valid

    def stats(self, ids: _Ids, m: np.ndarray, targets: Sequence[float], gen_tot: np.ndarray,
              imp_tot: np.ndarray) -> np.ndarray:
        """TAR@FAR (rows of ``m`` x targets): per replicate, the threshold rejects the highest
        impostor score group whose cumulative weighted FAR exceeds the target, and everything
        below it (the same rule as :func:`_tar_stats`)."""
        c = m.shape[0]
        cut = np.full((c, len(targets)), np.nan)  # s*: accept scores > s*
        todo = np.arange(c)
        xmax = max(targets)
        t = int(min(self.n_imp_valid, max(1024, 4 * xmax * self.pairs.n_impostor + 1024)))
        while todo.size:
            rows, ends, complete = self.top(t)
            for blk in _row_blocks(todo.size, rows.size):
                r = todo[blk]
                wi = _pair_weights(ids, m[r], rows)
                with np.errstate(invalid="ignore", divide="ignore"):
                    far = np.cumsum(wi, axis=1, dtype=np.int64)[:, ends] / imp_tot[r, None]
                del wi
                for j, x in enumerate(targets):
                    k = np.count_nonzero(far <= x, axis=1)
                    inside = k < ends.size
                    vals = np.full(r.size, -np.inf if complete else np.nan)
                    vals[inside] = self.pairs.scores[rows[ends[k[inside]]]]
                    cut[r, j] = vals
            todo = todo[np.isnan(cut[todo]).any(axis=1)]
            t = min(self.n_imp_valid, 4 * t)
        out = np.empty((c, len(targets)))
        for blk in _row_blocks(c, self.g_rows.size):
            wg = _pair_weights(ids, m[blk], self.g_rows)
            cum = np.zeros((wg.shape[0], wg.shape[1] + 1), dtype=np.int64)
            np.cumsum(wg, axis=1, out=cum[:, 1:])
            rr = np.arange(wg.shape[0])
            for j in range(len(targets)):
                p = np.searchsorted(self.g_scores, cut[blk, j], side="right")
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[blk, j] = (cum[:, -1] - cum[rr, p]) / gen_tot[blk]
        out[imp_tot == 0] = np.nan  # no impostor drawn: FAR undefined
        return out


def _eer_window(side: _TarSide, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The candidates an EER can use with the ``t`` highest impostors known: those rows and
    every valid genuine pair scoring at least the lowest of them, descending, with the ends
    of distinct-score groups and which merged rows are genuine."""
    rows, _, complete = side.top(t)
    s = side.pairs.scores
    g = side.g_rows
    if not complete and rows.size:
        g = g[s[g] >= s[rows[-1]]]
    merged = np.concatenate((rows, g))
    merged = merged[np.argsort(-s[merged], kind="stable")]
    v = s[merged]
    ends = np.flatnonzero(np.concatenate((v[1:] != v[:-1], np.ones(min(v.size, 1), bool))))
    return merged, ends, side.pairs.genuine[merged], complete


def _eer_identity(side: _TarSide, ids: _Ids, m: np.ndarray, gen_tot: np.ndarray,
                  imp_tot: np.ndarray, start: int) -> np.ndarray:
    """EER per row of identity multiplicities ``m``, weighing the valid genuine pairs and the
    highest impostors only: the window grows fourfold until FAR exceeds FRR at its lowest
    candidate (below it |FAR - FRR| only grows), so each replicate's minimum lies inside."""
    out = np.full(m.shape[0], np.nan)
    todo = np.arange(m.shape[0])
    t = int(min(side.n_imp_valid, max(1, start)))
    g64, i64 = gen_tot.astype(np.int64), imp_tot.astype(np.int64)
    while todo.size:
        merged, ends, is_gen, complete = _eer_window(side, t)
        if ends.size == 0:
            break
        for blk in _row_blocks(todo.size, merged.size):
            r = todo[blk]
            wv = _pair_weights(ids, m[r], merged)
            gen = np.where(is_gen, wv, 0)
            tp = np.cumsum(gen, axis=1, dtype=np.int64)[:, ends]
            fp = np.cumsum(wv - gen, axis=1, dtype=np.int64)[:, ends]
            del wv, gen
            vals = _eer_from_counts(tp, fp, g64[r], i64[r])
            # resolved when FAR > FRR at the lowest candidate by more than the smallest gap
            # seen: below the window |FAR - FRR| only grows, so no lower candidate can tie
            d = fp * g64[r][:, None] - (g64[r][:, None] - tp) * i64[r][:, None]
            inside = complete | (d[:, -1] > np.abs(d).min(axis=1))
            del d
            out[r[inside]] = vals[inside]
            out[r[~inside]] = np.inf  # not resolved: grow the window
        todo = todo[np.isinf(out[todo])]
        t = min(side.n_imp_valid, 4 * t)
    return out


def eer_replicates(pairs: Pairs, replicates: int, seed: int,
                   identities: Identities | None = None) -> np.ndarray:
    """Bootstrap distribution of the EER. Pair method: every pair weighed (within label
    strata). Identity method: the genuine pairs and, of the impostors, a window of the highest
    scores sized from the data's own EER (fast on tens of millions of pairs; exact)."""
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError("EER needs both genuine and impostor pairs")
    if identities is None:
        ranked = _prepare_ranked(pairs)
        members = _strata_members(pairs.genuine.astype(np.int64))
        return np.concatenate([_eer_stats(ranked, w)
                               for w in _weight_chunks(members, pairs.n, replicates, seed, 3)])
    ids = _as_ids(identities, pairs.n)
    gen_total, imp_total = _class_totals(pairs, ids)
    side = _TarSide(pairs)
    point = eer(roc_from_pairs(pairs)).far if (~pairs.fta).any() else 1.0
    start = int(2 * point * pairs.n_impostor) + 1024
    out = [_eer_identity(side, ids, m, gen_total(m), imp_total(m), start)
           for m in _identity_draws([np.arange(ids.k)], ids.k, replicates, seed, 3,
                                    IDENTITY_CHUNK)]
    return np.concatenate(out)


def eer_ci(pairs: Pairs, replicates: int, seed: int, level: float = 0.95,
           identities: Identities | None = None) -> tuple[float, float]:
    """Percentile CI of the EER for validated inputs."""
    _check_replicates(replicates)
    return _interval(eer_replicates(pairs, replicates, seed, identities), level)


def bootstrap_eer(scores: np.ndarray, labels: np.ndarray, fta: np.ndarray | None = None,
                  replicates: int = 1000, seed: int = 0, level: float = 0.95,
                  identities: Identities | None = None) -> tuple[float, float]:
    """Seeded percentile ``level`` CI (low, high) of the EER; ``identities`` as
    :func:`bootstrap_kfold_accuracy`."""
    return eer_ci(as_pairs(scores, labels, fta), replicates, seed, level, identities)


def _class_totals(pairs: Pairs, ids: _Ids) -> tuple[_ClassTotal, _ClassTotal]:
    return _ClassTotal(ids, pairs.genuine), _ClassTotal(ids, ~pairs.genuine)


def tar_at_far_identity_replicates(
    sides: Sequence[Pairs], far_targets: Sequence[float], replicates: int, seed: int,
    identities: Identities,
) -> list[np.ndarray]:
    """Identity-bootstrap distributions of TAR@FAR (replicates x targets), one per score set in
    ``sides`` (all scoring the same pairs), every set weighed by the same replicates.

    Fast on tens of millions of pairs: a replicate's N_gen and N_imp are sums over identities
    (a bincount dot and a quadratic form over the identity-pair count matrix, never a sum over
    pairs), the genuine pairs are weighed one by one, and of the impostors only the highest
    ``4 x max(FAR) x N_imp + 1024`` scores are weighed: the threshold for a target lies among
    them unless a replicate's weights push it deeper, in which case the list grows fourfold
    and that replicate is redone (exact either way)."""
    if not far_targets:
        return [np.empty((replicates, 0)) for _ in sides]
    first = sides[0]
    if first.n_genuine == 0 or first.n_impostor == 0:
        raise ValueError("TAR@FAR needs both genuine and impostor pairs")
    ids = _as_ids(identities, first.n)
    gen_total, imp_total = _class_totals(first, ids)
    prepared = [_TarSide(p) for p in sides]
    outs: list[list[np.ndarray]] = [[] for _ in sides]
    for m in _identity_draws([np.arange(ids.k)], ids.k, replicates, seed, 2, IDENTITY_CHUNK):
        g, i = gen_total(m), imp_total(m)
        for side, out in zip(prepared, outs, strict=True):
            out.append(side.stats(ids, m, far_targets, g, i))
    return [np.concatenate(o) for o in outs]


def tar_at_far_replicates(
    pairs: Pairs, far_targets: Sequence[float], replicates: int, seed: int,
    identities: Identities | None = None,
) -> np.ndarray:
    """Bootstrap distribution of TAR@FAR: array (replicates, len(far_targets))."""
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError("TAR@FAR needs both genuine and impostor pairs")
    if identities is not None:
        return tar_at_far_identity_replicates([pairs], far_targets, replicates, seed,
                                              identities)[0]
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
    pairs: Pairs, folds: np.ndarray | None, replicates: int, seed: int, level: float = 0.95,
    identities: Identities | None = None,
) -> tuple[float, float]:
    """Percentile CI of the k-fold accuracy for validated inputs."""
    _check_replicates(replicates)
    return _interval(kfold_accuracy_replicates(pairs, folds, replicates, seed, identities), level)


def tar_at_far_ci(
    pairs: Pairs, far_targets: Sequence[float], replicates: int, seed: int, level: float = 0.95,
    identities: Identities | None = None,
) -> dict[float, tuple[float, float]]:
    """Percentile CI of TAR at each FAR target for validated inputs."""
    _check_replicates(replicates)
    stats = tar_at_far_replicates(pairs, far_targets, replicates, seed, identities)
    return {float(x): _interval(stats[:, j], level) for j, x in enumerate(far_targets)}


def bootstrap_kfold_accuracy(
    scores: np.ndarray,
    labels: np.ndarray,
    folds: np.ndarray | None = None,
    fta: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    identities: Identities | None = None,
) -> tuple[float, float]:
    """Seeded percentile ``level`` CI (low, high) of the k-fold accuracy; ``identities``:
    per-pair identity codes (id_a, id_b) for the identity bootstrap, None for the pair
    bootstrap (module docstring)."""
    pairs = as_pairs(scores, labels, fta)
    k = None if folds is None else as_folds(folds, pairs.n)
    return kfold_accuracy_ci(pairs, k, replicates, seed, level, identities)


def bootstrap_tar_at_far(
    scores: np.ndarray,
    labels: np.ndarray,
    far_targets: Sequence[float],
    fta: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    identities: Identities | None = None,
) -> dict[float, tuple[float, float]]:
    """Seeded percentile ``level`` CI (low, high) of TAR at each FAR target; ``identities``
    as :func:`bootstrap_kfold_accuracy`."""
    return tar_at_far_ci(as_pairs(scores, labels, fta), far_targets, replicates, seed, level,
                         identities)


@dataclass(frozen=True)
class PairedDifference:
    """A statistic of score set a minus that of b on the same pairs, with its percentile CI.

    ``a`` and ``b`` are the two values (fractions), ``delta = a - b``; ``ci_low``/``ci_high``
    bound ``delta`` over ``replicates`` paired resamples. ``far``: the FAR target for a TAR
    difference (None for accuracy); ``method``: ``pair`` or ``identity`` resampling."""

    delta: float
    ci_low: float
    ci_high: float
    replicates: int
    a: float
    b: float
    far: float | None = None
    method: str = "pair"


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


def _identity_weights(ids: _Ids, strata: list[np.ndarray], replicates: int, seed: int,
                      stream: int) -> Iterator[np.ndarray]:
    """Per-pair multiplicity matrices of identity replicates (blocks of bounded size)."""
    for m in _identity_draws(strata, ids.k, replicates, seed, stream, IDENTITY_CHUNK):
        for blk in _row_blocks(m.shape[0], ids.a.size):
            yield _pair_weights(ids, m[blk])


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
    identities: Identities | None = None,
) -> PairedDifference:
    """k-fold accuracy of ``scores_a`` minus that of ``scores_b``, both scoring the same pairs
    (``labels``, ``folds``; ``folds=None``: one threshold on all the data), with the seeded
    percentile ``level`` CI of the difference.

    Paired: each replicate draws one vector of pair multiplicities (pair method: within fold x
    label strata, as :func:`bootstrap_kfold_accuracy`, with the same stream, so a replicate of
    ``a`` here is the replicate of its own accuracy CI; identity method: from one draw of
    identities, as there) and applies it to both score sets, so the interval reflects the two
    models' disagreement on pairs, not the sampling of pairs each sees alike. Identical score
    sets give exactly [0, 0]. Every pair is weighed in every replicate: meant for protocols of
    up to a few hundred thousand pairs (View 2, drawn pairs), not for exhaustive sets."""
    _check_replicates(replicates)
    a = as_pairs(scores_a, labels, fta_a)
    b = as_pairs(scores_b, labels, fta_b)
    k = None if folds is None else as_folds(folds, a.n)
    ones = np.ones((1, a.n), dtype=np.int32)
    acc_a = float(_kfold_stats(_prepare_folds(a, k), ones)[0])
    acc_b = float(_kfold_stats(_prepare_folds(b, k), ones)[0])
    if identities is None:
        draws: Iterable[np.ndarray] = _weight_chunks(_accuracy_strata(a, k), a.n, replicates,
                                                     seed, 1)
    else:
        ids = _as_ids(identities, a.n)
        draws = _identity_weights(ids, _identity_strata(ids, k), replicates, seed, 1)
    lo, hi = _interval(_paired_replicates(a, b, k, draws), level)
    return PairedDifference(acc_a - acc_b, lo, hi, replicates, acc_a, acc_b,
                            method=method_of(identities))


def paired_tar_at_far_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    labels: np.ndarray,
    far_targets: Sequence[float],
    fta_a: np.ndarray | None = None,
    fta_b: np.ndarray | None = None,
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    identities: Identities | None = None,
) -> list[PairedDifference]:
    """TAR(a) - TAR(b) at each FAR target (one :class:`PairedDifference` per target, in
    order), each side's threshold set on its own impostors, both scoring the same pairs; the
    seeded percentile ``level`` CI from one resample applied to both sides (the same stream
    as :func:`bootstrap_tar_at_far`, so each side's replicates are those of its own CI).

    Pair method: every pair weighed (small protocols). Identity method: fast on tens of
    millions of pairs, weighing the genuine pairs and only the highest impostor scores of each
    side (:func:`tar_at_far_identity_replicates`)."""
    _check_replicates(replicates)
    a = as_pairs(scores_a, labels, fta_a)
    b = as_pairs(scores_b, labels, fta_b)
    if b.n != a.n:
        raise ValueError(f"scores_b has {b.n} pairs, scores_a {a.n}: both must score the same")
    targets = [float(x) for x in far_targets]
    if a.n_genuine == 0 or a.n_impostor == 0:
        raise ValueError("TAR@FAR needs both genuine and impostor pairs")
    roc_a, roc_b = roc_from_pairs(a), roc_from_pairs(b)
    point_a = [float(tar_at_far(roc_a, x).tar) for x in targets]  # type: ignore[arg-type]
    point_b = [float(tar_at_far(roc_b, x).tar) for x in targets]  # type: ignore[arg-type]
    if identities is None:
        ra, rb = _prepare_ranked(a), _prepare_ranked(b)
        members = _strata_members(a.genuine.astype(np.int64))
        diffs = np.concatenate([_tar_stats(ra, w, targets) - _tar_stats(rb, w, targets)
                                for w in _weight_chunks(members, a.n, replicates, seed, 2)])
    else:
        sa, sb = tar_at_far_identity_replicates([a, b], targets, replicates, seed, identities)
        diffs = sa - sb
    method = method_of(identities)
    out = []
    for j, x in enumerate(targets):
        lo, hi = _interval(diffs[:, j], level)
        out.append(PairedDifference(point_a[j] - point_b[j], lo, hi, replicates, point_a[j],
                                    point_b[j], far=x, method=method))
    return out
