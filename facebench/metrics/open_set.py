"""1:N search metrics at identity level: closed-set rank-k / CMC and open-set FNIR at FPIR.

A probe (image or template) is searched against a gallery; the search returns its top-K
candidates (gallery entries, scores descending). Gallery entries sharing an identity are max
pooled: an identity's score is that of its first (highest) candidate. A probe is *mated* when its
identity is enrolled (declared) in the gallery. Its *mate rank* is 1 + the number of distinct other
identities among the candidates scoring ``>=`` the mate's score (ties count against the probe, as
in :func:`facebench.metrics.identification.cmc`); 0 when the mate is not among the candidates.

Open-set (NIST FRVT 1:N), at a threshold ``t`` and a rank ``R``:

    FPIR(t) = #{non-mated probes with top score >= t} / N_nonmated
    FNIR(t) = 1 - #{mated probes with 1 <= mate rank <= R and mate score >= t} / N_mated

FNIR@FPIR=x is taken at the smallest threshold whose empirical FPIR is ``<= x``, exactly as
TAR@FAR in :mod:`facebench.metrics.roc` (mated hits play genuine pairs, non-mated top scores play
impostor pairs, everything else is rejected at every threshold). See docs/identification.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from facebench.metrics._inputs import Pairs, far_key
from facebench.metrics.identification import _curve, _rate_at
from facebench.metrics.identification import _ids as _shaped_ids
from facebench.metrics.roc import (
    Roc,
    downsample_roc,
    is_supported,
    roc_from_pairs,
    tar_at_far,
)


@dataclass(frozen=True)
class Searches:
    """1:N searches: one row per probe (image or template).

    ``mated``: the probe's identity is enrolled in the gallery. ``mate_rank``: 1-based identity
    rank of the mate, 0 = not among the candidates (or not mated, or no probe embedding).
    ``mate_score``: the mate's best score, NaN when ``mate_rank == 0``. ``top_score``: the best
    candidate score, ``-inf`` when there is no candidate.
    """

    mated: np.ndarray
    mate_rank: np.ndarray
    mate_score: np.ndarray
    top_score: np.ndarray

    def __len__(self) -> int:
        return int(self.mated.shape[0])

    @staticmethod
    def concat(parts: Sequence[Searches]) -> Searches:
        """The searches of ``parts`` in order (e.g. one probe set against several galleries)."""
        if not parts:
            raise ValueError("Searches.concat needs at least one part")
        return Searches(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ("mated", "mate_rank", "mate_score", "top_score")))

    @property
    def n_mated(self) -> int:
        return int(np.count_nonzero(self.mated))

    @property
    def n_nonmated(self) -> int:
        return len(self) - self.n_mated


def _ids(name: str, ids: np.ndarray, n: int | None = None) -> np.ndarray:
    a = _shaped_ids(name, ids, n)
    if a.dtype == object or not (a.dtype.kind in "iub" or a.dtype.kind in "US"):
        raise ValueError(f"{name} must be integer or string identity ids, got dtype {a.dtype}")
    return a


def searches_from_candidates(cand_scores: np.ndarray, cand_index: np.ndarray,
                             gallery_ids: np.ndarray, probe_ids: np.ndarray,
                             enrolled_ids: np.ndarray,
                             probe_valid: np.ndarray | None = None) -> Searches:
    """Identity-level :class:`Searches` from a top-K search result.

    ``cand_scores`` / ``cand_index``: ``(P, K)``, scores descending per row, index ``-1`` for
    padding (as :class:`facebench.search.TopK` gives). ``gallery_ids[cand_index]`` is each
    candidate's identity. ``enrolled_ids``: the identities declared in the gallery (decides
    ``mated`` even when the mate's entries failed to embed); every gallery id must be among them.
    ``probe_valid``: False for probes without an embedding (their rows are ignored). Identity
    ids may be integers or strings (one kind for all three).
    """
    scores = np.asarray(cand_scores, dtype=np.float64)
    index = np.asarray(cand_index)
    if scores.ndim != 2 or index.shape != scores.shape:
        raise ValueError(f"cand_scores and cand_index must be 2-D of one shape (probes x K), got "
                         f"{scores.shape} and {index.shape}")
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"cand_index must be integers, got dtype {index.dtype}")
    n_p, _ = scores.shape
    g_ids = _ids("gallery_ids", gallery_ids)
    p_ids = _ids("probe_ids", probe_ids, n_p)
    e_ids = _ids("enrolled_ids", enrolled_ids)
    kinds = {a.dtype.kind in "US" for a in (g_ids, p_ids, e_ids) if a.size}
    if len(kinds) > 1:
        raise ValueError("gallery_ids, probe_ids and enrolled_ids mix string and integer ids; "
                         "use one kind for all")
    ok = (np.ones(n_p, dtype=bool) if probe_valid is None
          else _ids("probe_valid", probe_valid, n_p).astype(bool))

    enrolled = np.unique(e_ids)
    g_code = np.searchsorted(enrolled, g_ids)
    g_known = g_code < enrolled.size
    g_known[g_known] = enrolled[g_code[g_known]] == g_ids[g_known]
    if not g_known.all():
        bad = g_ids[np.flatnonzero(~g_known)[0]]
        raise ValueError(f"gallery identity {bad.item()!r} is not among enrolled_ids; declare "
                         "every gallery identity as enrolled")
    p_code = np.searchsorted(enrolled, p_ids)
    mated = p_code < enrolled.size
    mated[mated] = enrolled[p_code[mated]] == p_ids[mated]

    present = (index >= 0) & ok[:, None]
    if np.any(index >= g_ids.size):
        raise ValueError(f"cand_index has entries >= the gallery size {g_ids.size}")
    if np.any(present & ~np.isfinite(scores)):
        raise ValueError("cand_scores contain NaN or inf at non-padding candidates")
    masked = np.where(present, scores, -np.inf)
    rising = np.any(masked[:, 1:] > masked[:, :-1], axis=1)
    if rising.any():
        row = int(np.flatnonzero(rising)[0])
        raise ValueError(f"candidates of probe row {row} are not in descending score order with "
                         "padding (-1) last")

    # identity code of each candidate (-1: padding); keep each identity's first (best) candidate
    ident = np.full(index.shape, -1, dtype=np.int64)  # an empty gallery has no candidates
    ident[present] = g_code[index[present]]
    key = (np.arange(n_p, dtype=np.int64)[:, None] * (enrolled.size + 1) + ident + 1).ravel()
    first = np.zeros(key.size, dtype=bool)
    first[np.unique(key, return_index=True)[1]] = True
    first = first.reshape(ident.shape) & present

    is_mate = first & (ident == np.where(mated & ok, p_code, -2)[:, None])
    found = is_mate.any(axis=1)
    rows = np.flatnonzero(found)
    mate_score = np.full(n_p, np.nan)
    mate_score[rows] = scores[rows, np.argmax(is_mate[rows], axis=1)]
    mate_rank = np.zeros(n_p, dtype=np.int64)
    mate_rank[rows] = np.count_nonzero(first[rows] & (masked[rows] >= mate_score[rows, None]),
                                       axis=1)
    top = masked[:, 0] if masked.shape[1] else np.full(n_p, -np.inf)
    return Searches(mated=mated, mate_rank=mate_rank, mate_score=mate_score,
                    top_score=np.array(top, dtype=np.float64))


# ---- closed-set: rank-k and CMC over the mated probes --------------------------------------------


def _need_mated(s: Searches) -> np.ndarray:
    if s.n_mated == 0:
        raise ValueError("no mated probe searches: rank-k and CMC need probes whose identity is "
                         "enrolled in the gallery")
    return s.mate_rank[s.mated]


def cmc_curve(s: Searches, max_rank: int) -> np.ndarray:
    """Closed-set CMC: rate at rank 1..``max_rank`` over the mated probes."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    return _curve(_need_mated(s), max_rank, s.n_mated)


