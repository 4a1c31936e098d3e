"""Five-point similarity alignment onto the ArcFace template (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

#: ArcFace 112×112 template: left eye, right eye, nose tip, left and right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

#: Recorded in results so a reader knows how crops were made.
ESTIMATOR = "cv2.estimateAffinePartial2D(method=LMEDS) + cv2.warpAffine(INTER_LINEAR)"


def template_for(size: int | tuple[int, int]) -> np.ndarray:
    """The ArcFace template scaled to an output of ``size`` (square int or ``(w, h)``)."""
    w, h = (size, size) if isinstance(size, int) else size
    return ARCFACE_TEMPLATE * np.array([w / 112.0, h / 112.0], dtype=np.float32)


def estimate_transform(landmarks: np.ndarray, size: int | tuple[int, int] = 112) -> np.ndarray:
    """2×3 similarity matrix mapping ``landmarks`` (5×2) onto the template."""
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    matrix, _ = cv2.estimateAffinePartial2D(src, template_for(size), method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("degenerate landmarks: no similarity transform exists")
    return matrix


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int | tuple[int, int] = 112
) -> np.ndarray:
    """Warp ``image`` so its five landmarks land on the ArcFace template."""
    w, h = (size, size) if isinstance(size, int) else size
    matrix = estimate_transform(landmarks, (w, h))
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
