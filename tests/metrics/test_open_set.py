"""1:N search metrics: hand-worked ranks and FNIR@FPIR, a brute-force cross-check from a full
similarity matrix, and agreement with the closed-set :func:`facebench.metrics.cmc`."""

from __future__ import annotations

import numpy as np
import pytest

from facebench.metrics import cmc
from facebench.metrics.catalog import metric_info
from facebench.metrics.open_set import (
    Searches,
    cmc_curve,
    det_curve,
    fnir_at_fpir,
    open_set_metrics,
    rank_rate,
    searches_from_candidates,
)

NAN, INF = np.nan, np.inf

# Gallery entries 0..4 with identities a, a, b, c, d; enrolled also holds 'e', whose only
# gallery image failed to embed (so it is never a candidate). K = 3 candidates per probe.
GALLERY = np.array(["a", "a", "b", "c", "d"])
ENROLLED = np.array(["a", "b", "c", "d", "e"])
PROBES = np.array(["b", "c", "d", "e", "a", "z", "y", "x", "a"])
VALID = np.array([True, True, True, True, False, True, False, True, True])
SCORES = np.array([
    [0.9, 0.8, 0.8],    # b: a 0.9, (a 0.8 duplicate), b 0.8 -> rank 2, mate 0.8
    [0.7, 0.7, 0.1],    # c: c 0.7 listed first but ties with b 0.7 -> rank 2 (ties count against)
    [0.6, 0.5, 0.4],    # d: not among the candidates -> rank 0 (mated miss)
    [0.5, 0.3, -1.0],   # e: enrolled, no gallery entry embedded -> rank 0 (mated miss)
    [0.0, 0.0, 0.0],    # a: FtA probe (row ignored) -> rank 0, top -inf
    [0.95, 0.2, 0.1],   # z: non-mated, top 0.95
    [0.0, 0.0, 0.0],    # y: non-mated FtA -> top -inf
    [0.45, -1.0, -1.0],  # x: non-mated, one candidate, top 0.45
    [0.85, 0.85, 0.3],  # a: a 0.85 (and its duplicate) -> rank 1, mate 0.85
])
INDEX = np.array([[0, 1, 2], [3, 2, 0], [0, 2, 3], [1, 3, -1], [0, 1, 2], [4, 0, 2],
                  [0, 1, 2], [3, -1, -1], [1, 0, 2]])


def hand() -> Searches:
    return searches_from_candidates(SCORES, INDEX, GALLERY, PROBES, ENROLLED, VALID)


def test_hand_worked_searches() -> None:
    s = hand()
    assert s.mated.tolist() == [True, True, True, True, True, False, False, False, True]
    assert s.mate_rank.tolist() == [2, 2, 0, 0, 0, 0, 0, 0, 1]
    np.testing.assert_array_equal(s.mate_score, [0.8, 0.7, NAN, NAN, NAN, NAN, NAN, NAN, 0.85])
    np.testing.assert_array_equal(s.top_score, [0.9, 0.7, 0.6, 0.5, -INF, 0.95, -INF, 0.45, 0.85])
    assert (s.n_mated, s.n_nonmated) == (6, 3)


def test_hand_worked_cmc_over_mated_probes() -> None:
    s = hand()
    # mated ranks 2, 2, 0, 0, 0, 1 over 6 mated probes
    assert cmc_curve(s, 3).tolist() == pytest.approx([1 / 6, 3 / 6, 3 / 6])
    assert rank_rate(s, 1) == pytest.approx(1 / 6)
    assert rank_rate(s, 5) == pytest.approx(3 / 6)


def test_hand_worked_fnir_at_fpir_rank1() -> None:
    s = hand()
    # rank 1: the only mated hit is the last probe (0.85). Non-mated top scores 0.95, 0.45 and
    # the FtA probe (never accepted; still one of the 3 non-mated searches).
    # thresholds: 0.95 (FPIR 1/3), 0.85 (FPIR 1/3, FNIR 5/6), 0.45 (FPIR 2/3)
    r = fnir_at_fpir(s, 0.5)  # at most 1 false accept: smallest such threshold is 0.85
    assert (r.fnir, r.fpir_achieved, r.threshold) == pytest.approx((5 / 6, 1 / 3, 0.85))
    assert (r.n_mated, r.n_nonmated, r.supported) == (6, 3, False)
    r = fnir_at_fpir(s, 0.2)  # no false accept allowed: reject everything, just above 0.95
    assert (r.fnir, r.fpir_achieved) == (1.0, 0.0)
    assert r.threshold == float(np.nextafter(0.95, 1.0))  # 0.95 is no float32: next float64
    r = fnir_at_fpir(s, 1.0)  # everything allowed: smallest threshold 0.45
    assert (r.fnir, r.fpir_achieved, r.threshold) == pytest.approx((5 / 6, 2 / 3, 0.45))


