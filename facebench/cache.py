"""Checksummed cache entries: a damaged or altered entry is a miss (recomputed), never an error.

Every cache facebench keeps (aligned crops, embeddings, ONNX exports, int8 models) is read
through here. An ``.npz`` entry carries the sha256 of its own arrays (:data:`CHECKSUM`); a file
entry (a model) has a JSON record beside it holding the file's sha256. An entry that does not
load, lacks its checksum or does not match it is reported by one warning line naming the file
(logger ``facebench.cache``, on the process's stderr: a cell's ``stderr.log``) and the caller
recomputes and replaces it. Entries are written atomically (:func:`facebench.io.atomic_path`),
and a cache that cannot be written (read-only, full) never fails the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facebench.io import atomic_write_bytes, read_json, sha256_file_once

#: The array of an ``.npz`` entry that holds the sha256 of all the others.
CHECKSUM = "_sha256"

LOG = logging.getLogger("facebench.cache")


def warn_damaged(path: Path, why: str) -> None:
    """The one line that says a cache entry is not used (it is recomputed and replaced)."""
    LOG.warning("facebench: damaged cache entry %s (%s); recomputing it", path,
                " ".join(why.split())[:200])


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def load_npz(path: Path | None) -> dict[str, np.ndarray] | None:
    """The arrays of the entry at ``path`` (checksum removed); ``None`` when there is none, or
    (with a warning) when it does not load or its checksum is missing or does not match."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        stored = str(arrays.pop(CHECKSUM, ""))
    except Exception as exc:  # any damage (BadZipFile, EOFError, zlib.error, ...) is a miss
        warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None
    if not stored:
        warn_damaged(path, "no checksum")
        return None
    if stored != arrays_sha256(arrays):
        warn_damaged(path, "checksum mismatch")
        return None
    return arrays


def store_npz(path: Path | None, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` and their checksum to ``path`` atomically; a cache that cannot be
    written is left as it is."""
    if path is None:
        return
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{CHECKSUM: np.str_(arrays_sha256(arrays))})
    with contextlib.suppress(OSError):  # a read-only or full cache never fails the run
        # no fsync (one per crop would cost more than the crop): a write torn by a crash
        # fails its checksum and is recomputed
        atomic_write_bytes(path, buf.getvalue(), sync=False)


def load_checked_file(path: Path, record: Path) -> tuple[str, dict[str, Any]] | None:
    """``path``'s sha256 and its JSON ``record`` when the record's ``sha256`` is the file's;
    ``None`` when there is no file, or (with a warning) when the record is missing, unreadable
    or names other bytes. The file is hashed once per process (size, time and inode)."""
    if not path.is_file():
        return None
    try:
        done = read_json(record)
        digest = sha256_file_once(path)
    except (OSError, ValueError) as exc:
        warn_damaged(path, f"its record {record.name}: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(done, dict) or done.get("sha256") != digest:
        warn_damaged(path, f"checksum mismatch with {record.name}")
        return None
    return digest, done


def load_checked_json(path: Path, sha256: str) -> Any | None:
    """The JSON in ``path`` when its bytes have the sha256 ``sha256``; ``None`` (with a
    warning) otherwise."""
    try:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            warn_damaged(path, "checksum mismatch")
            return None
        return json.loads(data)
    except (OSError, ValueError) as exc:
        warn_damaged(path, f"{type(exc).__name__}: {exc}")
        return None
