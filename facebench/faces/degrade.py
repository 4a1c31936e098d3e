"""Controlled degradations of face images (a protocol's ``degrade:`` block; docs/robustness.md).

Each corruption is a small pydantic spec with the severities to run (``levels``) and
:meth:`_Corruption.apply`, which degrades one BGR ``uint8`` image at one level. Corruptions that
are placed on the face (``resolution``, ``occlusion``) read its five landmarks
(:class:`FacePoints`); the rest act on the whole image. Randomness (``noise``) comes from a
generator seeded per image (:func:`image_seed`: the protocol's seed, the image's content digest
and the level), so a level's images are the same whatever order or process they run in.

- ``resolution``: area-downscale so the inter-ocular distance becomes ``N`` px (a sensor's pixel
  binning), then bilinear upscale back to the original size (what a viewer or a detector's
  resize does). A face already at or below ``N`` px is left as it is.
- ``blur``: Gaussian, ``sigma`` px; ``motion_blur``: a line kernel ``length`` px at ``angle``
  degrees; ``jpeg``: re-encoded at ``quality`` (OpenCV / libjpeg, 4:2:0); ``noise``: additive
  Gaussian, ``sigma`` in 0–255 units; ``gamma``: ``255 (x / 255) ** gamma`` (> 1 darker: low
  light).
- ``occlusion``: ``mask``, a surgical-mask polygon over nose, mouth and chin in a flat colour,
  or ``sunglasses``, a dark band over both eyes; drawn from the landmarks.

The identity levels (``blur`` 0, ``motion_blur`` 0 or 1, ``noise`` 0, ``gamma`` 1) return the
image unchanged, so such a level scores exactly as the clean protocol.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import ConfigDict, Discriminator, Field, Tag

from facebench.bounds import NO_BOOL, Seed
from facebench.crosscheck import CrossChecked

#: Surgical-mask polygon in face coordinates: (across, down) in inter-ocular distances from the
#: midpoint of the eyes; across along the eye axis, down perpendicular to it towards the mouth.
#: The top edge crosses the nose below its bridge (the nose tip sits ~0.57 below the eyes, the
#: mouth ~1.16 on the ArcFace template); sides and bottom stay within a detector's face box
#: (YuNet's on 60 LFW faces: at least 0.81 to each side of the eye midpoint, 1.50 below it).
MASK_POLYGON = np.array([
    [-0.80, 0.42], [-0.45, 0.33], [0.0, 0.28], [0.45, 0.33], [0.80, 0.42],
    [0.75, 1.12], [0.42, 1.38], [0.0, 1.45], [-0.42, 1.38], [-0.75, 1.12],
], dtype=np.float64)
#: Sunglasses band: from 0.78 inter-ocular distances left of the eye midpoint to 0.78 right,
#: 0.22 above the eye line to 0.22 below.
SUNGLASSES_BAND = np.array([[-0.78, -0.22], [0.78, -0.22], [0.78, 0.22], [-0.78, 0.22]],
                           dtype=np.float64)
MASK_COLOR_BGR = (230, 200, 170)  # light surgical blue
SUNGLASSES_COLOR_BGR = (25, 25, 25)
#: Part of every level's cache key: bump when a corruption's pixels change.
DEGRADE_VERSION = 1


@dataclass(frozen=True)
class FacePoints:
    """A face's eye centres (image left, image right), nose tip and mouth corners, pixels."""

    left_eye: np.ndarray
    right_eye: np.ndarray
    nose: np.ndarray
    mouth: np.ndarray  # (2, 2): image-left and image-right corner

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray, scheme: str = "arcface5") -> FacePoints:
        """From a detector's five points: ``arcface5`` (eyes, nose tip, mouth corners) or
        ``dlib5`` (two corners of each eye, nose base; the mouth is placed 0.45 × the
        eyes-to-nose vector below the nose base, its corners ±0.4 inter-ocular distances)."""
        p = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
        if scheme == "dlib5":
            a, b = p[0:2].mean(axis=0), p[2:4].mean(axis=0)
            left, right = (a, b) if a[0] <= b[0] else (b, a)
            nose = p[4]
            mid = (left + right) / 2
            centre = nose + 0.45 * (nose - mid)
            axis = (right - left) * 0.4
            return cls(left, right, nose, np.stack([centre - axis, centre + axis]))
        return cls(p[0], p[1], p[2], p[3:5].copy())

    @property
    def inter_ocular(self) -> float:
        return float(np.linalg.norm(self.right_eye - self.left_eye))

    def to_image(self, shape_uv: np.ndarray) -> np.ndarray:
        """Face coordinates ``(across, down)`` in inter-ocular distances → image pixels."""
        mid = (self.left_eye + self.right_eye) / 2
        u = (self.right_eye - self.left_eye) / max(self.inter_ocular, 1e-6)
        v = np.array([-u[1], u[0]])
        if np.dot(self.mouth.mean(axis=0) - mid, v) < 0:  # v points towards the mouth
            v = -v
        d = self.inter_ocular
        return mid + d * (shape_uv[:, :1] * u + shape_uv[:, 1:2] * v)


