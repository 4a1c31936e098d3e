"""Detector interface and face-selection policies.

A detector maps a BGR ``uint8`` image (H×W×3) to a list of :class:`Detection`. Landmarks are
five (x, y) points in image coordinates, in the order: left eye, right eye, nose tip, left
mouth corner, right mouth corner ("left" as seen in the image, i.e. the subject's right eye).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from facebench.engines.dlib_engine import LANDMARKS_FILE

SelectPolicy = Literal["highest_score", "largest", "closest_to_center"]


@dataclass(frozen=True)
class Detection:
    """One face: box ``(x1, y1, x2, y2)``, confidence, landmarks ``(5, 2)`` float32."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray


class Detector(Protocol):
    """A face detector. ``name`` and ``settings`` identify it in results and cache keys.

    ``landmarks_scheme`` names the meaning and order of the five landmarks: ``"arcface5"`` (the
    order in this module's docstring: eyes, nose tip, mouth corners) or ``"dlib5"`` (dlib's
    5-point shape predictor: two corners of each eye and the nose base, the input of
    ``dlib.get_face_chip``). Aligners check it against what they need.
    """

    name: str
    landmarks_scheme: str = "arcface5"

    def settings(self) -> dict[str, Any]: ...

    def detect(self, image_bgr: np.ndarray) -> list[Detection]: ...


def check_bgr_image(image: np.ndarray, detector: str) -> None:
    """Raise ``ValueError`` unless ``image`` is a non-empty H×W×3 uint8 array (BGR)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(
            f"{detector} needs a BGR uint8 H×W×3 array, got {got}; "
            "load images with facebench.faces.images.load_image"
        )
    if image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            f"{detector} needs a non-empty H×W×3 BGR image, got shape {image.shape}; "
            "convert with facebench.faces.images.load_image"
        )


def _area(d: Detection) -> float:
    return float(max(0.0, d.box[2] - d.box[0]) * max(0.0, d.box[3] - d.box[1]))


def select_face(
    detections: list[Detection], shape: tuple[int, ...], policy: SelectPolicy = "highest_score"
) -> Detection | None:
    """Pick one face by a named policy; ``None`` when there is none."""
    if not detections:
        return None
    if policy == "highest_score":
        return max(detections, key=lambda d: d.score)
    if policy == "largest":
        return max(detections, key=_area)
    if policy == "closest_to_center":
        cy, cx = shape[0] / 2.0, shape[1] / 2.0

        def dist(d: Detection) -> float:
            bx, by = (d.box[0] + d.box[2]) / 2.0, (d.box[1] + d.box[3]) / 2.0
            return float((bx - cx) ** 2 + (by - cy) ** 2)

        return min(detections, key=dist)
    raise ValueError(f"unknown face selection policy {policy!r}")


_FACTORIES: dict[str, Callable[..., Detector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator: make a detector constructible by name from a suite."""

    def wrap(factory: Callable[..., Detector]) -> Callable[..., Detector]:
        _FACTORIES[name] = factory
        return factory

    return wrap


def create_detector(name: str, **options: Any) -> Detector:
    """Build a detector by its suite name (``yunet``, ``retinaface``); only that detector's
    module is imported (RetinaFace pulls in torch, YuNet does not)."""
    _load_builtin(name)
    if name not in _FACTORIES:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(BUILTIN)}")
    return _FACTORIES[name](**options)


#: Detectors shipped with facebench, by suite name → module under ``facebench.faces.detect``.
BUILTIN = {"yunet": "yunet", "retinaface": "retinaface", "mtcnn": "mtcnn", "dlib": "dlib"}
#: The files a detector whose ``model`` is a folder reads in it, by suite name (the others read
#: the ``model`` file itself); the suite lists them as a cell's inputs for ``--resume``.
FOLDER_WEIGHTS: dict[str, tuple[str, ...]] = {"mtcnn": ("pnet.pt", "rnet.pt", "onet.pt"),
                                              "dlib": (LANDMARKS_FILE,)}


def _load_builtin(name: str) -> None:
    import importlib

    if name in BUILTIN and name not in _FACTORIES:
        importlib.import_module(f"facebench.faces.detect.{BUILTIN[name]}")
