"""Hostile inputs (issue 16, items 3, 4 and 7), each through real files and real processes.

- An LFW ``pairs.txt`` whose header is not two positive integers matching the body, a pair
  listed twice (in either order) and a file that is not UTF-8 are errors naming the file and
  line (and, for bad bytes, the offset), in ``pairs.txt`` and pair CSVs alike.
- A FIFO named ``x.jpg`` in a real pair list is a failure to acquire (``not a regular file
  (FIFO)``), never opened for reading: the run finishes.
- Small files that ask for huge memory: an 81-megapixel JPEG (a real LFW face, upscaled) is
  detected on a reduced decode and scored against its original, a 30000² TIFF of a few KB is
  refused from its header, a 3 GiB sparse ``.jpg`` from its size, all in one real run whose
  processes stay under 1 GB; a 38-byte ``.bin`` asking numpy for 1 GiB is refused at once.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from facebench.datasets.identity import load_identity_file
from facebench.datasets.insightface_bin import read_insightface_bin
from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.pairs import DatasetError

from .conftest import Background
from .kit import (
    LFW,
    ROOT,
    Ctx,
    lfw_rows,
    model,
    results,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

#: Longest side images are detected at (``facebench.faces.images.DETECT_MAX_SIDE``).
DETECT_SIDE = 2048
#: Peak RSS allowed to any process of the big-image run (a run of LFW images alone stays far
#: below; the landed code reached 7 GB on the JPEG alone).
MAX_RSS_BYTES = 2**30

# A wrapper process: runs its arguments, then writes the largest RSS (KiB) of any process it
# waited for, directly or below (RUSAGE_CHILDREN), to the file named first.
_PEAK_RSS = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[2:]).returncode; "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN)"
             ".ru_maxrss)); sys.exit(rc)")


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float,
            rss_file: Path | None = None) -> dict[str, Any]:
    """``facebench ARGS`` in its own process group (optionally under the peak-RSS wrapper);
    on ``timeout`` the whole group is killed and ``timed_out`` is set."""
    cmd = [sys.executable, "-m", "facebench.cli", *args]
    if rss_file is not None:
        cmd = [sys.executable, "-c", _PEAK_RSS, str(rss_file), *cmd]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return {"rc": proc.returncode, "stdout": out, "stderr": err, "timed_out": False}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"rc": proc.returncode, "stdout": out, "stderr": err, "timed_out": True}


def copy_real(root: Path, rows: list[tuple[str, str, int, int]]) -> None:
    for a, b, _, _ in rows:
        for rel in (a, b):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(LFW / "images" / rel, root / rel)


def only_cell(out: Path) -> dict[str, Any]:
    (cell,) = results(out)["cells"]
    return cell


def fta_of(cell: dict[str, Any]) -> dict[str, str]:
    return {f["image"]: f["reason"] for f in cell["details"]["fta_images_list"]}


# ---- item 3: pairs.txt and pair CSV checks (in process, then through the CLI) ----------------

LFW_HEADER_CASES = {
    "negative": "-2 -10\n" + "A 1 2\n" * 40,
    "zero_folds": "0 300\nA 1 2\n",
    "zero_per_fold": "10 0\n",
    "plus_sign": "+1 1\nA 1 2\nA 1 B 1\n",
    "one_negative_count": "-1\nA 1 2\nA 1 B 1\n",
}


@pytest.mark.parametrize("text", LFW_HEADER_CASES.values(), ids=LFW_HEADER_CASES.keys())
def test_lfw_header_must_be_positive_integers(tmp_path: Path, text: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_lfw_pairs(path, tmp_path)
    assert f"{path}:1: header" in str(err.value) and "positive integers" in str(err.value)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("1 1\nA 1 2\nA 1 B 1\nA 3 4\n", 4, "pair 3, but the header (line 1) announces 2 pairs"),
    ("2 1\nA 1 2\nA 1 B 1\nA 3 4\n", 4, "ends after 3 pairs, but the header (line 1) announces 4"),
    ("1 1\nA 1 B 1\nA 1 2\n", 2, "expected a genuine ('name i j') pair here"),
    ("1 2\nA 1 2\nA 1 B 1\nA 3 4\nA 2 B 2\n", 3, "expected a genuine ('name i j') pair here"),
])
def test_lfw_body_must_match_the_header(tmp_path: Path, text: str, line: int,
                                        words: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_lfw_pairs(path, tmp_path)
    assert f"{path}:{line}: " in str(err.value) and words in str(err.value)


def test_duplicate_lfw_pair_names_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    # fold 2 repeats fold 1's pairs, the images in the other order (A 3 2 = A 2 3)
    path.write_text("2 2\nA 2 3\nA 1 2\nA 1 B 1\nC 1 D 1\nA 3 2\nA 4 5\nB 1 A 1\nC 1 E 1\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_lfw_pairs(path, tmp_path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:6: pair A/A_0003.jpg / A/A_0002.jpg duplicates line 2")
    assert "remove line 6 or line 2" in msg


def test_duplicate_csv_pair_names_both_lines(tmp_path: Path) -> None:
    path = write_pair_csv(tmp_path / "pairs.csv", [
        ("a/1.jpg", "b/1.jpg", 0, 0), ("a/1.jpg", "a/2.jpg", 1, 0), ("b/1.jpg", "a/1.jpg", 0, 1)])
    with pytest.raises(DatasetError, match=rf"^{path}:4: pair b/1.jpg / a/1.jpg duplicates "
                                           r"line 2 .*remove line 4 or line 2"):
        load_pair_csv(path, tmp_path)


@pytest.mark.parametrize("kind", ["lfw", "csv"])
def test_non_utf8_pair_file_names_file_line_and_offset(tmp_path: Path, kind: str) -> None:
    if kind == "lfw":
        path, head = tmp_path / "pairs.txt", b"1 1\nA 1 2\n"
        path.write_bytes(head + b"Jos\xe9 1 B 1\n")
        load: Any = load_lfw_pairs
    else:
        path, head = tmp_path / "pairs.csv", b"path1,path2,label\na/1.jpg,a/2.jpg,1\n"
        path.write_bytes(head + b"Jos\xe9/1.jpg,b/1.jpg,0\n")
        load = load_pair_csv
    with pytest.raises(DatasetError) as err:
        load(path, tmp_path)
    assert str(err.value).startswith(
        f"{path}:3: not UTF-8 text: byte 0xe9 at offset {len(head) + 3}")


def test_non_utf8_identity_file_names_file_line_and_offset(tmp_path: Path) -> None:
    path, head = tmp_path / "identities.txt", b"a/1.jpg A\n"
    path.write_bytes(head + b"Jos\xe9/1.jpg B\n")
    with pytest.raises(DatasetError) as err:
        load_identity_file(path, tmp_path, check_exists=False)
    assert str(err.value).startswith(
        f"{path}:2: not UTF-8 text: byte 0xe9 at offset {len(head) + 3}")


@scenario(order=9)
def bad_pair_files(ctx: Ctx) -> dict[str, Any]:
    """One suite, three protocols over real LFW images: a negative header, a duplicate pair
    and a Latin-1 pair CSV."""
    d = ctx.dir
    rows = lfw_rows(2, 1)
    body = lambda rs: "".join(  # noqa: E731 - LFW lines from (path1, path2, label) rows
        f"{a.split('/')[0]}\t{int(a[-8:-4])}\t{int(b[-8:-4])}\n" if y else
        f"{a.split('/')[0]}\t{int(a[-8:-4])}\t{b.split('/')[0]}\t{int(b[-8:-4])}\n"
        for a, b, y, _ in rs)
    (d / "negative.txt").write_text("-1 -2\n" + body(rows), encoding="utf-8")
    dup = [rows[0], rows[1], rows[2], rows[2]]
    (d / "duplicate.txt").write_text("1 2\n" + body(dup), encoding="utf-8")
    write_pair_csv(d / "latin1.csv", rows)
    (d / "latin1.csv").write_bytes((d / "latin1.csv").read_bytes() + b"Jos\xe9.jpg,a.jpg,0,0\n")
    protocols = [verification("negative", d / "negative.txt", LFW / "images", kind="lfw_pairs"),
                 verification("duplicate", d / "duplicate.txt", LFW / "images", kind="lfw_pairs"),
                 verification("latin1", d / "latin1.csv", LFW / "images")]
    write_suite(d / "suite.yaml", suite("pairfiles", [model("mfn")], protocols))
    res = run_cli(["run", str(d / "suite.yaml"), "--out", str(d / "out"), "--no-progress"],
                  ctx.env, d, timeout=600)
    return {**res, "dir": d}


def test_bad_pair_files_are_refused_by_the_cli_naming_file_and_line(
        background: Background) -> None:
    res = background.result(scenario_name(bad_pair_files))
    d: Path = res["dir"]
    assert not res["timed_out"]
    # reported up front (exit 2) or as failed cells: either way the message reaches the user
    text = res["stderr"]
    if (d / "out" / "results.json").is_file():
        cells = results(d / "out")["cells"]
        assert all(c["status"] == "failed" for c in cells)
        text += "\n".join((c["error"] or {}).get("message", "") for c in cells)
    assert f"{d / 'negative.txt'}:1: header '-1 -2'" in text
    assert f"{d / 'duplicate.txt'}:5: pair " in text and "duplicates line 4" in text
    assert f"{d / 'latin1.csv'}:6: not UTF-8 text: byte 0xe9 at offset" in text


# ---- item 4: a FIFO among real images ---------------------------------------------------------

@scenario(order=8)
def fifo_image(ctx: Ctx) -> dict[str, Any]:
    d = ctx.dir
    root = d / "images"
    real = lfw_rows(3, 2)
    copy_real(root, real)
    (root / "broken").mkdir()
    fifo = root / "broken" / "x.jpg"
    os.mkfifo(fifo)
    write_pair_csv(d / "pairs.csv", [*real, ("broken/x.jpg", real[0][1], 1, 0)])
    write_suite(d / "suite.yaml", suite("fifo", [model("mfn")],
                                        [verification("csv", d / "pairs.csv", root)]))
    try:
        res = run_cli(["run", str(d / "suite.yaml"), "--out", str(d / "out"), "--no-progress"],
                      ctx.env, d, timeout=240)
    finally:  # a reader left blocked on the FIFO (the landed code) gets EOF and ends;
        with contextlib.suppress(OSError):  # ENXIO: nobody has it open for reading
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    return {**res, "out": d / "out"}


def test_fifo_image_is_an_fta_and_the_run_finishes(background: Background) -> None:
    res = background.result(scenario_name(fifo_image))
    assert not res["timed_out"], "the run hung on the FIFO"
    cell = only_cell(res["out"])
    assert cell["status"] == "ok", cell["error"]
    reason = fta_of(cell)["broken/x.jpg"]
    assert reason.startswith("unreadable: not a regular file (FIFO)"), reason
    assert cell["metrics"]["fta_images"] == 1 and cell["metrics"]["fta_pairs"] == 1


# ---- item 7: small files, huge memory ---------------------------------------------------------

def face_9000(lfw_image: Path) -> np.ndarray:
    """An 81-megapixel photo of an LFW face (about 1.3 MB as JPEG): the 250² image scaled by
    9000 / 2048 onto a plain 9000² canvas, so that reduced for detection (longest side 2048)
    the face is back at its LFW size, where the detector finds the same landmarks."""
    side = round(250 * 9000 / DETECT_SIDE)
    canvas = np.full((9000, 9000, 3), 128, np.uint8)
    at = (9000 - side) // 2
    canvas[at:at + side, at:at + side] = cv2.resize(cv2.imread(str(lfw_image)), (side, side),
                                                    interpolation=cv2.INTER_CUBIC)
    return canvas


def tiff_30000(path: Path) -> None:
    """A valid 30000×30000 1-bit TIFF (CCITT group 4, all white): 900 MP in a few KB."""
    from PIL import Image

    Image.new("1", (30_000, 30_000), 1).save(path, compression="group4")


@scenario(order=2)
def big_images(ctx: Ctx) -> dict[str, Any]:
    d = ctx.dir
    root = d / "images"
    real = lfw_rows(3, 2)
    copy_real(root, real)
    (root / "big").mkdir()
    face = real[0][0]
    cv2.imwrite(str(root / "big/face_9000.jpg"), face_9000(LFW / "images" / face),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    tiff_30000(root / "big/huge.tif")
    with open(root / "big/sparse.jpg", "wb") as f:  # 3 GiB, no blocks on disk
        f.truncate(3 * 2**30)
    extra = [("big/face_9000.jpg", face, 1, 0), ("big/huge.tif", real[1][1], 0, 0),
             ("big/sparse.jpg", real[2][1], 1, 1)]
    write_pair_csv(d / "pairs.csv", [*real, *extra])
    write_suite(d / "suite.yaml", suite("big", [model("mfn")],
                                        [verification("csv", d / "pairs.csv", root)]))
    rss = d / "peak_rss_kib"
    res = run_cli(["run", str(d / "suite.yaml"), "--out", str(d / "out"), "--no-progress"],
                  ctx.env, d, timeout=600, rss_file=rss)
    sizes = {p.name: p.stat().st_size for p in (root / "big").iterdir()}
    peak = int(rss.read_text()) * 1024 if rss.is_file() else None
    return {**res, "out": d / "out", "peak_rss": peak, "sizes": sizes, "pairs": len(real)}


@pytest.fixture(scope="module")
def big(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(big_images))


def test_big_inputs_are_small_files(big: dict[str, Any]) -> None:
    """The probes are what the issue describes: small on disk, huge when decoded or read."""
    sizes = big["sizes"]
    assert sizes["face_9000.jpg"] < 8 * 2**20 and sizes["huge.tif"] < 2**20
    assert sizes["sparse.jpg"] == 3 * 2**30


def test_big_images_are_fta_or_acquired_and_the_cell_completes(big: dict[str, Any]) -> None:
    assert not big["timed_out"]
    cell = only_cell(big["out"])
    assert cell["status"] == "ok", cell["error"]
    fta = fta_of(cell)
    assert fta["big/huge.tif"].startswith("bad image: image is 30000×30000 = 900 MP, over the "
                                          "100 MP limit"), fta
    assert fta["big/sparse.jpg"].startswith("unreadable: file is 3.0 GiB, over the 256 MiB "
                                            "limit for one image"), fta
    assert "big/face_9000.jpg" not in fta  # detected on a reduced decode
    assert cell["metrics"]["fta_images"] == 2


def test_81_megapixel_face_scores_like_its_original(big: dict[str, Any]) -> None:
    """Landmarks found on the reduced image align the same face: the 81-megapixel photo of an
    LFW face against the LFW image itself is a near-identical embedding."""
    cell = only_cell(big["out"])
    with open(big["out"] / cell["artifacts"]["scores"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[big["pairs"]]["score"]) > 0.9


def test_big_image_run_stays_under_1_gb(big: dict[str, Any]) -> None:
    assert big["peak_rss"] is not None, big["stderr"][-2000:]
    assert big["peak_rss"] < MAX_RSS_BYTES, f"peak RSS {big['peak_rss'] / 2**20:.0f} MiB"


# ---- item 7(d): a tiny .bin that asks the unpickler for gigabytes -----------------------------

def _bin_object_array() -> bytes:
    """``((a, a), [True])`` with ``a = numpy.ndarray((2**27,), "O")``: 38 bytes of protocol 2
    that ask for 1 GiB of object pointers (numpy fills them)."""
    return (b"\x80\x02cnumpy\nndarray\nJ" + struct.pack("<i", 2**27)
            + b"\x85U\x01O\x86Rq\x00h\x00\x86]\x88a\x86.")


def _bin_uint8_array() -> bytes:
    """The same with ``a = _reconstruct(ndarray, (2**29,), "B")``: 74 bytes for 512 MiB that
    the loader would copy out as image bytes, once per reference."""
    return (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nJ"
            + struct.pack("<i", 2**29) + b"\x85U\x01B\x87Rq\x00h\x00\x86]\x88a\x86.")


@pytest.mark.parametrize("make", [_bin_object_array, _bin_uint8_array],
                         ids=["object_array", "uint8_array"])
def test_tiny_bin_is_refused_with_bounded_memory(tmp_path: Path, make: Any) -> None:
    path = tmp_path / "lfw.bin"
    path.write_bytes(make())
    assert path.stat().st_size < 80
    code = ("import sys\n"
            "from facebench.datasets.insightface_bin import read_insightface_bin\n"
            "from facebench.datasets.pairs import DatasetError\n"
            "try:\n    read_insightface_bin(sys.argv[1]); print('LOADED')\n"
            "except DatasetError as exc:\n    print(exc)\n")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    rss = tmp_path / "peak_rss_kib"  # measured by a fresh wrapper (exec keeps a fork's peak)
    res = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(rss), sys.executable, "-c", code,
                          str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    peak = int(rss.read_text()) * 1024
    assert peak < 300 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
    assert res.stdout.startswith(f"{path}: refused to load: ")
    assert "may allocate at most" in res.stdout
    with pytest.raises(DatasetError, match="refused to load"):
        read_insightface_bin(path)