class _Corruption(CrossChecked):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Whether the corruption is placed by the face's landmarks.
    needs_points: ClassVar[bool] = False

    def level_values(self) -> list[Any]:
        return list(self.levels)  # type: ignore[attr-defined]

    def level_name(self, level: Any) -> str:
        """``resolution-32``, ``blur-1.5``, ``occlusion-mask``: the level's row name."""
        text = level if isinstance(level, str) else f"{level:g}"
        return f"{self.name}-{text}"  # type: ignore[attr-defined]

    def settings(self, level: Any) -> dict[str, Any]:
        """Everything that determines a level's images (cache keys and results)."""
        extra = self.model_dump(mode="json", exclude={"levels", "name"})
        return {"name": self.name, "level": level, **extra}  # type: ignore[attr-defined]

    def is_identity(self, level: Any) -> bool:
        return False

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


PositiveInt = Annotated[int, Field(ge=1, le=4096), NO_BOOL]
Sigma = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False), NO_BOOL]
LEVELS = "Severities to run, each its own row of results."


class Resolution(_Corruption):
    """Downscale so the inter-ocular distance is ``N`` px, then back up (area down, bilinear
    up)."""

    name: Literal["resolution"] = "resolution"
    levels: list[Annotated[int, Field(ge=2, le=4096), NO_BOOL]] = Field(
        min_length=1, description="Inter-ocular distances in pixels (>= 2). " + LEVELS)
    needs_points: ClassVar[bool] = True

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        small = downscale(image, points, int(level))  # type: ignore[arg-type]
        if small is None:
            return image
        h, w = image.shape[:2]
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def downscale(image: np.ndarray, points: FacePoints, iod_px: int) -> np.ndarray | None:
    """``image`` area-resized so the face's inter-ocular distance is ``iod_px``; ``None`` when it
    already is that small or smaller."""
    iod = points.inter_ocular
    if iod <= iod_px:
        return None
    f = iod_px / iod
    h, w = image.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class Blur(_Corruption):
    """Gaussian blur of standard deviation ``sigma`` px (kernel ±3 sigma)."""

    name: Literal["blur"] = "blur"
    levels: list[Sigma] = Field(min_length=1, description="Sigmas in pixels (>= 0). " + LEVELS)

    def is_identity(self, level: Any) -> bool:
        return float(level) == 0

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        if self.is_identity(level):
            return image
        k = 2 * math.ceil(3 * float(level)) + 1
        return cv2.GaussianBlur(image, (k, k), sigmaX=float(level), sigmaY=float(level),
                                borderType=cv2.BORDER_REFLECT_101)


