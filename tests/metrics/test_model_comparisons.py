"""Model-vs-model comparison on synthetic score sets whose true difference is known.

Two correlated Gaussian models on the same pairs (10 folds): genuine scores ~ N(μ, 1), impostor
scores ~ N(0, 1), so with equal classes the best accuracy is Φ(μ/2) and TAR at FAR x is
Φ(μ − z₁₋ₓ). The paired CIs must cover the true differences (and 0 when μ_a = μ_b), McNemar's
p-value must be scipy's binomial test on the discordant pairs found by a brute-force k-fold
written from the definition, and Holm is applied across the comparisons.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from facebench.runner.comparisons import PairArrays, _adjust, compare_scores

FOLDS = 10
TARGETS = [(0.1, True), (0.01, True)]


def _identities(label: np.ndarray, fold: np.ndarray, rng: np.random.Generator,
                per_fold: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Identity codes of each pair's sides, folds identity-disjoint (as LFW View 2's): a
    genuine pair shows one identity of its fold twice, an impostor pair two different ones."""
    base = fold * per_fold
    one = base + rng.integers(0, per_fold, label.size)
    shift = rng.integers(1, per_fold, label.size)
    other = np.where(label == 1, one, base + (one - base + shift) % per_fold)
    return one.astype(np.int32), other.astype(np.int32)


def _scores(mu_a: float, mu_b: float, per_class: int, seed: int, rho: float = 0.6,
            identities: bool = False) -> tuple[PairArrays, PairArrays]:
    """Two models' scores on the same pairs: a shared noise term makes them correlated."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.array([1, 0], dtype=np.int8), per_class)
    fold = np.tile(np.arange(FOLDS), 2 * per_class // FOLDS).astype(np.int64)
    e1, e2 = rng.standard_normal((2, label.size))
    a = mu_a * label + e1
    b = mu_b * label + rho * e1 + np.sqrt(1 - rho**2) * e2
    fta = np.zeros(label.size, dtype=bool)
    ids = _identities(label, fold, rng) if identities else (None, None)
    return (PairArrays(a, label, fold, fta, *ids), PairArrays(b, label, fold, fta, *ids))


def _truth(mu_a: float, mu_b: float) -> dict[str, float]:
    out = {"accuracy": norm.cdf(mu_a / 2) - norm.cdf(mu_b / 2)}
    for x, _ in TARGETS:
        z = norm.ppf(1 - x)
        out[f"tar{x}"] = norm.cdf(mu_a - z) - norm.cdf(mu_b - z)
    return out


def _brute_correct(p: PairArrays) -> np.ndarray:
    """Per pair: right at its fold's threshold, chosen on the other folds by trying every
    distinct training score (most accurate, ties to the smallest), from the definition."""
    correct = np.zeros(p.score.size, dtype=bool)
    genuine = p.label == 1
    for k in np.unique(p.fold):
        train, test = p.fold != k, p.fold == k
        cands = np.unique(p.score[train])
        acc = ((p.score[train][None, :] >= cands[:, None]) == genuine[train][None, :]).mean(1)
        t = cands[np.flatnonzero(acc == acc.max())[0]]
        correct[test] = (p.score[test] >= t) == genuine[test]
    return correct


def _row(mu_a: float, mu_b: float, per_class: int, seed: int, replicates: int,
         identities: bool = False) -> dict:
    pa, pb = _scores(mu_a, mu_b, per_class, seed, identities=identities)
    row = compare_scores(pa, pb, "A", "B", TARGETS, replicates)
    assert row["bootstrap"]["method"] == ("identity" if identities else "pair")
    return row


def _covers(d: dict, truth: float) -> bool:
    return d["ci_low"] <= truth <= d["ci_high"]


@pytest.mark.parametrize("identities", [False, True], ids=["pair", "identity"])
@pytest.mark.parametrize("mu_a,mu_b", [(3.0, 2.5), (2.5, 2.5)])
def test_paired_cis_cover_the_true_difference(mu_a: float, mu_b: float,
                                              identities: bool) -> None:
    truth = _truth(mu_a, mu_b)
    covered = {name: 0 for name in truth}
    datasets = 12
    for seed in range(datasets):
        row = _row(mu_a, mu_b, 1000, seed, replicates=200, identities=identities)
        covered["accuracy"] += _covers(row["accuracy"], truth["accuracy"])
        for (x, _), t in zip(TARGETS, row["tar_at_far"], strict=True):
            covered[f"tar{x}"] += _covers(t, truth[f"tar{x}"])
    # nominal 95 %: 12 datasets cover at least 9 times unless the interval is wrong
    # (P(≤ 8 of 12 | p = 0.95) ≈ 2e-3); a CI around the wrong centre or too narrow fails
    assert all(n >= 9 for n in covered.values()), (covered, truth)


@pytest.mark.parametrize("identities", [False, True], ids=["pair", "identity"])
def test_a_real_difference_has_a_winner_and_none_has_no_winner(identities: bool) -> None:
    real = _row(3.0, 2.5, 3000, seed=100, replicates=300, identities=identities)
    assert real["accuracy"]["winner"] == "A" and real["accuracy"]["ci_low"] > 0
    assert [t["winner"] for t in real["tar_at_far"]] == ["A", "A"]
    assert real["mcnemar"]["p_value"] < 1e-6
    same = _row(2.5, 2.5, 3000, seed=101, replicates=300, identities=identities)
    assert same["accuracy"]["winner"] is None
    assert same["accuracy"]["ci_low"] < 0 < same["accuracy"]["ci_high"]
    assert [t["winner"] for t in same["tar_at_far"]] == [None, None]
    assert same["mcnemar"]["p_value"] > 0.05


@pytest.mark.parametrize("mu_a,mu_b,seed", [(3.0, 2.5, 5), (2.5, 2.5, 6), (2.0, 2.6, 7)])
def test_mcnemar_is_scipys_binomial_test_on_brute_force_decisions(mu_a: float, mu_b: float,
                                                                  seed: int) -> None:
    pa, pb = _scores(mu_a, mu_b, 500, seed)
    row = compare_scores(pa, pb, "A", "B", [], replicates=50)
    ca, cb = _brute_correct(pa), _brute_correct(pb)
    only_a, only_b = int(np.sum(ca & ~cb)), int(np.sum(~ca & cb))
    t = row["mcnemar"]
    assert (t["a_only"], t["b_only"]) == (only_a, only_b)
    assert (t["both"], t["neither"]) == (int(np.sum(ca & cb)), int(np.sum(~ca & ~cb)))
    assert t["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue,
                                         rel=1e-9)
    # the k-fold accuracy the CI is about is the mean of the per-fold accuracies
    acc_a = np.mean([ca[pa.fold == k].mean() for k in range(FOLDS)])
    assert row["accuracy"]["a"] == pytest.approx(acc_a, abs=1e-12)


def test_holm_adjusts_the_mcnemar_p_values_across_the_run() -> None:
    rows = [{"mcnemar": {"p_value": p, "p_holm": None}} for p in (0.01, 0.04, 0.03, 0.005)]
    rows.insert(2, {"mcnemar": None})  # not compared (e.g. exhaustive): not in the family
    _adjust(rows)
    assert [r["mcnemar"]["p_holm"] for r in rows if r["mcnemar"]] == \
        pytest.approx([0.03, 0.06, 0.06, 0.02])
