"""insightface .bin: real aligned LFW crops round-trip; unsafe or malformed files are refused."""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facebench.datasets.insightface_bin import (
    load_insightface_bin,
    read_insightface_bin,
    write_insightface_bin,
)
from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pairs import DatasetError


@pytest.fixture(scope="module")
def lfw_bin_parts(lfw_dir: Path,
                  align_lfw: Callable[[Path], np.ndarray]) -> tuple[list[bytes], list[bool]]:
    """20 real LFW images (5 genuine + 5 impostor View 2 pairs) aligned to 112×112, as JPEG."""
    ps = load_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images", max_folds=1)
    chosen = list(range(5)) + list(range(300, 305))
    images: list[bytes] = []
    for i in chosen:
        for idx in (ps.left[i], ps.right[i]):
            crop = align_lfw(ps.images[idx])
            assert crop.shape == (112, 112, 3)
            ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            images.append(buf.tobytes())
    return images, [bool(ps.labels[i]) for i in chosen]


def _decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_real_crops_round_trip(tmp_path: Path,
                               lfw_bin_parts: tuple[list[bytes], list[bool]]) -> None:
    images, issame = lfw_bin_parts
    path = write_insightface_bin(tmp_path / "lfw_small.bin", images, issame)
    ps = load_insightface_bin(path, tmp_path / "extract", folds=5)
    assert ps.n_pairs == 10 and len(ps.images) == 20
    assert ps.labels.tolist() == [1] * 5 + [0] * 5
    assert ps.folds.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert ps.left.tolist() == list(range(0, 20, 2)) and ps.right.tolist() == list(range(1, 20, 2))
    assert ps.checksum == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ps.info["image_sizes"] == {"112x112": 20} and ps.info["extracted_now"]
    for k, img_path in enumerate(ps.images):
        assert img_path.suffix == ".png" and img_path.parent == ps.root
        np.testing.assert_array_equal(cv2.imread(str(img_path)), _decoded(images[k]))
    again = load_insightface_bin(path, tmp_path / "extract", folds=5)  # cached extraction
    assert not again.info["extracted_now"] and again.images == ps.images
    default = load_insightface_bin(path, tmp_path / "extract")
    assert default.folds.tolist() == list(range(10))


def test_cache_is_content_keyed(tmp_path: Path,
                                lfw_bin_parts: tuple[list[bytes], list[bool]]) -> None:
    images, issame = lfw_bin_parts
    a = load_insightface_bin(write_insightface_bin(tmp_path / "a.bin", images, issame), tmp_path)
    b = load_insightface_bin(write_insightface_bin(tmp_path / "b.bin", images, issame), tmp_path)
    assert a.root == b.root and not b.info["extracted_now"]
    flipped = [not s for s in issame]
    c = load_insightface_bin(write_insightface_bin(tmp_path / "c.bin", images, flipped), tmp_path)
    assert c.root != a.root and c.labels.tolist() == [0] * 5 + [1] * 5
    (a.root / "00003.png").unlink()  # a damaged extraction is redone
    assert load_insightface_bin(tmp_path / "a.bin", tmp_path).info["extracted_now"]


def _binstring(b: bytes) -> bytes:
    return b"T" + struct.pack("<i", len(b)) + b


def _py2_array(data: bytes) -> bytes:
    """A 1-D uint8 array as Python 2 numpy pickled it (numpy.core, byte-string state)."""
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            b"(K\x01J" + struct.pack("<i", len(data)) + b"\x85cnumpy\ndtype\nU\x02u1K\x00K\x01"
            b"\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
            + _binstring(data) + b"tb")


def test_python2_pickle(tmp_path: Path, lfw_bin_parts: tuple[list[bytes], list[bool]]) -> None:
    """The original insightface .bin files are Python 2 pickles of byte strings."""
    images, issame = lfw_bin_parts
    items = b"".join(_binstring(b) if i % 3 else _py2_array(b) for i, b in enumerate(images))
    flags = b"".join(b"\x88" if s else b"\x89" for s in issame)
    path = tmp_path / "py2.bin"
    path.write_bytes(b"\x80\x02](" + items + b"e](" + flags + b"e\x86.")
    assert read_insightface_bin(path) == (images, issame)


@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_array_bins(tmp_path: Path, lfw_bin_parts: tuple[list[bytes], list[bool]],
                          protocol: int) -> None:
    images, issame = lfw_bin_parts
    bins = [np.frombuffer(b, np.uint8) for b in images]
    path = tmp_path / "np.bin"
    path.write_bytes(pickle.dumps((bins, np.array(issame)), protocol=protocol))
    assert read_insightface_bin(path) == (images, issame)


class _Payload:
    def __init__(self, target: Path, how: str) -> None:
        self.target, self.how = target, how

    def __reduce__(self) -> tuple[Any, ...]:
        if self.how == "system":
            return (os.system, (f"touch {self.target}",))
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("how", ["system", "open"])
def test_code_executing_bin_is_refused(tmp_path: Path, how: str) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.bin"
    path.write_bytes(pickle.dumps(([b"a", _Payload(target, how)], [True]), protocol=2))
    with pytest.raises(DatasetError) as err:
        load_insightface_bin(path, tmp_path / "extract")
    assert str(path) in str(err.value) and "forbidden global" in str(err.value)
    assert ("system" if how == "system" else "open") in str(err.value)
    assert not target.exists() and not (tmp_path / "extract").exists()


class Sneaky:
    pass


def test_class_instance_bin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.bin"
    path.write_bytes(pickle.dumps(([b"a", Sneaky()], [True])))
    with pytest.raises(DatasetError, match=rf"{Sneaky.__module__}\.Sneaky"):
        read_insightface_bin(path)


@pytest.mark.parametrize(
    ("obj", "words"),
    [
        ({"a": 1}, "expected the tuple (bins, issame_list)"),
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([], []), "no pairs"),
        (([b"a", 5], [True]), "bins[1] is int"),
        (([b"a", b"b"], ["yes"]), "issame_list[0]"),
    ],
)
def test_malformed_bin(tmp_path: Path, obj: Any, words: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(DatasetError) as err:
        read_insightface_bin(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_undecodable_image_and_garbage(tmp_path: Path) -> None:
    path = write_insightface_bin(tmp_path / "x.bin", [b"not a jpeg", b"nope"], [False])
    with pytest.raises(DatasetError, match=r"bins\[0\] \(pair 0, 10 bytes\): not an image"):
        load_insightface_bin(path, tmp_path / "extract", folds=1)
    assert not any((tmp_path / "extract").iterdir())  # no partial extraction left
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(DatasetError, match="not a readable pickle"):
        read_insightface_bin(garbage)
    with pytest.raises(DatasetError, match="cannot split 1 pairs into 10 folds"):
        load_insightface_bin(path, tmp_path / "extract")
