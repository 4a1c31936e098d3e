"""``facebench.faces.images`` on real broken and unusual files made from an LFW JPEG."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facebench.faces.images import MAX_PIXELS, ImageError, decode_image, header_size, load_image


@pytest.fixture(scope="module")
def jpeg(lfw_dir: Path) -> Path:
    return lfw_dir / "images" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg"


@pytest.fixture(scope="module")
def reference(jpeg: Path) -> np.ndarray:
    return cv2.imread(str(jpeg), cv2.IMREAD_COLOR)


def check_bgr(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape == (*shape, 3)


def test_real_lfw_jpeg(jpeg, reference):
    image = load_image(jpeg)
    check_bgr(image, (250, 250))
    np.testing.assert_array_equal(image, reference)
    assert header_size(jpeg.read_bytes()) == (250, 250)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda data: b"", "zero-byte"),
        (lambda data: data[: len(data) // 2], "truncated or corrupt JPEG"),
        (lambda data: data[:-2], "truncated or corrupt JPEG"),
        (lambda data: b"name,score\nAbel,0.9\n" * 20, "not an image"),
        (lambda data: b"\x89PNG\r\n\x1a\n" + data[8:200], "PNG"),
    ],
    ids=["zero-byte", "half-jpeg", "no-eoi", "text", "fake-png"],
)
def test_broken_files_raise_image_error(tmp_path, jpeg, make, reason):
    path = tmp_path / "broken.jpg"
    path.write_bytes(make(jpeg.read_bytes()))
    with pytest.raises(ImageError, match=reason) as err:
        load_image(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path)


def test_grayscale_png_and_jpeg_become_bgr(tmp_path, reference):
    gray = cv2.cvtColor(reference, cv2.COLOR_BGR2GRAY)
    for ext in (".png", ".jpg"):
        path = tmp_path / f"gray{ext}"
        cv2.imwrite(str(path), gray)
        image = load_image(path)
        check_bgr(image, gray.shape)
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        assert np.abs(image[..., 0].astype(int) - gray).mean() < (0.01 if ext == ".png" else 2)


def test_bgra_png_drops_alpha(tmp_path, reference):
    alpha = np.full(reference.shape[:2], 100, np.uint8)
    path = tmp_path / "bgra.png"
    cv2.imwrite(str(path), np.dstack([reference, alpha]))
    np.testing.assert_array_equal(load_image(path), reference)


def test_sixteen_bit_png_keeps_high_byte(tmp_path, reference):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), reference.astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_image(path), reference)
    gray16 = tmp_path / "deep_gray.png"
    cv2.imwrite(str(gray16), reference[..., 1].astype(np.uint16) * 257)
    image = load_image(gray16)
    check_bgr(image, reference.shape[:2])
    np.testing.assert_array_equal(image[..., 2], reference[..., 1])


def test_cmyk_jpeg_converts_to_bgr(tmp_path, jpeg, reference):
    pil = pytest.importorskip("PIL.Image", reason="Pillow writes the CMYK JPEG for this test")
    buf = io.BytesIO()
    pil.open(jpeg).convert("CMYK").save(buf, "JPEG", quality=95)
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(buf.getvalue())
    assert pil.open(path).mode == "CMYK"
    image = load_image(path)
    check_bgr(image, (250, 250))
    assert np.abs(image.astype(int) - reference).mean() < 3  # colours survive, channels not swapped


def test_tiny_image_is_refused(tmp_path, reference):
    path = tmp_path / "tiny.png"
    cv2.imwrite(str(path), cv2.resize(reference, (10, 10), interpolation=cv2.INTER_AREA))
    with pytest.raises(ImageError, match="10×10.*16-pixel minimum"):
        load_image(path)


def test_large_image_decodes_at_full_size_or_is_capped(tmp_path, reference):
    path = tmp_path / "large.jpg"
    cv2.imwrite(str(path), cv2.resize(reference, (6000, 6000)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    check_bgr(load_image(path), (6000, 6000))  # 36 MP: under the 100 MP default
    with pytest.raises(ImageError, match="36 MP, over the 10 MP limit"):
        load_image(path, max_pixels=10_000_000)


def test_header_over_limit_is_refused_before_decoding():
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    assert header_size(bomb) == (20000, 20000)
    assert MAX_PIXELS < 20000 * 20000
    with pytest.raises(ImageError, match="bomb.png: image is 20000×20000"):
        decode_image(bomb, "bomb.png")
