"""``select_face`` policies on a real composite: two LFW faces side by side."""

from __future__ import annotations

import cv2
import numpy as np

from facebench.faces.detect import select_face


def composite(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """A 600×260 grey canvas: ``big`` (250 px) at the far left, ``small`` (110 px) near the
    centre, so the largest face is not the one closest to the centre."""
    canvas = np.full((260, 600, 3), 128, np.uint8)
    canvas[5:255, 0:250] = big
    canvas[75:185, 280:390] = small
    return canvas


def test_policies_pick_the_right_face(retinaface, lfw_sample):
    big = lfw_sample[0][1]
    small = cv2.resize(lfw_sample[2][1], (110, 110), interpolation=cv2.INTER_AREA)
    image = composite(big, small)
    dets = retinaface.detect(image)
    centres = [((d.box[0] + d.box[2]) / 2) for d in dets]
    assert sum(c < 250 for c in centres) == 1 and sum(280 < c < 390 for c in centres) == 1, dets

    largest = select_face(dets, image.shape, "largest")
    central = select_face(dets, image.shape, "closest_to_center")
    best = select_face(dets, image.shape, "highest_score")
    assert largest is not None and central is not None and best is not None
    assert (largest.box[0] + largest.box[2]) / 2 < 250
    assert 280 < (central.box[0] + central.box[2]) / 2 < 390
    assert best.score == max(d.score for d in dets) and best is dets[0]


def test_no_detections_select_none():
    assert select_face([], (10, 10, 3), "largest") is None


def test_top_k_caps_faces_after_nms(models_dir, lfw_sample):
    from facebench.faces.detect.retinaface import RetinaFace

    small = cv2.resize(lfw_sample[2][1], (110, 110), interpolation=cv2.INTER_AREA)
    image = composite(lfw_sample[0][1], small)
    one = RetinaFace(models_dir / "retinaface_mobilenet0.25.pth", top_k=1).detect(image)
    assert len(one) == 1 and one[0].score > 0.9
