"""Template features (IJB-style): pool the faces of a template into one L2-normalised vector.

A *template* is a set of faces of one subject, grouped in *media* (one still image, or the frames
of one video). With ``e_i`` face i's L2-normalised embedding (flip already summed in) and ``n_i``
the raw norm of that flip-summed embedding before normalisation, the face feature is

    f_i = e_i * (n_i if pooling.norm) * (s_i if pooling.detector_score)

(``s_i`` the detector score). The media feature is the mean of its valid faces' ``f_i``; the
template feature is the mean of its media features (``media: mean``) or of its faces' ``f_i``
(``media: none``), then L2-normalised. Faces that failed to embed (FtA, ``valid`` False) are left
out. A template fails to acquire (a NaN row, ``valid`` False, its reason in ``reasons``) when no
face of it is valid, when a valid face's weight is not a finite number >= 0, when its valid faces'
weights sum to 0 (e.g. every detector score 0), or when its pooled vector is zero. A template with
one valid face of positive weight is that face's embedding bit for bit (the weight does not change
its direction), so single-image templates score exactly as image pairs. See
docs/identification.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Faces processed per block when pooling (bounds the float64 temporaries to ~block x D).
_BLOCK = 16384


class TemplatePooling(BaseModel):
    """How faces are pooled into a template feature: the ``templates:`` block of an ijb dataset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media: Literal["mean", "none"] = Field(
        "mean",
        description="mean: average the faces within each media (image or video) first, then "
        "average the media features; none: average all faces of the template directly.")
    detector_score: bool = Field(
        False, description="Weight each face by its detector score (from the face table).")
    norm: bool = Field(
        False, description="Weight each face by its embedding's raw norm (before L2 "
        "normalisation), a quality proxy for norm-aware models.")


@dataclass(frozen=True)
class Templates:
    """Pooled templates, one row per template id (ascending).

    ``features`` are L2-normalised float32 rows, NaN where ``valid`` is False (the template
    failed to acquire; ``reasons`` maps its id to why). ``faces`` / ``media``: the valid faces /
    media that were pooled (0 for a failed template).
    """

    ids: np.ndarray
    features: np.ndarray
    valid: np.ndarray
    faces: np.ndarray
    media: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def rows(self, template_ids: np.ndarray) -> np.ndarray:
        """Row index of each of ``template_ids``; ``ValueError`` naming the first unknown id."""
        return template_rows(self.ids, template_ids, f"the {len(self)} pooled templates")


def template_rows(ids: np.ndarray, template_ids: np.ndarray, where: str) -> np.ndarray:
    """Row of each of ``template_ids`` in the ascending template ``ids`` (the rows of pooled
    features); an id not among them is a ``ValueError`` naming it and ``where`` it comes from."""
    want = np.asarray(template_ids)
    if want.size == 0:
        return np.zeros(want.shape, dtype=np.int64)
    pos = np.minimum(np.searchsorted(ids, want), max(ids.size - 1, 0))
    known = (ids[pos] == want) if ids.size else np.zeros(want.shape, dtype=bool)
    if not np.all(known):
        bad = want.reshape(-1)[np.flatnonzero(~known.reshape(-1))[0]]
        raise ValueError(f"{where}: template id {bad.item()!r} has no face in the face table "
                         "(not among the pooled templates); fix the list or the face table")
    return pos.astype(np.int64)


def _vector(name: str, x: np.ndarray | None, n: int) -> np.ndarray:
    a = np.asarray(x)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one value per face; got {a.shape}")
    return a


def _weights(name: str, x: np.ndarray | None, n: int) -> np.ndarray:
    if x is None:
        raise ValueError(f"template pooling with {name} weighting needs the faces' {name}s; "
                         f"pass {name}s= or turn the option off")
    return _vector(f"{name}s", x, n).astype(np.float64)


def _first_per_template(mask: np.ndarray, t_code: np.ndarray) -> dict[int, int]:
    """``{template row: its first face where mask}``."""
    faces = np.flatnonzero(mask)
    rows, first = np.unique(t_code[faces], return_index=True)
    return dict(zip(rows.tolist(), faces[first].tolist(), strict=True))


