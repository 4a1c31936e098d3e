"""TEMPORARY stand-in for helper B's contract API (deleted once i22-exhaustive is merged):
PairArrays/load_pair_arrays (facebench.scores) and the paired bootstraps with ``identities``
(facebench.metrics.bootstrap). Pair bootstrap only; no identity codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebench.metrics import bootstrap as _b
from facebench.metrics._inputs import as_pairs
from facebench.metrics.bootstrap import PairedDifference
from facebench.scores import read_scores


@dataclass(frozen=True)
class PairArrays:
    score: np.ndarray
    label: np.ndarray
    fold: np.ndarray | None
    fta: np.ndarray
    id_a: np.ndarray | None
    id_b: np.ndarray | None


def load_pair_arrays(cell_dir: Path, details: dict[str, Any]) -> PairArrays:
    t = read_scores(cell_dir / "scores.csv")
    return PairArrays(t.score, t.label, t.fold, t.fta, None, None)


def paired_kfold_accuracy_difference(scores_a: np.ndarray, scores_b: np.ndarray,
                                     labels: np.ndarray, folds: np.ndarray | None,
                                     fta_a: np.ndarray | None = None,
                                     fta_b: np.ndarray | None = None, replicates: int = 1000,
                                     seed: int = 0, level: float = 0.95,
                                     identities: Any = None) -> PairedDifference:
    return _b.paired_kfold_accuracy_difference(scores_a, scores_b, labels, folds, fta_a, fta_b,
                                               replicates, seed, level)


def paired_tar_at_far_difference(scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray,
                                 far_targets: Sequence[float], fta_a: np.ndarray | None = None,
                                 fta_b: np.ndarray | None = None, replicates: int = 1000,
                                 seed: int = 0, level: float = 0.95,
                                 identities: Any = None) -> list[PairedDifference]:
    a, b = as_pairs(scores_a, labels, fta_a), as_pairs(scores_b, labels, fta_b)
    ra, rb = _b._prepare_ranked(a), _b._prepare_ranked(b)
    ones = np.ones((1, a.n), dtype=np.int32)
    ta, tb = _b._tar_stats(ra, ones, far_targets)[0], _b._tar_stats(rb, ones, far_targets)[0]
    members = _b._strata_members(a.genuine.astype(np.int64))
    d = np.concatenate([_b._tar_stats(ra, w, far_targets) - _b._tar_stats(rb, w, far_targets)
                        for w in _b._weight_chunks(members, a.n, replicates, seed, 2)])
    out = []
    for j in range(len(far_targets)):
        lo, hi = _b._interval(d[:, j], level)
        out.append(PairedDifference(float(ta[j] - tb[j]), lo, hi, replicates, float(ta[j]),
                                    float(tb[j])))
    return out
