"""Every two models that scored the same pairs, compared after the cells of a run.

"The same pairs" is ``details["pairs_key"]`` (the same dataset and pair list, whatever detector
each model's native pipeline used): the ok verification cells are grouped by it, whatever their
protocol. Within a group, every two cells of different models whose devices have the same
precision are compared (fp32 with fp32, int8 with int8; a variant against its own fp32 cell is
``runner.variants``'s), on their scores read with :func:`facebench.scores.load_pair_arrays`:

- accuracy of a − accuracy of b (each model's own k-fold thresholds, or one on all the data),
  with a paired bootstrap CI: one resample weighs both score sets, drawing identities when the
  scores carry them (an identity drawn brings all its pairs) unless a protocol asked for
  ``bootstrap_method: pair``, else pairs;
- McNemar's exact test on the pairs the two models decide differently at their own thresholds;
- TAR(a) − TAR(b) at each FAR target both cells report, each side's threshold set on its own
  impostors, with the same paired CI;
- Holm's adjustment of the McNemar p-values across all the comparisons of the run.

A difference is called real (``winner``) only where its CI excludes 0. The whole analysis goes to
``results["comparisons"]`` (docs/results.md, "Comparisons"); a pair of cells that cannot be
compared (a score file unreadable, labels that differ) gets a ``reason`` and no numbers, and the
others are still compared.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from facebench.metrics._inputs import far_key
from facebench.metrics.bootstrap import (
    RESAMPLING,
    paired_kfold_accuracy_difference,
    paired_tar_at_far_difference,
)
from facebench.metrics.significance import holm, mcnemar
from facebench.metrics.verification import best_threshold, kfold_accuracy
from facebench.results import device_precisions
from facebench.scores import PairArrays, load_pair_arrays

#: Replicates when neither cell's protocol bootstraps (``bootstrap: 0``).
DEFAULT_REPLICATES = 1000
SEED = 0
LEVEL = 0.95
#: The family-wise error rate Holm's adjustment is read at.
ALPHA = 0.05
#: Above this many pairs (exhaustive protocols) accuracy is not compared: at one threshold it
#: is ~ the impostors' specificity, and its k-fold bootstrap would resample tens of millions of
#: pairs per replicate; TAR@FAR is the comparison there.
MAX_ACCURACY_PAIRS = 2_000_000
KEY = "comparisons"


class NotCompared(Exception):
    """Why two cells cannot be compared (a sentence for the record)."""


def attach_model_comparisons(results: dict[str, Any], out: Path) -> None:
    """Set ``results["comparisons"]`` (see the module docstring) from the ok verification cells
    of ``results`` and their score files under ``out``; an earlier pass's is replaced. Nothing
    is set when no two models scored the same pairs."""
    results.pop(KEY, None)
    groups = _groups(results)
    precision = device_precisions(results)
    rows: list[dict[str, Any]] = []
    for key, cells in groups.items():
        pairs = [(a, b) for a, b in itertools.combinations(cells, 2)
                 if a.get("model") != b.get("model")
                 and precision.get(str(a.get("device"))) == precision.get(str(b.get("device")))]
        uses = collections.Counter(str(c.get("id")) for ab in pairs for c in ab)
        loaded: dict[str, PairArrays | str] = {}
        for a, b in pairs:
            rows.append(_compare(out, key, a, b, precision, loaded))
            for c in (a, b):  # an exhaustive cell's arrays are ~0.4 GB: drop after last use
                uses[str(c.get("id"))] -= 1
                if not uses[str(c.get("id"))]:
                    loaded.pop(str(c.get("id")), None)
    if not rows:
        return
    _adjust(rows)
    results[KEY] = {
        "alpha": ALPHA,
        "level": LEVEL,
        "seed": SEED,
        "method": ("paired percentile bootstrap of each difference (the same resample weighs "
                   "both models; identities drawn when the scores carry them, else pairs: "
                   "each row's bootstrap.method); "
                   "McNemar's exact test at each model's own thresholds; Holm's step-down "
                   "adjustment across all McNemar tests of this run"),
        "groups": [{"pairs_key": k,
                    "protocols": list(dict.fromkeys(str(c.get("protocol")) for c in v)),
                    "cells": [str(c.get("id")) for c in v]} for k, v in groups.items()],
        "pairwise": rows,
    }


def _groups(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Ok verification cells with a ``pairs_key``, grouped by it (groups of one left out)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in results.get("cells") or []:
        key = (c.get("details") or {}).get("pairs_key")
        if c.get("status") == "ok" and c.get("kind") == "verification" and isinstance(key, str):
            out.setdefault(key, []).append(c)
    return {k: v for k, v in out.items() if len(v) > 1}


def _arrays(out: Path, cell: dict[str, Any], loaded: dict[str, PairArrays | str]) -> PairArrays:
    """The cell's pairs, loaded once per group (``loaded``: its cells so far, or why not); the
    labels and identities of a group's cells are one pair list's, so equal arrays are shared."""
    cid = str(cell.get("id"))
    if cid not in loaded:
        try:
            p = load_pair_arrays(out / "cells" / str(cell.get("slug") or cid),
                                 cell.get("details") or {})
            loaded[cid] = _shared(p, [q for q in loaded.values() if isinstance(q, PairArrays)])
        except (OSError, ValueError) as exc:
            loaded[cid] = f"cannot read the scores of {cid}: {exc}"
    got = loaded[cid]
    if isinstance(got, str):
        raise NotCompared(got)
    return got


def _shared(p: PairArrays, others: list[PairArrays]) -> PairArrays:
    """``p`` with the label and identity arrays of an equal loaded one (one copy in memory)."""
    for q in others:
        same = all((x is None and y is None) or (x is not None and y is not None
                                                  and np.array_equal(x, y))
                   for x, y in ((p.label, q.label), (p.id_a, q.id_a), (p.id_b, q.id_b)))
        if same:
            return dataclasses.replace(p, label=q.label, id_a=q.id_a, id_b=q.id_b)
    return p


def _replicates(*cells: dict[str, Any]) -> int:
    """The larger of the two cells' bootstrap replicates (:data:`DEFAULT_REPLICATES` if none)."""
    counts = [((c.get("details") or {}).get("bootstrap") or {}).get("replicates") for c in cells]
    counts = [int(n) for n in counts if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    return max(counts, default=DEFAULT_REPLICATES)


def _targets(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[float, bool | None]]:
    """FAR targets both cells report, loosest first, with the ``supported`` flag (both)."""
    def rows(c: dict[str, Any]) -> dict[float, Any]:
        return {float(r["far"]): r.get("supported") for r in
                (c.get("details") or {}).get("tar_at_far") or []
                if isinstance(r, dict) and isinstance(r.get("far"), int | float)}
    ra, rb = rows(a), rows(b)
    both = sorted(set(ra) & set(rb), reverse=True)
    return [(x, None if ra[x] is None or rb[x] is None else bool(ra[x] and rb[x])) for x in both]


def _winner(delta: float | None, lo: float | None, hi: float | None, a: str, b: str) -> str | None:
    """The model ahead when the CI [lo, hi] of a − b excludes 0, else None."""
    if delta is None or lo is None or hi is None:
        return None
    return a if lo > 0 else b if hi < 0 else None


def _num(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _correct(p: PairArrays) -> np.ndarray:
    """Per pair: decided right at the model's own threshold(s) (FtA pairs rejected)."""
    genuine = p.label == 1
    if p.fold is None:
        t = np.full(p.score.shape, best_threshold(p.score, p.label, p.fta))
    else:
        kf = kfold_accuracy(p.score, p.label, p.fold, p.fta)
        t = kf.thresholds[np.searchsorted(kf.folds, p.fold)]
    with np.errstate(invalid="ignore"):
        accept = (p.score >= t) & ~p.fta
    return accept == genuine


def _compare(out: Path, key: str, a: dict[str, Any], b: dict[str, Any],
             precision: dict[str, str], loaded: dict[str, PairArrays | str]) -> dict[str, Any]:
    ma, mb = str(a.get("model")), str(b.get("model"))
    row: dict[str, Any] = {
        "pairs_key": key, "a": str(a.get("id")), "b": str(b.get("id")),
        "model_a": ma, "model_b": mb, "protocol_a": str(a.get("protocol")),
        "protocol_b": str(b.get("protocol")),
        "precision": precision.get(str(a.get("device")), "fp32"),
        "pairs": None, "bootstrap": None, "accuracy": None, "mcnemar": None, "tar_at_far": [],
        "reason": None,
    }
    try:
        pa, pb = _arrays(out, a, loaded), _arrays(out, b, loaded)
        row.update(compare_scores(pa, pb, ma, mb, _targets(a, b), _replicates(a, b),
                                  identities=_identity_method(a, b)))
    except NotCompared as exc:
        row["reason"] = str(exc)
    except ValueError as exc:
        row["reason"] = f"cannot compare {row['a']} with {row['b']}: {exc}"
    return row


def _identity_method(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """False when either cell's protocol asked for the pair bootstrap
    (``bootstrap_method: pair``, recorded as ``details.bootstrap.resampling_method``)."""
    return all(((c.get("details") or {}).get("bootstrap") or {}).get("resampling_method")
               != "pair" for c in (a, b))


def compare_scores(pa: PairArrays, pb: PairArrays, ma: str, mb: str,
                   targets: list[tuple[float, bool | None]], replicates: int,
                   identities: bool = True) -> dict[str, Any]:
    """The comparison of two score sets on the same pairs (``pa`` of model ``ma``, ``pb`` of
    ``mb``): ``pairs``, ``bootstrap``, ``accuracy`` and ``mcnemar`` (None above
    :data:`MAX_ACCURACY_PAIRS` pairs), ``tar_at_far`` at each ``(FAR, supported)`` of
    ``targets``; ``mcnemar.p_holm`` is left None (:func:`_adjust` sets it across the run).
    The bootstrap draws identities when ``identities`` and the arrays carry them, else pairs.
    ``NotCompared`` when the arrays do not describe the same pairs."""
    _check_aligned(pa, pb, ma, mb)
    ids = pa.identities if identities else None
    method = "identity" if ids is not None else "pair"
    kw = {"replicates": replicates, "seed": SEED, "level": LEVEL, "identities": ids}
    row: dict[str, Any] = {
        "pairs": int(pa.label.size), "accuracy": None, "mcnemar": None, "tar_at_far": [],
        "bootstrap": {"method": method, "resampling": RESAMPLING[method],
                      "replicates": replicates, "seed": SEED, "level": LEVEL}}
    if pa.label.size <= MAX_ACCURACY_PAIRS:
        d = paired_kfold_accuracy_difference(pa.score, pb.score, pa.label, pa.fold, pa.fta,
                                             pb.fta, **kw)
        row["accuracy"] = _difference(d, ma, mb)
        t = mcnemar(_correct(pa), _correct(pb))
        row["mcnemar"] = {"a_only": t.a_only, "b_only": t.b_only, "both": t.both,
                          "neither": t.neither, "p_value": t.p_value, "p_holm": None,
                          "thresholds": "kfold" if pa.fold is not None else "all_data"}
    if row["accuracy"] is None and not targets:
        raise NotCompared(f"{pa.label.size:,} pairs (accuracy is compared up to "
                          f"{MAX_ACCURACY_PAIRS:,}) and no FAR target both cells report")
    if targets:
        diffs = paired_tar_at_far_difference(pa.score, pb.score, pa.label,
                                             [x for x, _ in targets], pa.fta, pb.fta, **kw)
        row["tar_at_far"] = [{"far": x, "key": far_key(x), "supported": ok,
                              **_difference(d, ma, mb, ok is not False)}
                             for (x, ok), d in zip(targets, diffs, strict=True)]
    return row


def _difference(d: Any, ma: str, mb: str, supported: bool = True) -> dict[str, Any]:
    """A paired difference as the record stores it; no winner where the rate is unsupported
    (N_imp × FAR < 10)."""
    delta, lo, hi = _num(d.delta), _num(d.ci_low), _num(d.ci_high)
    return {"a": _num(d.a), "b": _num(d.b), "delta": delta, "ci_low": lo, "ci_high": hi,
            "winner": _winner(delta, lo, hi, ma, mb) if supported else None}


def _check_aligned(pa: PairArrays, pb: PairArrays, a: str, b: str) -> None:
    """Equal pairs_key promises the same pairs in the same order; refuse arrays that say not."""
    if pa.label.shape != pb.label.shape:
        raise NotCompared(f"{a} has {pa.label.size} pairs and {b} {pb.label.size} although "
                          "their pairs_key is the same; re-run both cells")
    for name, x, y in (("label", pa.label, pb.label), ("fold", pa.fold, pb.fold),
                       ("identity", pa.id_a, pb.id_a), ("identity", pa.id_b, pb.id_b)):
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
            raise NotCompared(f"{a} and {b} give their pairs different {name}s although their "
                              "pairs_key is the same; re-run both cells")


def _adjust(rows: list[dict[str, Any]]) -> None:
    """Holm-adjust the McNemar p-values of ``rows`` in place (one family: the run)."""
    tests = [r["mcnemar"] for r in rows if r["mcnemar"] is not None]
    for t, p in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        t["p_holm"] = p
