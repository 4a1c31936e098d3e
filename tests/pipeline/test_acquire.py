"""Acquisition on real LFW images: detect → select → align, streamed in order, cached by
content; broken files become failures to acquire with a reason, never crashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facebench.datasets.lfw import load_lfw_pairs
from facebench.faces.acquire import AcquireConfig, acquire, acquire_chunk, prepare
from facebench.faces.align import ARCFACE_TEMPLATE, BoxCropAlign, SimilarityAlign
from facebench.faces.detect import create_detector, select_face
from facebench.faces.images import load_image

ARC112 = SimilarityAlign(size=(112, 112))


@pytest.fixture(scope="module")
def images(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """10 real LFW images followed by broken ones."""
    pairs = load_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images", max_folds=1)
    real = pairs.images[:10]
    bad = tmp_path_factory.mktemp("bad")
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "truncated.jpg").write_bytes(real[0].read_bytes()[:300])
    (bad / "text.jpg").write_text("not an image")
    cv2.imwrite(str(bad / "noise.png"), np.random.default_rng(0).integers(
        0, 255, (120, 120, 3), dtype=np.uint8))
    gray = cv2.cvtColor(cv2.imread(str(real[1])), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(bad / "gray.png"), gray)
    return [*real, bad / "empty.jpg", bad / "truncated.jpg", bad / "text.jpg",
            bad / "missing.jpg", bad / "noise.png", bad / "gray.png"]


@pytest.mark.parametrize("detector", ["yunet", "retinaface", "mtcnn"])
def test_acquire_real_and_broken(detector: str, images: list[Path], models_dir: Path,
                                 tmp_path: Path) -> None:
    files = {"yunet": "face_detection_yunet.onnx", "retinaface": "retinaface_mobilenet0.25.pth"}
    # MTCNN's weights come from the installed facenet-pytorch (scripts/setup.sh)
    options = {"model": models_dir / files[detector]} if detector in files else {}
    cfg = AcquireConfig(detector, options, "closest_to_center", ARC112, tmp_path / "cache")
    faces, record = acquire(images, cfg, workers=2, chunk=4)
    faces = list(faces)
    assert [f.index for f in faces] == list(range(len(images)))
    assert record["detector"]["name"] == detector
    for f in faces[:10]:
        assert f.crop is not None and f.crop.shape == (112, 112, 3), f.reason
        # landmarks were mapped onto the template: the eyes sit where ArcFace expects them
        assert f.landmarks is not None and f.landmarks[0, 0] < f.landmarks[1, 0]
    reasons = {images[f.index].name: f.reason for f in faces[10:]}
    assert reasons["empty.jpg"].startswith("bad image")
    assert reasons["truncated.jpg"].startswith("bad image")
    assert reasons["text.jpg"].startswith("bad image")
    assert reasons["missing.jpg"].startswith("unreadable")
    assert reasons["noise.png"] == "no face detected"
    assert reasons["gray.png"] is None  # grayscale decodes to 3 channels and has a face
    again, _ = acquire(images, cfg, workers=1)
    again = list(again)
    readable = [f for f in again if not (f.reason or "").startswith("unreadable")]
    assert all(f.cached for f in readable)
    for a, b in zip(faces, again, strict=True):
        assert (a.crop is None) == (b.crop is None)
        if a.crop is not None:
            assert np.array_equal(a.crop, b.crop)


def test_alignment_is_a_similarity_onto_the_template(images: list[Path],
                                                    models_dir: Path) -> None:
    """The estimated transform is rotation + uniform scale + translation, and maps the detected
    landmarks onto the ArcFace template with a small residual (faces are not all the same
    shape, so it is not zero)."""
    from facebench.faces.align import estimate_transform

    cfg = AcquireConfig("yunet", {"model": models_dir / "face_detection_yunet.onnx"},
                        "closest_to_center", ARC112, None)
    faces, _ = acquire(images[:10], cfg, workers=1)
    residuals = []
    for f in faces:
        m = estimate_transform(f.landmarks, 112)
        assert m[0, 0] == pytest.approx(m[1, 1], abs=1e-6)
        assert m[0, 1] == pytest.approx(-m[1, 0], abs=1e-6)
        mapped = f.landmarks @ m[:, :2].T + m[:, 2]
        residuals.append(np.linalg.norm(mapped - ARCFACE_TEMPLATE, axis=1).mean())
    assert max(residuals) < 5.0, residuals


def test_cache_key_changes_with_settings(tmp_path: Path, models_dir: Path) -> None:
    base = AcquireConfig("yunet", {"model": models_dir / "face_detection_yunet.onnx"},
                         "closest_to_center", ARC112, tmp_path)
    settings = {"name": "yunet", "score_threshold": 0.6}
    other_size = AcquireConfig(base.detector, base.detector_options, base.select,
                               SimilarityAlign(size=(128, 128)), tmp_path)
    other_policy = AcquireConfig(base.detector, base.detector_options, "largest", ARC112,
                                 tmp_path)
    box = AcquireConfig(base.detector, base.detector_options, base.select,
                        BoxCropAlign(margin_px=32, size=(112, 112)), tmp_path)
    keys = {base.key(settings), other_size.key(settings), other_policy.key(settings),
            base.key({**settings, "score_threshold": 0.7}), box.key(settings)}
    assert len(keys) == 5
    # the detection key depends on the detector and the selection, not on the alignment
    assert base.detect_key(settings) == other_size.detect_key(settings) == box.detect_key(
        settings) != other_policy.detect_key(settings)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_one_detection_per_detector_one_crop_per_alignment(images: list[Path], models_dir: Path,
                                                          tmp_path: Path) -> None:
    """A second alignment of the same images reuses the cached detections (no detector run) and
    gets its own crops; the box crop is the detector box ± 16 px, resized (checked by hand)."""
    options = {"model": models_dir / "face_detection_yunet.onnx"}
    real = images[:6]
    arc = AcquireConfig("yunet", options, "closest_to_center", ARC112, tmp_path)
    box = AcquireConfig("yunet", options, "closest_to_center",
                        BoxCropAlign(margin_px=32, size=(160, 160)), tmp_path)
    timings: dict[str, float] = {}
    caches, _ = prepare(arc)
    first = acquire_chunk(arc, caches, 0, real, timings)
    assert timings["detect"] > 0 and all(f.crop is not None for f in first)
    timings = {}
    caches, record = prepare(box)
    second = acquire_chunk(box, caches, 0, real, timings)
    assert "detect" not in timings and timings["align"] > 0  # detections came from the cache
    assert record["align"] == {"method": "box_crop", "size": [160, 160], "margin_px": 32.0,
                               "margin_fraction": None}
    det = create_detector("yunet", **options)
    for path, face in zip(real, second, strict=True):
        image = load_image(path)
        d = select_face(det.detect(image), image.shape, "closest_to_center")
        x1, y1, x2, y2 = (int(v) for v in d.box)
        h, w = image.shape[:2]
        crop = image[max(y1 - 16, 0):min(y2 + 16, h), max(x1 - 16, 0):min(x2 + 16, w)]
        want = cv2.resize(crop, (160, 160), interpolation=cv2.INTER_LINEAR)
        assert face.crop is not None and np.array_equal(face.crop, want)
    # a third pass hits the crop cache of each alignment
    again = acquire_chunk(box, caches, 0, real, timings := {})
    assert all(f.cached for f in again) and "align" not in timings
