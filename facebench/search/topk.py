"""Exact top-k maximum-inner-product search of probes against a gallery streamed in chunks.

For L2-normalised vectors the inner product is the cosine similarity. The gallery is read one
chunk at a time and the probes are blocked, so memory stays about one chunk plus one score block
(never the full probes × gallery matrix). Per chunk and probe block:

1. **pre-select** the ``k + slack`` best gallery rows per probe in float32 (numpy: ``matmul`` +
   ``argpartition``; faiss: its exact inner-product ``knn``, BLAS + heaps);
2. **recompute** the kept candidates' scores in float64 from the float32 vectors (each score one
   row-wise dot product, so it does not depend on the backend or on the blocking); candidates
   whose float32 score is provably below the running k-th float64 score (by more than the float32
   rounding bound ``2·γ_D·‖p‖·‖g‖``) are skipped, which changes no result;
3. **merge** with the running top k, ordered by (score descending, gallery row ascending).

Both backends therefore return identical scores and rows, equal to a float64 brute force, unless
more than ``slack`` rows of one chunk lie within float32 rounding of a probe's k-th score
(exact ties among more than ``k + slack`` rows, e.g. duplicated gallery rows, are the usual
cause; then which tied rows are returned may differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from facebench.search.chunks import DEFAULT_CHUNK_ROWS, ArrayChunks, GalleryChunks

#: Bytes of one float32 score block (probe block × chunk rows) of the numpy backend: 64 MiB
#: (256 probes × 65 536 rows, plus argpartition's int64 indices, 128 MiB) measured fastest on
#: 2 cores: about 2× faster than 256 MiB blocks (cache), and 64 probes lose BLAS efficiency.
SCORE_BLOCK_BYTES = 64 << 20
#: Bytes of one float64 gather in the recompute step.
RECOMPUTE_BYTES = 32 << 20
#: Probes per faiss call (faiss blocks internally, 4096 queries × 1024 rows per BLAS call, so
#: its buffers stay small; 1024 and 4096 measured alike, 512 slower).
FAISS_PROBE_BLOCK = 4096

BACKENDS = ("auto", "numpy", "faiss")
EXTRA_HINT = "pip install 'facebench[search]'"

Select = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TopK:
    """Per probe, the ``k`` best gallery rows.

    ``scores``: float64 ``(P, k)`` inner products, descending per row, ``-inf`` padding;
    ``index``: int64 ``(P, k)`` gallery rows of those scores, ``-1`` padding (gallery < k);
    ``info``: how it was computed (backend, version, k, slack, chunk_rows, probe_block,
    threads, gallery_rows, probes, dim, seconds)."""

    scores: np.ndarray
    index: np.ndarray
    info: dict[str, Any]


def _faiss() -> Any:
    import faiss  # optional heavy dependency (extra "search")

    return faiss


def backends() -> dict[str, str | None]:
    """``{"numpy": version, "faiss": version or None when faiss is not importable}``."""
    try:
        faiss_version: str | None = str(_faiss().__version__)
    except ImportError:
        faiss_version = None
    return {"numpy": np.__version__, "faiss": faiss_version}


def resolve_backend(backend: str) -> str:
    """``"auto"`` → ``"faiss"`` when faiss imports, else ``"numpy"``; ``"faiss"`` without faiss
    raises an ImportError naming the extra to install."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown search backend {backend!r}; choose one of {BACKENDS}")
    if backend == "numpy":
        return "numpy"
    try:
        _faiss()
    except ImportError as exc:
        if backend == "auto":
            return "numpy"
        raise ImportError(f"search backend 'faiss' needs faiss-cpu, which is not importable "
                          f"({exc}); install it with: {EXTRA_HINT} (or use backend='numpy')"
                          ) from exc
    return "faiss"


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _as_probes(probes: Any) -> np.ndarray:
    x = np.asarray(probes)
    if x.ndim != 2:
        raise ValueError(f"probes must be a 2-D (probes, dim) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"probes must be a real numeric array, got dtype {x.dtype}")
    with np.errstate(over="ignore"):  # out-of-range values become inf: reported by _norms
        return np.ascontiguousarray(x, dtype=np.float32)


def _norms(x: np.ndarray, what: str, offset: int = 0) -> np.ndarray:
    """Float64 row norms of float32 ``x``; an error naming the first row that is not finite
    (NaN/inf, or so large its squared norm overflows)."""
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    bad = np.flatnonzero(~np.isfinite(norms))
    if bad.size:
        raise ValueError(f"{what} row {offset + int(bad[0])} is not finite (NaN/inf or too "
                         f"large); {bad.size} such row(s) in rows {offset}..{offset + len(x) - 1}")
    return norms


def _select_numpy(q: np.ndarray, chunk: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ chunk.T
    n = scores.shape[1]
    if kk < n:
        # a copy, so the (block, n) int64 argpartition output is freed on return
        part = np.argpartition(scores, n - kk, axis=1)[:, n - kk:].copy()
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    return np.take_along_axis(scores, part, axis=1), part.astype(np.int64, copy=False)


def _select_faiss(q: np.ndarray, chunk: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    faiss = _faiss()
    scores, index = faiss.knn(q, chunk, kk, metric=faiss.METRIC_INNER_PRODUCT)
    index = index.astype(np.int64, copy=False)
    missing = index < 0
    if missing.any():  # faiss pads with -1 when it finds fewer rows; never expected here
        scores = np.where(missing, -np.inf, scores)
        index = np.where(missing, 0, index)
    return scores, index


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info  # optional: only to record the count
    except ImportError:
        return None
    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


@contextmanager
def _threads(backend: str, threads: int | None) -> Iterator[int | None]:
    """Pin BLAS (threadpoolctl) and, for faiss, OpenMP to ``threads``; yield the count used;
    restore the previous settings afterwards."""
    with ExitStack() as stack:
        if threads is not None:
            try:
                from threadpoolctl import threadpool_limits  # optional dependency
            except ImportError as exc:
                raise ImportError("threads= needs threadpoolctl (pip install threadpoolctl) "
                                  "to limit the BLAS threads; or pass threads=None") from exc
            stack.enter_context(threadpool_limits(limits=threads))
        if backend == "faiss":
            faiss = _faiss()
            before = faiss.omp_get_max_threads()
            if threads is not None:
                faiss.omp_set_num_threads(threads)
                stack.callback(faiss.omp_set_num_threads, before)
            yield threads if threads is not None else before
        else:
            yield threads if threads is not None else _blas_threads()


def _gallery(gallery: Any, chunk_rows: int) -> GalleryChunks:
    if isinstance(gallery, GalleryChunks) and not isinstance(gallery, np.ndarray):
        return gallery
    return ArrayChunks(gallery, chunk_rows)


def top_k(probes: np.ndarray, gallery: np.ndarray | GalleryChunks, k: int, *,
          backend: Literal["auto", "numpy", "faiss"] = "auto",
          chunk_rows: int = DEFAULT_CHUNK_ROWS, threads: int | None = None,
          slack: int = 8) -> TopK:
    """The ``k`` gallery rows of largest inner product with each probe (exact; see the module
    docstring). ``gallery`` is an array (read ``chunk_rows`` rows at a time) or a
    :class:`GalleryChunks` such as :class:`NpyChunks` (its own chunking). ``threads`` pins the
    BLAS / OpenMP threads for the call (``None``: leave them as they are)."""
    name = resolve_backend(backend)
    k = _int("k", k, 1)
    slack = _int("slack", slack, 0)
    chunk_rows = _int("chunk_rows", chunk_rows, 1)
    if threads is not None:
        threads = _int("threads", threads, 1)
    q = _as_probes(probes)
    chunks = _gallery(gallery, chunk_rows)
    rows, dim = int(chunks.rows), int(chunks.dim)
    if q.shape[1] != dim:
        raise ValueError(f"probes have dim {q.shape[1]} but the gallery has dim {dim}")
    n_probes = len(q)
    pnorm = _norms(q, "probe")
    # |float32 dot - exact| <= gamma_D * |p| * |g| (Higham); doubled to also cover the float64
    # recompute and the float64 norms.
    unit = 2.0 ** -24
    gamma = 2.0 * dim * unit / max(1.0 - dim * unit, 1e-3) + 1e-300
    select: Select = _select_faiss if name == "faiss" else _select_numpy
    best_s = np.full((n_probes, k), -np.inf)
    best_i = np.full((n_probes, k), -1, dtype=np.int64)
    probe_block = 0
    start = time.perf_counter()
    with _threads(name, threads) as used:
        expected = 0
        for offset, raw in chunks:
            chunk = np.ascontiguousarray(raw, dtype=np.float32)
            if offset != expected or chunk.ndim != 2 or chunk.shape[1] != dim:
                raise ValueError(f"gallery chunk at row {offset} has shape {chunk.shape}; "
                                 f"expected rows from {expected} with dim {dim}")
            n = len(chunk)
            expected += n
            if n == 0:
                continue
            gnorm = _norms(chunk, "gallery", offset)
            kk = min(k + slack, n)
            block = (FAISS_PROBE_BLOCK if name == "faiss"
                     else max(1, SCORE_BLOCK_BYTES // (4 * n)))
            probe_block = probe_block or min(block, n_probes)  # the first (full) chunk's
            for b0 in range(0, n_probes, block):
                sl = slice(b0, b0 + block)
                s32, local = select(q[sl], chunk, kk)
                floor = best_s[sl, k - 1:k] - gamma * pnorm[sl, None] * gnorm[local]
                r, c = np.nonzero(s32 >= floor)
                s64 = np.full(s32.shape, -np.inf)
                s64[r, c] = _dots(q[sl], chunk, r, local[r, c])
                cand_s = np.concatenate([best_s[sl], s64], axis=1)
                cand_i = np.concatenate([best_i[sl], local + offset], axis=1)
                order = np.lexsort((cand_i, -cand_s), axis=-1)[:, :k]
                best_s[sl] = np.take_along_axis(cand_s, order, axis=1)
                best_i[sl] = np.take_along_axis(cand_i, order, axis=1)
            del raw, chunk  # one chunk resident: free it before the next is read
        if expected != rows:
            raise ValueError(f"the gallery yielded {expected} rows but declares {rows}")
    seconds = time.perf_counter() - start
    best_i[~np.isfinite(best_s)] = -1
    version = np.__version__ if name == "numpy" else str(_faiss().__version__)
    info = {"backend": name, "version": version, "k": k, "slack": slack,
            "chunk_rows": getattr(chunks, "chunk_rows", None), "probe_block": probe_block,
            "threads": used, "gallery_rows": rows, "probes": n_probes, "dim": dim,
            "seconds": seconds}
    return TopK(scores=best_s, index=best_i, info=info)


def _dots(q: np.ndarray, chunk: np.ndarray, probe_rows: np.ndarray,
          gallery_rows: np.ndarray) -> np.ndarray:
    """Float64 ``q[probe_rows[j]] · chunk[gallery_rows[j]]`` (float32 rows widened exactly) for
    each j, one row-wise reduction per pair (the same bits whichever block or backend asked)."""
    out = np.empty(len(probe_rows))
    step = max(1, RECOMPUTE_BYTES // (8 * max(chunk.shape[1], 1)))
    for s in range(0, len(probe_rows), step):
        g = chunk[gallery_rows[s:s + step]].astype(np.float64)
        p = q[probe_rows[s:s + step]].astype(np.float64)
        out[s:s + step] = np.einsum("ij,ij->i", p, g)
    return out
