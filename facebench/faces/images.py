"""Load image files as BGR ``uint8`` H×W×3 arrays, with clear errors for bad files.

Policy:

- One read and one decode per image: :func:`read_image_file` reads the bytes once (refusing a
  FIFO, socket or device *without opening it for reading*, and a file over
  :data:`MAX_FILE_BYTES` by its size) and :func:`decode_image` decodes them from memory.
- Decoding is OpenCV ``imdecode(IMREAD_COLOR)``: grayscale becomes 3-channel BGR, 16-bit
  samples keep their high byte, CMYK JPEGs are converted to BGR, EXIF orientation is applied,
  and an alpha channel is dropped (the colour stored under it is kept, as Pillow's
  ``convert("RGB")`` does).
- Size limits: an image with a side below :data:`MIN_SIDE` pixels is refused (too small to hold a
  face a detector can find). The size is read from the header (JPEG, PNG, TIFF, WebP, BMP, GIF)
  and an image over :data:`MAX_PIXELS` is refused *before* decoding; a file whose header gives
  no size is never decoded. :func:`decode_image` returns images within the limit at full
  resolution; :func:`decode_reduced` (detection) returns them with the longest side at most
  :data:`DETECT_MAX_SIDE`, decoding a large JPEG at a reduced DCT scale so the full-size image
  is never held, and says by how much to scale coordinates back to the file's.
- Any failure raises :class:`ImageError` naming the file, the reason and what to do.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

#: Smallest accepted side, in pixels.
MIN_SIDE = 16
#: Largest accepted image, in pixels (100 megapixels ≈ 300 MB decoded as BGR).
MAX_PIXELS = 100_000_000
#: Largest accepted image file, in bytes; checked with ``stat`` before anything is read.
MAX_FILE_BYTES = 256 * 2**20
#: Longest side, in pixels, of the image a detector sees; larger images are reduced first and
#: landmarks mapped back (LFW's 250×250 images are far below it).
DETECT_MAX_SIDE = 2048


class ImageError(ValueError):
    """An image file that cannot be used; ``path`` names it and ``reason`` says why."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read and decode ``path`` into a BGR ``uint8`` H×W×3 array (raises :class:`ImageError`)."""
    p = Path(path)
    try:
        data = read_image_file(p)
    except FileNotFoundError:
        raise ImageError(p, "file not found; check the path and the dataset root (--lfw)") from None
    except IsADirectoryError:
        raise ImageError(p, "not a regular file; point at an image file, not a folder") from None
    except OSError as exc:
        raise ImageError(p, f"cannot be read ({exc.strerror}); check its permissions") from exc
    return decode_image(data, str(p), max_pixels=max_pixels)


_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
            (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _mib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _check_file(name: str, st: os.stat_result, max_bytes: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _SPECIAL if test(st.st_mode)), "special file")
        raise ImageError(name, f"not a regular file ({kind}); an image must be a regular "
                         "file: remove it from the image folder or pair list")
    if st.st_size > max_bytes:
        raise ImageError(name, f"file is {_mib(st.st_size)}, over the {_mib(max_bytes)} limit "
                         "for one image; downscale or recompress it")


def read_image_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the image file ``path``, read once.

    A FIFO, socket or device is refused from ``stat`` without being opened for reading (a FIFO
    would block forever), and so is a file over ``max_bytes``; the file is then opened with
    ``O_NONBLOCK`` and checked again on the open descriptor (it may have been replaced). Raises
    :class:`ImageError` for those, ``OSError`` (with its ``errno``) for a missing file, a folder
    or a permission problem."""
    name = str(path)
    _check_file(name, os.stat(name), max_bytes)
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        _check_file(name, st, max_bytes)
        data = f.read(st.st_size + 1)
        if len(data) > st.st_size:  # grew since fstat: read on, within the limit
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise ImageError(name, f"file grew past the {_mib(max_bytes)} limit for one image "
                         "while being read; downscale or recompress it")
    return data


def decode_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes; ``name`` is used in errors (raises :class:`ImageError`)."""
    return _decode(data, name, max_pixels, None)[0]


def decode_reduced(data: bytes, name: str, max_side: int = DETECT_MAX_SIDE,
                   max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """Decode for detection: ``(image, factor)`` with the image's longest side at most
    ``max_side`` and ``factor`` the file's longest side over the image's (1.0 when the image
    was small enough), so ``image_xy * factor`` is in file coordinates. A JPEG is decoded at
    the reduced DCT scale (1/2, 1/4, 1/8) that keeps its longest side at least ``max_side``;
    the rest is an area resize. Raises :class:`ImageError` like :func:`decode_image`."""
    return _decode(data, name, max_pixels, max_side)


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))


def _decode(data: bytes, name: str, max_pixels: int,
            max_side: int | None) -> tuple[np.ndarray, float]:
    if len(data) == 0:
        raise ImageError(name, "zero-byte file; re-download or re-extract it")
    kind = sniff_format(data)
    size = header_size(data)
    if size is None:  # never decode what the header does not size: it could be any size
        if kind is None:
            raise ImageError(
                name, "not an image (unrecognized content); remove it or replace it with a JPEG/PNG"
            )
        raise ImageError(
            name, f"truncated or corrupt {kind} data; re-download or re-extract the file"
        )
    _check_size(name, *size, max_pixels)
    longest = max(size)
    flags = cv2.IMREAD_COLOR
    if max_side is not None and kind == "JPEG" and longest > max_side:
        flags = next((f for k, f in _REDUCED if longest // k >= max_side), flags)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise ImageError(
            name, f"truncated or corrupt {kind} data; re-download or re-extract the file"
        )
    if flags == cv2.IMREAD_COLOR:
        _check_size(name, image.shape[1], image.shape[0], max_pixels)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:  # defensive
        raise ImageError(name, f"decoded to unsupported layout {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    full = max(h, w) if flags == cv2.IMREAD_COLOR else longest
    if max_side is not None and max(h, w) > max_side:
        f = max_side / max(h, w)
        image = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))),
                           interpolation=cv2.INTER_AREA)
    return image, full / max(image.shape[:2])


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
        b"II+\x00": "TIFF",  # BigTIFF
        b"MM\x00+": "TIFF",
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
            if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
                return struct.unpack("<HH", data[18:22])
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if kind == "GIF":
            return struct.unpack("<HH", data[6:10])
        if kind == "WebP":
            return _webp_size(data)
        if kind == "TIFF":
            return _tiff_size(data)
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


_TIFF_INT = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8 (BigTIFF)


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) × ImageLength (257) of the first IFD, the page OpenCV decodes."""
    order = "<" if data[:2] == b"II" else ">"
    (magic,) = struct.unpack(order + "H", data[2:4])
    if magic == 42:
        (ifd,) = struct.unpack(order + "I", data[4:8])
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        first, entry, value = ifd + 2, 12, 8
    else:  # 43: BigTIFF
        (ifd,) = struct.unpack(order + "Q", data[8:16])
        (count,) = struct.unpack(order + "Q", data[ifd : ifd + 8])
        first, entry, value = ifd + 8, 20, 12
    dims: dict[int, int] = {}
    for k in range(min(count, (len(data) - first) // entry)):
        at = first + k * entry
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):
            if kind not in _TIFF_INT:
                return None
            (dims[tag],) = struct.unpack_from(order + _TIFF_INT[kind], data, at + value)
    if 256 in dims and 257 in dims:
        return dims[256], dims[257]
    return None
