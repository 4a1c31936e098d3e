"""Aligned crops → model inputs → embeddings (flip-sum, L2-normalized)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from facebench.suite.schema import Preprocess


def to_input(crops: list[np.ndarray], pre: Preprocess) -> np.ndarray:
    """BGR uint8 crops → float32 NCHW ``(x - mean) / std`` in the model's colour order."""
    w, h = pre.input_size
    batch = np.empty((len(crops), h, w, 3), dtype=np.float32)
    for i, c in enumerate(crops):
        if c.shape[:2] != (h, w):
            c = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
        batch[i] = c[..., ::-1] if pre.color == "RGB" else c
    batch -= np.float32(pre.mean)
    batch /= np.float32(pre.std)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / norm


def embed_batch(infer: Callable[[np.ndarray], np.ndarray], crops: list[np.ndarray],
                pre: Preprocess, flip: bool) -> np.ndarray:
    """Normalized embeddings: ``normalize(e(x) + e(hflip(x)))`` with flip, else ``normalize(e(x))``.

    The original and flipped images go through the model in one batch."""
    x = to_input(crops, pre)
    n = len(crops)
    if flip:
        x = np.concatenate([x, x[..., ::-1]], axis=0)
    out = np.asarray(infer(np.ascontiguousarray(x)), dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model returned shape {out.shape}, expected ({x.shape[0]}, D)")
    if not np.isfinite(out).all():
        raise ValueError("model returned NaN or Inf embeddings")
    if flip:
        out = out[:n] + out[n:]
    return l2_normalize(out)


def cosine_scores(emb: np.ndarray, left: np.ndarray, right: np.ndarray,
                  valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine score per pair of normalized embeddings; pairs touching an FtA image get NaN
    and ``fta=True``."""
    fta = ~(valid[left] & valid[right])
    scores = np.einsum("ij,ij->i", emb[left], emb[right]).astype(np.float64)
    scores[fta] = np.nan
    return scores, fta


class BatchEmbedder:
    """Collects ``(index, crop)`` as faces stream in and embeds them ``batch_size`` at a time
    into an ``(n, D)`` array (NaN rows for indices never added)."""

    def __init__(self, n: int, infer: Callable[[np.ndarray], np.ndarray], pre: Preprocess,
                 flip: bool, batch_size: int) -> None:
        self.n, self.infer, self.pre, self.flip, self.batch_size = n, infer, pre, flip, batch_size
        self.emb: np.ndarray | None = None
        self.valid = np.zeros(n, dtype=bool)
        self._batch: list[tuple[int, np.ndarray]] = []

    def add(self, index: int, crop: np.ndarray) -> None:
        self._batch.append((index, crop))
        if len(self._batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._batch:
            return
        out = embed_batch(self.infer, [c for _, c in self._batch], self.pre, self.flip)
        if self.emb is None:
            self.emb = np.full((self.n, out.shape[1]), np.nan, dtype=np.float32)
        idx = [i for i, _ in self._batch]
        self.emb[idx] = out
        self.valid[idx] = True
        self._batch.clear()
