"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``; folders made
inside an output folder without following a symbolic link; files created new, never opened for
writing in place; JSON read with bounds on size and nesting."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def link_error(path: Path) -> OSError:
    return OSError(f"{path} is a symbolic link; facebench never writes or deletes through a "
                   "link in its output folder: remove it, or choose another folder with --out")


def safe_folder(root: str | Path, rel: str | Path = "") -> Path:
    """``root / rel`` with every folder from ``root`` down made when missing (``root`` itself may
    be a link: the user chose it). ``OSError`` naming the first folder below ``root`` that is a
    symbolic link (:func:`link_error`) or not a folder, and ``ValueError`` when ``rel`` is
    absolute or climbs out with ``..``: nothing is ever made or written through a link."""
    root = Path(root)
    rel = Path(rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{rel} is not a folder inside {root}")
    root.mkdir(parents=True, exist_ok=True)
    path = root
    for part in rel.parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise link_error(path)
        if not stat.S_ISDIR(mode):
            raise OSError(f"{path} is not a folder; facebench keeps its files there: remove it, "
                          "or choose another folder with --out")
    return path


def create_new(path: str | Path) -> int:
    """A file descriptor (write only) of a new, empty file at ``path``: whatever was there (an
    old log, a hard link to someone's file, a symbolic link) is unlinked first and the file is
    created with ``O_EXCL | O_NOFOLLOW``, so nothing is ever truncated or written in place.
    ``OSError`` (naming the file) when it cannot be."""
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                   | getattr(os, "O_CLOEXEC", 0), 0o666)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, root: str | Path | None = None,
                sync: bool = True) -> Iterator[Path]:
    """A fresh temp file beside ``path`` to write (for writers that take a file name: pandas,
    cv2, pickle); when the block ends without error it is fsynced and renamed over ``path``,
    otherwise removed. Every file facebench writes goes through here, so every one gets the mode
    ``open()`` gives a new file (``0666 & ~umask``: 0644 under umask 022), never mkstemp's 0600.
    A symbolic link or a hard link at ``path`` is replaced (a new directory entry), never
    written through. With ``root`` (an output folder holding ``path``), the folders between are
    made by :func:`safe_folder`: a symbolic link among them is an ``OSError``, not followed.
    ``sync=False`` skips the fsync (still atomic for readers, not durable across a power loss):
    for cache entries that carry their own checksum (:mod:`facebench.cache`)."""
    path = Path(path)
    try:
        if root is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            safe_folder(root, path.parent.relative_to(root))
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
        finally:
            os.close(fd)
        yield tmp
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, root: str | Path | None = None,
                       sync: bool = True) -> Path:
    """Write ``data`` so that ``path`` is either the old file or the whole new one (``root``,
    ``sync``: see :func:`atomic_path`)."""
    with atomic_path(path, root=root, sync=sync) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def _write_error(path: Path, exc: OSError) -> OSError:
    """The same kind of error (errno, subclass), naming the file that could not be written
    (a bare ``[Errno 28] No space left on device`` does not say where)."""
    if exc.errno is None:
        return OSError(f"cannot write {path}: {exc}")
    return OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


def atomic_write_text(path: str | Path, text: str, *, root: str | Path | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), root=root)


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/Inf become null (undefined), numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj: Any, *, compact: bool = False) -> str:
    """``obj`` as strict JSON (NaN/Inf as null): indented, or on one line when ``compact``."""
    if compact:
        return json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)
    return json.dumps(_clean(obj), indent=1, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, obj: Any, *, root: str | Path | None = None) -> Path:
    return atomic_write_text(path, to_json(obj), root=root)


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return sha256_file(path)


def sha256_file_once(path: str | Path) -> str:
    """:func:`sha256_file` of a (large, rarely changing) file such as a model, hashed once per
    process: memoised by the file's path, size, modification time and inode, so a file replaced
    while the process runs is hashed again."""
    st = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


#: A JSON string (the bytes between its quotes hold no bracket that counts).
_JSON_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)
#: Every byte value but ``[ ] { }``.
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


def json_depth(data: bytes, chunk: int = 1 << 20) -> int:
    """How deep the arrays and objects of the JSON text ``data`` nest, counted without parsing
    (Python's parser recurses: 100,000 ``[`` end in ``RecursionError``). Brackets inside strings
    do not count; a text that is not JSON may count deeper than it parses, never shallower."""
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKET)
    steps = np.frombuffer(brackets, dtype=np.uint8)
    deepest = depth = 0
    for start in range(0, len(steps), chunk):
        part = steps[start:start + chunk]
        level = depth + np.cumsum(np.where((part == ord("[")) | (part == ord("{")), 1, -1))
        deepest, depth = max(deepest, int(level.max())), int(level[-1])
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite)")


def loads_bounded(data: bytes | str, *, max_depth: int) -> Any:
    """Strict JSON (no ``NaN``/``Infinity``) nested at most ``max_depth`` deep, the depth checked
    before parsing; ``ValueError`` saying what is wrong (not JSON, not UTF-8, too deep)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    depth = json_depth(raw)
    if depth > max_depth:
        raise ValueError(f"nested {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:  # not reached after the depth check; never a traceback
        raise ValueError(f"nested more than the {max_depth} levels allowed") from None


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``; ``ValueError`` when it holds more than
    ``max_bytes`` (never read beyond that) or is not a regular file (a FIFO is opened without
    blocking and never read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{st.st_size:,} bytes, more than the {max_bytes:,} allowed")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"more than the {max_bytes:,} bytes allowed")
    return data


def read_json_bounded(path: str | Path, *, max_bytes: int, max_depth: int) -> Any:
    """:func:`loads_bounded` of the file ``path``, at most ``max_bytes`` long (``ValueError``
    saying what is wrong; ``OSError`` when it cannot be read)."""
    return loads_bounded(read_bounded(path, max_bytes), max_depth=max_depth)
