"""Independent, deliberately naive reference implementations (plain Python loops).

They follow docs/metrics.md word by word and share no code with facebench.metrics.
"""

from __future__ import annotations

import math
from fractions import Fraction


def accept(s: float, t: float, fta: bool) -> bool:
    return (not fta) and s >= t


def accuracy_at(scores, labels, fta, t) -> float:
    right = sum(accept(s, t, f) == (y == 1) for s, y, f in zip(scores, labels, fta, strict=True))
    return right / len(scores)


def best_threshold(scores, labels, fta) -> float:
    candidates = sorted({s for s, f in zip(scores, fta, strict=True) if not f})
    best_t, best_acc = None, -1.0
    for t in candidates:  # ascending: strict '>' keeps the smallest of tied candidates
        acc = accuracy_at(scores, labels, fta, t)
        if acc > best_acc:
            best_t, best_acc = t, acc
    return best_t


def kfold(scores, labels, folds, fta):
    """Per-fold (threshold, accuracy) in ascending fold id order."""
    out = []
    for k in sorted(set(folds)):
        tr = [i for i in range(len(scores)) if folds[i] != k]
        te = [i for i in range(len(scores)) if folds[i] == k]
        t = best_threshold([scores[i] for i in tr], [labels[i] for i in tr], [fta[i] for i in tr])
        a = accuracy_at([scores[i] for i in te], [labels[i] for i in te], [fta[i] for i in te], t)
        out.append((t, a))
    return out


def rates(scores, labels, fta, t):
    n_gen = sum(1 for y in labels if y == 1)
    n_imp = len(labels) - n_gen
    tp = sum(1 for s, y, f in zip(scores, labels, fta, strict=True) if y == 1 and accept(s, t, f))
    fp = sum(1 for s, y, f in zip(scores, labels, fta, strict=True) if y == 0 and accept(s, t, f))
    return Fraction(fp, n_imp), Fraction(tp, n_gen)


def tar_at_far(scores, labels, fta, x):
    """(tar, far_achieved, threshold or None when only 'above everything' satisfies)."""
    for t in sorted({s for s, f in zip(scores, fta, strict=True) if not f}):
        far, tar = rates(scores, labels, fta, t)
        if far <= Fraction(x):
            return float(tar), float(far), t
    return 0.0, 0.0, None


def eer(scores, labels, fta):
    best = None
    for t in sorted({s for s, f in zip(scores, fta, strict=True) if not f}):
        far, tar = rates(scores, labels, fta, t)
        frr = 1 - tar
        gap = abs(far - frr)
        if best is None or gap < best[0]:
            best = (gap, (far + frr) / 2, t)
    return float(best[1]), best[2]


def rank(sim_row, gallery_ids, probe_id) -> int:
    """Rank by identity (max over entries); ties with other identities count against."""
    best: dict = {}
    for s, g in zip(sim_row, gallery_ids, strict=True):
        best[g] = max(best.get(g, -math.inf), s)
    own = best[probe_id]
    return 1 + sum(1 for g, s in best.items() if g != probe_id and s >= own)
