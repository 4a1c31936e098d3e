"""Exact agreement (1e-9) of rank-1 and FNIR@FPIR between the library search path (the
pipeline's ``search_split``: faiss, and numpy) and an independent float64 brute force over the
full similarity matrix, on a 50,000-vector gallery."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from facebench.datasets.sets import Split
from facebench.metrics.open_set import open_set_metrics
from facebench.pipeline.identification import search_split
from facebench.suite.schema import SearchOptions

G, D, MATED, NONMATED = 50_000, 512, 600, 600
FPIR = (0.01, 0.1)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> dict:
    rng = np.random.default_rng(2026)
    gallery = _unit(rng.standard_normal((G, D), dtype=np.float32))
    mates = rng.choice(G, size=MATED, replace=False)
    # noise from easy to hopeless (cosine to the mate 1/sqrt(1 + tau^2), 0.71 … 0.12, against
    # a best non-mate near 0.2), so that some mates lose rank 1 and FNIR is not trivially 0
    tau = np.linspace(1.0, 8.0, MATED, dtype=np.float32)[:, None]
    mated = _unit(gallery[mates] + tau * _unit(rng.standard_normal((MATED, D),
                                                                   dtype=np.float32)))
    nonmated = _unit(rng.standard_normal((NONMATED, D), dtype=np.float32))
    feats = np.vstack([gallery, mated, nonmated])
    probe_ids = np.concatenate([mates, -1 - np.arange(NONMATED)])
    return {"feats": feats, "probe_ids": probe_ids}


def _brute(data: dict) -> dict[str, float]:
    """rank-1 and FNIR@FPIR from the full float64 matrix, written out from the definitions."""
    f = data["feats"].astype(np.float64)
    gal, probes = f[:G], f[G:]
    ids = data["probe_ids"]
    top = np.empty(ids.size)
    mate = np.full(ids.size, np.nan)
    rank = np.zeros(ids.size, dtype=np.int64)
    for lo in range(0, ids.size, 200):
        s = probes[lo:lo + 200] @ gal.T
        top[lo:lo + 200] = s.max(axis=1)
        for r in range(s.shape[0]):
            i = ids[lo + r]
            if i >= 0:
                mate[lo + r] = s[r, i]
                rank[lo + r] = 1 + np.count_nonzero(np.delete(s[r], i) >= s[r, i])
    is_mated = ids >= 0
    hit = is_mated & (rank == 1)
    out = {"rank1": float(np.mean(rank[is_mated] == 1))}
    nm_top = top[~is_mated]
    candidates = np.unique(np.concatenate([mate[hit], nm_top, [np.inf]]))
    for x in FPIR:
        ok = [t for t in candidates if np.mean(nm_top >= t) <= x]
        t = min(ok)  # the smallest threshold whose FPIR is <= x
        out[f"fnir@fpir={x:.0e}".replace("e-0", "e-")] = float(
            1 - np.count_nonzero(hit & (np.nan_to_num(mate, nan=-np.inf) >= t))
            / is_mated.sum())
    return out


@pytest.mark.parametrize("backend", ["numpy", pytest.param("faiss", marks=pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None, reason="faiss not installed"))])
def test_library_path_equals_brute_force(data: dict, backend: str) -> None:
    split = Split("gallery", np.arange(G), np.arange(G), G + np.arange(data["probe_ids"].size),
                  data["probe_ids"])
    ok = np.ones(data["feats"].shape[0], dtype=bool)
    searches, info = search_split(split, data["feats"], ok, 20,
                                  SearchOptions(backend=backend, chunk_rows=12_345), 2)
    assert info["search"]["backend"] == backend
    metrics, _ = open_set_metrics(searches, ranks=(1,), max_rank=20, fpir_targets=FPIR)
    expected = _brute(data)
    assert 0.2 < expected["rank1"] < 0.95  # neither trivial nor hopeless
    assert 0.0 < expected["fnir@fpir=1e-1"] < 1.0
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
