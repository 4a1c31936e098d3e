"""A pair set: image paths, genuine/impostor labels, protocol folds, checksum."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.io import sha256_file

__all__ = ["DatasetError", "PairSet", "build", "check_unique_pairs", "confine", "confine_listed",
           "pairs_key", "read_text", "relative_names", "required_inputs", "sha256_file"]


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file and line."""


@dataclass
class PairSet:
    """Pairs over a unique image list: ``left[i]``, ``right[i]`` index ``images``. ``folds`` is
    ``None`` when the protocol has a single fold (an LFW dev file, a pair CSV without a fold
    column): accuracy then uses one threshold over all pairs (``threshold_policy: all_data``)."""

    name: str
    root: Path
    images: list[Path]
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    folds: np.ndarray | None
    checksum: str
    info: dict[str, Any] = field(default_factory=dict)
    #: Image pairs: the images are the items scored, found by the protocol's detector (no
    #: given landmarks, no template pooling; see facebench.datasets.sets).
    landmarks: None = None
    templates: None = None
    #: The identity of each image (``images[i]``), when the dataset names it (LFW's pairs.txt,
    #: identity-labelled sets); None otherwise.
    identities: list[str] | None = None

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
            "folds": 1 if self.folds is None else int(np.unique(self.folds).size),
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


def confine_listed(root: Path, entry: Path, where: str) -> Path:
    """``entry``, found by listing a folder under ``root`` whose own path is already confined:
    a symlink is allowed only when its target stays inside ``root`` (checked by
    :func:`confine`, as for a path named in a pair list); only links are resolved."""
    if entry.is_symlink():
        confine(root, entry.relative_to(root).as_posix(), where)
    return entry


def read_text(path: Path) -> str:
    """A dataset file's text (UTF-8, an optional BOM skipped). A byte sequence that is not UTF-8
    is a :class:`DatasetError` naming the file, the line and the byte offset."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{path}:{line}: not UTF-8 text: byte 0x{data[exc.start]:02x} at "
                           f"offset {exc.start} ({exc.reason}); save the file as UTF-8") from None


def check_unique_pairs(path: Path, pairs: Iterable[tuple[int, str, str]]) -> None:
    """Refuse a pair listed twice in one protocol: ``pairs`` are ``(line, image1, image2)``
    with image names relative to the root; the same two images in either order are the same
    pair (it would be scored, and counted, twice)."""
    seen: dict[tuple[str, str], int] = {}
    for line, a, b in pairs:
        x, y = posixpath.normpath(a), posixpath.normpath(b)
        key = (x, y) if x <= y else (y, x)
        if key in seen:
            raise DatasetError(f"{path}:{line}: pair {a} / {b} duplicates line {seen[key]} (the "
                               "same two images, in either order); each pair may appear once: "
                               f"remove line {line} or line {seen[key]}")
        seen[key] = line


def build(name: str, root: Path, pairs: list[tuple[Path, Path, int, int]], checksum: str,
          info: dict[str, Any] | None = None,
          identity_of: dict[Path, str] | None = None) -> PairSet:
    """Index a list of ``(path1, path2, label, fold)`` into a :class:`PairSet`; pairs all in one
    fold give ``folds=None`` (k-fold accuracy needs two folds or more). ``identity_of``: each
    image's identity, when known."""
    index: dict[Path, int] = {}
    left, right = [], []
    for a, b, _, _ in pairs:
        left.append(index.setdefault(a, len(index)))
        right.append(index.setdefault(b, len(index)))
    folds = np.asarray([p[3] for p in pairs], dtype=np.int16)
    return PairSet(
        name=name,
        root=root,
        images=list(index),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        labels=np.asarray([p[2] for p in pairs], dtype=np.int8),
        folds=folds if np.unique(folds).size > 1 else None,
        checksum=checksum,
        info=info or {},
        identities=None if identity_of is None else [identity_of[p] for p in index],
    )


def relative_names(images: Sequence[Path], root: Path) -> list[str]:
    """Each image's path relative to ``root`` (POSIX), or its full path when not under it."""
    out = []
    for p in images:
        out.append(p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix())
    return out


def pairs_key(kind: str, names: Sequence[str], left: np.ndarray, right: np.ndarray,
              labels: np.ndarray, variant: str | None = None) -> str:
    """sha256 (hex) of a canonical pair list: the dataset ``kind``, then one line per pair in
    order, ``image a <TAB> image b <TAB> label``, names relative to the dataset root. Two cells
    with equal keys scored the same pairs in the same order. ``variant`` names anything else that
    changes what was scored (a degradation level); ``None`` keeps the plain key."""
    h = hashlib.sha256(f"facebench-pairs-v1\n{kind}\n".encode())
    if variant is not None:
        h.update(f"variant\t{variant}\n".encode())
    for a, b, y in zip(left.tolist(), right.tolist(), labels.tolist(), strict=True):
        h.update(f"{names[a]}\t{names[b]}\t{int(y)}\n".encode())
    return h.hexdigest()


def required_inputs(spec: Any) -> list[tuple[str, Path, bool]]:
    """``(field, path, is_dir)`` of every file or folder a dataset spec needs."""
    root = getattr(spec, "root", None)
    if isinstance(root, Path):  # kind ijb: one dataset folder; its other fields name files in it
        return [("root", root, True)]
    out = []
    for name, is_dir in (("pairs", False), ("path", False), ("identities", False),
                         ("images", True)):
        value = getattr(spec, name, None)
        if isinstance(value, Path):
            out.append((name, value, is_dir))
    return out

