"""Dataset readers under hostile files (issue 27, items 2, 7 and 10), with real files and
real processes.

- Item 2: a small ``.bin`` whose objects would take far more memory than the file (a stride-0
  array viewing one byte as millions, views of one buffer rebuilt many times, object arrays,
  lists nested thousands deep, a memo or a list filled one byte per slot, …) is refused with
  one line naming the file, and the reader's peak memory stays under 8 × the file's size +
  1 MiB (measured in a child process, over an interpreter that has already imported
  facebench and read a real ``.bin``).
- Item 7: a symlink from the image root to a file or folder outside it, in an identity folder
  or an ijb ``loose_crop/``, is refused as a pair CSV refuses it (the cell fails with a
  DatasetError naming the link); a link that stays inside the root is followed.
- Item 10: an LFW dev file (``pairsDevTest.txt``: one count header, N genuine then N impostor
  lines) runs: one threshold chosen on all its pairs (``threshold_policy: all_data``),
  reproduced from the saved scores.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.datasets.identity import load_distractors, load_identity_folder
from facebench.datasets.ijb import load_ijb
from facebench.datasets.insightface_bin import write_insightface_bin
from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pairs import DatasetError
from facebench.metrics import compute_verification_metrics
from facebench.scores import read_scores

from .conftest import Background
from .kit import (
    LFW,
    ROOT,
    Ctx,
    cells_by_id,
    model,
    run_suite,
    scenario,
    scenario_name,
    suite,
    verification,
    write_suite,
)

# ---- item 2: small .bin files that ask for huge memory -----------------------------------------

MIB = 2**20


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _int(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _bytes(b: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(b)) + b  # BINBYTES


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + _tuple(*args) + b"R"


def _ndarray(shape: tuple[int, ...], dtype: str, buffer: bytes,
             strides: tuple[int, ...] | None = None) -> bytes:
    """``numpy.ndarray(shape, dtype, buffer, 0, strides)``: a view of ``buffer``."""
    args = [_tuple(*map(_int, shape)), _str(dtype)]
    if buffer:
        args += [_bytes(buffer), _int(0)]
        if strides is not None:
            args.append(_tuple(*map(_int, strides)))
    return _call(_global("numpy", "ndarray"), *args)


def _bin(bins: bytes, issame: bytes) -> bytes:
    """A protocol-4 pickle of ``(bins, issame)`` from the opcodes of each."""
    return b"\x80\x04" + bins + issame + b"\x86."


#: Two one-byte images and one genuine pair, where the other part is the attack.
TWO_IMAGES = b"](" + _bytes(b"x") + _bytes(b"y") + b"e"
ONE_PAIR = b"](\x88e"
PAIRS_1000 = b"](" + b"\x88" * 1000 + b"e"


def _twice(item: bytes) -> bytes:
    """``[item, item]``: one object named twice (``MEMOIZE`` then ``BINGET 0``); ``item`` must
    memoize nothing itself."""
    return b"](" + item + b"\x94h\x00e"


def _repeated(setup: list[bytes], call: bytes, times: int) -> bytes:
    """``[call, call, …]``: ``setup`` objects memoized as 0, 1, …, then ``call`` (which names
    them with ``BINGET``) ``times`` over, each call making a new object."""
    memo = b"".join(obj + b"\x94" for obj in setup)
    return b"](" + memo + b"0" * len(setup) + call * times + b"e"  # POP: memoized, not listed


def _nested(depth: int) -> bytes:
    """A list nested ``depth`` deep (``[[[…]]]``)."""
    return b"]" * depth + b"a" * (depth - 1)


class _Call:
    """Pickles as ``func(*args)``: how a crafted file calls an allowed global."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


#: numpy's own scalar constructor (``numpy._core.multiarray.scalar``), as its pickles name it.
SCALAR = np.float64(0).__reduce__()[0]

