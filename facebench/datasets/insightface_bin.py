"""insightface verification ``.bin`` files (lfw.bin, cfp_fp.bin, agedb_30.bin, …).

A ``.bin`` is a pickle of ``(bins, issame_list)``: ``bins`` holds encoded JPEG/PNG images
(``bytes``; Python 2 ``str``; or 1-D ``uint8`` numpy arrays), already aligned to 112×112, and
``issame_list`` one bool per pair. Pair ``i`` is images ``2i`` and ``2i + 1``; the protocol's
folds are ``k`` equal consecutive blocks of pairs (sklearn ``KFold(k, shuffle=False)``).

The pickle is read with :func:`facebench.datasets.safe_pickle.restricted_load`, so a file that
would run code is refused. Images are decoded once and written as PNG files to a folder keyed by
the ``.bin``'s sha256 under ``extract_dir``; the pair set points there, so the normal pipeline
reads them with ``detector: none``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.datasets.pairs import DatasetError, PairSet, build, sha256_file
from facebench.datasets.safe_pickle import (
    Budget,
    PickleTooLargeError,
    RefusedArrayError,
    UnsafePickleError,
    restricted_load,
)
from facebench.faces.images import ImageError, decode_image
from facebench.io import atomic_path

EXTRACT_VERSION = 1
MANIFEST = "manifest.json"


#: Bytes a list slot takes (the image and label lists the reader builds), and an entry of the
#: per-object conversion cache.
_SLOT = 8
_ENTRY = 104
_BIN = "A verification .bin holds only (list of image bytes, list of bools)"


def _describe(item: Any) -> str:
    """A short description of a loaded value for an error: its type, with its value when it is
    a plain number or its shape when it has one; never the ``repr`` of a container (it may be
    nested thousands deep) or of a huge int."""
    name = type(item).__name__
    if isinstance(item, bool | float | np.bool_ | np.number) or (
            isinstance(item, int) and item.bit_length() <= 64):
        return f"{name} {item!r}"
    shape = getattr(item, "shape", None)
    return name + (f" of shape {shape}" if isinstance(shape, tuple) else "")


def _as_bytes(item: Any, path: Path, i: int, budget: Budget) -> bytes:
    """Image ``i`` as bytes; a copy (of latin-1 text, a bytearray or a 1-D uint8 array) is
    charged to ``budget`` before it is made."""
    if isinstance(item, bytes):
        return item
    plain = isinstance(item, bytearray | str) or (
        isinstance(item, np.ndarray) and item.ndim == 1 and item.dtype in (np.uint8, np.int8))
    if not plain:
        raise DatasetError(f"{path}: bins[{i}] is {_describe(item)}; expected encoded image "
                           "bytes (JPEG/PNG) or a 1-D uint8 array of them")
    size = item.nbytes if isinstance(item, np.ndarray) else len(item)
    budget.charge(size + sys.getsizeof(b""), f"bins[{i}] as bytes")
    if isinstance(item, np.ndarray):
        return item.tobytes()
    if isinstance(item, bytearray):
        return bytes(item)
    try:  # a Python 2 byte string, read with encoding="latin1"
        return item.encode("latin-1")
    except UnicodeEncodeError:
        raise DatasetError(f"{path}: bins[{i}] is text with characters beyond latin-1; "
                           "expected encoded image bytes (JPEG/PNG)") from None


def _as_bool(item: Any, path: Path, i: int) -> bool:
    if isinstance(item, bool | np.bool_) or (isinstance(item, int | np.integer)
                                               and item in (0, 1)):
        return bool(item)
    raise DatasetError(f"{path}: issame_list[{i}] is {_describe(item)}; expected a bool (1 = "
                       "same person)")


def _labels(issame: list[Any] | tuple[Any, ...] | np.ndarray, path: Path,
            budget: Budget) -> list[bool]:
    """The pair labels; an array is checked whole (its temporaries charged first)."""
    if not isinstance(issame, np.ndarray):
        return [_as_bool(s, path, i) for i, s in enumerate(issame)]
    if issame.dtype.kind not in "bui":
        raise DatasetError(f"{path}: issame_list is a {issame.dtype} array; expected bools")
    budget.charge(4 * issame.size, "checking issame_list")
    bad = np.flatnonzero((issame != 0) & (issame != 1))
    if bad.size:
        i = int(bad[0])
        raise DatasetError(f"{path}: issame_list[{i}] = {issame[i].item()!r}; expected a bool "
                           "(1 = same person)")
    return issame.astype(bool).tolist()


def _parts(obj: Any, path: Path, budget: Budget) -> tuple[list[bytes], list[bool]]:
    """``(images, labels)`` of a loaded ``.bin``, checked; the lists and copies the reader
    makes are charged to the load's ``budget`` before they are made."""
    if not (isinstance(obj, tuple | list) and len(obj) == 2):
        raise DatasetError(f"{path}: top-level object is {_describe(obj)}; expected the "
                           "tuple (bins, issame_list)")
    bins, issame = obj
    if not isinstance(bins, list | tuple) or not isinstance(issame, list | tuple | np.ndarray):
        raise DatasetError(f"{path}: expected (list of images, list of bools), got "
                           f"({type(bins).__name__}, {type(issame).__name__})")
    if isinstance(issame, np.ndarray) and issame.ndim != 1:
        raise DatasetError(f"{path}: issame_list is an array of shape {issame.shape}; expected "
                           "one bool per pair")
    if not len(issame):
        raise DatasetError(f"{path}: issame_list is empty; no pairs")
    if len(bins) != 2 * len(issame):
        raise DatasetError(f"{path}: {len(bins)} images for {len(issame)} pairs; a .bin needs "
                           "exactly two consecutive images per pair")
    budget.charge(_SLOT * (len(bins) + len(issame)), "the image and label lists")
    labels = _labels(issame, path, budget)
    converted: dict[int, bytes] = {}  # one copy per object, however often the pickle names it
    images = []
    for i, b in enumerate(bins):
        if id(b) not in converted:
            budget.charge(_ENTRY, "the image list")
            converted[id(b)] = _as_bytes(b, path, i, budget)
        images.append(converted[id(b)])
    return images, labels