class MotionBlur(_Corruption):
    """Linear motion blur: the average along a line of ``length`` px at ``angle`` degrees."""

    name: Literal["motion_blur"] = "motion_blur"
    levels: list[Annotated[int, Field(ge=0, le=512), NO_BOOL]] = Field(
        min_length=1, description="Lengths in pixels (0 or 1: none). " + LEVELS)
    angle: Annotated[float, Field(ge=-360, le=360, allow_inf_nan=False), NO_BOOL] = Field(
        default=0.0, description="Direction of motion in degrees (0: horizontal).")

    def is_identity(self, level: Any) -> bool:
        return int(level) <= 1

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        if self.is_identity(level):
            return image
        return cv2.filter2D(image, -1, motion_kernel(int(level), self.angle),
                            borderType=cv2.BORDER_REFLECT_101)


def motion_kernel(length: int, angle: float) -> np.ndarray:
    """A normalised ``length``-px line through the centre of a square kernel at ``angle``."""
    k = np.zeros((length, length), dtype=np.float32)
    c = (length - 1) / 2
    t = np.linspace(-c, c, 4 * length)
    a = math.radians(angle)
    xs = np.clip(np.round(c + t * math.cos(a)), 0, length - 1).astype(int)
    ys = np.clip(np.round(c - t * math.sin(a)), 0, length - 1).astype(int)
    k[ys, xs] = 1.0
    return k / k.sum()


class Jpeg(_Corruption):
    """Re-encode as JPEG at ``quality`` (OpenCV's libjpeg, standard tables, 4:2:0)."""

    name: Literal["jpeg"] = "jpeg"
    levels: list[Annotated[int, Field(ge=1, le=100), NO_BOOL]] = Field(
        min_length=1, description="JPEG qualities 1–100 (lower: stronger). " + LEVELS)

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        return cv2.imdecode(np.frombuffer(jpeg_bytes(image, int(level)), np.uint8),
                            cv2.IMREAD_COLOR)


def jpeg_bytes(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not JPEG-encode a {image.shape} image")
    return buf.tobytes()


class Noise(_Corruption):
    """Additive Gaussian noise of ``sigma`` (0–255 units), seeded per image, then clipped."""

    name: Literal["noise"] = "noise"
    levels: list[Sigma] = Field(min_length=1, description="Sigmas in 0–255 units (>= 0). "
                                + LEVELS)

    def is_identity(self, level: Any) -> bool:
        return float(level) == 0

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        if self.is_identity(level):
            return image
        noisy = image.astype(np.float32) + rng.normal(0.0, float(level), image.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


class Gamma(_Corruption):
    """Tone curve ``255 (x / 255) ** gamma``: above 1 darker (low light), below 1 brighter."""

    name: Literal["gamma"] = "gamma"
    levels: list[Annotated[float, Field(gt=0, le=10, allow_inf_nan=False), NO_BOOL]] = Field(
        min_length=1, description="Gammas (> 0; 1: none). " + LEVELS)

    def is_identity(self, level: Any) -> bool:
        return float(level) == 1

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        if self.is_identity(level):
            return image
        lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** float(level)), 0, 255)
        return cv2.LUT(image, lut.astype(np.uint8))


class Occlusion(_Corruption):
    """A flat surgical mask over nose, mouth and chin, or a dark sunglasses band over the eyes,
    drawn from the landmarks."""

    name: Literal["occlusion"] = "occlusion"
    levels: list[Literal["mask", "sunglasses"]] = Field(
        min_length=1, description="mask and/or sunglasses. " + LEVELS)
    needs_points: ClassVar[bool] = True

    def apply(self, image: np.ndarray, level: Any, points: FacePoints | None,
              rng: np.random.Generator) -> np.ndarray:
        poly = occluder_polygon(points, level)  # type: ignore[arg-type]
        colour = MASK_COLOR_BGR if level == "mask" else SUNGLASSES_COLOR_BGR
        out = image.copy()
        cv2.fillPoly(out, [np.rint(poly).astype(np.int32)], colour, lineType=cv2.LINE_8)
        return out


