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

from facebench.datasets import load_pairs, load_spec_identities
from facebench.faces.acquire import AcquireConfig, acquire, detector_settings
from facebench.io import sha256_file_once
from facebench.paths import relative_name
from facebench.pipeline.embed import to_input
from facebench.suite.schema import Preprocess

#: Crops per calibration batch (MinMax ranges do not depend on it).
BATCH = 16


def protocol_images(proto: Any, cache_dir: Path | None) -> tuple[list[Path], Path]:
    """The distinct images of a verification or identification protocol, and their root."""
    if proto.kind == "identification":
        ids = load_spec_identities(proto.dataset)
        return list(ids.images), Path(ids.root)
    pairs = load_pairs(proto.dataset, cache_dir)
    return list(pairs.images), Path(pairs.root)


def sample_images(images: list[Path], n: int, seed: int) -> list[Path]:
    """``n`` of ``images`` drawn with ``default_rng(seed)`` without replacement, in list order
    (all of them when there are no more than ``n``)."""
    if n >= len(images):
        return list(images)
    idx = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
    return [images[i] for i in sorted(int(i) for i in idx)]


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
    used: int | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        """What makes this sample (for the quantized model's cache key): detector and
        alignment (the crop cache key), normalisation, and each chosen image's name and content
        hash — not the protocol's id, so protocols over the same images share one model."""
        digest = hashlib.sha256()
        for p in self.images:
            digest.update(f"{relative_name(p, self.root)}\0{sha256_file_once(p)}\n".encode())
        return {"acquire": self.acq.key(detector_settings(self.acq)),
                "normalize": self.pre.model_dump(mode="json"), "requested": self.requested,
                "seed": self.seed, "images": len(self.images), "images_sha256": digest.hexdigest()}

    def batches(self) -> Iterator[np.ndarray]:
        """Model-input batches of the acquired crops (no flip); counts ``used`` and ``failed``."""
        faces, _ = acquire(self.images, self.acq, workers=self.workers)
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
    images, root = protocol_images(proto, acq.cache_dir)
    return CalibrationSample(proto.id, sample_images(images, requested, seed), root, acq, pre,
                             requested, seed, workers=getattr(proto, "workers", 1))