def _refused(path: Path, exc: Exception) -> DatasetError:
    if isinstance(exc, UnsafePickleError):
        return DatasetError(f"{path}: refused to load: {exc}. {_BIN}; rewrite it with "
                            "facebench.datasets.insightface_bin.write_insightface_bin")
    return DatasetError(f"{path}: refused to load: {exc}. {_BIN}")


def read_insightface_bin(path: str | Path) -> tuple[list[bytes], list[bool]]:
    """The encoded images and pair labels of a ``.bin``, checked. Refuses an unsafe pickle, and
    a file whose objects, or the reader's copies of them, would take more memory than its size
    can justify (one :class:`~facebench.datasets.safe_pickle.Budget` for both)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            budget = Budget(os.fstat(f.fileno()).st_size)
            obj = restricted_load(f, budget=budget)
    except (PickleTooLargeError, RefusedArrayError, UnsafePickleError) as exc:
        raise _refused(path, exc) from exc
    except RecursionError:
        raise DatasetError(f"{path}: refused to load: objects nested too deeply. "
                           f"{_BIN}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError, RuntimeError) as exc:
        raise DatasetError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc}); "
                           "expected an insightface verification .bin") from exc
    try:
        return _parts(obj, path, budget)
    except PickleTooLargeError as exc:
        raise _refused(path, exc) from exc


def write_insightface_bin(path: str | Path, images: list[bytes], issame: list[bool]) -> Path:
    """Write ``(images, issame)`` as an insightface ``.bin`` (pickle protocol 4, atomically).

    ``images[2i]`` and ``images[2i + 1]`` form pair ``i``; each is an encoded JPEG/PNG."""
    path = Path(path)
    images = [bytes(b) if isinstance(b, bytearray) else b for b in images]
    if any(not isinstance(b, bytes) for b in images):
        raise TypeError("images must be encoded image bytes (e.g. cv2.imencode('.jpg', x)[1])")
    labels = [bool(s) for s in issame]
    if len(images) != 2 * len(labels) or not labels:
        raise ValueError(f"{len(images)} images for {len(labels)} pairs; need 2 per pair, ≥ 1 pair")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump((images, labels), f, protocol=4)
    return path


def fold_ids(n_pairs: int, folds: int) -> np.ndarray:
    """Consecutive near-equal folds (the first ``n % k`` one larger), as insightface's KFold."""
    if folds < 1 or n_pairs < folds:
        raise DatasetError(f"cannot split {n_pairs} pairs into {folds} folds")
    return np.concatenate([np.full(len(c), f, dtype=np.int16)
                           for f, c in enumerate(np.array_split(np.arange(n_pairs), folds))])


