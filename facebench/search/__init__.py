"""Exact 1:N vector search at scale: top-k inner product over a gallery streamed in chunks,
with a numpy backend and an optional faiss backend (extra ``search``: faiss-cpu).

A low layer: imports numpy and the standard library only (faiss and threadpoolctl inside
functions, when used).
"""

from facebench.search.chunks import DEFAULT_CHUNK_ROWS, ArrayChunks, GalleryChunks, NpyChunks
from facebench.search.topk import TopK, backends, resolve_backend, top_k

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "ArrayChunks",
    "GalleryChunks",
    "NpyChunks",
    "TopK",
    "backends",
    "resolve_backend",
    "top_k",
]
