"""Detector interface and face-selection policies.

A detector maps a BGR ``uint8`` image (H×W×3) to a list of :class:`Detection`. Landmarks are
five (x, y) points in image coordinates, in the order: left eye, right eye, nose tip, left
mouth corner, right mouth corner ("left" as seen in the image, i.e. the subject's right eye).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

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
#: Why a suite's ``detector.model`` (a path; ``None``: the detector's default) cannot serve a
#: detector, or ``None`` when it can; cheap (no detector is built), for suite validation.
ModelCheck = Callable[[Path | None], str | None]
_MODEL_CHECKS: dict[str, ModelCheck] = {}
_FOLDER_FILES: dict[str, tuple[str, ...]] = {}


def register_detector(name: str, check_model: ModelCheck | None = None,
                      folder_files: tuple[str, ...] | None = None
                      ) -> Callable[[Callable[..., Detector]], Callable[..., Detector]]:
    """Decorator: make a detector constructible by name from a suite; ``check_model`` says
    why a given model file or folder is not this detector's (see :func:`model_problem`);
    ``folder_files``: the files it reads in its ``model`` folder (see :func:`folder_files`)."""

    def wrap(factory: Callable[..., Detector]) -> Callable[..., Detector]:
        _FACTORIES[name] = factory
        if check_model is not None:
            _MODEL_CHECKS[name] = check_model
        if folder_files is not None:
            _FOLDER_FILES[name] = folder_files
        return factory

    return wrap


def folder_files(name: str) -> tuple[str, ...] | None:
    """The files detector ``name`` reads in its ``model`` folder (the suite lists them as a
    cell's inputs for ``--resume``), or ``None`` when it reads the ``model`` file itself."""
    _load_builtin(name)
    return _FOLDER_FILES.get(name)


def model_problem(name: str, model: Path | None) -> str | None:
    """Why ``model`` (a suite's ``detector.model``; ``None``: the default) cannot serve
    detector ``name``; ``None`` when it can, or when the detector has no model to check."""
    _load_builtin(name)
    check = _MODEL_CHECKS.get(name)
    return None if check is None else check(model)


def detectors_for(model: Path) -> list[str]:
    """The built-in detectors whose model ``model`` is (for a hint when another was named)."""
    return [name for name in BUILTIN if model_problem(name, model) is None]


#: What :func:`model_file_format` finds, in words.
FORMAT_NAMES = {"onnx": "an ONNX model", "torch": "a PyTorch checkpoint (torch.save)",
                None: "neither an ONNX model nor a PyTorch checkpoint"}
#: ONNX ModelProto field tags that may follow ``ir_version`` (field 1) in a serialized model.
_ONNX_NEXT_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA})


def model_file_format(path: Path) -> Literal["onnx", "torch"] | None:
    """``"onnx"``, ``"torch"`` (``torch.save``: zip or legacy pickle) or ``None``, from the
    first bytes of a regular file; nothing is loaded."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80
                                           and 2 <= head[1] <= 5):
        return "torch"
    # ir_version (field 1, varint, small), then the next ModelProto field
    if len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS:
        return "onnx"
    return None


def file_problem(path: Path, fmt: Literal["onnx", "torch"], needs: str) -> str | None:
    """Why ``path`` is not a regular file of format ``fmt`` (``needs``: what the detector
    needs, for the message), or ``None``."""
    if not path.is_file():
        if path.exists():
            found = "a directory" if path.is_dir() else "not a regular file"
            return f"expected a file, found {found}: {path}"
        return f"file not found: {path}"
    got = model_file_format(path)
    return None if got == fmt else f"{path} is {FORMAT_NAMES[got]}, but {needs}"


def folder_problem(model: Path, files: tuple[str, ...], needs: str) -> tuple[Path, str | None]:
    """The folder a folder-model detector reads (``model``, or the folder of a file in it) and
    why it is not one holding ``files`` (``needs``: what to do), or ``None``."""
    if not model.exists():
        return model, f"directory not found: {model}"
    folder = model.parent if model.is_file() else model
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        return folder, f"{folder} lacks {', '.join(missing)}; {needs}"
    return folder, None


def create_detector(name: str, **options: Any) -> Detector:
    """Build a detector by its suite name (``yunet``, ``retinaface``); only that detector's
    module is imported (RetinaFace pulls in torch, YuNet does not)."""
    _load_builtin(name)
    if name not in _FACTORIES:
        raise ValueError(f"unknown detector {name!r}; choose one of {sorted(BUILTIN)}")
    return _FACTORIES[name](**options)


#: Detectors shipped with facebench, by suite name → module under ``facebench.faces.detect``.
BUILTIN = {"yunet": "yunet", "retinaface": "retinaface", "mtcnn": "mtcnn", "dlib": "dlib"}


def _load_builtin(name: str) -> None:
    import importlib

    if name in BUILTIN and name not in _FACTORIES:
        importlib.import_module(f"facebench.faces.detect.{BUILTIN[name]}")
