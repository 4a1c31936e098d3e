"""Verification metrics against scikit-learn, hand-worked cases and brute-force references."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from facebench.metrics import (
    Confusion,
    auc,
    best_threshold,
    compute_verification_metrics,
    confusion_at,
    confusion_ratios,
    downsample_roc,
    eer,
    far_key,
    kfold_accuracy,
    roc_auc,
    roc_curve,
    tar_at_far,
)

from . import _brute


def tied_data(seed: int, n: int = 2000, dtype=np.float64, decimals: int = 1):
    """Scores rounded to ``decimals`` so that many genuine/impostor scores tie."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    scores = np.round(rng.normal(labels * 1.2, 1.0), decimals).astype(dtype)
    return scores, labels


# ---------------------------------------------------------------- far_key


@pytest.mark.parametrize(
    ("far", "key"),
    [
        (1e-1, "1e-1"),
        (1e-3, "1e-3"),
        (1e-06, "1e-6"),
        (0.0015, "1.5e-3"),
        (1.0, "1e0"),
        (5e-4, "5e-4"),
        (1e-10, "1e-10"),
    ],
)
def test_far_key(far: float, key: str) -> None:
    assert far_key(far) == key
    assert float(key) == far


@pytest.mark.parametrize("bad", [0.0, -1e-3, float("nan"), float("inf")])
def test_far_key_rejects(bad: float) -> None:
    with pytest.raises(ValueError, match="FAR target"):
        far_key(bad)


# ---------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roc_matches_sklearn(seed: int, dtype) -> None:
    scores, labels = tied_data(seed, dtype=dtype)
    roc = roc_curve(scores, labels)
    fpr, tpr, thr = skm.roc_curve(labels, scores, drop_intermediate=False)
    assert len(roc) == thr.size < scores.size  # ties collapse
    np.testing.assert_array_equal(roc.thresholds, thr)
    np.testing.assert_allclose(roc.far, fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(roc.tar, tpr, rtol=0, atol=1e-15)
    assert auc(roc.far, roc.tar) == pytest.approx(skm.auc(fpr, tpr), abs=1e-12)
    assert auc(roc.far, roc.tar) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert roc_auc(roc) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)


def test_roc_continuous_scores_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(5000) < 0.1).astype(int)
    scores = rng.normal(labels * 2.0, 1.0).astype(np.float32)
    roc = roc_curve(scores, labels)
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(roc.far, fpr, atol=1e-15)
    np.testing.assert_allclose(roc.tar, tpr, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 3])
