"""The ijb dataset kind: a hand-written IJB layout parsed exactly, every malformed input named by
``file:line``, and the LFW-derived generator (real LFW, real YuNet) loaded back."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facebench.datasets import DatasetError, load_spec_ijb
from facebench.datasets.ijb import load_ijb
from facebench.datasets.make_ijb import make_ijb_from_lfw
from facebench.datasets.pairs import required_inputs
from facebench.datasets.specs import IjbDataset
from facebench.io import read_json, sha256_file
from facebench.suite.checks import input_problems

P = "ijbx"
FACES = ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg"]
TIDS = [101, 101, 101, 202, 303, 404]
MIDS = [1, 1, 2, 3, 4, 5]
#: Real LFW JPEGs used as the loose crops of FACES.
SOURCES = ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "Aaron_Peirsol/Aaron_Peirsol_0003.jpg",
           "Aaron_Peirsol/Aaron_Peirsol_0004.jpg", "Abdullah_Gul/Abdullah_Gul_0001.jpg",
           "Abdullah_Gul/Abdullah_Gul_0006.jpg", "Abdullah_Gul/Abdullah_Gul_0007.jpg"]


def _points(k: int) -> list[float]:
    return [10.0 * k + 0.5 * j for j in range(10)]


def _score(k: int) -> float:
    return round(0.95 - 0.05 * k, 2)


def _lmk_line(k: int) -> str:
    return " ".join([FACES[k], *(f"{v:g}" for v in _points(k)), f"{_score(k):g}"])


DEFAULT = {
    "face_tid_mid.txt": "".join(f"{n} {t} {m}\n" for n, t, m in zip(FACES, TIDS, MIDS,
                                                                     strict=True)),
    # another order than the face table, plus a row of a face the table does not list
    "name_5pts_score.txt": "".join(f"{_lmk_line(k)}\n" for k in (5, 4, 3, 2, 1, 0))
    + "zz.jpg 1 2 3 4 5 6 7 8 9 10 0.5\n",
    "template_pair_label.txt": "101 202 1\n101 303 0\n202 404 0\n303 404 1\n",
    "1N_gallery_G1.csv": "TEMPLATE_ID,SUBJECT_ID,FILENAME\n101,1,a\n101,1,b\n101,1,c\n",
    "1N_gallery_G2.csv": "TEMPLATE_ID,SUBJECT_ID,FILENAME\n303,2,e\n",
    "1N_probe_mixed.csv": "TEMPLATE_ID,SUBJECT_ID,FILENAME\n202,1,d\n404,2,f\n",
}


@pytest.fixture
def layout(tmp_path: Path, lfw_dir: Path) -> Callable[..., Path]:
    """``(**files) ->`` an ijb root with the default meta files, each replaced by ``files``
    (key: the part after ``<p>_``; ``None`` leaves the file out), and real LFW crops."""

    def make(**files: str | None) -> Path:
        root = tmp_path / "ijb"
        if root.exists():
            shutil.rmtree(root)
        (root / "meta").mkdir(parents=True)
        (root / "loose_crop").mkdir()
        for name, src in zip(FACES, SOURCES, strict=True):
            shutil.copyfile(lfw_dir / "images" / src, root / "loose_crop" / name)
        for key, text in {**DEFAULT, **files}.items():
            if text is not None:
                (root / "meta" / f"{P}_{key}").write_bytes(text.encode("utf-8"))
        return root

    return make


def test_layout_parsed_exactly(layout: Callable[..., Path]) -> None:
    root = layout()
    s = load_ijb(root)
    assert s.name == P and s.root == root
    assert s.images == [root / "loose_crop" / n for n in FACES]
    want = np.asarray([_points(k) for k in range(6)], dtype=np.float32).reshape(6, 5, 2)
    assert s.landmarks.dtype == np.float32 and s.landmarks.shape == (6, 5, 2)
    np.testing.assert_array_equal(s.landmarks, want)
    assert s.det_scores.dtype == np.float32
    np.testing.assert_array_equal(s.det_scores, np.float32([_score(k) for k in range(6)]))
    assert s.template_ids.dtype == np.int64 and s.template_ids.tolist() == TIDS
    assert s.media_ids.dtype == np.int64 and s.media_ids.tolist() == MIDS
    assert s.pairs.dtype == np.int64
    assert s.pairs.tolist() == [[101, 202], [101, 303], [202, 404], [303, 404]]
    assert s.pair_labels.dtype == np.int64 and s.pair_labels.tolist() == [1, 0, 0, 1]
    assert list(s.galleries) == ["G1", "G2"]
    assert [(t.tolist(), sid.tolist()) for t, sid in s.galleries.values()] == [([101], [1]),
                                                                                ([303], [2])]
    assert s.probes is not None
    assert (s.probes[0].tolist(), s.probes[1].tolist()) == ([202, 404], [1, 2])
    assert all(a.dtype == np.int64 for t in [*s.galleries.values(), s.probes] for a in t)
    assert s.info == {"kind": "ijb", "prefix": P, "images_dir": "loose_crop",
                      "unused_landmark_rows": 1}
    d = s.describe()
    assert {k: d[k] for k in ("faces", "templates", "media", "pairs", "genuine", "impostor",
                              "galleries", "probes")} == {
        "faces": 6, "templates": 4, "media": 5, "pairs": 4, "genuine": 2, "impostor": 2,
        "galleries": {"G1": 1, "G2": 1}, "probes": 2}
    assert re.fullmatch(r"[0-9a-f]{64}", s.checksum) and d["sha256"] == s.checksum


def test_whitespace_lenient_and_checksum(layout: Callable[..., Path]) -> None:
    """Tabs, runs of spaces, CRLF, blank lines and a BOM read the same; the checksum follows the
    meta files' content."""
    clean = load_ijb(layout())
    messy = {k: "\ufeff" + "\r\n\r\n".join("  " + ln.replace(" ", " \t ") + "  "
                                             for ln in v.splitlines()) + "\r\n"
             for k, v in DEFAULT.items() if k.endswith(".txt")}
    s = load_ijb(layout(**messy))
    for attr in ("landmarks", "det_scores", "template_ids", "media_ids", "pairs", "pair_labels"):
        np.testing.assert_array_equal(getattr(s, attr), getattr(clean, attr))
    assert s.checksum != clean.checksum
    assert load_ijb(layout()).checksum == clean.checksum
    only_g2 = load_ijb(layout(), galleries=["G2"])
    assert list(only_g2.galleries) == ["G2"] and only_g2.checksum != clean.checksum


