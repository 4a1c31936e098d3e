"""Exhaustive verification on identity-labelled images: every genuine pair and every impostor pair
(or a seeded impostor sample of a declared size), scored from the embedding matrix in blocks.

The pair list is a subset of the upper triangle of the image list in row-major order: pair rank
``r`` is image ``(i, j)``, ``i < j`` (:func:`facebench.scores.unrank_pairs`); all pairs are ranks
``0 .. n(n-1)/2 - 1``, a sample keeps every genuine rank and the sampled impostor ranks, ascending.
Images must be grouped by identity (an :class:`~facebench.datasets.identity.IdentitySet` is), so
the genuine partners of image ``i`` are ``i+1 .. end(i)-1`` and its impostor partners
``end(i) .. n-1``. Scores are float32 in one array (NaN where a side failed to acquire); nothing
is ever held as Python objects, and metrics come from sorted float arrays
(:mod:`facebench.metrics.roc`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facebench.metrics._inputs import as_pairs, far_key
from facebench.metrics.bootstrap import tar_at_far_ci
from facebench.metrics.verification import (
    VerificationResult,
    bootstrap_record,
    compute_verification_metrics,
)

#: Rows of the embedding matrix scored at a time (a block is rows x images float32 scores).
BLOCK_ROWS = 1024


@dataclass(frozen=True)
class PairLayout:
    """The exhaustive pair list of ``n`` images grouped by identity (``identity`` ascending
    codes per image): ``ranks`` is None for all pairs, else the ascending ranks scored."""

    identity: np.ndarray
    ranks: np.ndarray | None

    @property
    def n_images(self) -> int:
        return int(self.identity.size)

    @property
    def ends(self) -> np.ndarray:
        """One past the last image of each image's identity."""
        change = np.flatnonzero(np.diff(self.identity)) + 1
        bounds = np.concatenate((change, [self.identity.size]))
        return bounds[np.searchsorted(bounds, np.arange(self.identity.size), side="right")]

    @property
    def n_pairs(self) -> int:
        n = self.n_images
        return n * (n - 1) // 2 if self.ranks is None else int(self.ranks.size)

    def counts(self) -> tuple[int, int]:
        """(genuine, impostor) pairs of the list."""
        n = self.n_images
        genuine = int((self.ends - np.arange(n) - 1).sum())
        return genuine, self.n_pairs - genuine


def layout(identity: np.ndarray, impostor_sample: int | None = None, seed: int = 0
           ) -> PairLayout:
    """All pairs of images grouped by ``identity``, or every genuine pair plus a seeded uniform
    sample of ``impostor_sample`` impostor pairs (all of them when the sample is not smaller)."""
    ident = np.asarray(identity)
    if ident.size > 1 and np.any(np.diff(ident) < 0):
        raise ValueError("images must be grouped by identity (identity codes ascending)")
    full = PairLayout(ident, None)
    if impostor_sample is None:
        return full
    _, n_imp = full.counts()
    if impostor_sample >= n_imp:
        return full
    n = ident.size
    i_all = np.arange(n, dtype=np.int64)
    ends = full.ends.astype(np.int64)
    starts = i_all * n - i_all * (i_all + 1) // 2  # rank of (i, i + 1)
    per_row = n - ends  # impostor partners of each row
    cum = np.concatenate(([0], np.cumsum(per_row)))
    q = np.sort(np.random.default_rng(seed).choice(n_imp, size=impostor_sample, replace=False))
    i = np.searchsorted(cum, q, side="right") - 1
    imp_ranks = starts[i] + (ends[i] + (q - cum[i])) - i - 1
    gen_rows = np.repeat(i_all, ends - i_all - 1)
    gen_off = np.arange(gen_rows.size) - np.repeat(np.cumsum(ends - i_all - 1) - (ends - i_all - 1),
                                                   ends - i_all - 1)
    gen_ranks = starts[gen_rows] + gen_off
    return PairLayout(ident, np.sort(np.concatenate((gen_ranks, imp_ranks))))


