"""Bootstrap CIs: deterministic per seed, contain the estimate, replicates recompute exactly."""

from __future__ import annotations

import numpy as np
import pytest

from facebench.metrics import bootstrap as bs
from facebench.metrics import (
    bootstrap_kfold_accuracy,
    bootstrap_tar_at_far,
    compute_verification_metrics,
    kfold_accuracy,
    roc_curve,
    tar_at_far,
)
from facebench.metrics._inputs import as_pairs


def lfw_like(seed: int = 0):
    """6000 pairs in 10 folds of 300 genuine + 300 impostor, with ties and a few FtA pairs."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.r_[np.ones(300, int), np.zeros(300, int)], 10)
    folds = np.repeat(np.arange(10), 600)
    scores = np.round(rng.normal(labels * 2.2, 1.0), 2)
    fta = rng.random(6000) < 0.01
    scores[fta] = np.nan
    return scores, labels, folds, fta


def test_accuracy_ci_is_deterministic_and_contains_estimate() -> None:
    s, y, k, f = lfw_like()
    a = bootstrap_kfold_accuracy(s, y, k, f, replicates=200, seed=3)
    b = bootstrap_kfold_accuracy(s, y, k, f, replicates=200, seed=3)
    c = bootstrap_kfold_accuracy(s, y, k, f, replicates=200, seed=4)
    assert a == b and a != c
    point = kfold_accuracy(s, y, k, f).mean
    assert a[0] < point < a[1]
    assert a[1] - a[0] < 0.05


def test_tar_ci_is_deterministic_and_contains_estimate() -> None:
    s, y, _, f = lfw_like()
    targets = [1e-1, 1e-2]
    a = bootstrap_tar_at_far(s, y, targets, f, replicates=200, seed=1)
    assert a == bootstrap_tar_at_far(s, y, targets, f, replicates=200, seed=1)
    roc = roc_curve(s, y, f)
    for x in targets:
        lo, hi = a[x]
        assert lo <= tar_at_far(roc, x).tar <= hi and lo < hi


def test_replicates_equal_recomputation_on_resampled_data() -> None:
    """Each replicate's statistic equals the plain metric on the data repeated by its weights."""
    s, y, k, f = lfw_like(1)
    pairs = as_pairs(s, y, f)
    codes = y + 2 * k
    members = bs._strata_members(codes)
    (w,) = list(bs._weight_chunks(members, s.size, 3, seed=9, stream=1))
    for m in members:  # stratified: every fold x label stratum keeps its size
        np.testing.assert_array_equal(w[:, m].sum(axis=1), m.size)
    acc = bs._kfold_stats(bs._prepare_folds(pairs, k), w)
    tar = bs._tar_stats(bs._prepare_ranked(pairs), w, [1e-1, 1e-2])
    for r in range(3):
        rep = np.repeat(np.arange(s.size), w[r])
        assert acc[r] == pytest.approx(kfold_accuracy(s[rep], y[rep], k[rep], f[rep]).mean)
        roc = roc_curve(s[rep], y[rep], f[rep])
        assert tar[r].tolist() == pytest.approx([tar_at_far(roc, x).tar for x in (1e-1, 1e-2)])


def test_all_data_policy_replicates_with_unit_weights() -> None:
    s, y, _, f = lfw_like(2)
    pairs = as_pairs(s, y, f)
    ones = np.ones((1, s.size), dtype=np.int32)
    res = compute_verification_metrics(s, y, fta=f)
    assert bs._kfold_stats(bs._prepare_folds(pairs, None), ones)[0] == pytest.approx(
        res.metrics["accuracy"]
    )


def test_compute_metrics_adds_ci_keys() -> None:
    s, y, k, f = lfw_like()
    res = compute_verification_metrics(s, y, k, f, far_targets=(1e-2,), bootstrap=100, seed=5)
    m = res.metrics
    assert m["accuracy_ci_low"] <= m["accuracy"] <= m["accuracy_ci_high"]
    assert m["tar@far=1e-2_ci_low"] <= m["tar@far=1e-2"] <= m["tar@far=1e-2_ci_high"]
    assert res.details["bootstrap"]["replicates"] == 100
    again = compute_verification_metrics(s, y, k, f, far_targets=(1e-2,), bootstrap=100, seed=5)
    assert again.metrics == m


def test_bad_replicates() -> None:
    s, y, k, f = lfw_like()
    with pytest.raises(ValueError, match="replicates"):
        bootstrap_kfold_accuracy(s, y, k, f, replicates=0)