def test_optional_files_and_spec(layout: Callable[..., Path]) -> None:
    root = layout(**{"template_pair_label.txt": None})
    s = load_ijb(root)
    assert s.pairs.shape == (0, 2) and s.pair_labels.shape == (0,)
    root = layout(**{"1N_gallery_G1.csv": None, "1N_gallery_G2.csv": None,
                     "1N_probe_mixed.csv": None})
    s = load_ijb(root)
    assert s.galleries == {} and s.probes is None and s.pair_labels.size == 4
    spec = IjbDataset.model_validate({"kind": "ijb", "root": str(layout()), "galleries": ["G2"]})
    s = load_spec_ijb(spec)
    assert list(s.galleries) == ["G2"] and s.probes is not None
    assert required_inputs(spec) == [("root", spec.root, True)]


def test_suite_input_check_names_the_root(tmp_path: Path, layout: Callable[..., Path]) -> None:
    """The suite's input check asks for the dataset folder, not for ``images``/``probes`` as
    paths beside the suite file."""
    root = layout()
    proto = {"id": "p", "kind": "verification",
             "dataset": {"kind": "ijb", "root": str(root), "images": "loose_crop",
                         "probes": "mixed", "prefix": P}}
    assert input_problems({"protocols": [proto]}, tmp_path) == []
    proto["dataset"]["root"] = str(tmp_path / "absent")
    problems = input_problems({"protocols": [proto]}, tmp_path)
    assert len(problems) == 1 and "protocols[0].dataset.root" in problems[0]


def _bad(key: str, text: str) -> dict[str, str]:
    return {key: text}


def _renamed(old: str, new: str) -> dict[str, str]:
    """Face ``old`` renamed to ``new`` in the face and landmark tables."""
    return {k: DEFAULT[k].replace(old, new) for k in ("face_tid_mid.txt", "name_5pts_score.txt")}