def test_confusion_and_ratios_match_sklearn(seed: int) -> None:
    scores, labels = tied_data(seed)
    for t in (-0.5, 0.3, 0.6, 1.5):  # thresholds equal to tied score values
        c = confusion_at(scores, labels, t)
        pred = (scores >= t).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(labels, pred, labels=[0, 1]).ravel()
        assert (c.tp, c.fp, c.tn, c.fn) == (tp, fp, tn, fn)
        r = confusion_ratios(c)
        assert r["accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
        assert r["precision"] == pytest.approx(skm.precision_score(labels, pred))
        assert r["recall"] == pytest.approx(skm.recall_score(labels, pred))
        assert r["specificity"] == pytest.approx(skm.recall_score(labels, pred, pos_label=0))
        assert r["f1"] == pytest.approx(skm.f1_score(labels, pred))


def test_per_pair_thresholds_sum_per_fold_counts() -> None:
    scores, labels = tied_data(4, n=600)
    folds = np.arange(600) // 200
    ts = np.array([0.2, 0.5, 0.9])
    total = confusion_at(scores, labels, ts[folds])
    parts = [confusion_at(scores[folds == k], labels[folds == k], ts[k]) for k in range(3)]
    assert total == parts[0] + parts[1] + parts[2]


# ---------------------------------------------------------------- hand-worked cases


def test_tie_at_threshold_is_accepted() -> None:
    c = confusion_at(np.array([0.5, 0.5, 0.4, 0.6]), np.array([1, 0, 0, 1]), 0.5)
    assert c == Confusion(tp=2, fp=1, tn=1, fn=0)


def test_best_threshold_hand_worked_tie_goes_to_smallest() -> None:
    # t=0.1: 2/4, t=0.2: 3/4, t=0.3: 2/4, t=0.4: 3/4 -> tie between 0.2 and 0.4 -> 0.2
    s = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([0, 1, 0, 1])
    assert best_threshold(s, y) == 0.2


def test_undefined_ratios_are_none() -> None:
    r = confusion_ratios(Confusion(tp=0, fp=0, tn=5, fn=0))
    assert r["precision"] is None and r["recall"] is None and r["f1"] is None
    assert r["accuracy"] == 1.0 and r["specificity"] == 1.0
    r = confusion_ratios(Confusion(tp=0, fp=3, tn=5, fn=2))
    assert r["precision"] == 0.0 and r["recall"] == 0.0 and r["f1"] is None  # 2PR/(P+R) = 0/0


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_none(label: int) -> None:
    s = np.array([0.1, 0.5, 0.7, 0.7, 0.9, 0.2])
    y = np.full(6, label)
    m = compute_verification_metrics(s, y, folds=np.array([0, 0, 1, 1, 2, 2])).metrics
    for key in ("auc", "eer", "eer_threshold", "tar@far=1e-3", "far_achieved@far=1e-3"):
        assert m[key] is None, key
    if label == 1:
        assert m["specificity"] is None and m["tn"] == 0 and m["fp"] == 0
    else:
        assert m["recall"] is None and m["tp"] == 0 and m["fn"] == 0
    assert m["accuracy"] is not None


def test_tar_at_far_hand_worked() -> None:
    # impostors 0.9 0.6 0.5 0.4 0.3 0.2 0.1 0.0 -0.1 -0.2 (N_imp = 10); genuine 0.95 0.6 0.45 0.1
    imp = [0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1, -0.2]
    gen = [0.95, 0.6, 0.45, 0.1]
    s = np.array(imp + gen)
    y = np.array([0] * 10 + [1] * 4)
    roc = roc_curve(s, y)
    r = tar_at_far(roc, 0.1)  # FAR(0.9)=0.1 and 0.9 is the smallest such t (FAR(0.6)=0.2)
    assert (r.threshold, r.far_achieved, r.tar) == (0.9, 0.1, 0.25)
    assert r.n_impostor == 10 and r.supported is False  # 10 * 0.1 = 1 < 10
    r = tar_at_far(roc, 0.2)  # t = 0.6 (FAR(0.5) = 0.3); tie: genuine and impostor 0.6 accepted
    assert (r.threshold, r.far_achieved, r.tar) == (0.6, 0.2, 0.5)
    r = tar_at_far(roc, 0.05)  # only the genuine 0.95 is above every impostor
    assert (r.threshold, r.far_achieved, r.tar) == (0.95, 0.0, 0.25)
    assert tar_at_far(roc, 1.0).tar == 1.0
    # the top score is an impostor: no data threshold reaches FAR <= 0.05 -> reject everything
    roc = roc_curve(np.r_[s, 0.99], np.r_[y, 0])
    r = tar_at_far(roc, 0.05)
    assert r.tar == 0.0 and r.far_achieved == 0.0
    assert r.threshold == pytest.approx(0.99) and r.threshold > 0.99


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reported_thresholds_reproduce_tar_and_far(dtype) -> None:
    """Applying threshold@far with s >= t gives back exactly the reported TAR and FAR."""
    rng = np.random.default_rng(8)
    labels = (rng.random(20_000) < 0.1).astype(int)
    scores = rng.normal(labels * 2.0, 1.0).astype(dtype)
    labels[np.argmax(scores)] = 0  # top score is an impostor: tiny targets reject everything
    m = compute_verification_metrics(scores, labels).metrics
    n_gen, n_imp = np.count_nonzero(labels == 1), np.count_nonzero(labels == 0)
    for x in ("1e-1", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6"):
        c = confusion_at(scores, labels, m[f"threshold@far={x}"])
        assert c.tp / n_gen == m[f"tar@far={x}"] and c.fp / n_imp == m[f"far_achieved@far={x}"]
        assert c.fp / n_imp <= float(x)
    assert m["tar@far=1e-6"] == 0.0
    c = confusion_at(scores, labels, m["eer_threshold"])
    assert m["eer"] == pytest.approx((c.fp / n_imp + c.fn / n_gen) / 2)


def test_float32_scores_and_their_float64_copy_give_identical_metrics() -> None:
    """A score file stores float32 scores as float64: recomputing must reproduce every value."""
    rng = np.random.default_rng(12)
    labels = (rng.random(3000) < 0.5).astype(int)
    scores = rng.normal(labels * 1.5, 1.0).astype(np.float32)
    labels[np.argmax(scores)] = 0  # reject-all threshold for the tiny targets
    folds = np.arange(3000) % 10
    a = compute_verification_metrics(scores, labels, folds)
    b = compute_verification_metrics(scores.astype(np.float64), labels, folds)
    assert a.metrics == b.metrics and a.details == b.details


def test_supported_flag_boundary() -> None:
    s = np.linspace(0, 1, 101)
    y = np.r_[np.zeros(100, int), 1]  # N_imp = 100
    roc = roc_curve(s, y)
    assert tar_at_far(roc, 0.1).supported  # 100 * 0.1 = 10
    assert not tar_at_far(roc, 0.09).supported
    m = compute_verification_metrics(s, y).details["tar_at_far"]
    assert [row["supported"] for row in m] == [True] + [False] * 5


def test_eer_hand_worked() -> None:
    # t=0.5: FAR=1/4, FRR=1/4 -> EER 0.25
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    e = eer(roc_curve(s, y))
    assert (e.eer, e.threshold, e.far, e.frr) == (0.25, 0.6, 0.25, 0.25)


# ---------------------------------------------------------------- failure to acquire


def test_fta_pairs_always_rejected_and_counted() -> None:
    s = np.array([0.9, np.nan, 0.2, np.nan, 0.8, 0.1])
    y = np.array([1, 1, 0, 0, 1, 0])
    fta = np.array([False, True, False, True, False, False])
    for t in (-10.0, 0.15, 0.5):
        c = confusion_at(s, y, t, fta)
        assert c.fn >= 1 and c.tn >= 1  # the FtA genuine is a FN, the FtA impostor a TN
    c = confusion_at(s, y, -10.0, fta)
    assert c == Confusion(tp=2, fp=2, tn=1, fn=1)
    m = compute_verification_metrics(s, y, fta=fta).metrics
    assert m["fta_pairs"] == 2 and m["fta_rate"] == pytest.approx(2 / 6) and m["pairs"] == 6
    # FtA scores are never threshold candidates, even if not NaN
    s2 = np.where(fta, 5.0, s)
    assert best_threshold(s2, y, fta) == best_threshold(s, y, fta)


def test_all_fta_rejects_everything() -> None:
    s = np.full(6, np.nan)
    y = np.array([1, 0, 1, 0, 1, 0])
    fta = np.ones(6, dtype=bool)
    assert best_threshold(s, y, fta) == np.inf
    res = compute_verification_metrics(s, y, np.array([0, 0, 1, 1, 2, 2]), fta, bootstrap=20)
    m = res.metrics
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (0, 0, 3, 3)
    assert m["accuracy"] == 0.5 and m["precision"] is None and m["fta_rate"] == 1.0
    assert m["auc"] == 0.0 and m["eer"] is None and m["tar@far=1e-1"] == 0.0
    assert m["accuracy_ci_low"] == m["accuracy_ci_high"] == 0.5
    assert all(f["threshold"] is None for f in res.details["folds"])
    json.dumps(res.metrics, allow_nan=False)
    json.dumps(res.details, allow_nan=False)


def test_fta_roc_is_sklearn_roc_scaled_by_attainable_fraction() -> None:
    scores, labels = tied_data(5, n=1500)
    fta = np.random.default_rng(55).random(1500) < 0.05
    scores[fta] = np.nan
    roc = roc_curve(scores, labels, fta)
    ok = ~fta
    fpr, tpr, thr = skm.roc_curve(labels[ok], scores[ok], drop_intermediate=False)
    imp_frac = np.count_nonzero(ok & (labels == 0)) / np.count_nonzero(labels == 0)
    gen_frac = np.count_nonzero(ok & (labels == 1)) / np.count_nonzero(labels == 1)
    np.testing.assert_array_equal(roc.thresholds, thr)
    np.testing.assert_allclose(roc.far, fpr * imp_frac, atol=1e-12)
    np.testing.assert_allclose(roc.tar, tpr * gen_frac, atol=1e-12)
    assert roc.far[-1] < 1 and roc.tar[-1] < 1
    assert auc(roc.far, roc.tar) == pytest.approx(skm.auc(fpr * imp_frac, tpr * gen_frac))


def test_nan_score_without_fta_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"scores\[1\].*fta"):
        compute_verification_metrics(np.array([0.1, np.nan]), np.array([0, 1]))


def test_bad_labels_are_an_error() -> None:
    with pytest.raises(ValueError, match=r"labels\[2\] = 2"):
        roc_curve(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]))


