"""Alignment: a detected face → the crop a model was trained on.

Each method is a small pydantic spec (what the suite's ``align:`` block holds) with ``crop()``:

- ``similarity``: five landmarks → a 2×3 similarity transform onto a template (the ArcFace
  112×112 one by default, or explicit points with the size they refer to), scaled to the
  output size; OpenCV ``estimateAffinePartial2D`` (LMEDS) + ``warpAffine`` (bilinear).
- ``box_crop``: the detector's box grown by a margin (pixels of the image, split evenly on both
  sides, as FaceNet's authors crop MTCNN boxes, or a fraction of the box), clipped to the image,
  resized to the output size (bilinear). No rotation.
- ``dlib_chip``: dlib's own chip (``dlib.get_face_chip``, size 150, padding 0.25) from dlib's
  5-point landmarks; needs the ``dlib`` detector.
- ``none``: the whole image resized (pre-aligned inputs such as a ``.bin`` or a protocol without
  a detector).

``needs`` says which landmarks a method requires (the detector's ``landmarks_scheme``), so a
mismatch is an error, not a silently wrong crop.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import ConfigDict, Discriminator, Field, Tag

from facebench.bounds import NO_BOOL, Side
from facebench.crosscheck import CrossChecked, cross_check

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

#: Recorded in results so a reader knows how ``similarity`` crops were made.
ESTIMATOR = "cv2.estimateAffinePartial2D(method=LMEDS) + cv2.warpAffine(INTER_LINEAR)"

Size = tuple[Side, Side]
Point = tuple[Annotated[float, Field(ge=-10_000, le=10_000, allow_inf_nan=False), NO_BOOL],
              Annotated[float, Field(ge=-10_000, le=10_000, allow_inf_nan=False), NO_BOOL]]


def template_for(size: int | tuple[int, int], template: np.ndarray = ARCFACE_TEMPLATE,
                 reference: tuple[int, int] = (112, 112)) -> np.ndarray:
    """``template`` (points on a ``reference`` = ``(w, h)`` canvas) scaled to ``size``."""
    w, h = (size, size) if isinstance(size, int) else size
    scale = np.array([w / reference[0], h / reference[1]], dtype=np.float32)
    return np.asarray(template, dtype=np.float32) * scale


def estimate_transform(landmarks: np.ndarray, size: int | tuple[int, int] = 112,
                       template: np.ndarray | None = None) -> np.ndarray:
    """2×3 similarity matrix mapping ``landmarks`` (5×2) onto the (scaled) template."""
    src = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    dst = template_for(size) if template is None else template
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("degenerate landmarks: no similarity transform exists")
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int | tuple[int, int] = 112,
               template: np.ndarray | None = None) -> np.ndarray:
    """Warp ``image`` so its five landmarks land on the template (ArcFace by default)."""
    w, h = (size, size) if isinstance(size, int) else size
    matrix = estimate_transform(landmarks, (w, h), template)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)


class _Align(CrossChecked):
    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Size | None = Field(default=None, description="Output (w, h) in pixels; default: the "
                              "protocol's align_size, else the model's input size.")
    #: landmarks scheme this method needs from the detector (None: box or nothing)
    needs: ClassVar[str | None] = None

    def with_size(self, size: tuple[int, int]) -> _Align:
        """This spec with its output size filled in (when the suite left it open)."""
        return self if self.size is not None else self.model_copy(update={"size": tuple(size)})

    def out_size(self) -> tuple[int, int]:
        if self.size is None:
            raise ValueError("alignment output size not set (call with_size first)")
        return int(self.size[0]), int(self.size[1])

    def settings(self) -> dict[str, Any]:
        """Everything that determines the crop (cache key and results)."""
        return self.model_dump(mode="json")

    def crop(self, image: np.ndarray, box: np.ndarray | None,
             landmarks: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def points_in_crop(self, shape: tuple[int, ...], box: np.ndarray | None,
                       points: np.ndarray, landmarks: np.ndarray | None = None
                       ) -> np.ndarray | None:
        """Where image ``points`` (``(k, 2)``) land in the crop of an image of ``shape`` (what a
        degradation placed on the face needs at ``stage: aligned``; ``landmarks``: the detection's,
        which place the crop); ``None`` when this method cannot say (``dlib_chip``)."""
        return None


def _template_form(value: Any) -> str:
    return "named" if isinstance(value, str) else "points"


#: A template by name, or its points; errors name only the form given.
Template = Annotated[
    Annotated[Literal["arcface"], Tag("named")] | Annotated[list[Point], Tag("points")],
    Discriminator(_template_form),
]
TEMPLATE_TAGS = ("named", "points")


class SimilarityAlign(_Align):
    """Five landmarks → similarity transform onto a template."""

    method: Literal["similarity"] = "similarity"
    template: Template = Field(
        default="arcface", description="'arcface' or five (x, y) points in the detector's "
        "landmark order, on a canvas of reference_size.")
    reference_size: Size = Field(default=(112, 112), description="Canvas (w, h) of the points.")
    needs: ClassVar[str | None] = "arcface5"

    @cross_check("template")
    def _five(self) -> None:
        if isinstance(self.template, list) and len(self.template) != 5:
            raise ValueError(f"template needs 5 points, got {len(self.template)}")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "estimator": ESTIMATOR}

    def crop(self, image: np.ndarray, box: np.ndarray | None,
             landmarks: np.ndarray | None) -> np.ndarray:
        points = ARCFACE_TEMPLATE if self.template == "arcface" else np.array(self.template)
        size = self.out_size()
        template = template_for(size, points, tuple(self.reference_size))  # type: ignore[arg-type]
        return align_face(image, landmarks, size, template)  # type: ignore[arg-type]

    def points_in_crop(self, shape: tuple[int, ...], box: np.ndarray | None,
                       points: np.ndarray, landmarks: np.ndarray | None = None
                       ) -> np.ndarray | None:
        if landmarks is None:
            return None
        named = ARCFACE_TEMPLATE if self.template == "arcface" else np.array(self.template)
        size = self.out_size()
        matrix = estimate_transform(landmarks, size, template_for(
            size, named, tuple(self.reference_size)))  # type: ignore[arg-type]
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ matrix[:, :2].T + matrix[:, 2]


class BoxCropAlign(_Align):
    """The detector box plus a margin, clipped to the image and resized (no rotation)."""

    method: Literal["box_crop"] = "box_crop"
    margin_px: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False), NO_BOOL] | None = (
        Field(default=None, description="Pixels of the image added in total to width and height "
              "(half on each side), as FaceNet's authors crop (margin 32)."))
    margin_fraction: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False), NO_BOOL] | None = (
        Field(default=None, description="Fraction of the box's width/height added in total."))

    @cross_check("margin_px", "margin_fraction")
    def _one_margin(self) -> None:
        if self.margin_px is not None and self.margin_fraction is not None:
            raise ValueError("give margin_px or margin_fraction, not both")

    def box(self, box: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Integer crop box ``(x1, y1, x2, y2)``: the detector box truncated to pixels (as
        FaceNet's ``align_dataset_mtcnn`` does), grown by the margin, clipped to the image."""
        x1, y1, x2, y2 = (int(v) for v in np.asarray(box, dtype=np.float64)[:4])
        if self.margin_fraction is not None:
            mx, my = self.margin_fraction * (x2 - x1), self.margin_fraction * (y2 - y1)
        else:
            mx = my = self.margin_px or 0.0
        h, w = shape[:2]
        return (max(int(x1 - mx / 2), 0), max(int(y1 - my / 2), 0),
                min(int(x2 + mx / 2), w), min(int(y2 + my / 2), h))

    def crop(self, image: np.ndarray, box: np.ndarray | None,
             landmarks: np.ndarray | None) -> np.ndarray:
        if box is None:
            raise ValueError("box_crop needs a detector box")
        x1, y1, x2, y2 = self.box(box, image.shape)
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"empty face box {x1, y1, x2, y2} inside the image")
        return cv2.resize(image[y1:y2, x1:x2], self.out_size(), interpolation=cv2.INTER_LINEAR)

    def points_in_crop(self, shape: tuple[int, ...], box: np.ndarray | None,
                       points: np.ndarray, landmarks: np.ndarray | None = None
                       ) -> np.ndarray | None:
        if box is None:
            return None
        x1, y1, x2, y2 = self.box(box, shape)
        w, h = self.out_size()
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (pts - [x1, y1]) * [w / max(x2 - x1, 1), h / max(y2 - y1, 1)]


