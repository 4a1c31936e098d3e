"""YuNet through OpenCV's ``FaceDetectorYN``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.faces.detect.base import Detection, register_detector
from facebench.io import sha256_file_once


@register_detector("yunet")
class YuNet:
    """OpenCV's YuNet detector. ``model`` is the ``face_detection_yunet*.onnx`` file."""

    name = "yunet"
    landmarks_scheme = "arcface5"

    def __init__(
        self,
        model: str | Path,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        threads: int | None = 1,
    ) -> None:
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"YuNet model not found: {path}")
        if threads is not None:
            cv2.setNumThreads(threads)
        self.model = str(path)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k
        self._net = cv2.FaceDetectorYN.create(
            self.model, "", (320, 320), score_threshold, nms_threshold, top_k
        )
        self._size: tuple[int, int] = (320, 320)

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (for result records and cache keys): the model
        file by content, not by name, so another file with the same name never reuses crops."""
        return {
            "model": Path(self.model).name,
            "model_sha256": sha256_file_once(self.model)[:16],
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "top_k": self.top_k,
        }

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        h, w = image_bgr.shape[:2]
        if (w, h) != self._size:
            self._net.setInputSize((w, h))
            self._size = (w, h)
        _, faces = self._net.detect(image_bgr)
        if faces is None:
            return []
        out = []
        for f in faces:
            x, y, bw, bh = (float(v) for v in f[:4])
            out.append(
                Detection(
                    box=np.array([x, y, x + bw, y + bh], dtype=np.float32),
                    score=float(f[14]),
                    landmarks=np.asarray(f[4:14], dtype=np.float32).reshape(5, 2),
                )
            )
        return out
