"""Acquire aligned faces for a list of images: cache → decode → detect → select → align.

One cache entry per image content (sha256 of the file's bytes) and alignment, shared across
models and runs, under ``align/<detector key>/<alignment key>/``: the crop, and the selected
detection it came from. An alignment without an entry for an image takes the detection from
another alignment's entry of the same detector, so a suite comparing models with different
alignments detects each image once per detector and aligns it once per alignment (one file per
image and alignment: file creation, not serialisation, is what a cold cache costs); a second run
does neither.

Work runs in a process pool (one detector per process, one thread each) and streams results in
input order, so embedding starts before detection finishes. Each image file is read once; its
bytes are hashed for the cache keys and decoded from memory. Per-stage seconds (``decode``,
``detect``, ``align``) are summed into the caller's ``timings``.

A dataset that comes with its faces' five landmarks (IJB's loose crops) is acquired with the
detector ``given``: no detector runs; each image's :class:`GivenLandmarks` row is its detection
(the box is the whole image), aligned by the model's own alignment. A row that does not describe a
face in its image — a point or the score not finite, a point farther outside the image than
:data:`GIVEN_MARGIN` — is a failure to acquire with that reason. Such a crop's cache entry is
keyed by the image bytes *and* its landmarks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.cache import load_npz, store_npz
from facebench.faces.align import NoAlign, _Align, check_landmarks
from facebench.faces.degrade import FacePoints, Level
from facebench.faces.detect import create_detector, select_face
from facebench.faces.images import DETECT_MAX_SIDE, ImageError, decode_reduced, read_image_file
from facebench.paths import default_cache_dir
from facebench.pool import chunks, ordered_map

__all__ = ["GIVEN", "GIVEN_MARGIN", "AcquireConfig", "Face", "GivenLandmarks", "acquire",
           "acquire_chunk", "default_cache_dir", "given_problem"]

CACHE_VERSION = 4  # 4: checksummed entries (facebench.cache)
#: The folder, in a detector's cache folder, of degraded crops (one folder per level).
DEGRADED = "degraded"
#: Images per job handed to a worker (detectors with ``detect_batch`` see them together).
CHUNK = 32
#: The detector name of images whose landmarks come with the dataset.
GIVEN = "given"
#: How far a given landmark may lie outside its image, as a fraction of the image's width (x) or
#: height (y): a detector puts the points of a face the crop's border cuts a little outside it
#: (half a face is about a quarter of a loose crop); a point beyond that does not belong to a
#: face in this image, and the row is a failure to acquire.
GIVEN_MARGIN = 0.25


@dataclass(frozen=True)
class GivenLandmarks:
    """Five landmarks (``(n, 5, 2)``, image pixels, ArcFace order: eyes, nose, mouth corners)
    and a detector score per image, from the dataset; a row that :func:`given_problem` rejects
    is a failure to acquire with its reason."""

    points: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float32)
        sc = np.asarray(self.scores, dtype=np.float32)
        if pts.ndim != 3 or pts.shape[1:] != (5, 2) or sc.shape != (pts.shape[0],):
            raise ValueError(f"given landmarks must be (n, 5, 2) with (n,) scores, got "
                             f"{pts.shape} and {sc.shape}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "scores", sc)

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def part(self, lo: int, hi: int) -> GivenLandmarks:
        return GivenLandmarks(self.points[lo:hi], self.scores[lo:hi])

    def digest(self) -> str:
        """sha256 of every point and score (part of the embedding cache key)."""
        h = hashlib.sha256(self.points.tobytes())
        h.update(self.scores.tobytes())
        return h.hexdigest()


@dataclass
class Face:
    """The outcome for one image: an aligned crop, or a failure to acquire with its reason."""

    index: int
    crop: np.ndarray | None
    landmarks: np.ndarray | None = None
    score: float | None = None
    reason: str | None = None  # set when crop is None (FtA)
    cached: bool = False
    box: np.ndarray | None = None  # the detection's box, detection-image pixels
    factor: float = 1.0  # detection image → file pixels


@dataclass(frozen=True)
class AcquireConfig:
    """Detector (by suite name and options), face selection, alignment (output size set)."""

    detector: str
    detector_options: dict[str, Any]
    select: str
    align: _Align
    cache_dir: Path | None
    #: A degradation level (``degrade:``): its crops are cached apart, keyed by the level.
    degrade: Level | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.align.out_size()

    def with_given_landmarks(self) -> AcquireConfig:
        """This alignment fed by the dataset's landmarks (the ``given`` detector)."""
        return dataclasses.replace(self, detector=GIVEN, detector_options={}, select=GIVEN)

    def effective_align(self) -> _Align:
        """Without a detector the input is pre-aligned: every method becomes a resize."""
        if self.detector == "none":
            return NoAlign(size=self.align.out_size())
        return self.align

    def detect_key(self, detector_settings: dict[str, Any]) -> str:
        blob = json.dumps({"v": CACHE_VERSION, "detector": self.detector,
                           "settings": detector_settings, "select": self.select,
                           "detect_max_side": DETECT_MAX_SIDE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def key(self, detector_settings: dict[str, Any]) -> str:
        """Key of the crops: the detection key and the alignment's settings."""
        parts = {"v": CACHE_VERSION, "detect": self.detect_key(detector_settings),
                 "align": self.effective_align().settings()}
        if self.degrade is not None:
            parts["degrade"] = self.degrade.settings()
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Caches:
    """The cache folders of one configuration (``None`` without a usable cache): the detector's
    folder, and in it this alignment's."""

    detect: Path | None = None
    crops: Path | None = None
    #: A degraded configuration's clean crops (the same alignment without the degradation).
    clean: Path | None = None

    def siblings(self) -> list[Path]:
        """The other alignments' folders of the same detector (their entries hold detections);
        never the degraded crops (their detections are of degraded images)."""
        if self.detect is None:
            return []
        try:
            return sorted(p for p in self.detect.iterdir()
                          if p.is_dir() and p != self.crops and p.name != DEGRADED)
        except OSError:
            return []


# ---- worker side -----------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(cfg: AcquireConfig, pool: bool) -> None:
    """Per-process state. A pool worker runs one thread (the pool is the parallelism); inline
    (``workers=1``) the cell's own thread settings are left alone."""
    _STATE.clear()
    _STATE.update(cfg=cfg, pool=pool)
    if pool:
        cv2.setNumThreads(1)


def _detector() -> Any:
    if "detector" not in _STATE:
        cfg: AcquireConfig = _STATE["cfg"]
        options = dict(cfg.detector_options)
        if not _STATE["pool"]:
            options["threads"] = None  # keep the engine's thread count in this process
        _STATE["detector"] = create_detector(cfg.detector, **options)
        torch = sys.modules.get("torch")  # only a torch detector pays torch's import
        if torch is not None and _STATE["pool"]:
            torch.set_num_threads(1)
    return _STATE["detector"]


def _entry(root: Path | None, digest: str) -> Path | None:
    return None if root is None else root / digest[:2] / f"{digest}.npz"


def _load(entry: Path | None) -> dict[str, np.ndarray] | None:
    """A cache entry's arrays, or ``None`` when absent or damaged (then it is recomputed and
    replaced; :func:`facebench.cache.load_npz` warns)."""
    return load_npz(entry)


def _store(entry: Path | None, **arrays: Any) -> None:
    store_npz(entry, arrays)


_NO_POINTS = np.zeros((0, 2), np.float32)
_NO_BOX = np.zeros((0,), np.float32)


def _face_from_crop(index: int, z: dict[str, np.ndarray]) -> Face | None:
    try:
        reason = str(z["reason"]) or None
        if reason is not None:
            return Face(index, None, reason=reason, cached=True)
        box = z["box"] if z["box"].size else None
        return Face(index, z["crop"], z["landmarks"] * z["factor"], float(z["score"]),
                    cached=True, box=box, factor=float(z["factor"]))
    except KeyError:
        return None


def _detection_of(z: dict[str, np.ndarray] | None) -> dict[str, np.ndarray] | None:
    """The detection stored in a crop entry (``None`` when the entry holds none)."""
    if z is None or not bool(z.get("detected", False)):
        return None
    if str(z["reason"]) == "no face detected":
        return {"reason": z["reason"]}
    return {k: z[k] for k in ("box", "landmarks", "score") if k in z} | {"reason": np.str_("")}


def _store_crop(entry: Path | None, face: Face, detection: dict[str, np.ndarray] | None = None,
                factor: float = 1.0) -> None:
    """The crop (or the failure) and the detection it came from, in detection-image
    coordinates with the factor back to the file's."""
    d = detection or {}
    _store(entry, crop=face.crop if face.crop is not None else np.zeros((0,), np.uint8),
           box=d.get("box", _NO_BOX), landmarks=d.get("landmarks", _NO_POINTS),
           score=np.float32(face.score if face.score is not None else np.nan),
           factor=np.float32(factor), detected=np.bool_(detection is not None),
           reason=np.str_(face.reason or ""))


@dataclass
class _Todo:
    """An image that needs work: decoded (reduced for detection), maybe already detected."""

    i: int
    crop_entry: Path | None
    image: np.ndarray
    factor: float
    detection: dict[str, np.ndarray] | None  # from another alignment's entry


def _add(timings: dict[str, float] | None, stage: str, seconds: float) -> None:
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + seconds


def acquire_chunk(cfg: AcquireConfig, caches: Caches, start: int, paths: list[Path],
                  timings: dict[str, float] | None = None,
                  given: GivenLandmarks | None = None) -> list[Face]:
    """Faces for consecutive images ``start, start+1, …``: cache hits are returned as stored;
    the rest are read once, decoded from memory, detected together (or their detection taken
    from another alignment's entry, or from ``given`` landmarks, one row per path), selected,
    aligned and cached."""
    if (given is None) != (cfg.detector != GIVEN) or (given is not None
                                                      and len(given) != len(paths)):
        raise ValueError(f"detector {cfg.detector!r} with "
                         f"{'no' if given is None else len(given)} given landmark rows for "
                         f"{len(paths)} images: the 'given' detector needs one row per image")
    if cfg.degrade is not None:
        return _acquire_degraded(cfg, caches, start, paths, timings, given)
    align = cfg.effective_align()
    siblings = caches.siblings()
    faces: list[Face | None] = [None] * len(paths)
    todo: list[_Todo] = []
    for i, path in enumerate(paths):
        index = start + i
        t0 = time.perf_counter()
        data, failed = _read(index, path)
        if data is None:
            faces[i] = failed
            continue
        digest = _digest(data, given, i)
        crop_entry = _entry(caches.crops, digest)
        stored = _load(crop_entry)
        hit = _face_from_crop(index, stored) if stored is not None else None
        if hit is not None:
            faces[i] = hit
            _add(timings, "decode", time.perf_counter() - t0)
            continue
        try:
            # the image a detector sees: longest side <= DETECT_MAX_SIDE, and the factor back
            image, factor = decode_reduced(data, str(path), DETECT_MAX_SIDE)
        except ImageError as exc:
            faces[i] = Face(index, None, reason=f"bad image: {exc.reason}")
            _store_crop(crop_entry, faces[i])  # type: ignore[arg-type]
            continue
        finally:
            _add(timings, "decode", time.perf_counter() - t0)
        if cfg.detector == "none":
            t1 = time.perf_counter()
            faces[i] = Face(index, align.crop(image, None, None))
            _add(timings, "align", time.perf_counter() - t1)
            _store_crop(crop_entry, faces[i])  # type: ignore[arg-type]
            continue
        known = _given_detection(given, i, image, factor) if given is not None else None
        for sibling in siblings if known is None else ():
            known = _detection_of(_load(_entry(sibling, digest)))
            if known is not None:
                break
        todo.append(_Todo(i, crop_entry, image, factor, known))
    need = [t for t in todo if t.detection is None]
    if need:
        t1 = time.perf_counter()
        found = _detect_all([t.image for t in need])
        _add(timings, "detect", time.perf_counter() - t1)
        for t, dets in zip(need, found, strict=True):
            det = select_face(dets, t.image.shape, cfg.select)  # type: ignore[arg-type]
            if det is None:
                t.detection = {"reason": np.str_("no face detected")}
            else:
                t.detection = {"box": np.asarray(det.box, np.float32),
                               "landmarks": np.asarray(det.landmarks, np.float32),
                               "score": np.float32(det.score), "reason": np.str_("")}
    for t in todo:
        faces[t.i] = _align_one(align, start + t.i, t, timings)
        _store_crop(t.crop_entry, faces[t.i], t.detection, t.factor)  # type: ignore[arg-type]
    return faces  # type: ignore[return-value]


def _digest(data: bytes, given: GivenLandmarks | None, i: int) -> str:
    """An image's cache key: its bytes' sha256, with its given landmarks when it has some (the
    same bytes with other landmarks are another face)."""
    digest = hashlib.sha256(data).hexdigest()
    if given is None:
        return digest
    return hashlib.sha256(f"{digest}:{given.part(i, i + 1).digest()}".encode()).hexdigest()


def _read(index: int, path: Path) -> tuple[bytes | None, Face | None]:
    """An image file's bytes, or the failure to acquire that reading it is (a FIFO or device
    is never opened for reading)."""
    try:
        return read_image_file(path), None
    except ImageError as exc:
        return None, Face(index, None, reason=f"unreadable: {exc.reason}")
    except OSError as exc:
        return None, Face(index, None, reason=f"unreadable: {exc.strerror or exc}")


def _scheme(cfg: AcquireConfig) -> str:
    if cfg.detector in (GIVEN, "none"):
        return "arcface5"
    return str(getattr(_detector(), "landmarks_scheme", "arcface5"))


_POINT_ORDER = ("left_eye", "right_eye", "nose")


def _crop_points(align: _Align, shape: tuple[int, ...], clean: Face,
                 points: FacePoints) -> FacePoints | None:
    """``points`` (detection-image pixels) where the clean crop has them."""
    pts = np.stack([points.left_eye, points.right_eye, points.nose, *points.mouth])
    lm = None if clean.landmarks is None else clean.landmarks / np.float32(clean.factor)
    mapped = align.points_in_crop(shape, clean.box, pts, lm)
    if mapped is None:
        return None
    return FacePoints(mapped[0], mapped[1], mapped[2], mapped[3:5])


def _acquire_degraded(cfg: AcquireConfig, caches: Caches, start: int, paths: list[Path],
                      timings: dict[str, float] | None,
                      given: GivenLandmarks | None) -> list[Face]:
    """Faces of a degradation level: cache hits as stored; the rest from the clean acquisition
    (which places a corruption by the face's landmarks and, at ``stage: aligned``, gives the
    crop to degrade) and, at ``stage: source``, a detection on the degraded image."""
    level: Level = cfg.degrade  # type: ignore[assignment]
    align = cfg.effective_align()
    faces: list[Face | None] = [None] * len(paths)
    todo: list[tuple[int, Path | None, bytes, str]] = []
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        data, failed = _read(start + i, path)
        if data is None:
            faces[i] = failed
            continue
        digest = _digest(data, given, i)
        entry = _entry(caches.crops, digest)
        stored = _load(entry)
        faces[i] = _face_from_crop(start + i, stored) if stored is not None else None
        _add(timings, "decode", time.perf_counter() - t0)
        if faces[i] is None:
            todo.append((i, entry, data, digest))
    if not todo:
        return faces  # type: ignore[return-value]
    rows = [i for i, *_ in todo]
    clean = acquire_chunk(dataclasses.replace(cfg, degrade=None),
                          Caches(caches.detect, caches.clean), 0, [paths[i] for i in rows],
                          timings, None if given is None else GivenLandmarks(
                              given.points[rows], given.scores[rows]))
    detect: list[_Todo] = []
    for (i, entry, data, digest), c in zip(todo, clean, strict=True):
        index = start + i
        if level.needs_points and c.crop is None:
            faces[i] = Face(index, None, reason=c.reason)
            _store_crop(entry, faces[i])  # type: ignore[arg-type]
            continue
        t0 = time.perf_counter()
        try:
            image, factor = decode_reduced(data, str(paths[i]), DETECT_MAX_SIDE)
        except ImageError as exc:
            faces[i] = Face(index, None, reason=f"bad image: {exc.reason}")
            _store_crop(entry, faces[i])  # type: ignore[arg-type]
            continue
        points = None
        if c.landmarks is not None and c.landmarks.size:
            points = FacePoints.from_landmarks(c.landmarks / np.float32(c.factor), _scheme(cfg))
        elif level.needs_points:
            faces[i] = Face(index, None, reason=f"{level.name} is placed by the face's "
                            "landmarks, and this detector gives none")
            _store_crop(entry, faces[i])  # type: ignore[arg-type]
            continue
        if level.stage == "aligned":
            faces[i] = _degrade_crop(level, align, image.shape, c, points, digest, index)
            _store_crop(entry, faces[i])  # type: ignore[arg-type]
        else:
            image = level.apply(image, digest, points)
            detect.append(_Todo(i, entry, image, factor, None))
        _add(timings, "degrade", time.perf_counter() - t0)
    if detect:
        t1 = time.perf_counter()
        found = _detect_all([t.image for t in detect]) if cfg.detector != "none" else None
        _add(timings, "detect", time.perf_counter() - t1)
        for k, t in enumerate(detect):
            if found is None:
                faces[t.i] = Face(start + t.i, align.crop(t.image, None, None))
                _store_crop(t.crop_entry, faces[t.i])  # type: ignore[arg-type]
                continue
            det = select_face(found[k], t.image.shape, cfg.select)  # type: ignore[arg-type]
            t.detection = ({"reason": np.str_("no face detected")} if det is None else
                           {"box": np.asarray(det.box, np.float32),
                            "landmarks": np.asarray(det.landmarks, np.float32),
                            "score": np.float32(det.score), "reason": np.str_("")})
            faces[t.i] = _align_one(align, start + t.i, t, timings)
            _store_crop(t.crop_entry, faces[t.i], t.detection, t.factor)  # type: ignore[arg-type]
    return faces  # type: ignore[return-value]


def _degrade_crop(level: Level, align: _Align, shape: tuple[int, ...], clean: Face,
                  points: FacePoints | None, digest: str, index: int) -> Face:
    """``stage: aligned``: the clean crop degraded (placed by the landmarks where it
    needs them)."""
    if clean.crop is None:
        return Face(index, None, reason=clean.reason)
    placed = None
    if level.needs_points:
        placed = None if points is None else _crop_points(align, shape, clean, points)
        if placed is None:
            return Face(index, None, reason=f"{level.name} cannot be placed on a "
                        f"'{align.method}' crop; use stage: source")  # type: ignore[attr-defined]
    return Face(index, level.apply(clean.crop, digest, placed), clean.landmarks, clean.score,
                box=clean.box, factor=clean.factor)


def given_problem(points: np.ndarray, score: float, width: int, height: int,
                  margin: float = GIVEN_MARGIN) -> str | None:
    """Why a given landmark row (``(5, 2)`` points in the pixels of a ``width`` × ``height``
    image, and its detector score) is not a face of that image, or ``None`` when it is one: a
    value that is not finite, or a point more than ``margin`` × the image's width (x) or height
    (y) outside it."""
    pts = np.asarray(points, dtype=np.float64)
    if not np.isfinite(pts).all():
        return "given landmarks not finite (nan or inf)"
    if not np.isfinite(score):
        return f"given detector score not finite ({score})"
    lo = -margin * np.array([width, height], dtype=np.float64)
    hi = np.array([width, height], dtype=np.float64) - lo
    out = ((pts < lo) | (pts > hi)).any(axis=1)
    if out.any():
        k = int(np.flatnonzero(out)[0])
        return (f"given landmark {k + 1} ({pts[k, 0]:.1f}, {pts[k, 1]:.1f}) lies outside the "
                f"{width}x{height} image by more than {margin:.0%} of its size")
    return None


def _given_detection(given: GivenLandmarks, i: int, image: np.ndarray,
                     factor: float) -> dict[str, np.ndarray]:
    """Row ``i`` of the dataset's landmarks as a detection on the (maybe reduced) image: box =
    the whole image, landmarks in its pixels; a row :func:`given_problem` rejects carries the
    reason instead (a failure to acquire)."""
    h, w = image.shape[:2]
    pts = given.points[i]  # file pixels; the image's size in them is ``factor`` × its own
    reason = given_problem(pts, float(given.scores[i]), round(w * factor), round(h * factor))
    if reason is not None:
        return {"reason": np.str_(reason)}
    return {"box": np.array([0, 0, w, h], np.float32),
            "landmarks": (pts / np.float32(factor)).astype(np.float32),
            "score": np.float32(given.scores[i]), "reason": np.str_("")}


def _align_one(align: _Align, index: int, t: _Todo,
               timings: dict[str, float] | None) -> Face:
    """Align one detected face on the detection image; landmarks are returned in file
    coordinates (``× factor``)."""
    d = t.detection or {}
    reason = str(d.get("reason", "")) or None
    if reason is not None or "box" not in d:
        return Face(index, None, reason=reason or "no face detected")
    t0 = time.perf_counter()
    try:
        crop = align.crop(t.image, d["box"], d["landmarks"] if d["landmarks"].size else None)
    except ValueError as exc:
        return Face(index, None, reason=str(exc))
    finally:
        _add(timings, "align", time.perf_counter() - t0)
    landmarks = d["landmarks"] if t.factor == 1.0 else (d["landmarks"] * t.factor).astype(
        np.float32)
    return Face(index, crop, landmarks, float(d["score"]), box=d["box"], factor=t.factor)


def _detect_all(images: list[np.ndarray]) -> list[list[Any]]:
    """Detections per image; one batched forward when the detector supports it."""
    det = _detector()
    if len(images) > 1 and hasattr(det, "detect_batch"):
        return det.detect_batch(images)
    return [det.detect(im) for im in images]


def _work(job: tuple[int, list[Path], GivenLandmarks | None]) -> list[Face]:
    start, paths, given = job
    return acquire_chunk(_STATE["cfg"], _STATE["caches"], start, paths, given=given)


def init_with_cache(cfg: AcquireConfig, caches: Caches, pool: bool) -> None:
    """Set up a process (pool worker or inline) to acquire with ``cfg`` and ``caches``."""
    _init_worker(cfg, pool)
    _STATE["caches"] = caches


# ---- driver side -----------------------------------------------------------------------------


#: ``(settings, landmarks scheme)`` per detector configuration, for this process: building a
#: detector (e.g. MTCNN's three networks) only to read its settings is done once, not once for
#: the embedding cache key and again for the acquisition record.
_SETTINGS: dict[str, tuple[dict[str, Any], str]] = {}


def detector_settings(cfg: AcquireConfig) -> dict[str, Any]:
    """The detector's own settings (part of the cache keys and the results); checks that the
    alignment gets the landmarks it needs."""
    if cfg.detector == "none":
        return {"name": "none"}
    if cfg.detector == GIVEN:
        check_landmarks(cfg.align, GIVEN, "arcface5")
        return {"name": GIVEN, "landmarks": "five points per image from the dataset",
                "box": "the whole image",
                "reject": f"a point or the score not finite, or a point more than "
                          f"{GIVEN_MARGIN:.0%} of the image's width (x) or height (y) outside it"}
    ident = json.dumps([cfg.detector, cfg.detector_options], sort_keys=True, default=str)
    if ident not in _SETTINGS:
        det = create_detector(cfg.detector, **cfg.detector_options)
        _SETTINGS[ident] = ({"name": det.name, **det.settings()},
                            getattr(det, "landmarks_scheme", "arcface5"))
    settings, scheme = _SETTINGS[ident]
    check_landmarks(cfg.align, cfg.detector, scheme)
    return dict(settings)


def _folder(root: Path | None) -> Path | None:
    if root is None:
        return None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return root


def prepare(cfg: AcquireConfig) -> tuple[Caches, dict[str, Any]]:
    """The cache folders for these settings and the settings record that goes into results."""
    settings = detector_settings(cfg)
    caches = Caches()
    if cfg.cache_dir is not None:
        detector = _folder(Path(cfg.cache_dir) / "align" / cfg.detect_key(settings))
        if detector is not None and cfg.degrade is not None:
            clean = dataclasses.replace(cfg, degrade=None)
            caches = Caches(detect=detector,
                            crops=_folder(detector / DEGRADED / cfg.key(settings)),
                            clean=_folder(detector / clean.key(settings)))
        elif detector is not None:
            caches = Caches(detect=detector, crops=_folder(detector / cfg.key(settings)))
    record = {"detector": settings, "select": cfg.select,
              "align": cfg.effective_align().settings(), "size": list(cfg.size),
              "detect_max_side": DETECT_MAX_SIDE,
              "cache": str(caches.crops) if caches.crops else None}
    if cfg.degrade is not None:
        record["degrade"] = cfg.degrade.record()
    return caches, record


def acquire(paths: list[Path], cfg: AcquireConfig, workers: int = 2, chunk: int = CHUNK,
            given: GivenLandmarks | None = None) -> tuple[Iterator[Face], dict[str, Any]]:
    """Stream a :class:`Face` per path, in order (``given``: the dataset's landmarks, one row
    per path, for the ``given`` detector). Returns the iterator and the settings record."""
    caches, record = prepare(cfg)
    jobs = [(s, part, None if given is None else given.part(s, s + len(part)))
            for s, part in chunks(paths, chunk)]
    faces = ordered_map(_work, jobs, workers, init_with_cache,
                        (cfg, caches, True), (cfg, caches, False))
    return faces, record