def rank_rate(s: Searches, k: int) -> float:
    """Fraction of the mated probes whose mate is within identity rank ``k``."""
    return _rate_at(_need_mated(s), k, s.n_mated)


# ---- open-set: FNIR at FPIR and the DET curve ----------------------------------------------------


@dataclass(frozen=True)
class FnirAtFpir:
    """FNIR at an FPIR target; ``supported`` is False when ``n_nonmated * fpir < 10``. Values are
    None when there are no mated or no non-mated searches."""

    fpir: float
    fnir: float | None
    fpir_achieved: float | None
    threshold: float | None
    n_mated: int
    n_nonmated: int
    supported: bool

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {"fpir": self.fpir, "fnir": self.fnir, "fpir_achieved": self.fpir_achieved,
                "threshold": self.threshold, "n_mated": self.n_mated,
                "n_nonmated": self.n_nonmated, "supported": self.supported}


def _open_set_roc(s: Searches, rank: int) -> Roc | None:
    """The searches as a ROC: mated hits within ``rank`` are genuine accepts at their mate score,
    non-mated top scores impostor accepts; misses and empty searches are rejected everywhere."""
    if rank < 1:
        raise ValueError(f"open-set rank must be >= 1, got {rank}")
    if s.n_mated == 0 or s.n_nonmated == 0:
        return None
    hit = s.mated & (s.mate_rank >= 1) & (s.mate_rank <= rank)
    accepted = np.where(s.mated, hit, np.isfinite(s.top_score))
    scores = np.where(s.mated, s.mate_score, s.top_score)
    scores = np.where(accepted, scores, 0.0)
    return roc_from_pairs(Pairs(scores=scores, genuine=s.mated.copy(), fta=~accepted))


