"""Broken images in a real pair list: each is a failure to acquire (FtA) with its reason in
``details.fta_images_list``, its pairs are marked FtA, and the run completes. Grayscale and
CMYK JPEGs are valid images: they are decoded, aligned and scored like any other."""

from __future__ import annotations

import csv
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from .conftest import Background
from .kit import (
    LFW,
    Ctx,
    cells_by_id,
    lfw_rows,
    model,
    run_suite,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

#: Broken file → the exact FtA reason (images are named relative to the image root).
BROKEN = {
    "broken/zero.jpg": "bad image: zero-byte file; re-download or re-extract it",
    "broken/truncated.jpg":
        "bad image: truncated or corrupt JPEG data; re-download or re-extract the file",
    "broken/not_an_image.jpg":
        "bad image: not an image (unrecognized content); remove it or replace it with a JPEG/PNG",
    "broken/huge.png": "bad image: image is 10001×10001 = 100 MP, over the 100 MP limit; "
                       "downscale it first or raise max_pixels",
    "broken/tiny.png":
        "bad image: image is 8×8, below the 16-pixel minimum side; use a larger original",
    "broken/missing.jpg": "unreadable: No such file or directory",
    "broken/folder.jpg": "unreadable: Is a directory",
}
#: Valid but unusual encodings: decoded to BGR and kept.
VALID = ("odd/grayscale.jpg", "odd/cmyk.jpg")


def huge_png(path: Path, side: int = 10_001) -> None:
    """A real, valid 1-bit PNG of ``side``² pixels (100.02 MP, ~12 KB on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + b"\xff" * ((side + 7) // 8)
    raw = zlib.compress(row * side, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw)
                     + chunk(b"IEND", b""))


@scenario(order=7)
def broken_images(ctx: Ctx) -> Path:
    d = ctx.dir
    root = d / "images"
    real = lfw_rows(3, 2)  # 12 real pairs, both labels in both folds
    for a, b, _, _ in real:
        for rel in (a, b):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(LFW / "images" / rel, root / rel)
    sample = root / real[0][0]
    (root / "broken").mkdir()
    (root / "odd").mkdir()
    (root / "broken/zero.jpg").write_bytes(b"")
    data = sample.read_bytes()
    (root / "broken/truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "broken/not_an_image.jpg").write_text("<html>not a picture</html>\n")
    huge_png(root / "broken/huge.png")
    cv2.imwrite(str(root / "broken/tiny.png"), np.full((8, 8, 3), 128, np.uint8))
    (root / "broken/folder.jpg").mkdir()
    gray = cv2.cvtColor(cv2.imread(str(sample)), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(root / "odd/grayscale.jpg"), gray)
    Image.open(sample).convert("CMYK").save(root / "odd/cmyk.jpg", quality=95)
    assert Image.open(root / "odd/cmyk.jpg").mode == "CMYK"
    # each broken image against a real one; the odd ones against the sample's genuine partner
    extra = [(bad, real[k % len(real)][1], k % 2, k % 2) for k, bad in enumerate(BROKEN)]
    extra += [(odd, real[0][1], 1, 0) for odd in VALID]
    write_pair_csv(d / "pairs.csv", real + extra)
    write_suite(d / "suite.yaml", suite("images", [model("mfn")],
                                        [verification("csv", d / "pairs.csv", root)]))
    return run_suite(ctx, d / "suite.yaml")


@pytest.fixture(scope="module")
def run(background: Background) -> Path:
    return background.result(scenario_name(broken_images))


def test_every_broken_image_is_an_fta_with_its_reason(run: Path) -> None:
    (cell,) = cells_by_id(run).values()
    assert cell["status"] == "ok", cell["error"]
    fta = {f["image"]: f["reason"] for f in cell["details"]["fta_images_list"]}
    assert fta == BROKEN
    assert cell["metrics"]["fta_images"] == len(BROKEN)


def test_fta_pairs_are_marked_and_the_rest_scored(run: Path) -> None:
    (cell,) = cells_by_id(run).values()
    m = cell["metrics"]
    assert m["pairs"] == 12 + len(BROKEN) + len(VALID)
    assert m["fta_pairs"] == len(BROKEN)
    assert m["images"] == cell["details"]["acquire"]["acquired"] + len(BROKEN)
    with open(run / cell["artifacts"]["scores"], newline="") as f:
        rows = list(csv.DictReader(f))
    fta_rows = [r for r in rows if r["fta"] in ("1", "True")]
    assert len(fta_rows) == len(BROKEN)
    assert all(r["score"] == "" for r in fta_rows)
    assert all(np.isfinite(float(r["score"])) for r in rows if r not in fta_rows)


def test_grayscale_and_cmyk_are_decoded_and_scored(run: Path) -> None:
    (cell,) = cells_by_id(run).values()
    fta = {f["image"] for f in cell["details"]["fta_images_list"]}
    assert not fta & set(VALID)
    with open(run / cell["artifacts"]["scores"], newline="") as f:
        rows = list(csv.DictReader(f))
    original, gray, cmyk = (float(rows[i]["score"]) for i in (0, -2, -1))  # three encodings
    assert cmyk == pytest.approx(original, abs=0.02)
    assert gray == pytest.approx(original, abs=0.15)
