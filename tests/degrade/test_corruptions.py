"""Each corruption of ``degrade:`` does what it says, measured on synthetic images and on real
LFW faces: the inter-ocular distance after ``resolution``, the mask inside the face box, the JPEG
quality read back from the file's quantisation tables, blur widths, noise statistics, and the
identity levels that leave an image as it is."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from facebench.faces.degrade import (
    Blur,
    FacePoints,
    Gamma,
    Jpeg,
    Level,
    MotionBlur,
    Noise,
    Occlusion,
    Resolution,
    downscale,
    jpeg_bytes,
    occluder_polygon,
)

#: A synthetic frontal face on a 240×240 grey canvas: eyes 80 px apart.
EYES = np.array([[80.0, 100.0], [160.0, 100.0]])
LANDMARKS = np.array([[80, 100], [160, 100], [120, 146], [88, 190], [152, 190]], np.float64)


def face_image() -> np.ndarray:
    """Grey canvas with two dark 7×7 'eyes' at :data:`EYES` and a textured background."""
    rng = np.random.default_rng(1)
    im = np.full((240, 240, 3), 180, np.uint8)
    im[::8] = 170 + rng.integers(0, 10, size=(30, 240, 3), dtype=np.uint8)
    for x, y in EYES.astype(int):
        im[y - 3:y + 4, x - 3:x + 4] = 0
    return im


def points() -> FacePoints:
    return FacePoints.from_landmarks(LANDMARKS)


def dark_centroids(im: np.ndarray) -> np.ndarray:
    """Darkness-weighted centroids (darkness below the 170–180 background) of the left and
    right halves of an image (x, y)."""
    g = np.clip(170.0 - cv2.cvtColor(im, cv2.COLOR_BGR2GRAY).astype(np.float64), 0, None)
    g[g < 0.5 * g.max()] = 0
    w = g.shape[1] // 2
    out = []
    for half, off in ((g[:, :w], 0), (g[:, w:], w)):
        cy, cx = ndimage.center_of_mass(half)
        out.append((cx + off, cy))
    return np.array(out)


@pytest.mark.parametrize("iod", [64, 32, 16, 8])
def test_resolution_makes_the_inter_ocular_distance_n_pixels(iod: int) -> None:
    im = face_image()
    small = downscale(im, points(), iod)
    assert small is not None
    measured = np.linalg.norm(np.diff(dark_centroids(small), axis=0))
    assert abs(measured - iod) <= 0.06 * iod + 0.5, (iod, measured)
    # back up to the original size, and the fine detail is gone: the eyes spread
    up = Resolution(levels=[iod]).apply(im, iod, points(), np.random.default_rng(0))
    assert up.shape == im.shape
    dark = (cv2.cvtColor(up, cv2.COLOR_BGR2GRAY) < 120).sum()
    assert iod >= 32 or dark != 2 * 49
    assert np.linalg.norm(np.diff(dark_centroids(up), axis=0)) == pytest.approx(80, abs=3)


def test_resolution_leaves_a_face_already_that_small() -> None:
    im = face_image()
    assert downscale(im, points(), 80) is None
    assert Resolution(levels=[96]).apply(im, 96, points(), np.random.default_rng(0)) is im


def inside(poly: np.ndarray, xy: np.ndarray) -> bool:
    return cv2.pointPolygonTest(poly.astype(np.float32), tuple(map(float, xy)), False) > 0


def test_mask_covers_nose_and_mouth_not_eyes_in_a_flat_colour() -> None:
    im = face_image()
    out = Occlusion(levels=["mask"]).apply(im, "mask", points(), np.random.default_rng(0))
    poly = occluder_polygon(points(), "mask")
    for xy in LANDMARKS[2:]:
        assert inside(poly, xy)
        assert tuple(out[int(xy[1]), int(xy[0])]) == (230, 200, 170)
    for xy in LANDMARKS[:2]:
        assert not inside(poly, xy)
        assert (out[int(xy[1]), int(xy[0])] == 0).all()  # the eye is untouched
    changed = (out != im).any(axis=2)
    assert changed.sum() > 0
    ys, xs = np.nonzero(changed)  # every changed pixel lies in the polygon (1 px of rounding)
    grown = poly + np.sign(poly - poly.mean(axis=0)) * 1.0
    assert all(inside(grown, (x, y)) for x, y in zip(xs[::17], ys[::17], strict=True))


def test_sunglasses_cover_both_eyes_not_the_mouth() -> None:
    im = face_image()
    out = Occlusion(levels=["sunglasses"]).apply(im, "sunglasses", points(),
                                                  np.random.default_rng(0))
    poly = occluder_polygon(points(), "sunglasses")
    assert all(inside(poly, xy) for xy in LANDMARKS[:2])
    assert not any(inside(poly, xy) for xy in LANDMARKS[2:])
    x, y = LANDMARKS[3].astype(int)
    assert (out[y, x] == im[y, x]).all()


def test_mask_lies_inside_the_detector_box_on_real_lfw_faces(lfw_dir: Path,
                                                             models_dir: Path) -> None:
    """On 24 real LFW faces (YuNet), the mask polygon stays inside the face box (grown by 5 %
    of its width for head pose) and covers the detected nose tip and mouth corners."""
    from facebench.faces.detect import create_detector, select_face
    from facebench.faces.images import load_image

    det = create_detector("yunet", model=models_dir / "face_detection_yunet.onnx")
    images = sorted((lfw_dir / "images").glob("A*/*_0001.jpg"))[:24]
    assert len(images) == 24
    for path in images:
        im = load_image(path)
        face = select_face(det.detect(im), im.shape, "closest_to_center")
        assert face is not None, path
        p = FacePoints.from_landmarks(face.landmarks)
        poly = occluder_polygon(p, "mask")
        x1, y1, x2, y2 = face.box
        m = 0.05 * (x2 - x1)
        assert (poly[:, 0] >= x1 - m).all() and (poly[:, 0] <= x2 + m).all(), path
        assert (poly[:, 1] >= y1 - m).all() and (poly[:, 1] <= y2 + m).all(), path
        assert all(inside(poly, xy) for xy in face.landmarks[2:]), path


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's quality scaling of a base table (jcparam.c, written from its definition)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


#: The JPEG standard's luminance table (ITU T.81, Annex K.1), row order.
LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
                 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
                 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


@pytest.mark.parametrize("quality", [90, 50, 20, 10, 1])
def test_jpeg_quality_reads_back_from_the_quantisation_table(quality: int) -> None:
    data = jpeg_bytes(face_image(), quality)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        table = np.array(im.quantization[0])
    # PIL gives the table in zigzag order; compare as multisets and by the DC term
    want = ijg_table(LUMA, quality)
    assert sorted(table.tolist()) == sorted(want.tolist())
    assert table[0] == want[0]
    out = Jpeg(levels=[quality]).apply(face_image(), quality, None, np.random.default_rng(0))
    assert out.shape == (240, 240, 3)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 4.0])
def test_blur_is_the_gaussian_of_its_sigma(sigma: float) -> None:
    """Against scipy's Gaussian filter (mirror borders = OpenCV's reflect-101, ±3 sigma)."""
    im = np.random.default_rng(2).integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
    out = Blur(levels=[sigma]).apply(im, sigma, None, np.random.default_rng(0))
    def gap(s: float) -> np.ndarray:
        want = ndimage.gaussian_filter(im.astype(np.float64), sigma=(s, s, 0), mode="mirror",
                                       truncate=3.0)
        return np.abs(out.astype(np.float64) - want)

    assert gap(sigma).max() <= 2.0  # OpenCV's 8-bit fixed-point kernel: about 1 level
    assert gap(sigma).mean() < 0.35 < gap(1.25 * sigma).mean()


def test_motion_blur_is_a_line_of_its_length_at_its_angle() -> None:
    im = np.zeros((61, 61, 3), np.uint8)
    im[30, 30] = 255
    out = MotionBlur(levels=[15], angle=0).apply(im, 15, None, np.random.default_rng(0))
    ys, xs = np.nonzero(out[:, :, 0])
    assert set(ys.tolist()) == {30} and xs.max() - xs.min() + 1 == 15
    out = MotionBlur(levels=[15], angle=90).apply(im, 15, None, np.random.default_rng(0))
    ys, xs = np.nonzero(out[:, :, 0])
    assert set(xs.tolist()) == {30} and ys.max() - ys.min() + 1 == 15


def test_noise_has_its_sigma_and_is_seeded_per_image() -> None:
    im = np.full((200, 200, 3), 128, np.uint8)
    level = Level(Noise(levels=[20]), 20.0, seed=3)
    a = level.apply(im, "digest-a", None)
    assert (a.astype(float) - 128).std() == pytest.approx(20, rel=0.03)
    assert abs((a.astype(float) - 128).mean()) < 0.5
    assert (level.apply(im, "digest-a", None) == a).all()  # same image, same noise
    assert (level.apply(im, "digest-b", None) != a).any()  # another image, other noise
    assert (Level(Noise(levels=[20]), 20.0, seed=4).apply(im, "digest-a", None) != a).any()


def test_gamma_follows_its_curve() -> None:
    im = np.array([[[0, 64, 128], [192, 255, 32]]], np.uint8)
    out = Gamma(levels=[2.0]).apply(im, 2.0, None, np.random.default_rng(0))
    want = np.rint(255 * (im / 255.0) ** 2.0)
    assert (out == want).all()


@pytest.mark.parametrize("corruption,value", [(Blur(levels=[0]), 0.0), (Noise(levels=[0]), 0.0),
                                              (Gamma(levels=[1]), 1.0),
                                              (MotionBlur(levels=[1]), 1)])
def test_identity_levels_return_the_image_unchanged(corruption, value) -> None:  # noqa: ANN001
    im = face_image()
    assert Level(corruption, value).apply(im, "d", None) is im


def test_dlib_points_give_eyes_and_a_mouth_below_the_nose() -> None:
    # dlib 5: right eye corners (image left), left eye corners, nose base
    p = FacePoints.from_landmarks(np.array([[70, 100], [90, 100], [150, 100], [170, 100],
                                            [120, 140]], np.float64), "dlib5")
    assert p.inter_ocular == pytest.approx(80)
    assert p.mouth[:, 1].min() > p.nose[1]
    assert inside(occluder_polygon(p, "mask"), p.nose)
