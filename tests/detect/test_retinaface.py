"""RetinaFace (MobileNet-0.25) on real LFW images and awkward inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facebench.faces.detect import create_detector, select_face
from facebench.faces.detect.retinaface import RetinaFace

RETINAFACE_FILE = "retinaface_mobilenet0.25.pth"


def iod(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[1] - landmarks[0]))


def test_one_central_face_per_lfw_image(retinaface, lfw_sample):
    for name, image in lfw_sample:
        dets = retinaface.detect(image)
        assert dets, f"{name}: no face"
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        best = dets[0]
        assert best.score > 0.9, name
        cx, cy = (best.box[0] + best.box[2]) / 2, (best.box[1] + best.box[3]) / 2
        assert abs(cx - 125) < 30 and abs(cy - 125) < 35, f"{name}: centre {cx:.0f},{cy:.0f}"
        assert 60 < best.box[2] - best.box[0] < 160, f"{name}: box {best.box}"
        assert best.box.dtype == np.float32 and best.landmarks.dtype == np.float32
        assert best.landmarks.shape == (5, 2)


def test_landmarks_in_plausible_order(retinaface, lfw_sample):
    for name, image in lfw_sample:
        lm = retinaface.detect(image)[0].landmarks
        left_eye, right_eye, nose, left_mouth, right_mouth = lm
        assert left_eye[0] < right_eye[0], name
        assert left_mouth[0] < right_mouth[0], name
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1]), name
        assert left_eye[0] < nose[0] < right_eye[0], name
        assert 25 < iod(lm) < 70, f"{name}: inter-ocular {iod(lm):.1f}px"


def test_agrees_with_yunet(retinaface, yunet, lfw_sample):
    """Mean 5-point gap / RetinaFace inter-ocular distance: about 0.1 (YuNet sits ~2px right)."""
    gaps = []
    for _name, image in lfw_sample:
        r = select_face(retinaface.detect(image), image.shape)
        y = select_face(yunet.detect(image), image.shape)
        assert r is not None and y is not None
        gap = np.linalg.norm(r.landmarks - y.landmarks, axis=1).mean()
        gaps.append(float(gap) / iod(r.landmarks))
    assert np.median(gaps) < 0.15, gaps
    assert max(gaps) < 0.25, gaps


def test_no_confident_face_in_noise_or_black(retinaface):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(250, 250, 3)] * 4]
    images += [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2)]
    images += [np.zeros((250, 250, 3), np.uint8), np.full((480, 640, 3), 255, np.uint8)]
    for image in images:
        assert retinaface.detect(image) == [], image.shape


def test_upside_down_and_tiny_images_do_not_crash(retinaface, lfw_sample):
    image = lfw_sample[0][1]
    for variant in (
        cv2.rotate(image, cv2.ROTATE_180),
        image[:1, :1],
        image[:7, :13],
        cv2.resize(image, (20, 20), interpolation=cv2.INTER_AREA),
    ):
        dets = retinaface.detect(np.ascontiguousarray(variant))
        assert isinstance(dets, list)
        for d in dets:
            assert np.isfinite(d.box).all() and np.isfinite(d.landmarks).all()


def test_rejects_non_bgr_input(retinaface, lfw_sample):
    gray = cv2.cvtColor(lfw_sample[0][1], cv2.COLOR_BGR2GRAY)
    with pytest.raises(ValueError, match="load_image"):
        retinaface.detect(gray)
    with pytest.raises(ValueError, match="uint8"):
        retinaface.detect(lfw_sample[0][1].astype(np.float32))


def test_detect_batch_matches_detect(retinaface, lfw_sample):
    images = [im for _, im in lfw_sample[:5]]
    images.insert(2, np.ascontiguousarray(images[0][20:220, 30:210]))  # another size in the mix
    batched = retinaface.detect_batch(images)
    assert len(batched) == len(images)
    for image, got in zip(images, batched, strict=True):
        want = retinaface.detect(image)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.landmarks, w.landmarks, atol=1e-2)
            np.testing.assert_allclose(g.box, w.box, atol=1e-2)
            assert abs(g.score - w.score) < 1e-4


def test_max_size_maps_back_to_original_coordinates(models_dir, retinaface, lfw_sample):
    image = lfw_sample[3][1]
    big = cv2.resize(image, (500, 500), interpolation=cv2.INTER_CUBIC)
    capped = RetinaFace(models_dir / RETINAFACE_FILE, max_size=250)
    ref = retinaface.detect(image)[0]
    got = capped.detect(big)[0]
    np.testing.assert_allclose(got.landmarks, ref.landmarks * 2, atol=3.0)
    assert capped.settings()["max_size"] == 250


def test_settings_identify_the_output(models_dir, retinaface):
    s = retinaface.settings()
    json.dumps(s)
    assert s["weights_sha256"].startswith("ed6fa7d4")
    assert s["score_threshold"] == 0.9 and s["nms_threshold"] == 0.4 and s["max_size"] is None
    other = RetinaFace(model=models_dir / RETINAFACE_FILE, score_threshold=0.7)
    assert other.settings() != s
    assert isinstance(create_detector("retinaface", model=models_dir / RETINAFACE_FILE), RetinaFace)


@pytest.fixture(scope="module")
def state_dict(models_dir: Path) -> dict[str, torch.Tensor]:
    path = models_dir / RETINAFACE_FILE
    return torch.load(path, map_location="cpu", weights_only=True)


def test_strict_loader_names_missing_key(tmp_path, state_dict):
    broken = dict(state_dict)
    del broken["LandmarkHead.2.conv1x1.bias"]
    path = tmp_path / "missing.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"missing keys: LandmarkHead\.2\.conv1x1\.bias") as err:
        RetinaFace(path)
    assert str(path) in str(err.value)


def test_strict_loader_names_unexpected_and_misshapen_keys(tmp_path, state_dict):
    broken = dict(state_dict)
    broken["fpn.extra.weight"] = torch.zeros(1)
    broken["ClassHead.0.conv1x1.bias"] = torch.zeros(6)
    path = tmp_path / "odd.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"unexpected keys: fpn\.extra\.weight.*ClassHead\.0"):
        RetinaFace(path)


def test_loader_strips_module_prefix(tmp_path, state_dict, lfw_sample, retinaface):
    path = tmp_path / "dataparallel.pth"
    torch.save({f"module.{k}": v for k, v in state_dict.items()}, path)
    image = lfw_sample[0][1]
    with pytest.warns(UserWarning, match="not the verified"):  # same tensors, another file
        got = RetinaFace(path).detect(image)[0]
    np.testing.assert_allclose(got.landmarks, retinaface.detect(image)[0].landmarks, atol=1e-4)


def test_loader_rejects_non_checkpoint_and_missing_file(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        RetinaFace(junk)
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        RetinaFace(tmp_path / "nowhere.pth")