FT, LM, PR = "face_tid_mid.txt", "name_5pts_score.txt", "template_pair_label.txt"
G1, G2, PM = "1N_gallery_G1.csv", "1N_gallery_G2.csv", "1N_probe_mixed.csv"
#: (id, files, file whose line is named, line, words the message must contain)
ERRORS = [
    ("int-field", _bad(FT, DEFAULT[FT].replace("d.jpg 202 3", "d.jpg 2x2 3")), FT, 4,
     "template_id '2x2' is not an integer"),
    ("float-int", _bad(FT, DEFAULT[FT].replace("e.jpg 303 4", "e.jpg 303 4.5")), FT, 5,
     "media_id '4.5' is not an integer"),
    ("few-fields", _bad(FT, DEFAULT[FT].replace("b.jpg 101 1", "b.jpg 101")), FT, 2,
     "expected 3 fields"),
    ("many-fields-first", _bad(FT, DEFAULT[FT].replace("a.jpg 101 1", "a.jpg 101 1 7")), FT, 1,
     "expected 3 fields"),
    ("many-fields", _bad(FT, DEFAULT[FT].replace("c.jpg 101 2", "c.jpg 101 2 9")), FT, 3,
     "expected 3 fields"),
    ("dup-face", _bad(FT, DEFAULT[FT] + "b.jpg 404 6\n"), FT, 7, "already on line 2"),
    ("lmk-nan", _bad(LM, DEFAULT[LM].replace(" 0.8\n", " nan\n")), LM, 3,
     "score 'nan' is not a finite number"),
    ("lmk-text", _bad(LM, DEFAULT[LM].replace("f.jpg 50 ", "f.jpg fifty ")), LM, 1,
     "x1 'fifty' is not a number"),
    ("lmk-fields", _bad(LM, DEFAULT[LM].replace(" 0.7\n", "\n")), LM, 1, "expected 12 fields"),
    ("lmk-dup", _bad(LM, DEFAULT[LM] + _lmk_line(0) + "\n"), LM, 8, "already on line 6"),
    ("no-lmk", _bad(LM, "".join(f"{_lmk_line(k)}\n" for k in (0, 1, 2, 4, 5))), FT, 4,
     "face 'd.jpg' has no landmark row"),
    ("pair-unknown", _bad(PR, DEFAULT[PR].replace("202 404 0", "202 405 0")), PR, 3,
     "template 405 has no face"),
    ("pair-label", _bad(PR, DEFAULT[PR].replace("101 303 0", "101 303 2")), PR, 2,
     "label 2 is not 0"),
    ("pair-self", _bad(PR, DEFAULT[PR] + "\n202 202 1\n"), PR, 6, "paired with itself"),
    ("pair-dup", _bad(PR, DEFAULT[PR] + "303 101 0\n"), PR, 5, "duplicates line 2"),
    ("pair-fields", _bad(PR, DEFAULT[PR].replace("303 404 1", "303 404")), PR, 4,
     "expected 3 fields"),
    ("list-unknown", _bad(G2, DEFAULT[G2] + "999,2,x\n"), G2, 3, "template 999 has no face"),
    ("list-two-subjects", _bad(G1, DEFAULT[G1].replace("101,1,b", "101,7,b")), G1, 3,
     "template 101 has subject 7, but line 2 gives it subject 1"),
    ("list-cross-subject", _bad(PM, DEFAULT[PM].replace("404,2,f", "303,9,f")), PM, 3,
     "gives it subject 2"),
    ("probe-in-gallery", _bad(PM, DEFAULT[PM] + "101,1,a\n"), PM, 4,
     "also a gallery template"),
    ("list-int", _bad(PM, DEFAULT[PM].replace("202,1,d", "202,one,d")), PM, 2,
     "SUBJECT_ID 'one' is not an integer"),
    ("list-header", _bad(G2, "TEMPLATE,SUBJECT\n303,2\n"), G2, 1, "lacks the TEMPLATE_ID"),
    ("list-short", _bad(G2, "FILENAME,TEMPLATE_ID,SUBJECT_ID\ne,303\n"), G2, 2,
     "TEMPLATE_ID and SUBJECT_ID in columns 2 and 3"),
    ("escape", _renamed("e.jpg", "../e.jpg"), FT, 5, "escapes"),
    ("absolute", _renamed("e.jpg", "/etc/e.jpg"), FT, 5, "absolute path"),
]


