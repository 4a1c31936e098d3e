"""Paired bootstrap of the k-fold accuracy difference of two score sets on the same pairs,
checked against the k-fold accuracy itself, the unpaired replicates and a brute-force reference
(plain Python loops in tests/metrics/_brute.py) on explicit replicate weights."""

from __future__ import annotations

import numpy as np
import pytest

from facebench.metrics import bootstrap as bs
from facebench.metrics import bootstrap_kfold_accuracy, kfold_accuracy
from facebench.metrics._inputs import as_pairs
from facebench.metrics.bootstrap import PairedDifference, paired_kfold_accuracy_difference
from facebench.report import fmt

from . import _brute
from .test_bootstrap import lfw_like


def lowered(scores: np.ndarray, labels: np.ndarray, fta: np.ndarray, n: int) -> np.ndarray:
    """``scores`` with the ``n`` highest-scoring genuine (non-FtA) pairs pushed far below every
    other score: a model that is clearly worse on exactly those pairs."""
    b = scores.copy()
    genuine = np.flatnonzero((labels == 1) & ~fta)
    worst = genuine[np.argsort(-scores[genuine], kind="stable")[:n]]
    b[worst] = np.nanmin(scores) - 5.0
    return b


def test_delta_is_the_difference_of_the_two_kfold_accuracies() -> None:
    s, y, k, f = lfw_like(0)
    t = lowered(s, y, f, 40)
    d = paired_kfold_accuracy_difference(s, t, y, k, f, f, replicates=50, seed=0)
    a, b = kfold_accuracy(s, y, k, f).mean, kfold_accuracy(t, y, k, f).mean
    assert (d.a, d.b) == (pytest.approx(a, abs=1e-12), pytest.approx(b, abs=1e-12))
    assert d.delta == pytest.approx(a - b, abs=1e-12)
    assert d.replicates == 50


def test_identical_score_sets_give_exactly_zero() -> None:
    s, y, k, f = lfw_like(1)
    d = paired_kfold_accuracy_difference(s, s.copy(), y, k, f, f, replicates=200, seed=4)
    assert (d.delta, d.ci_low, d.ci_high) == (0.0, 0.0, 0.0)


def test_a_clearly_worse_model_is_detected_and_narrower_than_unpaired() -> None:
    """60 of 6000 genuine pairs lowered: the paired CI excludes 0 and is much narrower than
    the two accuracies' own CIs combined (their sampling noise is shared and cancels)."""
    s, y, k, f = lfw_like(2)
    t = lowered(s, y, f, 60)
    d = paired_kfold_accuracy_difference(s, t, y, k, f, f, replicates=300, seed=0)
    assert 0 < d.ci_low <= d.delta <= d.ci_high
    lo_a, hi_a = bootstrap_kfold_accuracy(s, y, k, f, replicates=300, seed=1)
    lo_b, hi_b = bootstrap_kfold_accuracy(t, y, k, f, replicates=300, seed=2)
    unpaired = np.hypot(hi_a - lo_a, hi_b - lo_b)
    assert d.ci_high - d.ci_low < 0.5 * unpaired
    # a minus b is the mirror image of b minus a
    r = paired_kfold_accuracy_difference(t, s, y, k, f, f, replicates=300, seed=0)
    assert (r.delta, r.ci_low, r.ci_high) == pytest.approx((-d.delta, -d.ci_high, -d.ci_low))


def test_same_seed_same_interval_and_the_documented_stream() -> None:
    """The replicates are those of each set's own accuracy CI (stream 1 of the seed), paired:
    the interval is the percentile interval of their row-wise difference."""
    s, y, k, f = lfw_like(3)
    t = lowered(s, y, f, 20)
    one = paired_kfold_accuracy_difference(s, t, y, k, f, f, replicates=120, seed=7)
    assert one == paired_kfold_accuracy_difference(s, t, y, k, f, f, replicates=120, seed=7)
    assert one != paired_kfold_accuracy_difference(s, t, y, k, f, f, replicates=120, seed=8)
    ra = bs.kfold_accuracy_replicates(as_pairs(s, y, f), k, 120, 7)
    rb = bs.kfold_accuracy_replicates(as_pairs(t, y, f), k, 120, 7)
    lo, hi = np.quantile(ra - rb, [0.025, 0.975])
    assert (one.ci_low, one.ci_high) == pytest.approx((lo, hi), abs=1e-12)


