"""dlib's HOG face detector with its 5-point shape predictor (optionally its MMOD CNN fallback).

Per image (BGR in, converted to RGB as dlib's examples and ``face_recognition`` feed it):
HOG (``get_frontal_face_detector``) at the first ``upsample`` level, then at the next ones only
while nothing is found (default ``(0, 1)``: 1 = 2× image, faces down to ~40 px); with
``cnn_fallback`` dlib's MMOD CNN detector at the same levels when HOG finds nothing. Every face
found gets dlib's 5 landmarks (``shape_predictor_5_face_landmarks.dat``) in dlib's own order
(``landmarks_scheme = "dlib5"``: eye corners and the nose base, not the ArcFace 5 points), the
input of ``dlib.get_face_chip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facebench.engines.dlib_engine import (
    CNN_FILE,
    LANDMARKS_FILE,
    default_model_dir,
    dlib_unavailable,
)
from facebench.faces.detect.base import (
    Detection,
    check_bgr_image,
    folder_problem,
    register_detector,
)
from facebench.io import sha256_file_once

#: The file this detector reads in its ``model`` folder (the CNN fallback's is optional).
FILES = (LANDMARKS_FILE,)
NEEDS = ("point 'model' at a folder holding them (default: the face_recognition_models "
         "package's)")


def check_model_folder(model: Path | None) -> str | None:
    """Why ``model`` (``None``: the face_recognition_models package's folder) holds no 5-point
    shape predictor, or ``None``."""
    if model is None:
        reason = dlib_unavailable()
        if reason is not None:
            return reason
        model = default_model_dir()
    return folder_problem(model, FILES, NEEDS)[1]


@register_detector("dlib", check_model=check_model_folder, folder_files=FILES)
class DlibDetector:
    """dlib's HOG detector + 5-point shape predictor.

    ``model`` is a folder holding ``shape_predictor_5_face_landmarks.dat`` (and, for
    ``cnn_fallback``, ``mmod_human_face_detector.dat``); default: the ``face_recognition_models``
    package's. ``score_threshold`` is HOG's ``adjust_threshold`` (default 0: dlib's own) and the
    CNN's minimum confidence. ``threads`` is accepted and ignored (dlib is single-threaded).
    """

    name = "dlib"
    landmarks_scheme = "dlib5"

    def __init__(
        self,
        model: str | Path | None = None,
        score_threshold: float | None = None,
        upsample: Sequence[int] = (0, 1),
        cnn_fallback: bool = False,
        threads: int | None = None,
    ) -> None:
        reason = dlib_unavailable()
        if reason:
            raise ImportError(reason)
        import dlib

        needed = (*FILES, *([CNN_FILE] if cnn_fallback else []))
        folder, problem = folder_problem(
            Path(model) if model is not None else default_model_dir(), needed, NEEDS)
        if problem is not None:
            raise FileNotFoundError(f"dlib detector: {problem}")
        levels = tuple(int(u) for u in upsample)
        if not levels or min(levels) < 0:
            raise ValueError(f"dlib detector: upsample must be levels >= 0, got {list(upsample)}")
        self.folder = folder
        self.score_threshold = None if score_threshold is None else float(score_threshold)
        self.upsample = levels
        self.cnn_fallback = bool(cnn_fallback)
        self._hog = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(folder / LANDMARKS_FILE))
        self._cnn: Any = None  # loaded on first use

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (for result records and cache keys)."""
        import dlib

        landmarks = self.folder / LANDMARKS_FILE
        fallback = None
        if self.cnn_fallback:
            cnn = self.folder / CNN_FILE
            fallback = {"name": "dlib_mmod_cnn", "file": cnn.name,
                        "sha256": sha256_file_once(cnn), "upsample": list(self.upsample)}
        return {
            "dlib_version": dlib.__version__,
            "hog": {"upsample": list(self.upsample), "score_threshold": self.score_threshold},
            "landmarks": {"file": landmarks.name, "sha256": sha256_file_once(landmarks),
                          "points": 5, "scheme": self.landmarks_scheme},
            "fallback": fallback,
            "color": "RGB",
        }

    def _find(self, rgb: np.ndarray) -> tuple[list[Any], list[float]]:
        """dlib rectangles and scores at the first level (HOG, then CNN) that finds any."""
        import dlib

        adjust = 0.0 if self.score_threshold is None else self.score_threshold
        for up in self.upsample:
            rects, scores, _ = self._hog.run(rgb, up, adjust)
            if len(rects):
                return list(rects), [float(s) for s in scores]
        if self.cnn_fallback:
            if self._cnn is None:
                self._cnn = dlib.cnn_face_detection_model_v1(str(self.folder / CNN_FILE))
            for up in self.upsample:
                dets = [d for d in self._cnn(rgb, up) if self.score_threshold is None
                        or d.confidence >= self.score_threshold]
                if dets:
                    return [d.rect for d in dets], [float(d.confidence) for d in dets]
        return [], []

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in one BGR uint8 image: box = dlib's rectangle (left, top, right, bottom),
        score = HOG score (CNN confidence for the fallback), landmarks = dlib's 5 points."""
        check_bgr_image(image_bgr, "dlib")
        rgb = np.ascontiguousarray(image_bgr[..., ::-1])
        rects, scores = self._find(rgb)
        out = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self._predictor(rgb, rect)
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
            out.append(Detection(box=box, score=score, landmarks=points))
        return out