# ---------------------------------------------------------------- brute-force references


@pytest.mark.parametrize("seed", [0, 1])
def test_kfold_accuracy_matches_brute_force(seed: int) -> None:
    scores, labels = tied_data(seed, n=300, decimals=1)
    fta = np.random.default_rng(seed + 100).random(300) < 0.03
    scores[fta] = np.nan
    folds = np.repeat(np.arange(5), 60)
    kf = kfold_accuracy(scores, labels, folds, fta)
    ref = _brute.kfold(scores.tolist(), labels.tolist(), folds.tolist(), fta.tolist())
    np.testing.assert_array_equal(kf.thresholds, [t for t, _ in ref])
    np.testing.assert_allclose(kf.accuracies, [a for _, a in ref])
    assert kf.mean == pytest.approx(np.mean([a for _, a in ref]))
    assert kf.std == pytest.approx(np.std([a for _, a in ref]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tar_at_far_and_eer_match_brute_force(seed: int) -> None:
    scores, labels = tied_data(seed, n=400, decimals=2)
    fta = np.random.default_rng(seed + 100).random(400) < 0.02
    scores[fta] = np.nan
    roc = roc_curve(scores, labels, fta)
    s, y, f = scores.tolist(), labels.tolist(), fta.tolist()
    for x in (0.5, 0.1, 0.05, 0.01, 0.004, 1e-3):
        tar, far, t = _brute.tar_at_far(s, y, f, x)
        r = tar_at_far(roc, x)
        assert (r.tar, r.far_achieved) == pytest.approx((tar, far))
        if t is not None:
            assert r.threshold == t
    e_ref, t_ref = _brute.eer(s, y, f)
    e = eer(roc)
    assert e.eer == pytest.approx(e_ref) and e.threshold == t_ref


# ---------------------------------------------------------------- the public entry point


def test_compute_verification_metrics_contract() -> None:
    scores, labels = tied_data(0, n=6000, decimals=3)
    folds = np.repeat(np.arange(10), 600)
    res = compute_verification_metrics(scores, labels, folds)
    m, d = res.metrics, res.details
    expected = {
        "accuracy",
        "accuracy_std",
        "precision",
        "recall",
        "specificity",
        "f1",
        "tp",
        "fp",
        "tn",
        "fn",
        "auc",
        "eer",
        "eer_threshold",
        "fta_pairs",
        "fta_rate",
        "pairs",
    }
    for x in ("1e-1", "1e-2", "1e-3", "1e-4", "1e-5", "1e-6"):
        expected |= {f"tar@far={x}", f"far_achieved@far={x}", f"threshold@far={x}"}
    assert set(m) == expected
    json.dumps(res.metrics, allow_nan=False)
    json.dumps(res.details, allow_nan=False)
    kf = kfold_accuracy(scores, labels, folds)
    assert m["accuracy"] == kf.mean and m["accuracy_std"] == kf.std
    assert [f["threshold"] for f in d["folds"]] == kf.thresholds.tolist()
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 6000
    assert m["auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    assert {r["far"] for r in d["tar_at_far"]} == {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6}
    roc = d["roc"]
    assert 2 <= len(roc["far"]) <= 1000 and (roc["far"][0], roc["tar"][0]) == (0.0, 0.0)
    assert (roc["far"][-1], roc["tar"][-1]) == (1.0, 1.0)
    hist = d["score_hist"]
    gen = hist["genuine"]
    assert sum(gen["counts"]) + gen["below"] + gen["above"] == np.count_nonzero(labels == 1)
    assert len(hist["impostor"]["edges"]) == len(hist["impostor"]["counts"]) + 1


def test_all_data_policy_without_folds() -> None:
    scores, labels = tied_data(1, n=500)
    res = compute_verification_metrics(scores, labels)
    t = best_threshold(scores, labels)
    assert res.details["threshold_policy"] == "all_data"
    assert res.metrics["accuracy_std"] is None
    assert res.details["folds"] == [
        {"fold": None, "threshold": t, "accuracy": res.metrics["accuracy"], "pairs": 500}
    ]
    c = confusion_at(scores, labels, t)
    assert res.metrics["accuracy"] == (c.tp + c.tn) / 500


def test_single_fold_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="folds=None"):
        kfold_accuracy(np.array([0.1, 0.2]), np.array([0, 1]), np.array([3, 3]))


def test_downsample_keeps_endpoints_and_shape() -> None:
    rng = np.random.default_rng(11)
    labels = (rng.random(300_000) < 0.05).astype(np.int8)
    scores = rng.normal(labels * 2.5, 1.0).astype(np.float32)
    roc = roc_curve(scores, labels)
    idx = downsample_roc(roc, 1000)
    assert len(roc) > 100_000 and idx.size <= 1000
    assert idx[0] == 0 and idx[-1] == len(roc) - 1 and np.all(np.diff(idx) > 0)
    far, tar = roc.far, roc.tar
    assert auc(far[idx], tar[idx]) == pytest.approx(auc(far, tar), abs=2e-4)
    for x in (1e-4, 1e-3, 1e-2, 1e-1):  # low-FAR region is kept, not just the linear shape
        assert np.interp(x, far[idx], tar[idx]) == pytest.approx(np.interp(x, far, tar), abs=0.01)
    small = roc_curve(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 1]))
    np.testing.assert_array_equal(downsample_roc(small), np.arange(len(small)))
