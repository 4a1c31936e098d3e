"""The exhaustive pair list: ranks ↔ image pairs, block scoring against a pair-by-pair loop,
the seeded impostor sample, and the labels and identities of every pair."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facebench.metrics import exhaustive as ex


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    ident = np.sort(rng.integers(0, 12, 41))
    emb = rng.normal(size=(ident.size, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    emb[3] = np.nan  # an image that failed to acquire
    return ident, emb


def test_all_pairs_scored_in_rank_order(images: tuple[np.ndarray, np.ndarray]) -> None:
    ident, emb = images
    pairs = ex.layout(ident)
    everyone = list(itertools.combinations(range(ident.size), 2))
    assert pairs.n_pairs == len(everyone)
    got = ex.score_pairs(emb, pairs, block_rows=7)  # blocks that do not divide the rows
    want = np.array([emb[i] @ emb[j] for i, j in everyone], dtype=np.float32)
    assert np.allclose(got, want, rtol=0, atol=1e-6, equal_nan=True)
    assert np.array_equal(np.isnan(got), [3 in p for p in everyone])
    label, a, b = ex.pair_labels(pairs)
    assert np.array_equal(a, [ident[i] for i, _ in everyone])
    assert np.array_equal(b, [ident[j] for _, j in everyone])
    assert np.array_equal(label == 1, a == b)
    assert pairs.counts() == (int(label.sum()), int((label == 0).sum()))
    i, j = ex.unrank_pairs(np.arange(pairs.n_pairs), ident.size)
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == everyone


def test_impostor_sample(images: tuple[np.ndarray, np.ndarray]) -> None:
    ident, emb = images
    full = ex.layout(ident)
    n_gen, n_imp = full.counts()
    sample = ex.layout(ident, impostor_sample=100, seed=3)
    assert sample.ranks is not None and sample.counts() == (n_gen, 100)
    assert np.all(np.diff(sample.ranks) > 0)  # distinct, ascending
    label, _, _ = ex.pair_labels(sample)
    full_label, _, _ = ex.pair_labels(full)
    assert np.array_equal(label, full_label[sample.ranks])  # every genuine pair kept
    assert int(label.sum()) == n_gen
    assert np.array_equal(ex.layout(ident, 100, 3).ranks, sample.ranks)  # seeded
    assert not np.array_equal(ex.layout(ident, 100, 4).ranks, sample.ranks)
    whole = ex.score_pairs(emb, full)
    assert np.array_equal(ex.score_pairs(emb, sample), whole[sample.ranks], equal_nan=True)
    assert ex.layout(ident, impostor_sample=n_imp).ranks is None  # not smaller: all pairs


def test_images_must_be_grouped_by_identity() -> None:
    with pytest.raises(ValueError, match="grouped by identity"):
        ex.layout(np.array([0, 1, 0]))


def test_undefined_rates_named() -> None:
    assert "no impostor pair" in str(ex.undefined_rates(10, 0))
    assert "no genuine pair" in str(ex.undefined_rates(0, 10))
    assert ex.undefined_rates(3, 3) is None
