"""Closed-set identification: CMC curve and rank-k rates from a probe x gallery similarity
matrix (or embeddings). The pipeline's 1:N cells search at scale and score through
:mod:`facebench.metrics.open_set`, whose CMC agrees with this one (a test checks it).

Ranking is by *identity*: a gallery identity with several entries scores the maximum of its
entries. A probe's rank is 1 + the number of other gallery identities whose score is ``>=`` the
score of its own identity (ties count against the probe: pessimistic, deterministic). Similarities
are processed in chunks of probes, so memory is O(chunk x gallery), linear in the gallery size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Cmc:
    """``ranks[i]`` is probe i's rank (0 for a probe whose identity is not in the gallery).

    ``curve[k-1]`` is the identification rate at rank k (k = 1..max_rank), over all probes.
    """

    ranks: np.ndarray
    curve: np.ndarray
    n_probes: int
    n_identities: int
    n_unmatched: int

    def rate_at(self, k: int) -> float:
        """Fraction of probes identified within rank ``k`` (any k >= 1)."""
        return _rate_at(self.ranks, k, self.n_probes)

    @property
    def rank1(self) -> float:
        return self.rate_at(1)

    @property
    def rank5(self) -> float:
        return self.rate_at(5)


def _rate_at(ranks: np.ndarray, k: int, n_probes: int) -> float:
    """Fraction of ``n_probes`` with a rank in 1..k (rank 0: never identified)."""
    if k < 1:
        raise ValueError(f"rank must be >= 1, got {k}")
    return float(np.count_nonzero((ranks >= 1) & (ranks <= k)) / n_probes)


def _curve(ranks: np.ndarray, max_rank: int, n_probes: int) -> np.ndarray:
    """The CMC curve: rate at rank k = 1..max_rank over ``n_probes`` (rank 0 never counts)."""
    hits = np.bincount(np.minimum(ranks[ranks > 0], max_rank + 1), minlength=max_rank + 2)
    return np.cumsum(hits[1 : max_rank + 1]) / n_probes


def _ids(name: str, ids: np.ndarray, n: int | None) -> np.ndarray:
    a = np.asarray(ids)
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        want = f"({n},)" if n is not None else "1-D"
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


def _normalize(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} embeddings must be 2-D (items x dims), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} embeddings contain NaN or inf")
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError(f"{name} embeddings contain an all-zero row (cosine undefined)")
    return x / norm


def cmc(
    similarity_or_probe: np.ndarray,
    gallery_ids: np.ndarray,
    probe_ids: np.ndarray,
    max_rank: int = 20,
    *,
    gallery: np.ndarray | None = None,
    chunk_size: int = 1024,
    unmatched: Literal["error", "miss"] = "error",
) -> Cmc:
    """CMC from a probe x gallery similarity matrix, or from embeddings (cosine).

    Pass either the ``(P, G)`` similarity matrix (may be an ``np.memmap``), or the ``(P, D)``
    probe embeddings together with ``gallery=`` the ``(G, D)`` gallery embeddings. Probes whose
    identity is absent from the gallery raise ``ValueError`` unless ``unmatched="miss"``, which
    counts them as never identified (rank 0 in ``ranks``).
    """
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if gallery is None:
        sim = similarity_or_probe
        if sim.ndim != 2:
            raise ValueError(f"similarity must be 2-D (probes x gallery), got shape {sim.shape}")
        n_probes, n_gallery = sim.shape
        probe_emb = gallery_emb = None
    else:
        probe_emb = _normalize(similarity_or_probe, "probe")
        gallery_emb = _normalize(gallery, "gallery")
        if probe_emb.shape[1] != gallery_emb.shape[1]:
            raise ValueError(
                f"probe dim {probe_emb.shape[1]} != gallery dim {gallery_emb.shape[1]}"
            )
        n_probes, n_gallery = probe_emb.shape[0], gallery_emb.shape[0]
    g_ids = _ids("gallery_ids", gallery_ids, n_gallery)
    p_ids = _ids("probe_ids", probe_ids, n_probes)
    if n_probes == 0 or n_gallery == 0:
        raise ValueError(f"need probes and gallery entries, got {n_probes} x {n_gallery}")

    identities, g_code = np.unique(g_ids, return_inverse=True)
    order = np.argsort(g_code, kind="stable")
    starts = np.flatnonzero(np.concatenate(([True], np.diff(g_code[order]) != 0)))
    single = identities.size == n_gallery  # one entry per identity: no pooling needed
    p_code = np.searchsorted(identities, p_ids)
    p_code = np.minimum(p_code, identities.size - 1)
    matched = identities[p_code] == p_ids
    n_unmatched = int(np.count_nonzero(~matched))
    if n_unmatched and unmatched == "error":
        example = p_ids[np.flatnonzero(~matched)[0]]
        raise ValueError(
            f"{n_unmatched} probe(s) have no mate in the gallery (e.g. {example!r}); closed-set "
            "CMC needs every probe identity in the gallery, or pass unmatched='miss'"
        )

    ranks = np.zeros(n_probes, dtype=np.int64)
    for lo in range(0, n_probes, chunk_size):
        hi = min(lo + chunk_size, n_probes)
        if probe_emb is None:
            block = np.asarray(sim[lo:hi])
            if not np.issubdtype(block.dtype, np.floating):
                block = block.astype(np.float64)
        else:
            block = probe_emb[lo:hi] @ gallery_emb.T
        if not np.all(np.isfinite(block)):
            raise ValueError(f"similarity rows {lo}..{hi - 1} contain NaN or inf")
        pooled = block[:, order]
        if not single:
            pooled = np.maximum.reduceat(pooled, starts, axis=1)
        rows = np.arange(hi - lo)
        own = pooled[rows, p_code[lo:hi]]
        r = np.count_nonzero(pooled >= own[:, None], axis=1)  # includes the probe's own identity
        ranks[lo:hi] = np.where(matched[lo:hi], r, 0)

    return Cmc(ranks, _curve(ranks, max_rank, n_probes), n_probes, int(identities.size),
               n_unmatched)
