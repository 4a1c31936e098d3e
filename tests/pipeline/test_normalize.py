"""Crop → model input (the model's ``normalize:`` block), checked against direct numpy
computations on real LFW crops: scalar and per-channel mean/std, FaceNet's per-image
standardisation, NCHW/NHWC, and the flip test's mirror."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebench.datasets.lfw import load_lfw_pairs
from facebench.faces.images import load_image
from facebench.pipeline.embed import embed_batch, mirror, to_input
from facebench.suite.schema import Preprocess


@pytest.fixture(scope="module")
def crops(lfw_dir: Path) -> list[np.ndarray]:
    pairs = load_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images", max_folds=2)
    return [load_image(p)[60:220, 45:205] for p in pairs.images[:3]]  # 160×160 BGR


def test_scalar_and_per_channel(crops: list[np.ndarray]) -> None:
    rgb = np.stack([c[..., ::-1] for c in crops]).astype(np.float64)
    x = to_input(crops, Preprocess(mean=127.5, std=128.0, input_size=(160, 160)))
    want = ((rgb - 127.5) / 128.0).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x, want, atol=1e-6)
    pre = Preprocess(color="BGR", mean=(104.0, 117.0, 123.0), std=(58.0, 57.0, 59.0),
                     input_size=(160, 160), layout="NHWC")
    x = to_input(crops, pre)
    bgr = np.stack(crops).astype(np.float64)
    want = (bgr - np.array([104.0, 117.0, 123.0])) / np.array([58.0, 57.0, 59.0])
    assert x.shape == (3, 160, 160, 3)
    np.testing.assert_allclose(x, want, atol=1e-5)


def test_per_image_is_facenets_prewhiten(crops: list[np.ndarray]) -> None:
    x = to_input(crops, Preprocess(per_image=True, input_size=(160, 160)))
    for i, c in enumerate(crops):
        img = c[..., ::-1].astype(np.float64)
        std_adj = max(img.std(), 1.0 / np.sqrt(img.size))  # facenet.prewhiten
        want = ((img - img.mean()) / std_adj).transpose(2, 0, 1)
        np.testing.assert_allclose(x[i], want, atol=1e-4)
    flat = np.full((160, 160, 3), 7, np.uint8)  # zero std: divided by 1/sqrt(n), stays finite
    assert np.isfinite(to_input([flat], Preprocess(per_image=True, input_size=(160, 160)))).all()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_flip_mirrors_the_width_axis(crops: list[np.ndarray], layout: str) -> None:
    pre = Preprocess(input_size=(160, 160), layout=layout)  # type: ignore[arg-type]
    mirrored = to_input([np.ascontiguousarray(c[:, ::-1]) for c in crops], pre)
    np.testing.assert_array_equal(mirror(to_input(crops, pre), layout), mirrored)
    seen: list[np.ndarray] = []

    def infer(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return batch.reshape(len(batch), -1)[:, :8].astype(np.float32) + 1.0

    out = embed_batch(infer, crops, pre, flip=True)
    assert seen[0].shape[0] == 6  # image and mirror in one call
    np.testing.assert_array_equal(seen[0][3:], mirrored)
    raw = infer(to_input(crops, pre)) + infer(mirrored)
    np.testing.assert_allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
