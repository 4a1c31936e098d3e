"""Acquire aligned faces for a list of images: cache → decode → detect → select → align.

Work runs in a process pool (one detector per process, one thread each) and streams results in
input order, so embedding starts before detection finishes. Each image file is read once; its
bytes are hashed for the cache key and decoded from memory. Results are cached per image content
and detector settings, shared across models and runs: a second run does no detection.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.align import ESTIMATOR, align_face

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
                           "size": list(self.size), "estimator": ESTIMATOR}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    env = os.environ.get("FACEBENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facebench"


# ---- worker side -----------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(cfg: AcquireConfig) -> None:
    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    _STATE.clear()
    _STATE["cfg"] = cfg


def _detector() -> Any:
    if "detector" not in _STATE:
        from facebench.detect import create_detector

        cfg: AcquireConfig = _STATE["cfg"]
        _STATE["detector"] = create_detector(cfg.detector, **cfg.detector_options)
    return _STATE["detector"]


def _decode(data: bytes, name: str) -> np.ndarray:
    from facebench.images import decode_image

    return decode_image(data, name)


def _acquire_one(cfg: AcquireConfig, cache: Path | None, index: int, path: Path) -> Face:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Face(index, None, reason=f"unreadable: {exc.strerror or exc}")
    entry = None
    if cache is not None:
        digest = hashlib.sha256(data).hexdigest()
        entry = cache / digest[:2] / f"{digest}.npz"
        if entry.is_file():
            try:
                with np.load(entry, allow_pickle=False) as z:
                    reason = str(z["reason"]) or None
                    crop = z["crop"] if reason is None else None
                    lm = z["landmarks"] if reason is None else None
                    score = float(z["score"]) if reason is None else None
                return Face(index, crop, lm, score, reason, cached=True)
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is recomputed
    face = _compute(cfg, index, path, data)
    if entry is not None:
        _store(entry, face)
    return face


def _compute(cfg: AcquireConfig, index: int, path: Path, data: bytes) -> Face:
    from facebench.detect import select_face
    from facebench.images import ImageError

    try:
        image = _decode(data, str(path))
    except ImageError as exc:
        return Face(index, None, reason=f"bad image: {exc.reason}")
    if cfg.detector == "none":
        crop = cv2.resize(image, cfg.size, interpolation=cv2.INTER_AREA)
        return Face(index, crop)
    det = select_face(_detector().detect(image), image.shape, cfg.select)  # type: ignore[arg-type]
    if det is None:
        return Face(index, None, reason="no face detected")
    try:
        crop = align_face(image, det.landmarks, cfg.size)
    except ValueError as exc:
        return Face(index, None, reason=str(exc))
    return Face(index, crop, det.landmarks, det.score)


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
    cfg: AcquireConfig = _STATE["cfg"]
    cache = _STATE.get("cache")
    return [_acquire_one(cfg, cache, start + i, p) for i, p in enumerate(paths)]


def _init_with_cache(cfg: AcquireConfig, cache: Path | None) -> None:
    _init_worker(cfg)
    _STATE["cache"] = cache


# ---- driver side -----------------------------------------------------------------------------


def detector_settings(cfg: AcquireConfig) -> dict[str, Any]:
    """The detector's own settings (part of the cache key and the results)."""
    if cfg.detector == "none":
        return {"name": "none", "resize": list(cfg.size)}
    from facebench.detect import create_detector

    det = create_detector(cfg.detector, **cfg.detector_options)
    return {"name": det.name, **det.settings()}


def acquire(paths: list[Path], cfg: AcquireConfig, workers: int = 2,
            chunk: int = 32) -> tuple[Iterator[Face], dict[str, Any]]:
    """Stream a :class:`Face` per path, in order. Returns the iterator and the settings record."""
    settings = detector_settings(cfg)
    cache = None
    if cfg.cache_dir is not None:
        cache = Path(cfg.cache_dir) / "align" / cfg.key(settings)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            cache = None
    record = {"detector": settings, "select": cfg.select, "size": list(cfg.size),
              "estimator": ESTIMATOR, "cache": str(cache) if cache else None}
    jobs = [(i, paths[i:i + chunk]) for i in range(0, len(paths), chunk)]

    def stream() -> Iterator[Face]:
        if workers <= 1:
            _init_with_cache(cfg, cache)
            for job in jobs:
                yield from _work(job)
            return
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_with_cache, initargs=(cfg, cache)) as pool:
            for faces in pool.imap(_work, jobs):
                yield from faces

    return stream(), record