def pool_templates(emb: np.ndarray, valid: np.ndarray, template_ids: np.ndarray,
                   media_ids: np.ndarray, pooling: TemplatePooling,
                   norms: np.ndarray | None = None,
                   det_scores: np.ndarray | None = None) -> Templates:
    """Pool face embeddings into template features (definition in the module docstring).

    ``emb`` is ``(N, D)``, one row per face (rows of invalid faces are ignored and may be NaN);
    ``valid``, ``template_ids`` (integers), ``media_ids``, ``norms`` and ``det_scores`` are
    ``(N,)``. ``emb`` rows are L2-normalised here (a no-op for normalised input), so ``norms``
    must be passed for ``pooling.norm``. Templates that fail to acquire (module docstring) are
    invalid with their reason. Linear time; memory ``O(T x D)`` plus a face block.
    """
    e = np.asarray(emb)
    if e.ndim != 2 or not np.issubdtype(e.dtype, np.floating):
        raise ValueError(f"face embeddings must be a 2-D float array (faces x dims), got "
                         f"shape {e.shape} dtype {e.dtype}")
    n, dim = e.shape
    ok = _vector("valid", valid, n).astype(bool)
    tids = _vector("template_ids", template_ids, n)
    if not (np.issubdtype(tids.dtype, np.integer) or tids.size == 0):
        raise ValueError(f"template_ids must be integers, got dtype {tids.dtype}")
    tids = tids.astype(np.int64)
    mids = _vector("media_ids", media_ids, n)
    ids, t_code = np.unique(tids, return_inverse=True)
    n_t = ids.size
    sq = np.einsum("ij,ij->i", e, e, dtype=np.float64)  # no copy of the (N, D) embeddings
    bad = ok & ~(np.isfinite(sq) & (sq > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"face {i} is marked valid but its embedding is zero, NaN or inf")

    reasons: dict[int, str] = {}  # template row -> why it failed to acquire
    for row in np.flatnonzero(np.bincount(t_code[ok], minlength=n_t) == 0).tolist():
        reasons[row] = "none of its faces was acquired"
    weight = np.ones(n, dtype=np.float64)
    for name, on, values in (("norm", pooling.norm, norms),
                             ("detector score", pooling.detector_score, det_scores)):
        if not on:
            continue
        w = _weights(name, values, n)
        wrong = ok & ~(np.isfinite(w) & (w >= 0))
        for row, i in _first_per_template(wrong, t_code).items():
            reasons.setdefault(row, f"its face {i} (face-table order, from 0) has {name} "
                                    f"{float(w[i]):g}: a weight must be a finite number >= 0")
        weight *= np.where(wrong, 0.0, w)
    w_sum = np.bincount(t_code[ok], weights=weight[ok], minlength=n_t)
    for row in np.flatnonzero(w_sum == 0).tolist():
        reasons.setdefault(row, "the weights of its acquired faces sum to 0 (weighting: "
                                f"{_weighting(pooling)})")
    ok = ok & ~np.isin(t_code, np.fromiter(reasons, dtype=np.int64, count=len(reasons)))
    inv_norm = np.zeros(n, dtype=np.float64)
    inv_norm[ok] = 1.0 / np.sqrt(sq[ok])

    # group the valid faces by (template, media); count faces per group and media per template
    _, m_code = np.unique(mids, return_inverse=True)
    pair = t_code[ok].astype(np.int64) * (int(m_code.max(initial=0)) + 1) + m_code[ok]
    _, pair_code, pair_size = np.unique(pair, return_inverse=True, return_counts=True)
    pair_t = np.zeros(pair_size.size, dtype=np.int64)
    pair_t[pair_code] = t_code[ok]
    n_media = np.bincount(pair_t, minlength=n_t)
    n_faces = np.bincount(t_code[ok], minlength=n_t)

    coef = np.zeros(n, dtype=np.float64)  # face i's coefficient in its template's mean
    if pooling.media == "mean":
        coef[ok] = 1.0 / (pair_size[pair_code] * n_media[t_code[ok]])
    else:
        coef[ok] = 1.0 / n_faces[t_code[ok]]
    coef *= weight * inv_norm

    total = np.zeros((n_t, dim), dtype=np.float64)
    face_idx = np.flatnonzero(ok)
    for lo in range(0, face_idx.size, _BLOCK):
        idx = face_idx[lo:lo + _BLOCK]
        codes = t_code[idx]
        order = np.argsort(codes, kind="stable")
        idx, codes = idx[order], codes[order]
        starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
        block = e[idx].astype(np.float64) * coef[idx, None]
        total[codes[starts]] += np.add.reduceat(block, starts, axis=0)

    length = np.linalg.norm(total, axis=1)
    good = (n_faces > 0) & np.isfinite(length) & (length > 0)
    for row in np.flatnonzero((n_faces > 0) & ~good).tolist():
        reasons[row] = "its pooled feature is zero or not finite (the weighted faces cancel)"
        n_faces[row] = n_media[row] = 0
    features = np.full((n_t, dim), np.nan, dtype=np.float32)
    features[good] = total[good] / length[good, None]
    # a template of one face is that face's embedding, bit for bit (its direction is unchanged
    # by any weight), so single-image templates score exactly as image pairs do
    single = good & (n_faces == 1)
    if single.any():
        face_of = np.zeros(n_t, dtype=np.int64)
        face_of[t_code[face_idx]] = face_idx
        rows = np.flatnonzero(single)
        unit = e[face_of[rows]].astype(np.float32)
        renorm = np.abs(sq[face_of[rows]] - 1.0) > 1e-6  # rows not already L2-normalised
        unit[renorm] = unit[renorm] / np.sqrt(sq[face_of[rows]][renorm])[:, None].astype(
            np.float32)
        features[rows] = unit
    return Templates(ids=ids, features=features, valid=good, faces=n_faces.astype(np.int64),
                     media=n_media.astype(np.int64),
                     reasons={int(ids[r]): reasons[r] for r in sorted(reasons)})


def _weighting(pooling: TemplatePooling) -> str:
    on = [n for n, flag in (("detector score", pooling.detector_score), ("norm", pooling.norm))
          if flag]
    return " x ".join(on) or "none"
