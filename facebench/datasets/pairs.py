"""A pair set: image paths, genuine/impostor labels, protocol folds, checksum."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.io import sha256_file

__all__ = ["DatasetError", "PairSet", "build", "confine", "load_pairs", "required_inputs",
           "sha256_file"]


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


@dataclass
class PairSet:
    """Pairs over a unique image list: ``left[i]``, ``right[i]`` index ``images``."""

    name: str
    root: Path
    images: list[Path]
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    checksum: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return int(self.labels.size)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root": str(self.root),
            "pairs": self.n_pairs,
            "genuine": int(self.labels.sum()),
            "impostor": int(self.n_pairs - self.labels.sum()),
            "images": len(self.images),
            "folds": int(np.unique(self.folds).size),
            "sha256": self.checksum,
            **self.info,
        }


def confine(root: Path, relative: str, where: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` escapes (path traversal)."""
    rel = Path(relative)
    if rel.is_absolute():
        raise DatasetError(f"{where}: absolute path {relative!r} not allowed; paths are relative "
                           f"to the image root {root}")
    resolved = (root / rel).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise DatasetError(f"{where}: path {relative!r} escapes the image root {root}")
    return root / rel


def build(name: str, root: Path, pairs: list[tuple[Path, Path, int, int]], checksum: str,
          info: dict[str, Any] | None = None) -> PairSet:
    """Index a list of ``(path1, path2, label, fold)`` into a :class:`PairSet`."""
    index: dict[Path, int] = {}
    left, right = [], []
    for a, b, _, _ in pairs:
        left.append(index.setdefault(a, len(index)))
        right.append(index.setdefault(b, len(index)))
    return PairSet(
        name=name,
        root=root,
        images=list(index),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        labels=np.asarray([p[2] for p in pairs], dtype=np.int8),
        folds=np.asarray([p[3] for p in pairs], dtype=np.int16),
        checksum=checksum,
        info=info or {},
    )


def required_inputs(spec: Any) -> list[tuple[str, Path, bool]]:
    """``(field, path, is_dir)`` of every file or folder a dataset spec needs."""
    out = []
    for name, is_dir in (("pairs", False), ("path", False), ("identities", False),
                         ("images", True)):
        value = getattr(spec, name, None)
        if isinstance(value, Path):
            out.append((name, value, is_dir))
    return out


def load_pairs(spec: Any, cache_dir: Path | None = None) -> PairSet:
    """Load the pairs a suite protocol's dataset declares (drawing them for identity data)."""
    if spec.kind in ("insightface_bin", "identity_folder", "identity_file"):
        from facebench.datasets.specs import load_spec_pairs

        return load_spec_pairs(spec, cache_dir)
    if spec.kind == "lfw_pairs":
        from facebench.datasets.lfw import load_lfw_pairs

        return load_lfw_pairs(spec.pairs, spec.images, ext=spec.ext, max_folds=spec.max_folds)
    if spec.kind == "pair_csv":
        from facebench.datasets.pair_csv import load_pair_csv

        return load_pair_csv(spec.pairs, spec.images)
    raise DatasetError(f"unknown dataset kind {spec.kind!r}")
