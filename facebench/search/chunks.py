"""Galleries streamed in row chunks: an in-memory array, or a float32 ``.npy`` file on disk.

A gallery here is anything with ``rows``, ``dim`` and an iterator of ``(row offset, float32
(n, dim) C-order array)`` covering rows ``0 .. rows-1`` in order (:class:`GalleryChunks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

#: Default gallery rows per chunk (65 536 × 512 float32 = 128 MiB).
DEFAULT_CHUNK_ROWS = 65536


@runtime_checkable
class GalleryChunks(Protocol):
    """A ``(rows, dim)`` gallery read chunk by chunk."""

    rows: int
    dim: int

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(row offset, float32 (n, dim))`` chunks, in row order."""
        ...


def _chunk_rows(chunk_rows: int) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer) \
            or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    return int(chunk_rows)


class ArrayChunks:
    """An in-memory ``(G, D)`` array viewed ``chunk_rows`` rows at a time (float32 views when
    it already is float32 C-order, else converted one chunk at a time)."""

    def __init__(self, array: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"gallery must be a 2-D (rows, dim) array, got shape {array.shape}")
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise ValueError(f"gallery must be a real numeric array, got dtype {array.dtype}")
        self.array = array
        self.rows, self.dim = (int(n) for n in array.shape)
        self.chunk_rows = _chunk_rows(chunk_rows)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.rows, self.chunk_rows):
            part = self.array[start:start + self.chunk_rows]
            with np.errstate(over="ignore"):  # out of float32 range -> inf, reported by top_k
                chunk = np.ascontiguousarray(part, dtype=np.float32)
            yield start, chunk

    def __repr__(self) -> str:
        return f"ArrayChunks(rows={self.rows}, dim={self.dim}, chunk_rows={self.chunk_rows})"


class NpyChunks:
    """A float32, C-order, 2-D ``.npy`` file (as ``np.save`` writes it) read ``chunk_rows`` rows
    at a time with plain file reads, so resident memory stays about one chunk (a memory map
    would count every page it touches as resident)."""

    def __init__(self, path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> None:
        self.path = Path(path)
        self.chunk_rows = _chunk_rows(chunk_rows)
        fix = "write it with np.save(path, np.ascontiguousarray(x, dtype=np.float32))"
        try:
            with self.path.open("rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                self.offset = f.tell()
        except FileNotFoundError:
            raise FileNotFoundError(f"gallery file {self.path} does not exist") from None
        except ValueError as exc:
            raise ValueError(f"gallery file {self.path} is not a readable .npy file ({exc}); "
                             f"{fix}") from None
        if dtype != np.dtype("<f4"):
            raise ValueError(f"gallery file {self.path} holds dtype {dtype.str}, expected "
                             f"little-endian float32 ('<f4'); {fix}")
        if fortran:
            raise ValueError(f"gallery file {self.path} is in Fortran (column-major) order, "
                             f"expected C order; {fix}")
        if len(shape) != 2:
            raise ValueError(f"gallery file {self.path} holds shape {shape}, expected a 2-D "
                             f"(rows, dim) array; {fix}")
        self.rows, self.dim = (int(n) for n in shape)
        need = self.offset + self.rows * self.dim * 4
        size = self.path.stat().st_size
        if size < need:
            raise ValueError(f"gallery file {self.path} is truncated: {size} bytes, its header "
                             f"says {shape} float32 needing {need}; write it again")

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        with self.path.open("rb", buffering=0) as f:
            f.seek(self.offset)
            for start in range(0, self.rows, self.chunk_rows):
                n = min(self.chunk_rows, self.rows - start)
                out = np.empty((n, self.dim), dtype=np.float32)
                view = memoryview(out).cast("B")
                got = 0
                while got < len(view):
                    read = f.readinto(view[got:])
                    if not read:
                        raise ValueError(f"gallery file {self.path} ended early at row "
                                         f"{start + got // (4 * max(self.dim, 1))} of "
                                         f"{self.rows} (truncated while reading?)")
                    got += read
                yield start, out
                del out, view  # let the consumer free the chunk before the next is read

    def __repr__(self) -> str:
        return (f"NpyChunks({str(self.path)!r}, rows={self.rows}, dim={self.dim}, "
                f"chunk_rows={self.chunk_rows})")
