"""dlib's ResNet on real LFW through the common pipeline (detector ``dlib``, align ``dlib_chip``,
engine ``dlib``): accuracy on a fixed 200-pair subset (20 per fold, all 10 folds) through
facebench's metrics, caches, and failures to acquire."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets import load_pairs
from facebench.datasets.pairs import PairSet, build
from facebench.metrics import compute_verification_metrics
from facebench.pipeline.context import CellContext
from facebench.pipeline.embed import cosine_scores
from facebench.pipeline.embeddings import embed_images
from facebench.plan import Cell

pytestmark = pytest.mark.slow
PER_FOLD = 10  # genuine and impostor pairs taken from the start of each fold


def subset(pairs: PairSet, per_fold: int = PER_FOLD) -> PairSet:
    """The first ``per_fold`` genuine and ``per_fold`` impostor pairs of every fold."""
    rows = []
    for fold in np.unique(pairs.folds):
        for label in (1, 0):
            idx = np.flatnonzero((pairs.folds == fold) & (pairs.labels == label))[:per_fold]
            rows += [(pairs.images[pairs.left[i]], pairs.images[pairs.right[i]], label,
                      int(fold)) for i in idx]
    return build("lfw-subset", pairs.root, rows, checksum="subset")


def test_subset_accuracy_and_contract(dlib_cell: Cell,
                                      make_ctx: Callable[[Path | None], CellContext],
                                      with_protocol: Callable[..., Cell],
                                      tmp_path: Path) -> None:
    pairs = subset(load_pairs(dlib_cell.protocol.dataset))
    assert pairs.n_pairs == 200 and len(np.unique(pairs.folds)) == 10
    t0 = time.perf_counter()
    e = embed_images(dlib_cell, pairs.images, pairs.root, make_ctx(tmp_path / "c"))
    emb, valid, record, fta = e.emb, e.valid, e.acquire, e.fta
    took = time.perf_counter() - t0
    n = len(pairs.images)
    assert emb.shape == (n, 128) and emb.dtype == np.float32 and valid.shape == (n,)
    assert np.array_equal(valid, ~np.isnan(emb).any(axis=1))
    np.testing.assert_allclose(np.linalg.norm(emb[valid], axis=1), 1.0, atol=1e-5)
    assert record["acquired"] + len(fta) == n == int(valid.sum()) + len(fta)
    assert all(f["reason"] and not Path(f["image"]).is_absolute() for f in fta)
    assert record["detector"]["name"] == "dlib" and record["align"]["method"] == "dlib_chip"
    assert e.engine["engine"] == "dlib"
    scores, fta_pairs = cosine_scores(emb, pairs.left, pairs.right, valid)
    res = compute_verification_metrics(scores, pairs.labels.astype(np.int64),
                                       folds=pairs.folds.astype(np.int64), fta=fta_pairs)
    assert res.metrics["accuracy"] >= 0.98, (res.metrics["accuracy"], fta)
    # a second run reads every chip from the crop cache and gives the same descriptors
    again = embed_images(with_protocol(dlib_cell, cache_embeddings=False), pairs.images,
                         pairs.root, make_ctx(tmp_path / "c"))
    assert again.acquire["cache_hits"] == n and np.array_equal(again.emb, emb, equal_nan=True)
    print(f"{n} images in {took:.1f} s; accuracy {res.metrics['accuracy']:.4f}")


def test_fta_accounting_and_determinism(dlib_cell: Cell, lfw_dir: Path, tmp_path: Path,
                                        make_ctx: Callable[[Path | None], CellContext],
                                        with_protocol: Callable[..., Cell]) -> None:
    root = lfw_dir / "images"
    images = [root / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
              root / "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg",  # HOG finds no face
              tmp_path / "empty.jpg",
              tmp_path / "missing.jpg",
              root / "Aaron_Peirsol/Aaron_Peirsol_0003.jpg"]
    images[2].write_bytes(b"")
    one = with_protocol(dlib_cell, workers=1)
    a = embed_images(one, images, root, make_ctx(None))
    b = embed_images(dlib_cell, images, root, make_ctx(tmp_path / "cache"))
    assert np.array_equal(a.emb, b.emb, equal_nan=True)
    assert a.valid.tolist() == [True, False, False, False, True]
    assert a.acquire["acquired"] + len(a.fta) == len(images)
    reasons = {f["image"]: f["reason"] for f in a.fta}
    assert reasons["Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg"].startswith("no face detected")
    assert reasons[str(images[2])].startswith("bad image")
    assert reasons[str(images[3])].startswith("unreadable")
    assert float(a.emb[0] @ a.emb[4]) > 0.9  # same person
    flip = embed_images(with_protocol(one, flip=True), images[:1], root, make_ctx(None))
    assert abs(np.linalg.norm(flip.emb[0]) - 1) < 1e-5 and not np.array_equal(flip.emb[0],
                                                                              a.emb[0])
    # the flip test is the mirrored chip's descriptor added: check it against dlib directly
    import dlib
    import face_recognition_models as frm

    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    chip = dlib_chip_of(images[0])
    raw = (np.asarray(net.compute_face_descriptor(chip)) +
           np.asarray(net.compute_face_descriptor(np.ascontiguousarray(chip[:, ::-1]))))
    np.testing.assert_allclose(flip.emb[0], raw / np.linalg.norm(raw), atol=1e-5)


def dlib_chip_of(path: Path) -> np.ndarray:
    """dlib's own chip of the face closest to the centre, computed with dlib directly (RGB,
    HOG at upsample 0, 5-point landmarks, get_face_chip 150 / 0.25)."""
    import dlib
    import face_recognition_models as frm

    from facebench.faces.images import load_image

    rgb = np.ascontiguousarray(load_image(path)[..., ::-1])
    rects = dlib.get_frontal_face_detector()(rgb, 0)
    cy, cx = rgb.shape[0] / 2, rgb.shape[1] / 2
    rect = min(rects, key=lambda r: ((r.left() + r.right()) / 2 - cx) ** 2
               + ((r.top() + r.bottom()) / 2 - cy) ** 2)
    shape = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())(rgb, rect)
    return dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