#: name → (the .bin's bytes, words its one-line refusal contains).
VARIANTS: dict[str, tuple[bytes, str]] = {
    # a one-byte buffer viewed as 16 MiB, both images of the pair: tobytes() would copy it
    "stride0_bytes": (_bin(_twice(_ndarray((2**24,), "B", b"x", (0,))), ONE_PAIR),
                      "numpy.ndarray would allocate 16,777,216 bytes"),
    # the labels as a stride-0 bool array of 4M: tolist() would make 32 MiB of list
    "stride0_issame": (_bin(TWO_IMAGES, _ndarray((2**22,), "?", b"\x01", (0,))),
                       "numpy.ndarray would allocate 4,194,304 bytes"),
    "stride0_2d": (_bin(TWO_IMAGES, _ndarray((2**18, 8), "B", b"\x01", (0, 0))),
                   "numpy.ndarray would allocate 2,097,152 bytes"),
    # small enough for the budget, but a view the file cannot bound all the same
    "stride0_small": (_bin(TWO_IMAGES, _ndarray((1000,), "?", b"\x01", (0,))),
                      "array viewing its memory with strides (0,): its elements overlap"),
    "huge_shape_small_buffer": (_bin(_twice(_ndarray((2**40,), "B", b"x")), ONE_PAIR),
                                "numpy.ndarray would allocate 1,099,511,627,776 bytes"),
    "object_array": (_bin(TWO_IMAGES, _ndarray((1000,), "O", b"")),
                     "numpy.ndarray would hold Python objects (dtype object)"),
    # 100,000 object pointers (filled with None): 800 KB from a 60-byte file
    "object_array_big": (_bin(TWO_IMAGES, _ndarray((100_000,), "O", b"")),
                         "numpy.ndarray would allocate 800,000 bytes"),
    # a structured scalar with an object field: numpy raises RuntimeError on it
    "object_scalar": (pickle.dumps(([b"x", b"y"], [_Call(SCALAR, np.dtype([("a", "O")]),
                                                         b"\x00" * 8)]), protocol=4),
                      "numpy scalar would hold Python objects"),
    # views of one 64 KiB payload, rebuilt 2000 times with numpy's own _frombuffer
    "frombuffer_views": (_bin(_repeated(
        [_global("numpy._core.numeric", "_frombuffer"), _bytes(bytes(range(256)) * 256),
         _str("u1"), _tuple(_int(65536)), _str("C")],
        b"h\x00(h\x01h\x02h\x03h\x04tR", 2000), PAIRS_1000), "_frombuffer would allocate"),
    # one 60,000-character text turned into bytes 2000 times (protocol 2's bytes)
    "bytes_via_reduce": (_bin(_repeated(
        [_global("_codecs", "encode"), _str("\xe9" * 60_000), _str("latin1")],
        b"h\x00(h\x01h\x02tR", 2000), PAIRS_1000), "_codecs.encode would allocate"),
    # lists nested 3000 deep: a repr() would end in RecursionError
    "nested_lists": (_bin(TWO_IMAGES, b"](" + _nested(3000) + b"e"),
                     "issame_list[0] is list; expected a bool"),
    "nested_lists_deep": (_bin(b"](" + _nested(200_000) + b"e", ONE_PAIR),
                          "EMPTY_LIST would allocate"),
    # a 24,000-bit int: its repr() raises ValueError (int string conversion limit)
    "huge_int": (_bin(TWO_IMAGES, b"](\x8b" + struct.pack("<i", 3000) + b"\x01" * 3000 + b"e"),
                 "issame_list[0] is int; expected a bool"),
    # one byte per memo entry (~70 bytes each) and per list slot (8 + 8 on the stack)
    "memo_growth": (b"\x80\x04N" + b"\x94" * 400_000 + b".", "MEMOIZE would allocate"),
    "long_list": (_bin(TWO_IMAGES, b"](" + b"\x88" * 1_000_000 + b"e"), "would allocate"),
}