@pytest.mark.parametrize(("files", "where", "line", "words"),
                         [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_errors_name_file_and_line(layout: Callable[..., Path], files: dict[str, str],
                                   where: str, line: int, words: str) -> None:
    root = layout(**files)
    with pytest.raises(DatasetError) as exc:
        load_ijb(root)
    msg = str(exc.value)
    assert msg.startswith(f"{root / 'meta' / f'{P}_{where}'}:{line}: "), msg
    assert words in msg, msg


def test_missing_and_structural_errors(layout: Callable[..., Path]) -> None:
    root = layout(**{FT: None})
    with pytest.raises(DatasetError, match="no \\*_face_tid_mid.txt face table"):
        load_ijb(root)
    with pytest.raises(DatasetError, match=f"{P}_face_tid_mid.txt: face table .* not found"):
        load_ijb(root, prefix=P)
    root = layout(**{LM: None})
    with pytest.raises(DatasetError, match=f"{P}_name_5pts_score.txt: landmark table .* not "
                                           "found"):
        load_ijb(root)
    root = layout()
    (root / "meta" / f"other_{FT}").write_text(DEFAULT[FT])
    with pytest.raises(DatasetError, match="2 \\(ijbx, other\\) .* set the dataset's prefix"):
        load_ijb(root)
    root = layout(**{PM: None})
    with pytest.raises(DatasetError, match=f"{P}_1N_probe_mixed.csv: not found, but there are "
                                           "gallery lists \\(G1, G2\\)"):
        load_ijb(root)
    root = layout()
    with pytest.raises(DatasetError, match=f"{P}_1N_gallery_G3.csv: gallery set 'G3' not found"):
        load_ijb(root, galleries=["G1", "G3"])
    root = layout(**{G1: None, G2: None})
    with pytest.raises(DatasetError, match="a probe list but no"):
        load_ijb(root)
    root = layout(**{PR: None, G1: None, G2: None, PM: None})
    with pytest.raises(DatasetError, match="nothing to evaluate"):
        load_ijb(root)
    root = layout(**{FT: ""})
    with pytest.raises(DatasetError, match=f"{P}_{FT}: no lines"):
        load_ijb(root)
    root = layout()
    (root / "meta" / f"{P}_{FT}").write_bytes(DEFAULT[FT].encode().replace(b"c.jpg",
                                                                          b"c\xff.jpg"))
    with pytest.raises(DatasetError, match=f"{P}_{FT}:3: not UTF-8"):
        load_ijb(root)


def test_missing_crops_first_and_count(layout: Callable[..., Path]) -> None:
    root = layout()
    (root / "loose_crop" / "c.jpg").unlink()
    (root / "loose_crop" / "f.jpg").unlink()
    with pytest.raises(DatasetError) as exc:
        load_ijb(root)
    assert str(exc.value).startswith(f"{root / 'meta' / f'{P}_{FT}'}:3: image 'c.jpg' not "
                                     f"found in {root / 'loose_crop'} (and 1 more)")
    assert load_ijb(root, check_exists=False).n_faces == 6
    with pytest.raises(DatasetError, match="escapes"):
        load_ijb(root, images="../elsewhere")


# ---- the generator -----------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "lfwijb"
    manifest = make_ijb_from_lfw(shared / "data" / "lfw" / "images", out,
                                 detector_model=shared / "models" / "face_detection_yunet.onnx",
                                 subjects=8, seed=3)
    return out, manifest


def test_generated_set_loads_and_is_consistent(generated: tuple[Path, dict],
                                               shared: Path) -> None:
    out, manifest = generated
    s = load_ijb(out)
    c = manifest["counts"]
    assert s.name == "lfwijb" and read_json(out / "manifest.json") == manifest
    assert (s.n_faces, int(np.unique(s.template_ids).size), int(np.unique(s.media_ids).size)) == (
        c["faces"], c["templates"], c["media"])
    assert c["subjects"] == 8 and set(s.galleries) == {"G1", "G2"} and s.probes is not None
    subject: dict[int, int] = {}
    for t, sid in [*s.galleries.values(), s.probes]:
        subject.update(zip(t.tolist(), sid.tolist(), strict=True))
    # every template is in exactly one 1:N list, and every 1:N template is in the face table
    assert sorted(subject) == np.unique(s.template_ids).tolist()
    assert sum(t.size for t, _ in s.galleries.values()) + s.probes[0].size == len(subject)
    g1, g2 = (set(s.galleries[g][1].tolist()) for g in ("G1", "G2"))
    assert not g1 & g2 and g1 | g2 == set(range(1, 9)) and abs(len(g1) - len(g2)) <= 1
    assert set(s.probes[1].tolist()) == g1 | g2
    # pair labels are subject identity; every genuine template pair is listed
    same = np.asarray([subject[a] == subject[b] for a, b in s.pairs.tolist()])
    np.testing.assert_array_equal(s.pair_labels, same.astype(np.int64))
    per = np.bincount(np.asarray(list(subject.values())))
    assert int(s.pair_labels.sum()) == int((per * (per - 1) // 2).sum()) == c["genuine_pairs"]
    n_templates = len(subject)
    impostor_pairs = n_templates * (n_templates - 1) // 2 - c["genuine_pairs"]
    assert c["impostor_pairs"] == min(10 * c["genuine_pairs"], impostor_pairs)
    assert (s.pairs[:, 0] < s.pairs[:, 1]).all()
    # templates: a 2-face gallery template, probes of 1-3 faces; media of <= 2 consecutive faces
    for t in subject:
        faces = np.flatnonzero(s.template_ids == t)
        assert faces.tolist() == list(range(faces[0], faces[-1] + 1))
        in_gallery = any(t in g[0] for g in s.galleries.values())
        assert faces.size == 2 if in_gallery else 1 <= faces.size <= 3
        media = s.media_ids[faces]
        assert media.tolist() == sorted(media.tolist())
        assert np.bincount(media).max() <= 2
        assert not set(media.tolist()) & set(s.media_ids[s.template_ids != t].tolist())
    # landmarks inside each crop; plausible geometry (eyes above the mouth)
    for path, pts in zip(s.images, s.landmarks, strict=True):
        h, w = cv2.imread(str(path)).shape[:2]
        assert (pts >= 0).all() and (pts[:, 0] < w).all() and (pts[:, 1] < h).all(), path
        assert pts[0, 0] < pts[1, 0] and max(pts[0, 1], pts[1, 1]) < min(pts[3, 1], pts[4, 1])
    assert ((s.det_scores > 0.5) & (s.det_scores <= 1)).all()
    model = shared / "models" / "face_detection_yunet.onnx"
    assert manifest["detector"]["model_sha256"] == sha256_file(model)
    assert manifest["meta_sha256"] == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "meta").iterdir()}


def test_generator_is_deterministic(generated: tuple[Path, dict], shared: Path,
                                    tmp_path: Path) -> None:
    out, manifest = generated
    before = _files(out)
    yunet = shared / "models" / "face_detection_yunet.onnx"
    lfw = shared / "data" / "lfw" / "images"
    again = make_ijb_from_lfw(lfw, out, detector_model=yunet, subjects=8, seed=3)  # replaces
    assert again == manifest and _files(out) == before
    assert not list(out.parent.glob(".lfwijb.*"))  # no staging folder left behind
    other = make_ijb_from_lfw(lfw, tmp_path / "s4", detector_model=yunet, subjects=8, seed=4)
    assert other["subjects"] != manifest["subjects"]


def test_generator_refuses_bad_output_and_options(tmp_path: Path, shared: Path) -> None:
    lfw = shared / "data" / "lfw" / "images"
    yunet = shared / "models" / "face_detection_yunet.onnx"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty and is not an earlier make-ijb output"):
        make_ijb_from_lfw(lfw, tmp_path / "busy", detector_model=yunet, subjects=2)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="min_images >= 3"):
        make_ijb_from_lfw(lfw, tmp_path / "o", detector_model=yunet, min_images=2)
    with pytest.raises(ValueError, match="YuNet needs its ONNX file"):
        make_ijb_from_lfw(lfw, tmp_path / "o")
    with pytest.raises(DatasetError, match="identities have >= 4 images, 100000 asked for"):
        make_ijb_from_lfw(lfw, tmp_path / "o", detector_model=yunet, subjects=100_000)


def test_cli_make_ijb(tmp_path: Path, shared: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    args = [sys.executable, "-m", "facebench.cli", "make-ijb", str(shared / "data/lfw/images"),
            str(tmp_path / "out"), "--subjects", "3", "--seed", "1",
            "--detector-model", str(shared / "models/face_detection_yunet.onnx")]
    run = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    m = read_json(tmp_path / "out" / "manifest.json")
    assert f"faces of 3 subjects in {m['counts']['templates']} templates" in run.stdout
    assert load_ijb(tmp_path / "out").n_faces == m["counts"]["faces"]
    bad = subprocess.run([*args[:-2], "--detector", "haar"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert bad.returncode == 2 and "choose one of yunet, retinaface, mtcnn" in bad.stderr
