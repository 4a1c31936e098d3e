"""Load image files as BGR ``uint8`` H×W×3 arrays, with clear errors for bad files.

Policy:

- One decode per image: :func:`load_image` reads the bytes once and calls :func:`decode_image`.
- Decoding is OpenCV ``imdecode(IMREAD_COLOR)``: grayscale becomes 3-channel BGR, 16-bit
  samples keep their high byte, CMYK JPEGs are converted to BGR, EXIF orientation is applied,
  and an alpha channel is dropped (the colour stored under it is kept, as Pillow's
  ``convert("RGB")`` does).
- Size limits: an image with a side below :data:`MIN_SIDE` pixels is refused (too small to hold a
  face a detector can find). An image over :data:`MAX_PIXELS` is refused *before* decoding when
  its header (PNG, JPEG, BMP, GIF, WebP) gives the size, else right after. Images within the
  limit are returned at full resolution, never resized here: downscaling is the detector's
  business (``RetinaFace(max_size=...)``), so landmarks stay in file coordinates.
- Any failure raises :class:`ImageError` naming the file, the reason and what to do.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

#: Smallest accepted side, in pixels.
MIN_SIDE = 16
#: Largest accepted image, in pixels (100 megapixels ≈ 300 MB decoded as BGR).
MAX_PIXELS = 100_000_000


class ImageError(ValueError):
    """An image file that cannot be used; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode ``path`` into a BGR ``uint8`` H×W×3 array (raises :class:`ImageError`)."""
    p = Path(path)
    if not p.exists():
        raise ImageError(p, "file not found; check the path and the dataset root (--lfw)")
    if not p.is_file():
        raise ImageError(p, "not a regular file; point at an image file, not a folder")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(p, f"cannot be read ({exc.strerror}); check its permissions") from exc
    return decode_image(data, str(p), max_pixels=max_pixels)


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes; ``name`` is used in errors (raises :class:`ImageError`)."""
    if len(data) == 0:
        raise ImageError(name, "zero-byte file; re-download or re-extract it")
    kind = sniff_format(data)
    size = header_size(data)
    if size is not None:
        _check_size(name, *size, max_pixels)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        if kind is None:
            raise ImageError(
                name, "not an image (unrecognized content); remove it or replace it with a JPEG/PNG"
            )
        raise ImageError(
            name, f"truncated or corrupt {kind} data; re-download or re-extract the file"
        )
    _check_size(name, image.shape[1], image.shape[0], max_pixels)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:  # defensive
        raise ImageError(name, f"decoded to unsupported layout {image.dtype} {image.shape}")
    return image


def _check_size(name: str, width: int, height: int, max_pixels: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            name,
            f"image is {width}×{height}, below the {MIN_SIDE}-pixel minimum side; "
            "use a larger original",
        )
    if width * height > max_pixels:
        raise ImageError(
            name,
            f"image is {width}×{height} = {width * height / 1e6:.0f} MP, over the "
            f"{max_pixels / 1e6:.0f} MP limit; downscale it first or raise max_pixels",
        )


def sniff_format(data: bytes) -> str | None:
    """Container format from magic bytes (``"JPEG"``, ``"PNG"``, …) or ``None`` if unknown."""
    signatures = {
        b"\xff\xd8\xff": "JPEG",
        b"\x89PNG\r\n\x1a\n": "PNG",
        b"BM": "BMP",
        b"GIF87a": "GIF",
        b"GIF89a": "GIF",
        b"II*\x00": "TIFF",
        b"MM\x00*": "TIFF",
    }
    for magic, kind in signatures.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the file header without decoding, or ``None`` if unknown."""
    try:
        kind = sniff_format(data)
        if kind == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if kind == "JPEG":
            return _jpeg_size(data)
        if kind == "BMP":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if kind == "GIF":
            return struct.unpack("<HH", data[6:10])
        if kind == "WebP":
            return _webp_size(data)
    except struct.error:  # header cut short: let the decoder report it
        return None
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        if marker in (0xDA, 0xD9):  # scan or end of image before any frame header
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None
