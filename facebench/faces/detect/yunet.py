"""YuNet through OpenCV's ``FaceDetectorYN``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx

from facebench.faces.detect.base import Detection, file_problem, register_detector
from facebench.io import sha256_file_once

#: The outputs OpenCV's ``FaceDetectorYN`` reads (YuNet 2023mar): per stride 8/16/32 the
#: class and objectness scores, box and five-landmark regressions.
OUTPUTS = tuple(f"{head}_{stride}" for head in ("cls", "obj", "bbox", "kps")
                for stride in (8, 16, 32))
NEEDS = "YuNet needs its ONNX model (face_detection_yunet.onnx)"
#: Largest file taken for a YuNet model (YuNet is about 230 KB): a bigger ONNX is some other
#: network, refused before its graph is parsed.
MAX_MODEL_BYTES = 16 << 20


def check_model_file(model: Path | None) -> str | None:
    """Why ``model`` is not a YuNet ONNX model (OpenCV's input and outputs), or ``None``;
    reads the graph's inputs and outputs (no weights beyond the file itself, no session)."""
    if model is None:
        return None  # no default file: the suite schema requires 'model'
    problem = file_problem(model, "onnx", NEEDS)
    if problem is not None:
        return problem
    if (size := model.stat().st_size) > MAX_MODEL_BYTES:
        return (f"{model} is an ONNX model of {size:,} bytes, not YuNet (about 230 KB); "
                f"{NEEDS}")
    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors alike
        return f"{model} is not a readable ONNX model ({type(exc).__name__}: {exc}); {NEEDS}"
    outputs = [o.name for o in graph.output]
    dims = [len(i.type.tensor_type.shape.dim) for i in graph.input]
    if dims != [4] or any(name not in outputs for name in OUTPUTS):
        shown = ", ".join(outputs[:4]) + (" …" if len(outputs) > 4 else "")
        return (f"{model} is an ONNX model but not YuNet: {len(dims)} input(s), outputs "
                f"{shown or 'none'} (YuNet: one NCHW image, outputs {OUTPUTS[0]} … "
                f"{OUTPUTS[-1]}); {NEEDS}")
    return None


@register_detector("yunet", check_model=check_model_file)
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
        if (problem := check_model_file(path)) is not None:
            raise ValueError(problem)
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