def _image_names(n: int) -> list[str]:
    width = max(5, len(str(n - 1)))
    return [f"{i:0{width}d}.png" for i in range(n)]


def _extract(images: list[bytes], dest: Path, source: Path, digest: str) -> dict[str, Any]:
    """Decode every image (the pipeline's :func:`facebench.faces.images.decode_image` policy) and
    write it as PNG into ``dest`` (via a temp folder + rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    names = _image_names(len(images))

    def convert(i: int) -> str:
        try:
            img = decode_image(images[i], f"bins[{i}]")
        except ImageError as exc:
            raise DatasetError(f"{source}: bins[{i}] (pair {i // 2}, {len(images[i])} bytes): "
                               f"{exc.reason}") from exc
        if not cv2.imwrite(str(tmp / names[i]), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {tmp / names[i]}")
        return f"{img.shape[1]}x{img.shape[0]}"

    try:
        pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        try:  # cv2 releases the GIL; on the first error the remaining work is cancelled
            sizes = Counter(pool.map(convert, range(len(images))))
        finally:
            pool.shutdown(cancel_futures=True)
        manifest = {"version": EXTRACT_VERSION, "sha256": digest, "source": str(source),
                    "images": len(images), "sizes": dict(sizes)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, dest)
        except OSError:  # another process finished first: keep its copy if it is complete
            if _manifest(dest, len(images)) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _manifest(dest: Path, n_images: int) -> dict[str, Any] | None:
    try:
        m = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (isinstance(m, dict) and m.get("version") == EXTRACT_VERSION
          and m.get("images") == n_images
          and all((dest / n).is_file() for n in _image_names(n_images)))
    return m if ok else None


def load_insightface_bin(path: str | Path, extract_dir: str | Path, folds: int = 10) -> PairSet:
    """A :class:`PairSet` over the ``.bin``'s images, extracted as PNG under ``extract_dir``.

    The extraction is cached per content (``extract_dir/<sha256[:24]>/``): a second load only
    hashes and unpickles the file. ``checksum`` is the ``.bin``'s sha256."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: .bin file not found")
    digest = sha256_file(path)
    images, labels = read_insightface_bin(path)
    folds_arr = fold_ids(len(labels), folds)
    dest = Path(extract_dir) / digest[:24]
    manifest = _manifest(dest, len(images))
    extracted = manifest is None
    if manifest is None:
        if dest.exists():  # incomplete or from another version: redo
            shutil.rmtree(dest)
        manifest = _extract(images, dest, path, digest)
    files = [dest / n for n in _image_names(len(images))]
    pairs = [(files[2 * i], files[2 * i + 1], int(s), int(folds_arr[i]))
             for i, s in enumerate(labels)]
    info = {"kind": "insightface_bin", "bin": str(path), "extract_dir": str(dest),
            "image_sizes": manifest.get("sizes", {}), "extracted_now": extracted}
    return build(path.stem, dest, pairs, digest, info)