def test_hand_worked_open_set_rank5() -> None:
    s = hand()
    # rank 5: hits at 0.85, 0.8, 0.7. With 1 false accept (0.95) the smallest threshold is 0.7
    r = fnir_at_fpir(s, 0.5, rank=5)
    assert (r.fnir, r.fpir_achieved, r.threshold) == pytest.approx((0.5, 1 / 3, 0.7))
    fpir, fnir = det_curve(s, rank=5)
    # thresholds inf, 0.95, 0.85, 0.8, 0.7, 0.45
    assert fpir.tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert fnir.tolist() == pytest.approx([1, 1, 5 / 6, 4 / 6, 3 / 6, 3 / 6])


def test_open_set_metrics_keys_and_details() -> None:
    m, d = open_set_metrics(hand(), ranks=(1, 5), max_rank=3, fpir_targets=(0.2, 0.5))
    assert m["rank1"] == pytest.approx(1 / 6) and m["rank5"] == pytest.approx(0.5)
    assert m["fnir@fpir=5e-1"] == pytest.approx(5 / 6)
    assert m["fpir_achieved@fpir=5e-1"] == pytest.approx(1 / 3)
    assert m["threshold@fpir=5e-1"] == pytest.approx(0.85)
    assert m["fnir@fpir=2e-1"] == 1.0
    assert (m["mated_searches"], m["nonmated_searches"]) == (6, 3)
    assert d["cmc"] == pytest.approx([1 / 6, 0.5, 0.5])
    assert [row["fpir"] for row in d["fnir_at_fpir"]] == [0.2, 0.5]
    assert d["det_1n"]["fpir"] == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3])
    assert d["det_1n"]["fnir"] == pytest.approx([1, 1, 5 / 6, 5 / 6])
    assert d["open_set_rank"] == 1


def test_support_flag_and_missing_classes() -> None:
    n = 1000
    s = Searches(mated=np.r_[np.ones(10, bool), np.zeros(n, bool)],
                 mate_rank=np.r_[np.ones(10, np.int64), np.zeros(n, np.int64)],
                 mate_score=np.r_[np.full(10, 0.9), np.full(n, NAN)],
                 top_score=np.r_[np.full(10, 0.9), np.linspace(0, 0.5, n)])
    assert fnir_at_fpir(s, 0.01).supported  # 1000 x 0.01 = 10
    assert not fnir_at_fpir(s, 0.001).supported
    only_mated = Searches(s.mated[:10], s.mate_rank[:10], s.mate_score[:10], s.top_score[:10])
    r = fnir_at_fpir(only_mated, 0.1)
    assert (r.fnir, r.fpir_achieved, r.threshold, r.supported) == (None, None, None, False)
    with pytest.raises(ValueError, match="non-mated"):
        det_curve(only_mated)
    m, d = open_set_metrics(only_mated)
    assert m["fnir@fpir=1e-2"] is None and d["det_1n"] is None and m["rank1"] == 1.0
    only_non = Searches(s.mated[10:], s.mate_rank[10:], s.mate_score[10:], s.top_score[10:])
    m, d = open_set_metrics(only_non)
    assert m["rank1"] is None and d["cmc"] is None and m["nonmated_searches"] == n
    with pytest.raises(ValueError, match="no mated probe"):
        cmc_curve(only_non, 5)


def test_concat_and_integer_ids() -> None:
    s = hand()
    codes = {k: i for i, k in enumerate("abcdexyz")}
    as_int = searches_from_candidates(
        SCORES, INDEX, np.array([codes[x] for x in GALLERY]), np.array([codes[x] for x in PROBES]),
        np.array([codes[x] for x in ENROLLED]), VALID)
    np.testing.assert_array_equal(as_int.mate_rank, s.mate_rank)
    both = Searches.concat([s, as_int])
    assert len(both) == 18 and both.n_mated == 12
    np.testing.assert_array_equal(both.top_score[9:], s.top_score)


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="'d' is not among enrolled_ids"):
        searches_from_candidates(SCORES, INDEX, GALLERY, PROBES, ENROLLED[:3])
    bad = SCORES.copy()
    bad[2] = [0.1, 0.5, 0.4]
    with pytest.raises(ValueError, match="probe row 2 .* descending"):
        searches_from_candidates(bad, INDEX, GALLERY, PROBES, ENROLLED, VALID)
    with pytest.raises(ValueError, match="mix string and integer"):
        searches_from_candidates(SCORES, INDEX, np.arange(5), PROBES, np.arange(5))
    with pytest.raises(ValueError, match="probe_ids must have shape"):
        searches_from_candidates(SCORES, INDEX, GALLERY, PROBES[:4], ENROLLED)
    with pytest.raises(ValueError, match="FPIR target"):
        fnir_at_fpir(hand(), 1.5)


