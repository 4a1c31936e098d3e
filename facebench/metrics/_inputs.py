"""Input checks shared by the metric functions, and the canonical FAR key formatter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def far_key(far: float) -> str:
    """Canonical text of a FAR target: shortest round-tripping ``e`` form, exponent unpadded.

    ``1e-3 -> "1e-3"``, ``1e-06 -> "1e-6"``, ``0.0015 -> "1.5e-3"``, ``0.1 -> "1e-1"``.
    """
    far = float(far)
    if not np.isfinite(far) or far <= 0:
        raise ValueError(f"FAR target must be a finite number > 0, got {far!r}")
    for digits in range(17):
        text = f"{far:.{digits}e}"
        if float(text) == far:
            break
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


@dataclass(frozen=True)
class Pairs:
    """Validated verification inputs: scores, genuine mask, FtA mask (all 1-D, same length)."""

    scores: np.ndarray
    genuine: np.ndarray
    fta: np.ndarray

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_genuine(self) -> int:
        return int(np.count_nonzero(self.genuine))

    @property
    def n_impostor(self) -> int:
        return self.n - self.n_genuine


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def as_pairs(scores: np.ndarray, labels: np.ndarray, fta: np.ndarray | None = None) -> Pairs:
    """Check and convert ``scores``/``labels``/``fta``; raise ``ValueError`` naming the argument.

    Scores keep a floating dtype (float32 stays float32). Labels must be 0/1 (or bool). Scores
    must be finite except where ``fta`` is true (an FtA pair's score is ignored and may be NaN).
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if not np.issubdtype(s.dtype, np.floating):
        if not (np.issubdtype(s.dtype, np.integer) or s.dtype == bool):
            raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
        s = s.astype(np.float64)
    y = np.asarray(labels)
    if y.shape != s.shape:
        raise ValueError(f"labels shape {y.shape} does not match scores shape {s.shape}")
    if y.dtype == bool:
        genuine = y
    else:
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
            raise ValueError(f"labels must be 0/1 numbers, got dtype {y.dtype}")
        bad = (y != 0) & (y != 1)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(
                f"labels must be 1 (genuine) or 0 (impostor); labels[{i}] = {y[i].item()!r}"
            )
        genuine = y == 1
    if fta is None:
        f = np.zeros(s.shape, dtype=bool)
    else:
        f = np.asarray(fta)
        if f.shape != s.shape:
            raise ValueError(f"fta shape {f.shape} does not match scores shape {s.shape}")
        if f.dtype != bool:
            if not np.issubdtype(f.dtype, np.integer) or ((f != 0) & (f != 1)).any():
                raise ValueError(f"fta must be booleans (or 0/1), got dtype {f.dtype}")
            f = f.astype(bool)
    bad = ~np.isfinite(s) & ~f
    if bad.any():
        i = _first_bad(bad)
        raise ValueError(
            f"scores[{i}] = {s[i].item()!r} is not finite; only failure-to-acquire pairs "
            "(fta=True) may have a missing score: mark them fta or fix the scores"
        )
    return Pairs(scores=s, genuine=genuine, fta=f)


def as_folds(folds: np.ndarray, n: int) -> np.ndarray:
    """Check fold ids: 1-D integers, one per pair, at least two distinct values."""
    k = np.asarray(folds)
    if k.shape != (n,):
        raise ValueError(f"folds shape {k.shape} does not match scores shape {(n,)}")
    if np.issubdtype(k.dtype, np.floating):
        if not np.all(np.isfinite(k)) or np.any(k != np.round(k)):
            raise ValueError("folds must be integer fold ids (no NaN, no fractions)")
        k = k.astype(np.int64)
    elif not np.issubdtype(k.dtype, np.integer):
        raise ValueError(f"folds must be integer fold ids, got dtype {k.dtype}")
    if np.unique(k).size < 2:
        raise ValueError(
            "folds must contain at least 2 distinct fold ids for k-fold accuracy; "
            "pass folds=None to choose the threshold on all the data instead"
        )
    return k
