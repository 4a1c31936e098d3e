"""Aligned crops → model inputs → embeddings (flip-sum, L2-normalized)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from facebench.suite.schema import Preprocess


def to_input(crops: list[np.ndarray], pre: Preprocess) -> np.ndarray:
    """BGR uint8 crops → the float32 batch the model takes: resized to ``input_size``, in its
    colour order, normalised (scalar or per-channel ``mean``/``std``, or per image), NCHW or
    NHWC."""
    w, h = pre.input_size
    batch = np.empty((len(crops), h, w, 3), dtype=np.float32)
    for i, c in enumerate(crops):
        if c.shape[:2] != (h, w):
            c = cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
        batch[i] = c[..., ::-1] if pre.color == "RGB" else c
    if pre.per_image:
        # FaceNet's prewhiten: (x - mean(x)) / max(std(x), 1/sqrt(x.size)), per image
        mean = batch.mean(axis=(1, 2, 3), keepdims=True)
        std = batch.std(axis=(1, 2, 3), keepdims=True)
        batch -= mean
        batch /= np.maximum(std, np.float32(1.0 / np.sqrt(h * w * 3)))
    else:
        batch -= np.asarray(pre.mean, dtype=np.float32)
        batch /= np.asarray(pre.std, dtype=np.float32)
    if pre.layout == "NHWC":
        return np.ascontiguousarray(batch)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def mirror(x: np.ndarray, layout: str) -> np.ndarray:
    """The batch flipped left–right (the width axis of NCHW or NHWC)."""
    return x[..., ::-1] if layout == "NCHW" else x[:, :, ::-1, :]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / norm


def embed_batch(infer: Callable[[np.ndarray], np.ndarray], crops: list[np.ndarray],
                pre: Preprocess, flip: bool) -> np.ndarray:
    """Normalized embeddings: ``normalize(e(x) + e(hflip(x)))`` with flip, else ``normalize(e(x))``.

    The original and flipped images go through the model in one batch."""
    return l2_normalize(embed_raw(infer, crops, pre, flip))


def embed_raw(infer: Callable[[np.ndarray], np.ndarray], crops: list[np.ndarray],
              pre: Preprocess, flip: bool) -> np.ndarray:
    """``e(x) + e(hflip(x))`` with flip, else ``e(x)``, before normalisation (its norm is what
    template norm weighting uses)."""
    x = to_input(crops, pre)
    n = len(crops)
    if flip:
        x = np.concatenate([x, mirror(x, pre.layout)], axis=0)
    out = np.asarray(infer(np.ascontiguousarray(x)), dtype=np.float32)
    if out.ndim != 2 or out.shape[0] != x.shape[0]:
        raise ValueError(f"model returned shape {out.shape}, expected ({x.shape[0]}, D)")
    if not np.isfinite(out).all():
        raise ValueError("model returned NaN or Inf embeddings")
    if flip:
        out = out[:n] + out[n:]
    return out


def cosine_scores(emb: np.ndarray, left: np.ndarray, right: np.ndarray,
                  valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine score per pair of normalized embeddings; pairs touching an FtA image get NaN
    and ``fta=True``."""
    fta = ~(valid[left] & valid[right])
    scores = np.einsum("ij,ij->i", emb[left], emb[right]).astype(np.float64)
    scores[fta] = np.nan
    return scores, fta