class DlibChipAlign(_Align):
    """dlib's face chip from its 5-point landmarks (``dlib.get_face_chip``)."""

    method: Literal["dlib_chip"] = "dlib_chip"
    size: Size | None = (150, 150)
    padding: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False), NO_BOOL] = 0.25
    needs: ClassVar[str | None] = "dlib5"

    @cross_check("size")
    def _square(self) -> None:
        if self.size is not None and self.size[0] != self.size[1]:
            raise ValueError(f"dlib chips are square; got size {list(self.size)}")

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "estimator": "dlib.get_face_chip (5-point similarity)"}

    def crop(self, image: np.ndarray, box: np.ndarray | None,
             landmarks: np.ndarray | None) -> np.ndarray:
        import dlib  # optional dependency (facebench[dlib])

        if box is None or landmarks is None:
            raise ValueError("dlib_chip needs the dlib detector's box and landmarks")
        left, top, right, bottom = (int(round(float(v))) for v in box[:4])
        parts = dlib.points([dlib.point(int(round(float(x))), int(round(float(y))))
                             for x, y in landmarks])
        shape = dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), parts)
        # per-channel interpolation: the chip of a BGR image is the BGR of the RGB chip
        return np.ascontiguousarray(dlib.get_face_chip(
            np.ascontiguousarray(image), shape, size=self.out_size()[0], padding=self.padding))


class NoAlign(_Align):
    """The whole image, resized (area interpolation): for pre-aligned inputs."""

    method: Literal["none"] = "none"

    def crop(self, image: np.ndarray, box: np.ndarray | None,
             landmarks: np.ndarray | None) -> np.ndarray:
        return cv2.resize(image, self.out_size(), interpolation=cv2.INTER_AREA)

    def points_in_crop(self, shape: tuple[int, ...], box: np.ndarray | None,
                       points: np.ndarray, landmarks: np.ndarray | None = None
                       ) -> np.ndarray | None:
        w, h = self.out_size()
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts * [w / shape[1], h / shape[0]]


AlignSpec = Annotated[SimilarityAlign | BoxCropAlign | DlibChipAlign | NoAlign,
                      Field(discriminator="method")]
ALIGN_METHODS = ("similarity", "box_crop", "dlib_chip", "none")


def check_landmarks(align: _Align, detector: str, scheme: str | None) -> None:
    """Refuse an alignment that needs landmarks the detector does not give."""
    if align.needs is not None and scheme is not None and align.needs != scheme:
        raise ValueError(
            f"align method '{align.method}' needs {align.needs} landmarks, but detector "  # type: ignore[attr-defined]
            f"'{detector}' gives {scheme}; use a detector that gives them, or align: box_crop")