# ---- brute force from a full similarity matrix -------------------------------------------------


def top_k(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sim, order, axis=1), order


def brute_ranks(sim, gallery, probes, valid):
    """(mated, rank, mate score, top score) per probe by max-pooling each identity's row."""
    out = []
    ids = sorted(set(gallery.tolist()))
    for i, p in enumerate(probes.tolist()):
        mated = p in ids
        if not valid[i]:
            out.append((mated, 0, NAN, -INF))
            continue
        best = {g: max(sim[i, j] for j in range(gallery.size) if gallery[j] == g) for g in ids}
        top = max(best.values())
        if not mated:
            out.append((False, 0, NAN, top))
            continue
        own = best[p]
        out.append((True, sum(v >= own for v in best.values()), own, top))
    return out


def brute_fnir(rows, fpir, rank):
    mated = [r for r in rows if r[0]]
    non = [r for r in rows if not r[0]]
    hits = [r[2] for r in mated if 1 <= r[1] <= rank]
    tops = [r[3] for r in non if np.isfinite(r[3])]
    for t in sorted(set(hits) | set(tops)):  # ascending: the first that fits is the smallest
        fp = sum(v >= t for v in tops) / len(non)
        if fp <= fpir:
            return 1 - sum(v >= t for v in hits) / len(mated), fp, t
    return 1.0, 0.0, None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force_full_candidates(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gallery = np.r_[np.arange(30), rng.integers(0, 30, 20)]  # duplicate-identity entries
    probes = rng.integers(0, 45, 120)  # ids 30..44 are not enrolled: non-mated
    valid = rng.random(120) > 0.05
    sim = np.round(rng.normal(size=(120, gallery.size)), 1)  # many ties
    sim += 1.5 * (probes[:, None] == gallery[None, :])
    s = searches_from_candidates(*top_k(sim, gallery.size), gallery, probes, np.arange(30),
                                 valid)
    rows = brute_ranks(sim, gallery, probes, valid)
    assert s.mated.tolist() == [r[0] for r in rows]
    assert s.mate_rank.tolist() == [r[1] for r in rows]
    np.testing.assert_array_equal(s.mate_score, [r[2] for r in rows])
    np.testing.assert_array_equal(s.top_score, [r[3] for r in rows])
    for rank in (1, 5):
        for x in (0.05, 0.1, 0.3):
            r = fnir_at_fpir(s, x, rank=rank)
            fnir, fp, t = brute_fnir(rows, x, rank)
            assert (r.fnir, r.fpir_achieved) == pytest.approx((fnir, fp), abs=1e-12)
            if t is not None:
                assert r.threshold == t


def test_truncated_candidates_match_brute_force() -> None:
    """K < gallery: a mate below the K-th candidate is a miss; others keep their full rank."""
    rng = np.random.default_rng(3)
    gallery = np.r_[np.arange(40), np.arange(40)]
    probes = rng.integers(0, 40, 200)
    sim = rng.normal(size=(200, 80)) + 1.0 * (probes[:, None] == gallery[None, :])  # no ties
    k = 10
    s = searches_from_candidates(*top_k(sim, k), gallery, probes, np.arange(40))
    rows = brute_ranks(sim, gallery, probes, np.ones(200, bool))
    kth = np.sort(sim, axis=1)[:, -k]
    expected = [r[1] if r[2] >= kth[i] else 0 for i, r in enumerate(rows)]
    assert s.mate_rank.tolist() == expected
    assert 0 in expected and max(expected) > 1


def test_cmc_curve_equals_closed_set_cmc() -> None:
    rng = np.random.default_rng(4)
    gallery = np.r_[np.arange(25), rng.integers(0, 25, 15)]
    probes = rng.integers(0, 25, 150)
    sim = np.round(rng.normal(size=(150, gallery.size)), 1) + 1.0 * (
        probes[:, None] == gallery[None, :])
    s = searches_from_candidates(*top_k(sim, gallery.size), gallery, probes, np.arange(25))
    ref = cmc(sim, gallery, probes, max_rank=10)
    np.testing.assert_array_equal(s.mate_rank, ref.ranks)
    np.testing.assert_allclose(cmc_curve(s, 10), ref.curve, rtol=0, atol=0)


def test_every_open_set_metric_has_a_catalog_entry() -> None:
    m, _ = open_set_metrics(hand(), ranks=(1, 5, 10), fpir_targets=(0.01, 0.1, 1.5e-3))
    for name in [*m, "templates"]:
        info = metric_info(name)
        assert info is not None, f"{name} is produced but not in the catalog"
    assert metric_info("fnir@fpir=1e-2").direction == "lower"
    assert metric_info("threshold@fpir=1e-1").format == "fixed4"
    assert metric_info("mated_searches").deterministic
    assert metric_info("templates").kinds == ("verification", "identification")