def occluder_polygon(points: FacePoints, kind: str) -> np.ndarray:
    """The occluder's polygon in image pixels (``(k, 2)`` float)."""
    return points.to_image(MASK_POLYGON if kind == "mask" else SUNGLASSES_BAND)


CORRUPTIONS = ("resolution", "blur", "motion_blur", "jpeg", "noise", "gamma", "occlusion")


def _corruption_name(value: Any) -> str:
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    return name if name in CORRUPTIONS else "unknown"


CorruptionSpec = Annotated[
    Annotated[Resolution, Tag("resolution")] | Annotated[Blur, Tag("blur")]
    | Annotated[MotionBlur, Tag("motion_blur")] | Annotated[Jpeg, Tag("jpeg")]
    | Annotated[Noise, Tag("noise")] | Annotated[Gamma, Tag("gamma")]
    | Annotated[Occlusion, Tag("occlusion")],
    Discriminator(_corruption_name, custom_error_type="corruption_name",
                  custom_error_message="unknown corruption; use one of " + ", ".join(CORRUPTIONS)),
]


class DegradeSpec(CrossChecked):
    """A protocol's ``degrade:`` block: corruptions with their levels, where they are applied
    and to which side of a pair. Each level runs as its own protocol ``<id>+<corruption>-<level>``
    beside the clean one (``<id>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    corruptions: list[CorruptionSpec] = Field(min_length=1, description="Named corruptions, "
                                              "each with its levels (docs/robustness.md).")
    stage: Literal["source", "aligned"] = Field(
        default="source", description="source: the image before detection (a detector that "
        "loses the face is a failure to acquire); aligned: the aligned crop (the recognizer "
        "alone).")
    sides: Literal["probe", "both"] = Field(
        default="probe", description="probe: only the second image of each pair (identification: "
        "the probes) is degraded; both: every image.")
    seed: Seed = Field(default=0, description="Seeds each image's randomness with its content.")
    accuracy_floor: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False), NO_BOOL] = Field(
        default=0.9, description="The report gives the first level at which each model's "
        "accuracy falls below this.")

    def levels(self) -> list[Level]:
        """Every level of every corruption, in suite order."""
        return [Level(c, v, self.stage, self.sides, self.seed)
                for c in self.corruptions for v in c.level_values()]


@dataclass(frozen=True)
class Level:
    """One corruption at one severity, where it is applied, to which side, with which seed."""

    corruption: Any  # a _Corruption spec
    value: Any
    stage: str = "source"
    sides: str = "probe"
    seed: int = 0

    @property
    def name(self) -> str:
        return self.corruption.level_name(self.value)

    @property
    def needs_points(self) -> bool:
        return bool(self.corruption.needs_points)

    def settings(self) -> dict[str, Any]:
        """What determines this level's images (the crop cache key and results)."""
        return {**self.corruption.settings(self.value), "stage": self.stage, "seed": self.seed,
                "v": DEGRADE_VERSION}

    def record(self) -> dict[str, Any]:
        return {**self.settings(), "sides": self.sides, "level_name": self.name}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()
                              ).hexdigest()[:16]

    def apply(self, image: np.ndarray, digest: str, points: FacePoints | None) -> np.ndarray:
        """The degraded image (``digest``: the image's content hash, seeding its randomness)."""
        if self.needs_points and points is None:
            raise ValueError(f"{self.name} is placed by the face's landmarks and none were given")
        return self.corruption.apply(image, self.value, points, self.rng(digest))

    def rng(self, digest: str) -> np.random.Generator:
        return np.random.default_rng(image_seed(self.seed, digest, self.key()))


def image_seed(seed: int, digest: str, level_key: str) -> list[int]:
    """A generator seed from the protocol's seed, an image's digest and the level's key."""
    h = hashlib.sha256(f"{seed}:{digest}:{level_key}".encode()).digest()
    return [int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4)]


__all__ = ["CORRUPTIONS", "CorruptionSpec", "DegradeSpec", "FacePoints", "Level", "downscale",
           "jpeg_bytes", "motion_kernel", "occluder_polygon"]