#: Small files that take the reader through each way of refusing, read before measuring.
WARM_UP = [
    _bin(TWO_IMAGES, _ndarray((2**30,), "B", b"x")),
    _bin(TWO_IMAGES, _ndarray((10,), "B", b"x", (0,))),
    _bin(TWO_IMAGES, b"](" + b"\x88" * 3 + b"e"),
    _bin(TWO_IMAGES, b"](]e"),
]

# Each hostile file is read in a child forked from one interpreter that imported facebench: the
# child first reads a real .bin and the WARM_UP files and collects garbage (so the library code
# and data a read touches are paged in and what it allocates once is there), resets its peak
# RSS (/proc/self/clear_refs), then reads the file. Reported: peak RSS minus RSS before the
# read, and the reader's one-line error (or the traceback it must not give).
_DRIVER = r"""
import gc, json, os, re, sys
from facebench.datasets.insightface_bin import read_insightface_bin
from facebench.datasets.pairs import DatasetError

def status(key):
    text = open("/proc/self/status").read()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1)) * 1024

def read(path):
    try:
        read_insightface_bin(path)
        return "LOADED"
    except DatasetError as exc:
        return str(exc)

warm, hostile = json.loads(sys.argv[1]), sys.argv[2:]
out = {}
for path in hostile:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        for p in warm:
            read(p)
        gc.collect()  # a collection pages in the type objects of every loaded library
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        base = status("VmRSS")
        try:
            message = read(path)
        except BaseException as exc:
            message = f"TRACEBACK {type(exc).__name__}: {exc}"
        report = {"increase": status("VmHWM") - base, "message": message[:3000]}
        os.write(w, json.dumps(report).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 16):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    out[path] = json.loads(data) if data else {"increase": None, "message": "child died"}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hostile_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    d = tmp_path_factory.mktemp("hostile-bins")
    faces = sorted((LFW / "images" / "Abel_Pacheco").glob("*.jpg"))[:2]
    warm = [write_insightface_bin(d / "real.bin", [f.read_bytes() for f in faces], [True])]
    for k, data in enumerate(WARM_UP):
        warm.append(d / f"warm{k}.bin")
        warm[-1].write_bytes(data)
    paths = {}
    for name, (data, _) in VARIANTS.items():
        paths[name] = d / f"{name}.bin"
        paths[name].write_bytes(data)
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(ROOT))}
    res = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(list(map(str, warm))),
                          *map(str, paths.values())],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout)
    return {name: {**got[str(p)], "path": p, "size": p.stat().st_size}
            for name, p in paths.items()}


@pytest.mark.parametrize("name", VARIANTS)
def test_hostile_bin_is_refused_in_one_line(hostile_bins: dict[str, dict[str, Any]],
                                            name: str) -> None:
    got = hostile_bins[name]
    message = got["message"]
    assert message.startswith(f"{got['path']}: "), message
    assert VARIANTS[name][1] in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", VARIANTS)
def test_hostile_bin_memory_stays_under_8x_its_size(hostile_bins: dict[str, dict[str, Any]],
                                                    name: str) -> None:
    got = hostile_bins[name]
    bound = 8 * got["size"] + MIB
    assert got["increase"] is not None, got["message"]
    assert got["increase"] < bound, (
        f"{name}: {got['size']:,}-byte file, peak RSS +{got['increase']:,} bytes "
        f"(bound {bound:,}); {got['message'][:300]}")


# ---- items 7 and 10: links out of the image root; the LFW dev-file format, through a real run -

#: Real LFW images: three identities with two each.
PEOPLE = {"Aaron_Peirsol": ("0001", "0003"), "Abdullah_Gul": ("0001", "0006"),
          "Abel_Pacheco": ("0001", "0004")}
#: The folder, outside every image root, that the links point into.
ELSEWHERE = "elsewhere"
#: Genuine and impostor pairs of the dev file (the first ones of LFW View 2).
DEV_PAIRS = 10


def _lfw(name: str, number: str) -> Path:
    return LFW / "images" / name / f"{name}_{number}.jpg"


def identity_folder(root: Path) -> Path:
    """``root/<identity>/<image>``: copies of the real images of PEOPLE."""
    for name, numbers in PEOPLE.items():
        (root / name).mkdir(parents=True)
        for n in numbers:
            shutil.copyfile(_lfw(name, n), root / name / _lfw(name, n).name)
    return root


def ijb_dataset(root: Path, link_b: Path | None = None) -> Path:
    """An ijb dataset of two one-face templates (real LFW images as loose crops, landmarks near
    LFW's centred face) and one impostor pair; ``link_b``: ``loose_crop/b.jpg`` is a symlink
    to it instead of a copy."""
    (root / "meta").mkdir(parents=True)
    crops = root / "loose_crop"
    crops.mkdir()
    shutil.copyfile(_lfw("Aaron_Peirsol", "0001"), crops / "a.jpg")
    if link_b is None:
        shutil.copyfile(_lfw("Abdullah_Gul", "0001"), crops / "b.jpg")
    else:
        (crops / "b.jpg").symlink_to(link_b)
    points = "106 115 144 115 125 135 110 155 140 155"
    (root / "meta" / "x_face_tid_mid.txt").write_text("a.jpg 1 1\nb.jpg 2 2\n")
    (root / "meta" / "x_name_5pts_score.txt").write_text(f"a.jpg {points} 0.9\n"
                                                         f"b.jpg {points} 0.9\n")
    (root / "meta" / "x_template_pair_label.txt").write_text("1 2 0\n")
    return root


def dev_file(path: Path, n: int) -> Path:
    """An LFW dev file (``pairsDevTest.txt`` layout: the count, n genuine then n impostor
    lines) made of the first n genuine and n impostor pairs of the real View 2 pairs.txt."""
    body = (LFW / "pairs.txt").read_text().splitlines()[1:]
    path.write_text("\n".join([str(n), *body[:n], *body[300:300 + n]]) + "\n")
    return path


def _identity_protocol(ident: str, root: Path) -> dict[str, Any]:
    spec = verification(ident, "", "")
    spec["dataset"] = {"kind": "identity_folder", "images": str(root), "n_genuine": 2,
                       "n_impostor": 2, "folds": 2}
    return spec


@scenario(order=7)
def readers(ctx: Ctx) -> dict[str, Any]:
    d = ctx.dir
    outside = identity_folder(d / ELSEWHERE) / "Abel_Pacheco"  # real faces, in no root
    files = {"link": identity_folder(d / "ids_link"), "dir": identity_folder(d / "ids_dir")}
    files["evil"] = files["link"] / "Aaron_Peirsol" / "evil.jpg"
    files["evil"].symlink_to("/etc/passwd")
    (files["dir"] / "Intruder").symlink_to(outside, target_is_directory=True)
    files["ijb"] = ijb_dataset(d / "ijb", link_b=outside / "Abel_Pacheco_0001.jpg")
    files["dev"] = dev_file(d / "pairsDevTest.txt", DEV_PAIRS)
    protocols = [
        _identity_protocol("idlink", files["link"]),
        _identity_protocol("iddir", files["dir"]),
        {"id": "ijblink", "kind": "verification",
         "dataset": {"kind": "ijb", "root": str(files["ijb"])}, "far_targets": [0.1]},
        verification("dev", files["dev"], LFW / "images", kind="lfw_pairs"),
    ]
    write_suite(d / "suite.yaml", suite("readers", [model("mfn")], protocols))
    out = run_suite(ctx, d / "suite.yaml", "--allow-failed-cells")  # else exit 3
    return {"out": out, **files}


@pytest.fixture(scope="module")
def run(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(readers))


LINK_CASES = {
    "idlink": ("{evil}: path 'Aaron_Peirsol/evil.jpg' escapes the image root {link}"),
    "iddir": "{dir}/Intruder: path 'Intruder' escapes the image root {dir}",
    "ijblink": "{ijb}/meta/x_face_tid_mid.txt:2: path 'b.jpg' escapes the image root "
               "{ijb}/loose_crop",
}


@pytest.mark.parametrize("protocol", LINK_CASES)
def test_link_out_of_the_image_root_fails_the_cell(run: dict[str, Any], protocol: str) -> None:
    """As a pair CSV naming the same link: the cell fails with one line naming the link, no
    image is read, no scores are written."""
    cell = cells_by_id(run["out"])[f"mfn@cpu@{protocol}"]
    assert cell["status"] == "failed"
    assert (cell["error"]["type"], cell["error"]["message"]) == (
        "DatasetError", LINK_CASES[protocol].format(**run))
    assert not (run["out"] / "cells" / cell["slug"] / "scores.csv").exists()


def test_nothing_from_outside_reaches_the_outputs(run: dict[str, Any]) -> None:
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for p in run["out"].rglob("*"):
        if p.is_file() and p.suffix in (".json", ".csv", ".md", ".html", ".log"):
            text = p.read_text(errors="replace")
            assert passwd not in text and ELSEWHERE not in text, p


def test_links_inside_the_image_root_are_followed(tmp_path: Path) -> None:
    ids = identity_folder(tmp_path / "ids")
    (ids / "Abel_Pacheco" / "alias.jpg").symlink_to("../Abdullah_Gul/Abdullah_Gul_0001.jpg")
    (ids / "Gul_again").symlink_to("Abdullah_Gul", target_is_directory=True)
    got = load_identity_folder(ids)
    rel = {p.relative_to(ids).as_posix() for p in got.images}
    assert {"Abel_Pacheco/alias.jpg", "Gul_again/Abdullah_Gul_0006.jpg"} <= rel
    assert got.n_images == 6 + 1 + 2
    root = ijb_dataset(tmp_path / "ijb", link_b=Path("a.jpg"))  # loose_crop/b.jpg -> a.jpg
    assert [p.name for p in load_ijb(root).images] == ["a.jpg", "b.jpg"]


def test_distractor_link_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    folder = identity_folder(tmp_path / "distractors")
    link = folder / "Abel_Pacheco" / "evil.jpg"
    link.symlink_to("/etc/passwd")
    with pytest.raises(DatasetError) as err:
        load_distractors([folder])
    assert str(err.value) == (f"{link}: path 'Abel_Pacheco/evil.jpg' escapes the image root "
                              f"{folder}")
    link.unlink()
    link.symlink_to("Abel_Pacheco_0001.jpg")
    assert link in load_distractors([folder])


def test_dev_file_is_one_fold(tmp_path: Path) -> None:
    """A single count header: 2N pairs, N genuine then N impostor, no protocol folds."""
    pairs = load_lfw_pairs(dev_file(tmp_path / "pairsDevTrain.txt", DEV_PAIRS), LFW / "images")
    assert pairs.n_pairs == 2 * DEV_PAIRS and pairs.folds is None
    assert pairs.labels.tolist() == [1] * DEV_PAIRS + [0] * DEV_PAIRS
    assert pairs.describe()["folds"] == 1


def test_dev_file_runs_with_one_threshold_on_all_pairs(run: dict[str, Any]) -> None:
    cell = cells_by_id(run["out"])["mfn@cpu@dev"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["details"]["threshold_policy"] == "all_data"
    assert cell["metrics"]["accuracy_std"] is None
    table = read_scores(run["out"] / cell["artifacts"]["scores"])
    assert len(table) == 2 * DEV_PAIRS
    assert table.label.tolist() == [1] * DEV_PAIRS + [0] * DEV_PAIRS
    again = compute_verification_metrics(table.score, table.label, folds=None, fta=table.fta,
                                         far_targets=(0.1,)).metrics
    assert {k: cell["metrics"][k] for k in again} == again
    assert 0.5 < again["accuracy"] <= 1.0  # a real model on real faces
