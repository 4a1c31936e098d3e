"""The identity (cluster) bootstrap: a hand-built case computed directly, every replicate of
TAR@FAR against a definition-level loop over weighted pairs, and the paired TAR difference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facebench.metrics import bootstrap as bs
from facebench.metrics._inputs import as_pairs


def test_hand_built_weights_and_totals() -> None:
    # identities A (images 0, 1), B (2, 3), C (4): every pair of the five images
    ident = np.array([0, 0, 1, 1, 2])
    i, j = map(np.array, zip(*itertools.combinations(range(5), 2), strict=True))
    ids = bs._as_ids((ident[i], ident[j]), i.size)
    m = np.array([[2, 0, 1]])  # A drawn twice, B never, C once
    w = bs._pair_weights(ids, m)[0]
    want = {(0, 1): 2, (2, 3): 0, (0, 4): 2, (1, 4): 2, (2, 4): 0}  # the rest: A x B = 0
    for p, (a, b) in enumerate(zip(i, j, strict=True)):
        assert w[p] == want.get((a, b), 0), (a, b)
    genuine = ident[i] == ident[j]
    gen_total, imp_total = bs._class_totals(as_pairs(np.zeros(i.size), genuine), ids)
    assert gen_total(m)[0] == 2 and imp_total(m)[0] == 4
    # TAR@FAR=0.5 by hand: genuine scores 0.9 (A, weight 2), 0.1 (B, weight 0); impostors
    # A-C 0.8, 0.3 (weight 2 each), the rest weight 0. FAR <= 0.5 of 4 -> at most 2 accepted:
    # the threshold rejects 0.3, so TAR = (A's 0.9 accepted) 2 / 2 = 1.0
    s = np.zeros(i.size)
    s[(i == 0) & (j == 1)], s[(i == 2) & (j == 3)] = 0.9, 0.1
    s[(i == 0) & (j == 4)], s[(i == 1) & (j == 4)] = 0.8, 0.3
    side = bs._TarSide(as_pairs(s, genuine))
    got = side.stats(ids, m, [0.5, 0.2], gen_total(m), imp_total(m))
    assert got[0, 0] == 1.0
    assert got[0, 1] == 1.0  # FAR <= 0.2 of 4: none accepted -> threshold above 0.8; 0.9 > 0.8


def _direct_tar(s: np.ndarray, y: np.ndarray, fta: np.ndarray, w: np.ndarray, x: float) -> float:
    """TAR at the smallest candidate threshold whose weighted FAR <= x, from the definition."""
    gen, imp = float((w * (y == 1)).sum()), float((w * (y == 0)).sum())
    for t in np.concatenate((np.unique(s[~fta]), [np.inf])):
        acc = (s >= t) & ~fta
        if (w * acc * (y == 0)).sum() / imp <= x:
            return float((w * acc * (y == 1)).sum() / gen)
    raise AssertionError("unreachable: the reject-all threshold has FAR 0")


@pytest.fixture(scope="module")
def exhaustive_case() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    ident = np.repeat(np.arange(30), rng.integers(1, 5, 30))
    i, j = np.triu_indices(ident.size, 1)
    y = (ident[i] == ident[j]).astype(int)
    s = np.round(rng.normal(size=i.size) + 2 * y, 1)  # ties on purpose
    fta = rng.random(i.size) < 0.02
    s[fta] = np.nan
    return s, y, fta, ident[i] * 7 + 3, ident[j] * 7 + 3  # arbitrary integer codes


def test_identity_replicates_equal_direct_computation(exhaustive_case) -> None:  # type: ignore[no-untyped-def]
    s, y, fta, ida, idb = exhaustive_case
    targets = [1e-3, 1e-2, 0.1, 0.5]
    got = bs.tar_at_far_replicates(as_pairs(s, y, fta), targets, 40, 5, (ida, idb))
    ids = bs._as_ids((ida, idb), s.size)
    m = np.concatenate(list(bs._identity_draws([np.arange(ids.k)], ids.k, 40, 5, 2,
                                               bs.IDENTITY_CHUNK)))
    w = bs._pair_weights(ids, m)
    for r in range(0, 40, 7):
        for c, x in enumerate(targets):
            assert got[r, c] == pytest.approx(_direct_tar(s, y, fta, w[r], x), abs=1e-12)


def test_identity_ci_seeded_and_method_named(exhaustive_case) -> None:  # type: ignore[no-untyped-def]
    s, y, fta, ida, idb = exhaustive_case
    one = bs.bootstrap_tar_at_far(s, y, [0.1], fta, 200, 1, identities=(ida, idb))
    assert one == bs.bootstrap_tar_at_far(s, y, [0.1], fta, 200, 1, identities=(ida, idb))
    pair = bs.bootstrap_tar_at_far(s, y, [0.1], fta, 200, 1)
    assert one != pair
    lo, hi = one[0.1]
    assert 0 <= lo <= hi <= 1
    acc = bs.bootstrap_kfold_accuracy(s, y, None, fta, 100, 0, identities=(ida, idb))
    assert 0 < acc[0] <= acc[1] <= 1
    assert bs.method_of((ida, idb)) == "identity" and bs.method_of(None) == "pair"


def test_identity_strata_follow_identity_disjoint_folds() -> None:
    ida = np.array([0, 0, 1, 2, 2, 3])
    folds = np.array([0, 0, 0, 1, 1, 1])
    ids = bs._as_ids((ida, ida), 6)
    strata = bs._identity_strata(ids, folds)
    assert [set(x.tolist()) for x in strata] == [{0, 1}, {2, 3}]
    mixed = bs._identity_strata(ids, np.array([0, 1, 0, 1, 1, 1]))  # identity 0 in two folds
    assert len(mixed) == 1


def test_paired_tar_difference(exhaustive_case) -> None:  # type: ignore[no-untyped-def]
    s, y, fta, ida, idb = exhaustive_case
    same = bs.paired_tar_at_far_difference(s, s.copy(), y, [0.01, 0.1], fta, fta, 100,
                                           identities=(ida, idb))
    assert [(d.delta, d.ci_low, d.ci_high) for d in same] == [(0.0, 0.0, 0.0)] * 2
    assert all(d.method == "identity" for d in same) and [d.far for d in same] == [0.01, 0.1]
    better = np.where(y == 1, s + 0.5, s)  # genuine scores lifted: TAR rises at every FAR
    d = bs.paired_tar_at_far_difference(better, s, y, [0.1], fta, fta, 200,
                                        identities=(ida, idb))[0]
    assert d.delta > 0 and d.ci_low > 0 and d.ci_low <= d.delta <= d.ci_high
    a = bs.bootstrap_tar_at_far(better, y, [0.1], fta, 200, 0, identities=(ida, idb))[0.1]
    assert a[0] <= d.a <= a[1]
    pair = bs.paired_tar_at_far_difference(better, s, y, [0.1], fta, fta, 200)[0]
    assert pair.method == "pair" and pair.delta == d.delta
