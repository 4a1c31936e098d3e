"""Template pooling: hand-worked cases (expected vectors computed by hand here), FtA faces,
weights, option validation, and a vectorised run against a per-template loop."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

import facebench.metrics.templates as tm
from facebench.metrics.templates import TemplatePooling, Templates, pool_templates

# Four faces, 2-D embeddings (raw, not normalised):
#   face 0: (3, 4)  norm 5  -> e = (0.6, 0.8)   template 10, media 1, det 0.5
#   face 1: (0, 2)  norm 2  -> e = (0, 1)       template 10, media 1, det 1.0
#   face 2: (1, 0)  norm 1  -> e = (1, 0)       template 10, media 2, det 1.0
#   face 3: (0, -3) norm 3  -> e = (0, -1)      template 20, media 3, det 0.8
EMB = np.array([[3, 4], [0, 2], [1, 0], [0, -3]], dtype=np.float32)
NORMS = np.array([5.0, 2.0, 1.0, 3.0])
DET = np.array([0.5, 1.0, 1.0, 0.8])
TIDS = np.array([10, 10, 10, 20])
MIDS = np.array([1, 1, 2, 3])
VALID = np.ones(4, dtype=bool)


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.sqrt(a @ a)


def pool(**options: object) -> Templates:
    opts = {k: options.pop(k) for k in ("media", "detector_score", "norm") if k in options}
    return pool_templates(EMB, options.pop("valid", VALID), TIDS, MIDS, TemplatePooling(**opts),
                          norms=NORMS, det_scores=DET)


def test_media_mean_then_mean_over_media() -> None:
    t = pool()
    # media 1 = ((0.6, 0.8) + (0, 1)) / 2 = (0.3, 0.9); media 2 = (1, 0)
    # template 10 = ((0.3, 0.9) + (1, 0)) / 2 = (0.65, 0.45) -> normalised
    assert t.ids.tolist() == [10, 20] and t.ids.dtype == np.int64
    np.testing.assert_allclose(t.features[0], unit([0.65, 0.45]), rtol=1e-6)
    np.testing.assert_allclose(t.features[1], [0.0, -1.0], rtol=1e-6)
    assert t.features.dtype == np.float32
    assert t.valid.tolist() == [True, True]
    assert t.faces.tolist() == [3, 1] and t.media.tolist() == [2, 1]


def test_media_none_averages_faces() -> None:
    t = pool(media="none")
    # ((0.6, 0.8) + (0, 1) + (1, 0)) / 3 -> direction (1.6, 1.8)
    np.testing.assert_allclose(t.features[0], unit([1.6, 1.8]), rtol=1e-6)


def test_norm_weighting() -> None:
    t = pool(norm=True)
    # f = e * n: (3, 4), (0, 2), (1, 0); media 1 = (1.5, 3), media 2 = (1, 0) -> (2.5, 3) / 2
    np.testing.assert_allclose(t.features[0], unit([2.5, 3.0]), rtol=1e-6)


def test_detector_score_weighting_and_both() -> None:
    t = pool(detector_score=True)
    # f = e * s: (0.3, 0.4), (0, 1), (1, 0); media 1 = (0.15, 0.7), media 2 = (1, 0)
    np.testing.assert_allclose(t.features[0], unit([1.15, 0.7]), rtol=1e-6)
    t = pool(detector_score=True, norm=True, media="none")
    # f = e * n * s: (1.5, 2), (0, 2), (1, 0) -> sum (2.5, 4)
    np.testing.assert_allclose(t.features[0], unit([2.5, 4.0]), rtol=1e-6)
    # a single-face template is its face direction whatever the weights
    np.testing.assert_allclose(t.features[1], [0.0, -1.0], rtol=1e-6)


def test_fta_faces_left_out_and_all_fta_template_invalid() -> None:
    emb = EMB.copy()
    emb[1] = np.nan  # a failed face's row is garbage
    emb[3] = np.nan
    valid = np.array([True, False, True, False])
    t = pool_templates(emb, valid, TIDS, MIDS, TemplatePooling())
    # media 1 = (0.6, 0.8) alone; media 2 = (1, 0) -> (1.6, 0.8) / 2
    np.testing.assert_allclose(t.features[0], unit([1.6, 0.8]), rtol=1e-6)
    assert t.valid.tolist() == [True, False]
    assert np.isnan(t.features[1]).all()
    assert t.faces.tolist() == [2, 0] and t.media.tolist() == [2, 0]


def test_templates_whose_weights_cannot_pool_fail_with_a_reason() -> None:
    """A valid face with a weight that is not a finite number >= 0, or faces whose weights sum
    to 0, fail their template (NaN row, not valid, a reason); the other templates pool as
    before."""
    ok = pool(detector_score=True)
    for det, why in (([1.0, 1.0, np.nan, 0.8], "has detector score nan"),
                     ([1.0, -0.5, 1.0, 0.8], "has detector score -0.5"),
                     ([0.0, 0.0, 0.0, 0.8], "weights of its acquired faces sum to 0")):
        t = pool_templates(EMB, VALID, TIDS, MIDS, TemplatePooling(detector_score=True),
                           det_scores=np.array(det))
        assert t.valid.tolist() == [False, True] and np.isnan(t.features[0]).all()
        assert list(t.reasons) == [10] and why in t.reasons[10], t.reasons
        assert t.faces.tolist() == [0, 1] and t.media.tolist() == [0, 1]
        np.testing.assert_array_equal(t.features[1], ok.features[1])
    # a face that failed to acquire is left out, its weight unread
    t = pool_templates(EMB, np.array([True, True, False, True]), TIDS, MIDS,
                       TemplatePooling(detector_score=True),
                       det_scores=np.array([1.0, 1.0, np.nan, 0.8]))
    assert t.valid.all() and not t.reasons
    # a single face of score 0 has no direction left either
    t = pool_templates(EMB, VALID, TIDS, MIDS, TemplatePooling(detector_score=True),
                       det_scores=np.array([1.0, 1.0, 1.0, 0.0]))
    assert t.valid.tolist() == [True, False] and "sum to 0" in t.reasons[20]
    # no valid face at all
    t = pool_templates(EMB, np.array([True, True, True, False]), TIDS, MIDS, TemplatePooling())
    assert t.reasons == {20: "none of its faces was acquired"}


def test_single_face_templates_equal_the_face_embeddings() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 16)).astype(np.float32)
    ids = np.array([70, 10, 30, 60, 20, 50, 40])  # one face each, unsorted
    for options in ({}, {"media": "none"}, {"norm": True, "detector_score": True}):
        t = pool_templates(emb, np.ones(7, bool), ids, np.arange(7), TemplatePooling(**options),
                           norms=np.linalg.norm(emb, axis=1), det_scores=np.full(7, 0.9))
        assert t.ids.tolist() == sorted(ids.tolist())
        expected = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        np.testing.assert_allclose(t.features[t.rows(ids)], expected, rtol=1e-6, atol=1e-7)


def test_rows_and_unknown_id() -> None:
    t = pool()
    assert t.rows(np.array([20, 10, 20])).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="template id 15"):
        t.rows(np.array([10, 15, 99]))


def test_option_validation() -> None:
    with pytest.raises(ValidationError):
        TemplatePooling(media="median")
    with pytest.raises(ValidationError):
        TemplatePooling(flip=True)
    p = TemplatePooling()
    with pytest.raises(ValidationError):
        p.norm = True  # frozen
    with pytest.raises(ValueError, match="norm"):
        pool_templates(EMB, VALID, TIDS, MIDS, TemplatePooling(norm=True))
    with pytest.raises(ValueError, match="detector score"):
        pool_templates(EMB, VALID, TIDS, MIDS, TemplatePooling(detector_score=True), norms=NORMS)
    with pytest.raises(ValueError, match="template_ids must have shape"):
        pool_templates(EMB, VALID, TIDS[:3], MIDS, p)
    with pytest.raises(ValueError, match="template_ids must be integers"):
        pool_templates(EMB, VALID, TIDS.astype(str), MIDS, p)
    with pytest.raises(ValueError, match="face 2 is marked valid"):
        pool_templates(np.array([[1, 0], [0, 1], [0, 0], [1, 1]], np.float32), VALID, TIDS,
                       MIDS, p)


def test_vectorised_matches_a_per_template_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many faces over several blocks against a plain loop following the definition."""
    rng = np.random.default_rng(1)
    n, d = 3000, 8
    emb = rng.normal(size=(n, d)).astype(np.float32)
    tids = rng.integers(0, 200, n)
    mids = tids * 10 + rng.integers(0, 4, n)  # media nested in templates
    mids[::7] = 5  # and one media shared by many templates: grouped per template
    valid = rng.random(n) > 0.1
    det = rng.random(n)
    norms = np.linalg.norm(emb, axis=1)
    pooling = TemplatePooling(detector_score=True, norm=True)
    monkeypatch.setattr(tm, "_BLOCK", 128)
    t = pool_templates(emb, valid, tids, mids, pooling, norms=norms, det_scores=det)
    for row, tid in enumerate(t.ids.tolist()):
        faces = [i for i in range(n) if tids[i] == tid and valid[i]]
        media: dict[int, list[np.ndarray]] = {}
        for i in faces:
            e = emb[i].astype(np.float64) / np.linalg.norm(emb[i].astype(np.float64))
            media.setdefault(int(mids[i]), []).append(e * norms[i] * det[i])
        assert t.faces[row] == len(faces) and t.media[row] == len(media)
        if not faces:
            assert not t.valid[row]
            continue
        v = np.mean([np.mean(fs, axis=0) for fs in media.values()], axis=0)
        np.testing.assert_allclose(t.features[row], v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