def _stratified_weights(labels: np.ndarray, folds: np.ndarray, reps: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Replicate multiplicities drawn here: each fold x label stratum resampled to its size."""
    w = np.zeros((reps, labels.size), dtype=np.int32)
    for r in range(reps):
        for fold in np.unique(folds):
            for label in (0, 1):
                idx = np.flatnonzero((folds == fold) & (labels == label))
                np.add.at(w[r], rng.choice(idx, size=idx.size, replace=True), 1)
    return w


def _brute_accuracy(scores, labels, folds, fta, weights) -> float:
    """k-fold accuracy of the data with pair i repeated weights[i] times, in plain Python."""
    rep = [i for i, m in enumerate(weights) for _ in range(m)]
    per_fold = _brute.kfold([float(scores[i]) for i in rep], [int(labels[i]) for i in rep],
                            [int(folds[i]) for i in rep], [bool(fta[i]) for i in rep])
    return sum(acc for _, acc in per_fold) / len(per_fold)


def test_replicates_equal_a_brute_force_reference_on_explicit_weights() -> None:
    """60 pairs in 3 folds, ties and an FtA pair in each set: every replicate's difference is
    the brute-force k-fold accuracy of a minus that of b on the same resampled pairs."""
    rng = np.random.default_rng(11)
    labels = np.tile(np.r_[np.ones(10, int), np.zeros(10, int)], 3)
    folds = np.repeat(np.arange(3), 20)
    a = np.round(rng.normal(labels * 1.5, 1.0), 1)
    b = np.round(a + rng.normal(0, 0.4, 60), 1)
    fta_a = np.zeros(60, bool)
    fta_b = np.zeros(60, bool)
    fta_a[5] = fta_b[[5, 33]] = True
    a[5] = np.nan
    w = _stratified_weights(labels, folds, 25, rng)
    got = bs._paired_replicates(as_pairs(a, labels, fta_a), as_pairs(b, labels, fta_b), folds,
                                [w[:10], w[10:]])
    want = [_brute_accuracy(a, labels, folds, fta_a, w[r])
            - _brute_accuracy(b, labels, folds, fta_b, w[r]) for r in range(25)]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert np.any(got != 0)


def test_all_data_policy_and_bad_inputs() -> None:
    s, y, _, f = lfw_like(4)
    t = lowered(s, y, f, 30)
    d = paired_kfold_accuracy_difference(s, t, y, None, f, f, replicates=50)
    assert isinstance(d, PairedDifference) and d.delta > 0
    with pytest.raises(ValueError, match="replicates"):
        paired_kfold_accuracy_difference(s, t, y, None, f, f, replicates=0)
    with pytest.raises(ValueError, match="labels shape"):
        paired_kfold_accuracy_difference(s, t[:-1], y, None, f, f[:-1])


def test_the_catalog_shows_differences_signed_and_ratios_with_x() -> None:
    shown = [fmt.metric("accuracy_vs_fp32", v) for v in (0.0012, -0.003, 0.0, -1e-6)]
    assert shown == ["+0.12 pp", "−0.30 pp", "±0.00 pp", "±0.00 pp"]
    assert fmt.metric("accuracy_vs_fp32_ci_low", None) == fmt.NA
    assert fmt.metric("latency.b8.p50_vs_fp32", 0.4823) == "0.482×"
    assert fmt.metric("memory.peak_rss_delta_vs_fp32", 1.0) == "1.00×"
    assert fmt.delta("accuracy_vs_fp32", 0.002, None) == "+0.20 pp"
