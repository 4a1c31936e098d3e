"""Acquire aligned faces for a list of images: cache → decode → detect → select → align.

Work runs in a process pool (one detector per process, one thread each) and streams results in
input order, so embedding starts before detection finishes. Each image file is read once; its
bytes are hashed for the cache key and decoded from memory. Results are cached per image content
and detector settings, shared across models and runs: a second run does no detection.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.faces.align import ESTIMATOR, align_face
from facebench.faces.images import DETECT_MAX_SIDE, ImageError, decode_reduced, read_image_file
from facebench.paths import default_cache_dir
from facebench.pool import chunks, ordered_map

__all__ = ["AcquireConfig", "Face", "acquire", "acquire_chunk", "default_cache_dir"]

CACHE_VERSION = 1


@dataclass
class Face:
    """The outcome for one image: an aligned crop, or a failure to acquire with its reason."""

    index: int
    crop: np.ndarray | None
    landmarks: np.ndarray | None = None
    score: float | None = None
    reason: str | None = None  # set when crop is None (FtA)
    cached: bool = False


@dataclass(frozen=True)
class AcquireConfig:
    detector: str
    detector_options: dict[str, Any]
    select: str
    size: tuple[int, int]
    cache_dir: Path | None

    def key(self, detector_settings: dict[str, Any]) -> str:
        blob = json.dumps({"v": CACHE_VERSION, "detector": self.detector,
                           "settings": detector_settings, "select": self.select,
                           "size": list(self.size), "estimator": ESTIMATOR,
                           "detect_max_side": DETECT_MAX_SIDE}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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
        from facebench.faces.detect import create_detector

        cfg: AcquireConfig = _STATE["cfg"]
        options = dict(cfg.detector_options)
        if not _STATE["pool"]:
            options["threads"] = None  # keep the engine's thread count in this process
        _STATE["detector"] = create_detector(cfg.detector, **options)
        torch = sys.modules.get("torch")  # only a torch detector pays torch's import
        if torch is not None and _STATE["pool"]:
            torch.set_num_threads(1)
    return _STATE["detector"]


def _decode(data: bytes, name: str) -> tuple[np.ndarray, float]:
    """The image a detector sees (longest side ≤ :data:`DETECT_MAX_SIDE`) and the factor back
    to file coordinates."""
    return decode_reduced(data, name, DETECT_MAX_SIDE)


def _lookup(cache: Path | None, data: bytes) -> tuple[Path | None, Face | None]:
    """The cache entry path for these bytes and, when present and readable, its face."""
    if cache is None:
        return None, None
    digest = hashlib.sha256(data).hexdigest()
    entry = cache / digest[:2] / f"{digest}.npz"
    if not entry.is_file():
        return entry, None
    try:
        with np.load(entry, allow_pickle=False) as z:
            reason = str(z["reason"]) or None
            if reason is not None:
                return entry, Face(-1, None, reason=reason, cached=True)
            return entry, Face(-1, z["crop"], z["landmarks"], float(z["score"]), cached=True)
    except (OSError, ValueError, KeyError):
        return entry, None  # a damaged entry is recomputed


def _detect_all(images: list[np.ndarray]) -> list[list[Any]]:
    """Detections per image; one batched forward when the detector supports it."""
    det = _detector()
    if len(images) > 1 and hasattr(det, "detect_batch"):
        return det.detect_batch(images)
    return [det.detect(im) for im in images]


def _finish(cfg: AcquireConfig, index: int, image: np.ndarray, dets: list[Any],
            factor: float = 1.0) -> Face:
    """Select and align on the (possibly reduced) detection image; landmarks are returned in
    file coordinates (``× factor``)."""
    from facebench.faces.detect import select_face

    det = select_face(dets, image.shape, cfg.select)  # type: ignore[arg-type]
    if det is None:
        return Face(index, None, reason="no face detected")
    try:
        crop = align_face(image, det.landmarks, cfg.size)
    except ValueError as exc:
        return Face(index, None, reason=str(exc))
    landmarks = det.landmarks if factor == 1.0 else (det.landmarks * factor).astype(np.float32)
    return Face(index, crop, landmarks, det.score)


def acquire_chunk(cfg: AcquireConfig, cache: Path | None, start: int,
                  paths: list[Path]) -> list[Face]:
    """Faces for consecutive images ``start, start+1, …``: cache hits are returned as stored;
    the rest are read once, decoded from memory, detected together, aligned and cached."""
    faces: list[Face | None] = [None] * len(paths)
    todo: list[tuple[int, Path | None, np.ndarray, float]] = []
    for i, path in enumerate(paths):
        index = start + i
        try:
            data = read_image_file(path)  # a FIFO or device is never opened for reading
        except ImageError as exc:
            faces[i] = Face(index, None, reason=f"unreadable: {exc.reason}")
            continue
        except OSError as exc:
            faces[i] = Face(index, None, reason=f"unreadable: {exc.strerror or exc}")
            continue
        entry, hit = _lookup(cache, data)
        if hit is not None:
            hit.index = index
            faces[i] = hit
            continue
        try:
            image, factor = _decode(data, str(path))
        except ImageError as exc:
            faces[i] = Face(index, None, reason=f"bad image: {exc.reason}")
        else:
            if cfg.detector == "none":
                crop = cv2.resize(image, cfg.size, interpolation=cv2.INTER_AREA)
                faces[i] = Face(index, crop)
            else:
                todo.append((i, entry, image, factor))
                continue
        if entry is not None:
            _store(entry, faces[i])  # type: ignore[arg-type]
    if todo:
        detections = _detect_all([image for _, _, image, _ in todo])
        for (i, entry, image, factor), dets in zip(todo, detections, strict=True):
            faces[i] = _finish(cfg, start + i, image, dets, factor)
            if entry is not None:
                _store(entry, faces[i])  # type: ignore[arg-type]
    return faces  # type: ignore[return-value]


def _store(entry: Path, face: Face) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    empty = np.zeros((0,), np.uint8)
    try:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                crop=face.crop if face.crop is not None else empty,
                landmarks=face.landmarks if face.landmarks is not None else np.zeros((0, 2)),
                score=np.float32(face.score if face.score is not None else np.nan),
                reason=np.str_(face.reason or ""),
            )
        os.replace(tmp, entry)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only or full cache never fails the run


def _work(job: tuple[int, list[Path]]) -> list[Face]:
    start, paths = job
    return acquire_chunk(_STATE["cfg"], _STATE.get("cache"), start, paths)


def init_with_cache(cfg: AcquireConfig, cache: Path | None, pool: bool) -> None:
    """Set up a process (pool worker or inline) to acquire with ``cfg`` and ``cache``."""
    _init_worker(cfg, pool)
    _STATE["cache"] = cache


# ---- driver side -----------------------------------------------------------------------------


def detector_settings(cfg: AcquireConfig) -> dict[str, Any]:
    """The detector's own settings (part of the cache key and the results)."""
    if cfg.detector == "none":
        return {"name": "none", "resize": list(cfg.size)}
    from facebench.faces.detect import create_detector

    det = create_detector(cfg.detector, **cfg.detector_options)
    return {"name": det.name, **det.settings()}


def prepare(cfg: AcquireConfig) -> tuple[Path | None, dict[str, Any]]:
    """The alignment cache folder for these settings (``None`` without a usable cache) and the
    settings record that goes into results."""
    settings = detector_settings(cfg)
    cache = None
    if cfg.cache_dir is not None:
        cache = Path(cfg.cache_dir) / "align" / cfg.key(settings)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = None
    record = {"detector": settings, "select": cfg.select, "size": list(cfg.size),
              "estimator": ESTIMATOR, "detect_max_side": DETECT_MAX_SIDE,
              "cache": str(cache) if cache else None}
    return cache, record


def acquire(paths: list[Path], cfg: AcquireConfig, workers: int = 2,
            chunk: int = 32) -> tuple[Iterator[Face], dict[str, Any]]:
    """Stream a :class:`Face` per path, in order. Returns the iterator and the settings record."""
    cache, record = prepare(cfg)
    faces = ordered_map(_work, chunks(paths, chunk), workers, init_with_cache,
                        (cfg, cache, True), (cfg, cache, False))
    return faces, record
