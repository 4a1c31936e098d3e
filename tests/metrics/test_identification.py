"""CMC against a brute-force per-probe ranking, hand cases, chunking and embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from facebench.metrics import cmc

from . import _brute


def gallery_setup(seed: int = 0, n_ids: int = 40, n_probes: int = 150):
    rng = np.random.default_rng(seed)
    gallery_ids = np.r_[np.arange(n_ids), rng.integers(0, n_ids, 25)]  # some multi-entry ids
    probe_ids = rng.integers(0, n_ids, n_probes)
    sim = np.round(rng.normal(size=(n_probes, gallery_ids.size)), 1)  # ties
    sim += 1.0 * (probe_ids[:, None] == gallery_ids[None, :])
    return sim, gallery_ids, probe_ids


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_cmc_matches_brute_force(chunk: int) -> None:
    sim, g, p = gallery_setup()
    res = cmc(sim, g, p, max_rank=10, chunk_size=chunk)
    ref = np.array([_brute.rank(sim[i].tolist(), g.tolist(), p[i]) for i in range(p.size)])
    np.testing.assert_array_equal(res.ranks, ref)
    expected = [np.mean(ref <= k) for k in range(1, 11)]
    np.testing.assert_allclose(res.curve, expected)
    assert res.rank1 == expected[0] and res.rank5 == expected[4]
    assert res.n_identities == 40 and res.n_probes == 150


def test_cmc_hand_worked_ties_count_against() -> None:
    sim = np.array([[0.9, 0.9, 0.1], [0.2, 0.8, 0.5], [0.3, 0.1, 0.6]])
    g = np.array(["a", "b", "c"])
    res = cmc(sim, g, np.array(["a", "b", "a"]), max_rank=3)
    # probe 0 ties with 'b' -> rank 2; probe 1 rank 1; probe 2: c (0.6) above a (0.3) -> rank 2
    assert res.ranks.tolist() == [2, 1, 2]
    assert res.curve.tolist() == pytest.approx([1 / 3, 1.0, 1.0])


def test_cmc_from_embeddings_equals_similarity_path(tmp_path) -> None:
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(30, 16))
    g_ids = np.arange(30)
    gallery = centers + 0.3 * rng.normal(size=(30, 16))
    p_ids = rng.integers(0, 30, 80)
    probes = centers[p_ids] + 0.8 * rng.normal(size=(80, 16))
    res = cmc(probes, g_ids, p_ids, max_rank=5, gallery=gallery, chunk_size=16)
    pn = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = np.lib.format.open_memmap(
        tmp_path / "sim.npy", mode="w+", dtype=np.float32, shape=(80, 30)
    )
    sim[:] = pn @ gn.T
    ref = cmc(sim, g_ids, p_ids, max_rank=5, chunk_size=9)
    np.testing.assert_array_equal(res.ranks, ref.ranks)
    assert 0.3 < res.rank1 <= res.rank5 <= 1.0


def test_unmatched_probes() -> None:
    sim = np.array([[0.9, 0.1], [0.5, 0.4]])
    with pytest.raises(ValueError, match="no mate"):
        cmc(sim, np.array([1, 2]), np.array([1, 3]))
    res = cmc(sim, np.array([1, 2]), np.array([1, 3]), max_rank=2, unmatched="miss")
    assert res.ranks.tolist() == [1, 0] and res.curve.tolist() == [0.5, 0.5]
    assert res.n_unmatched == 1


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="gallery_ids"):
        cmc(np.zeros((2, 3)), np.array([1, 2]), np.array([1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        cmc(np.array([[np.nan, 1.0]]), np.array([1, 2]), np.array([1]))
