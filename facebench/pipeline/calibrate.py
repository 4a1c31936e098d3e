"""Calibration inputs of an int8-static model: a seeded sample of a protocol's images, acquired
through the same path and caches as the embedding loop, as model inputs.

The sample is ``calibration_images`` of the protocol's distinct images drawn with
``numpy.random.default_rng(seed)`` without replacement (all of them when there are fewer), in
dataset order. Each image is decoded, detected by the protocol's detector and aligned with the
model's own alignment (:mod:`facebench.faces.acquire`, so crops come from and go to the same
cache entries as the cell's embeddings), then normalised as the model takes it
(:func:`facebench.pipeline.embed.to_input`: colour, mean/std, layout). Calibration sees the
plain crops only — no mirrored copy, whatever the protocol's flip test — since the mirror has
the same value ranges. Images without an acquired face are skipped and counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.datasets import load_pairs, load_search_set
from facebench.faces.acquire import AcquireConfig, GivenLandmarks, acquire, detector_settings
from facebench.io import sha256_file_once
from facebench.paths import relative_name
from facebench.pipeline.embed import to_input
from facebench.suite.schema import Preprocess

#: Crops per calibration batch (MinMax ranges do not depend on it).
BATCH = 16


def protocol_images(proto: Any, cache_dir: Path | None
                    ) -> tuple[list[Path], Path, GivenLandmarks | None]:
    """The distinct images of a verification or identification protocol, their root, and their
    landmarks when the dataset gives them."""
    data: Any = (load_search_set(proto) if proto.kind == "identification"
                 else load_pairs(proto.dataset, cache_dir))
    return list(data.images), Path(data.root), data.landmarks


def sample_indices(n_images: int, n: int, seed: int) -> list[int]:
    """``n`` of ``range(n_images)`` drawn with ``default_rng(seed)`` without replacement, in
    order (all of them when there are no more than ``n``)."""
    if n >= n_images:
        return list(range(n_images))
    idx = np.random.default_rng(seed).choice(n_images, size=n, replace=False)
    return sorted(int(i) for i in idx)


def sample_images(images: list[Path], n: int, seed: int) -> list[Path]:
    """``n`` of ``images`` drawn by :func:`sample_indices`, in list order."""
    return [images[i] for i in sample_indices(len(images), n, seed)]


@dataclass
class CalibrationSample:
    """The images that calibrate a model, how they are acquired and normalised, and (after
    :meth:`batches` ran) how many gave a crop."""

    protocol: str
    images: list[Path]
    root: Path
    acq: AcquireConfig
    pre: Preprocess
    requested: int
    seed: int
    workers: int = 1
    given: GivenLandmarks | None = None
    used: int | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        """What makes this sample (for the quantized model's cache key): detector and
        alignment (the crop cache key), normalisation, and each chosen image's name and content
        hash — not the protocol's id, so protocols over the same images share one model."""
        digest = hashlib.sha256()
        for p in self.images:
            digest.update(f"{relative_name(p, self.root)}\0{sha256_file_once(p)}\n".encode())
        if self.given is not None:
            digest.update(self.given.digest().encode())
        return {"acquire": self.acq.key(detector_settings(self.acq)),
                "normalize": self.pre.model_dump(mode="json"), "requested": self.requested,
                "seed": self.seed, "images": len(self.images), "images_sha256": digest.hexdigest()}

    def batches(self) -> Iterator[np.ndarray]:
        """Model-input batches of the acquired crops (no flip); counts ``used`` and ``failed``."""
        faces, _ = acquire(self.images, self.acq, workers=self.workers, given=self.given)
        self.used, self.failed = 0, []
        crops: list[np.ndarray] = []
        for face in faces:
            if face.crop is None:
                self.failed.append({"image": relative_name(self.images[face.index], self.root),
                                    "reason": face.reason})
                continue
            crops.append(face.crop)
            self.used += 1
            if len(crops) == BATCH:
                yield to_input(crops, self.pre)
                crops = []
        if crops:
            yield to_input(crops, self.pre)

    def record(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "images_requested": self.requested,
                "images_sampled": len(self.images), "images_used": self.used,
                "seed": self.seed, "failed_to_acquire": len(self.failed) if self.used is not None
                else None, "flip": False}


def calibration_sample(proto: Any, acq: AcquireConfig, pre: Preprocess, requested: int,
                       seed: int) -> CalibrationSample:
    """The seeded sample of ``proto``'s images that calibrates a model acquired by ``acq``."""
    images, root, given = protocol_images(proto, acq.cache_dir)
    idx = sample_indices(len(images), requested, seed)
    if given is not None:  # aligned from the dataset's landmarks, as the cells embed them
        acq = acq.with_given_landmarks()
        given = GivenLandmarks(given.points[idx], given.scores[idx])
    return CalibrationSample(proto.id, [images[i] for i in idx], root, acq, pre, requested,
                             seed, workers=getattr(proto, "workers", 1), given=given)
