"""RetinaFace anchor priors and box/landmark decoding (numpy)."""

from __future__ import annotations

from functools import lru_cache
from math import ceil

import numpy as np

#: Anchor side lengths per pyramid level (pixels) that the shared MobileNet-0.25 weights were
#: trained with (biubug6/Face-Detector-1MB-with-landmark ``cfg_mnet``). NOT the
#: ((16, 32), (64, 128), (256, 512)) of Pytorch_Retinaface that shared/README.md states: with
#: those, every box and landmark spread comes out about twice too large (checked against YuNet
#: on LFW: mean landmark gap 0.8 vs 0.16 inter-ocular distances).
MIN_SIZES: tuple[tuple[int, ...], ...] = ((10, 20), (32, 64), (128, 256))
#: Feature-map strides of the three pyramid levels.
STEPS: tuple[int, ...] = (8, 16, 32)
#: Encoding variances for centres and for sizes.
VARIANCE: tuple[float, float] = (0.1, 0.2)


@lru_cache(maxsize=32)
def priors_for(height: int, width: int) -> np.ndarray:
    """Anchors ``(N, 4)`` as ``(cx, cy, w, h)`` normalized to the input, in head output order.

    Order is level, then row, then column, then anchor size: the order in which the heads'
    ``(B, H, W, A*k)`` outputs are flattened. Cached per input size; treat as read-only.
    """
    levels = []
    for sizes, step in zip(MIN_SIZES, STEPS, strict=True):
        rows, cols = ceil(height / step), ceil(width / step)
        cy = (np.arange(rows, dtype=np.float32) + 0.5) * step / height
        cx = (np.arange(cols, dtype=np.float32) + 0.5) * step / width
        gy, gx, gs = np.meshgrid(cy, cx, np.asarray(sizes, np.float32), indexing="ij")
        level = np.stack([gx, gy, gs / width, gs / height], axis=-1)
        levels.append(level.reshape(-1, 4))
    out = np.concatenate(levels, axis=0).astype(np.float32)
    out.setflags(write=False)
    return out


def decode_boxes(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Regression ``(N, 4)`` against ``priors`` → normalized corners ``(x1, y1, x2, y2)``."""
    centre = priors[:, :2] + loc[:, :2] * VARIANCE[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def decode_landmarks(pre: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Landmark regression ``(N, 10)`` → normalized points ``(N, 5, 2)``."""
    offsets = pre.reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * VARIANCE[0] * priors[:, None, 2:]