def _check_fpir(fpir: float) -> float:
    fpir = float(fpir)
    far_key(fpir)  # finite and > 0
    if fpir > 1:
        raise ValueError(f"FPIR target must be in (0, 1], got {fpir!r}")
    return fpir


def _fnir_row(roc: Roc | None, s: Searches, fpir: float) -> FnirAtFpir:
    if roc is None:
        return FnirAtFpir(fpir, None, None, None, s.n_mated, s.n_nonmated, False)
    t = tar_at_far(roc, fpir)
    return FnirAtFpir(fpir=fpir, fnir=1.0 - t.tar,
                      fpir_achieved=t.far_achieved, threshold=t.threshold, n_mated=s.n_mated,
                      n_nonmated=s.n_nonmated, supported=is_supported(s.n_nonmated, fpir))


def fnir_at_fpir(s: Searches, fpir: float, rank: int = 1) -> FnirAtFpir:
    """FNIR at the smallest threshold whose empirical FPIR is ``<= fpir`` (ties accept)."""
    return _fnir_row(_open_set_roc(s, rank), s, _check_fpir(fpir))


def det_curve(s: Searches, rank: int = 1,
              max_points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) at every threshold (FPIR ascending), down-sampled to ``max_points`` keeping
    the corner points (:func:`facebench.metrics.roc.downsample_roc`). Raises ``ValueError``
    without mated or non-mated searches."""
    roc = _open_set_roc(s, rank)
    if roc is None:
        raise ValueError(f"the DET curve needs mated and non-mated searches; got {s.n_mated} "
                         f"mated and {s.n_nonmated} non-mated")
    idx = downsample_roc(roc, max_points)
    return roc.far[idx], 1.0 - roc.tar[idx]


def open_set_metrics(s: Searches, ranks: Sequence[int] = (1, 5, 10), max_rank: int = 20,
                     fpir_targets: Sequence[float] = (0.01, 0.1),
                     rank: int = 1) -> tuple[dict[str, float | int | None], dict[str, Any]]:
    """All 1:N metrics of the searches and their report details.

    Metrics: ``rank{k}`` (over the mated probes; None without any), ``fnir@fpir={x}``,
    ``fpir_achieved@fpir={x}``, ``threshold@fpir={x}`` (open-set at ``rank``),
    ``mated_searches``, ``nonmated_searches``. Details: ``cmc``, ``fnir_at_fpir`` rows,
    ``det_1n`` (``{"fpir", "fnir"}`` or None) and ``open_set_rank``.
    """
    targets = [_check_fpir(x) for x in fpir_targets]
    for k in ranks:
        if k < 1:
            raise ValueError(f"rank must be >= 1, got {k}")
    m: dict[str, float | int | None] = {
        f"rank{k}": rank_rate(s, k) if s.n_mated else None for k in ranks}
    roc = _open_set_roc(s, rank)
    rows = []
    for x in targets:
        row = _fnir_row(roc, s, x)
        rows.append(row.to_dict())
        key = far_key(x)
        m[f"fnir@fpir={key}"] = row.fnir
        m[f"fpir_achieved@fpir={key}"] = row.fpir_achieved
        m[f"threshold@fpir={key}"] = row.threshold
    m["mated_searches"] = s.n_mated
    m["nonmated_searches"] = s.n_nonmated
    det = None
    if roc is not None:
        idx = downsample_roc(roc, 1000)
        det = {"fpir": roc.far[idx].tolist(), "fnir": (1.0 - roc.tar[idx]).tolist()}
    details: dict[str, Any] = {
        "cmc": cmc_curve(s, max_rank).tolist() if s.n_mated else None,
        "fnir_at_fpir": rows,
        "det_1n": det,
        "open_set_rank": rank,
    }
    return m, details