def score_pairs(emb: np.ndarray, pairs: PairLayout, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Cosine scores (float32, NaN where a side's embedding is NaN) of every pair of the list,
    in rank order, from L2-normalised ``emb`` (images x dim), ``block_rows`` rows at a time."""
    e = np.ascontiguousarray(emb, dtype=np.float32)
    n = e.shape[0]
    if n != pairs.n_images:
        raise ValueError(f"{n} embeddings for {pairs.n_images} images")
    out = np.empty(pairs.n_pairs, dtype=np.float32)
    if pairs.ranks is not None:
        for lo in range(0, out.size, 1 << 20):
            i, j = unrank_pairs(pairs.ranks[lo:lo + (1 << 20)], n)
            out[lo:lo + i.size] = np.einsum("ij,ij->i", e[i], e[j])
        return out
    pos = 0
    for r0 in range(0, n, block_rows):
        r1 = min(n, r0 + block_rows)
        block = e[r0:r1] @ e[r0:].T  # rows r0..r1-1 against images r0..n-1
        keep = np.triu(np.ones(block.shape, dtype=bool), k=1)
        vals = block[keep]  # row-major: (i, j > i) in rank order
        out[pos:pos + vals.size] = vals
        pos += vals.size
    return out


def unrank_pairs(ranks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair ranks in ``[0, n(n-1)/2)`` → image indices ``(i, j)``, ``i < j``, in the row-major
    order of the upper triangle (rank 0 = (0, 1), 1 = (0, 2), ...)."""
    i_all = np.arange(n, dtype=np.int64)
    starts = i_all * n - i_all * (i_all + 1) // 2
    i = np.searchsorted(starts, ranks, side="right") - 1
    return i, i + 1 + (ranks - starts[i])


def pair_identities(identity: np.ndarray, ranks: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Identity (int32) of side a and side b of every pair of the list, in rank order: for all
    pairs by repeating rows (no per-pair index arithmetic), for a sample by unranking."""
    ident = np.asarray(identity).astype(np.int32)
    n = ident.size
    if ranks is None:
        a = np.repeat(ident, n - 1 - np.arange(n))
        b = np.concatenate([ident[i + 1:] for i in range(n)]) if n else ident[:0]
        return a, b
    i, j = unrank_pairs(ranks, n)
    return ident[i], ident[j]


def pair_labels(pairs: PairLayout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label int8, identity of side a, identity of side b) of every pair, in rank order."""
    a, b = pair_identities(pairs.identity, pairs.ranks)
    return (a == b).astype(np.int8), a, b


def exhaustive_metrics(scores: np.ndarray, pairs: PairLayout, far_targets: Sequence[float],
                       bootstrap: int = 0, seed: int = 0, method: str = "identity"
                       ) -> VerificationResult:
    """Verification metrics of every pair of the list: one threshold on all the data
    (accuracy etc.), ROC, AUC, EER, TAR@FAR with the achieved FAR, the support flag, the errors
    behind each rate and Doddington's rule of 30; ``fnmr@fmr=X`` = 1 - TAR@FAR (NIST's names);
    with ``bootstrap`` replicates, TAR@FAR CIs by the identity bootstrap (``method``
    ``identity``) or the pair bootstrap (``pair``: every pair weighed; small sets only).
    A class with no pair (one identity; one image per identity) leaves the rates that need it
    ``None`` and says so in ``details.undefined``."""
    label, id_a, id_b = pair_labels(pairs)
    fta = np.isnan(scores)
    result = compute_verification_metrics(scores, label, folds=None, fta=fta,
                                          far_targets=far_targets, bootstrap=0, seed=seed)
    m, d = result.metrics, result.details
    for x in far_targets:
        key = far_key(x)
        tar = m.get(f"tar@far={key}")
        m[f"fnmr@fmr={key}"] = None if tar is None else 1.0 - float(tar)
    undefined = undefined_rates(int(d["n_genuine"]), int(d["n_impostor"]))
    if undefined:
        d["undefined"] = undefined
    if bootstrap > 0 and not undefined:
        identities = (id_a, id_b) if method == "identity" else None
        cis = tar_at_far_ci(as_pairs(scores, label, fta), far_targets, bootstrap, seed,
                            identities=identities)
        for x in far_targets:
            lo, hi = cis[float(x)]
            m[f"tar@far={far_key(x)}_ci_low"], m[f"tar@far={far_key(x)}_ci_high"] = lo, hi
        d["bootstrap"] = {**bootstrap_record(bootstrap, seed, identities),
                          "note": "TAR@FAR only: an accuracy CI over every pair is not computed "
                                  "for exhaustive protocols"}
    return VerificationResult(m, d)


def undefined_rates(n_genuine: int, n_impostor: int) -> str | None:
    """Which rates a pair list cannot define, in words (None when both classes have pairs)."""
    if n_genuine == 0 and n_impostor == 0:
        return "no pairs at all: every rate is undefined"
    if n_genuine == 0:
        return ("no genuine pair (every identity has one image): TAR, FNMR, EER, AUC and the "
                "ROC are undefined; only the impostor side (FAR at a threshold) is measured")
    if n_impostor == 0:
        return ("no impostor pair (one identity): FAR, TAR@FAR, FNMR@FMR, EER, AUC and the ROC "
                "are undefined; only the genuine side is measured")
    return None
