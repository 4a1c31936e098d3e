"""Issue 27, item 1: ``--resume`` reuses a finished cell only while the files it reads are
unchanged, byte for byte.

One run of a six-cell suite over real files copied into a fresh folder (MobileFaceNet ONNX, a
zoo MobileFaceNet checkpoint, a YuNet copy, an LFW pair CSV, an LFW ``pairs.txt``, a
CelebA-style identity file over LFW images, an IJB dataset made from LFW by
``make_ijb_from_lfw``), then three resumes, each after changing the content of some input
files at the same path: exactly the cells that read a changed file run again (naming it), every
other cell is reused (``resumed``). The pair CSV and the IJB pair file are
edited keeping their size, modification time and inode. A record without a fingerprint (an
older facebench) is run again.

Fast in-process cases check what each spec declares as its inputs (IJB meta files, MTCNN and
dlib folders, distractor folders, calibration protocols, ``.bin`` files) and the fingerprint
itself (content, listing, FIFOs never read)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from facebench.datasets.make_ijb import make_ijb_from_lfw
from facebench.datasets.specs import KINDS as DATASET_KINDS
from facebench.plan import plan
from facebench.results import CellRecord
from facebench.runner.inputs import MISSING, InputDigests, inputs_sha256
from facebench.suite.schema import Suite

from .conftest import Background
from .kit import (
    CPU,
    LFW,
    MFN,
    SHARED,
    YUNET,
    Ctx,
    cells_by_id,
    facebench,
    lfw_rows,
    model,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)
from .test_hostile_caches import perturbed_yunet

SFACE = SHARED / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
CELLS = ("mfn@cpu@pairs", "mfn@cpu@lfw", "mfn@cpu@ident", "mfn@cpu@ijb", "mfn@cpu@eff",
         "zoo@torch@efft")
TORCH = {"id": "torch", "engine": "torch", "device": "cpu", "threads": {"intra_op": 1},
         "batch_sizes": [1]}
EFFICIENCY = {"kind": "efficiency", "warmup": 0, "min_iters": 1, "min_seconds": 0}


def zoo_checkpoint(path: Path, seed: int) -> Path:
    """A real (randomly initialised, seeded) zoo MobileFaceNet state dict."""
    import torch

    from facebench.zoo import get_model

    torch.manual_seed(seed)
    torch.save(get_model("mobilefacenet", 128).state_dict(), path)
    return path


def lfw_pairs_txt(path: Path, per_fold: int = 3, skip: int = 0) -> Path:
    """An LFW ``pairs.txt`` of two folds: ``per_fold`` genuine and impostor lines of View 2's
    first two folds, after the first ``skip`` of each."""
    body = [ln for ln in (LFW / "pairs.txt").read_text().splitlines()[1:] if ln.strip()]
    lines = [f"2\t{per_fold}"]
    for f in range(2):
        block = body[600 * f:600 * (f + 1)]
        lines += block[skip:skip + per_fold] + block[300 + skip:300 + skip + per_fold]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def identity_file(path: Path, identities: int = 4, per: int = 3) -> Path:
    """``image identity`` lines for the first LFW identities with ``per`` or more images."""
    lines = []
    for folder in sorted((LFW / "images").iterdir()):
        images = sorted(folder.iterdir())
        if len(images) >= per:
            lines += [f"{folder.name}/{p.name} {folder.name}" for p in images[:per]]
            if len(lines) == identities * per:
                break
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_inputs(d: Path) -> Path:
    """The inputs (copies, at paths of this folder) and the suite that reads them."""
    shutil.copyfile(MFN, d / "model.onnx")
    shutil.copyfile(YUNET, d / "yunet.onnx")
    zoo_checkpoint(d / "zoo.pth", seed=0)
    write_pair_csv(d / "pairs.csv", lfw_rows(5, 2))
    lfw_pairs_txt(d / "pairs.txt")
    identity_file(d / "identities.txt")
    make_ijb_from_lfw(LFW / "images", d / "ijb", detector_model=YUNET, subjects=3,
                      impostors_per_genuine=2)
    pairs = verification("pairs", d / "pairs.csv", LFW / "images", flip=False)
    pairs["detector"]["model"] = str(d / "yunet.onnx")
    lfw = verification("lfw", d / "pairs.txt", LFW / "images", kind="lfw_pairs", flip=False,
                       detector=False)
    ident = verification("ident", "", "", flip=False)
    ident["dataset"] = {"kind": "identity_file", "identities": str(d / "identities.txt"),
                        "images": str(LFW / "images"), "n_genuine": 4, "n_impostor": 4,
                        "folds": 2}
    ijb = {"id": "ijb", "kind": "verification", "dataset": {"kind": "ijb", "root": str(d / "ijb")},
           "flip": False, "workers": 1, "far_targets": [0.1]}
    zoo = {"id": "zoo", "source": "zoo", "arch": "mobilefacenet", "embedding_size": 128,
           "weights": str(d / "zoo.pth")}
    protocols = [{**p, "models": ["mfn"], "devices": ["cpu"]} for p in (pairs, lfw, ident, ijb)]
    protocols += [{"id": "eff", **EFFICIENCY, "models": ["mfn"], "devices": ["cpu"]},
                  {"id": "efft", **EFFICIENCY, "models": ["zoo"], "devices": ["torch"]}]
    s = suite("resume-inputs", [model("mfn", d / "model.onnx"), zoo], protocols)
    s["devices"] = [CPU, TORCH]
    return write_suite(d / "suite.yaml", s)


def flip_labels_in_place(path: Path, column: int) -> None:
    """Every 0/1 label of ``column`` flipped, keeping the file's size, mtime and inode."""
    st = path.stat()
    rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    sep = "," if "," in rows[-1] else " "
    out = []
    for row in rows:
        parts = row.rstrip("\n").split(sep)
        if parts[column] in ("0", "1"):
            parts[column] = "1" if parts[column] == "0" else "0"
        out.append(sep.join(parts) + "\n")
    with open(path, "r+b") as f:  # the same inode
        f.write("".join(out).encode())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size, st.st_mtime_ns, st.st_ino)


def edit_model(d: Path) -> None:
    shutil.copyfile(SFACE, d / "model.onnx")  # another model at the same path


def edit_weights(d: Path) -> None:
    zoo_checkpoint(d / "zoo.pth", seed=1)


def edit_pairs(d: Path) -> None:
    flip_labels_in_place(d / "pairs.csv", column=2)


def edit_lfw_pairs(d: Path) -> None:
    lfw_pairs_txt(d / "pairs.txt", skip=3)  # other pairs


def edit_identities(d: Path) -> None:
    lines = (d / "identities.txt").read_text(encoding="utf-8").splitlines()
    (d / "identities.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")


def edit_ijb_meta(d: Path) -> None:
    flip_labels_in_place(next((d / "ijb" / "meta").glob("*_template_pair_label.txt")), column=2)


def edit_detector(d: Path) -> None:
    perturbed_yunet(d / "yunet.onnx")


def drop_fingerprint(d: Path) -> None:
    """The record of one cell as an older facebench wrote it: no inputs fingerprint."""
    path = d / "out" / "cells" / "mfn@cpu@eff" / "result.json"
    rec = json.loads(path.read_text(encoding="utf-8"))
    for key in ("inputs_sha256", "inputs"):
        rec.pop(key, None)
    path.write_text(json.dumps(rec), encoding="utf-8")


#: The resumes, in order: the edits made before each, and the cells that must run again with
#: the file whose change they must name (None: the record had no fingerprint). No cell reads
#: two files changed before the same resume, so each rerun cell's reason names exactly one.
STEPS: dict[str, tuple[tuple[Any, ...], dict[str, str | None]]] = {
    "data": ((edit_weights, edit_pairs, edit_lfw_pairs, edit_identities, edit_ijb_meta),
             {"zoo@torch@efft": "zoo.pth", "mfn@cpu@pairs": "pairs.csv",
              "mfn@cpu@lfw": "pairs.txt",
              "mfn@cpu@ident": "identities.txt", "mfn@cpu@ijb": "template_pair_label.txt"}),
    "model": ((edit_model,), {c: "model.onnx" for c in CELLS if c.startswith("mfn@")}),
    "detector": ((edit_detector, drop_fingerprint),
                 {"mfn@cpu@pairs": "yunet.onnx", "mfn@cpu@eff": None}),
}
#: Each input kind of the issue: (the resume after its edit, a cell that reads it).
KINDS = {"model": ("model", "mfn@cpu@eff"), "weights": ("data", "zoo@torch@efft"),
         "pair list": ("data", "mfn@cpu@pairs"), "lfw pairs.txt": ("data", "mfn@cpu@lfw"),
         "identity file": ("data", "mfn@cpu@ident"),
         "ijb meta": ("data", "mfn@cpu@ijb"), "detector weights": ("detector", "mfn@cpu@pairs")}


def resume(ctx: Ctx, suite_file: Path, out: Path) -> dict[str, Any]:
    """``--resume`` through the Python API in its own process (no report: faster)."""
    code = ("import sys, facebench; facebench.run(sys.argv[1], sys.argv[2], resume=True, "
            "progress=False, report=False, history=False)")
    res = subprocess.run([sys.executable, "-c", code, str(suite_file), str(out)], cwd=ctx.dir,
                         env=ctx.env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return {"cells": cells_by_id(out), "stderr": res.stderr}


@scenario(order=2)
def resume_chain(ctx: Ctx) -> dict[str, Any]:
    """The first run, then one resume after each step's edits."""
    suite_file = make_inputs(ctx.dir)
    out = ctx.dir / "out"
    res = facebench(["run", str(suite_file), "--out", str(out), "--no-progress"], ctx.env,
                    ctx.dir, timeout=600)
    assert res.returncode == 0, res.stderr
    steps = {"first": {"cells": cells_by_id(out), "stderr": res.stderr}}
    for name, (edits, _) in STEPS.items():
        for edit in edits:
            edit(ctx.dir)
        steps[name] = resume(ctx, suite_file, out)
    return steps


@pytest.fixture(scope="module")
def chain(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(resume_chain))


def test_first_run_fingerprints_every_cell(chain: dict[str, Any]) -> None:
    cells = chain["first"]["cells"]
    assert sorted(cells) == sorted(CELLS)
    for ident, cell in cells.items():
        assert cell["status"] == "ok", (ident, cell.get("error"))
        assert cell["inputs_sha256"] == inputs_sha256(cell["inputs"])
        assert all(v.startswith("sha256:") for v in cell["inputs"].values())
    names = {Path(p).name for p in cells["mfn@cpu@pairs"]["inputs"]}
    assert names == {"model.onnx", "pairs.csv", "yunet.onnx"}
    assert {Path(p).name for p in cells["mfn@cpu@lfw"]["inputs"]} == {"model.onnx", "pairs.txt"}
    assert {Path(p).name for p in cells["mfn@cpu@ident"]["inputs"]} == {
        "model.onnx", "identities.txt", YUNET.name}
    assert {Path(p).name for p in cells["zoo@torch@efft"]["inputs"]} == {"zoo.pth"}
    ijb = {Path(p).name for p in cells["mfn@cpu@ijb"]["inputs"]} - {"model.onnx"}
    assert {n.partition("_")[2] for n in ijb} >= {
        "face_tid_mid.txt", "name_5pts_score.txt", "template_pair_label.txt"}


@pytest.mark.parametrize("step", list(STEPS))
def test_resume_reruns_exactly_the_cells_whose_files_changed(chain: dict[str, Any],
                                                             step: str) -> None:
    rerun_expected = STEPS[step][1]
    cells = chain[step]["cells"]
    assert sorted(cells) == sorted(CELLS)
    rerun = {c for c, rec in cells.items() if not rec.get("resumed")}
    assert rerun == set(rerun_expected), f"resume after {step}: rerun {sorted(rerun)}"
    for ident, changed in rerun_expected.items():
        cell = cells[ident]
        assert cell["status"] == "ok", cell.get("error")
        reason = cell["rerun_reason"]
        if changed is None:
            assert "no fingerprint of its input files" in reason, reason
            continue
        path = next(p for p in cell["inputs"] if p.endswith(changed))
        assert reason == f"inputs changed: {path}", reason  # that file, and only that one
        assert f"ok {ident} (rerun: {reason})" in " ".join(chain[step]["stderr"].split())
    previous = chain[list(chain)[list(chain).index(step) - 1]]["cells"]
    for ident, changed in rerun_expected.items():
        if changed is not None:
            path = next(p for p in cells[ident]["inputs"] if p.endswith(changed))
            assert cells[ident]["inputs"][path] != previous[ident]["inputs"][path]
    for ident in set(CELLS) - set(rerun_expected):  # reused as they were
        assert "rerun_reason" not in cells[ident]
        assert cells[ident]["inputs"] == previous[ident]["inputs"]
        assert cells[ident]["metrics"] == previous[ident]["metrics"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_input_kind_reruns_the_cells_that_read_it(chain: dict[str, Any], kind: str) -> None:
    step, cell = KINDS[kind]
    rec = chain[step]["cells"][cell]
    assert not rec.get("resumed") and rec["status"] == "ok"
    assert rec["rerun_reason"].endswith(STEPS[step][1][cell]), rec["rerun_reason"]


def test_rerun_cells_measure_the_new_files(chain: dict[str, Any]) -> None:
    def metric(step: str, cell: str, name: str) -> Any:
        return chain[step]["cells"][cell]["metrics"][name]

    assert metric("model", "mfn@cpu@eff", "params") != metric("first", "mfn@cpu@eff", "params")
    # every label flipped, size, mtime and inode kept: the ranking is reversed
    for cell in ("mfn@cpu@pairs", "mfn@cpu@ijb"):
        assert metric("data", cell, "auc") < 0.5 < metric("first", cell, "auc"), cell


# ---- what each spec declares, and the fingerprint itself (in process, fast) -------------------


def _plan(d: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The cells of a suite in folder ``d`` (validated, files not checked: stand-ins)."""
    return {c.id: c for c in plan(Suite.model_validate(data, context={"base_dir": d}))}


def test_specs_declare_every_file_they_read(tmp_path: Path) -> None:
    d = tmp_path
    (d / "meta").mkdir(parents=True)
    for name in ("ijbc_face_tid_mid.txt", "ijbc_name_5pts_score.txt", "ijbc_1N_gallery_G1.csv",
                 "ijbc_1N_probe_mixed.csv", "ijbc_template_pair_label.txt", ".hidden"):
        (d / "meta" / name).write_text("x")
    (d / "mtcnn").mkdir()
    for name in ("pnet.pt", "rnet.pt", "onet.pt", "README"):
        (d / "mtcnn" / name).write_bytes(b"w")
    for name in ("m.onnx", "lfw.bin", "det.pth", "ids.txt", "pairs.csv", "pairs.txt"):
        (d / name).write_bytes(b"x")
    (d / "imgs").mkdir()
    (d / "distract").mkdir()
    cpu = {"id": "cpu", "engine": "onnxruntime"}
    int8 = {"id": "int8", "engine": "onnxruntime", "precision": "int8",
            "quantization": {"calibrate_on": "bin"}}
    cells = _plan(d, {"name": "s", "models": [{"id": "m", "source": "onnx", "path": "m.onnx"}],
                      "devices": [cpu, int8], "protocols": [
        {"id": "bin", "kind": "verification",
         "dataset": {"kind": "insightface_bin", "path": "lfw.bin"}},
        {"id": "ijb", "kind": "identification", "dataset": {"kind": "ijb", "root": "."}},
        {"id": "mt", "kind": "verification", "detector": {"name": "mtcnn", "model": "mtcnn"},
         "dataset": {"kind": "pair_csv", "pairs": "pairs.csv", "images": "imgs"}},
        {"id": "rf", "kind": "identification", "distractors": ["distract"],
         "detector": {"name": "retinaface", "model": "det.pth"},
         "dataset": {"kind": "identity_file", "identities": "ids.txt", "images": "imgs"}},
        {"id": "lfw", "kind": "verification",
         "dataset": {"kind": "lfw_pairs", "pairs": "pairs.txt", "images": "imgs"}},
        {"id": "eff", "kind": "efficiency"}]})

    def names(cell: str) -> list[str]:
        return [str(p.relative_to(d)) for p in cells[cell].input_paths()]

    assert names("m@cpu@bin") == ["m.onnx", "lfw.bin"]
    assert names("m@cpu@lfw") == ["m.onnx", "pairs.txt"]
    assert names("m@cpu@ijb") == ["m.onnx"] + [f"meta/ijbc_{n}" for n in (
        "1N_gallery_G1.csv", "1N_probe_mixed.csv", "face_tid_mid.txt", "name_5pts_score.txt",
        "template_pair_label.txt")]
    assert names("m@cpu@mt") == ["m.onnx", "pairs.csv", "mtcnn/pnet.pt", "mtcnn/rnet.pt",
                                 "mtcnn/onet.pt"]
    assert names("m@cpu@rf") == ["m.onnx", "ids.txt", "det.pth", "distract"]
    assert names("m@cpu@eff") == ["m.onnx"]
    assert names("m@int8@eff") == ["m.onnx", "lfw.bin"]  # calibrated on the .bin's images
    assert names("m@int8@mt") == ["m.onnx", "pairs.csv", "mtcnn/pnet.pt", "mtcnn/rnet.pt",
                                  "mtcnn/onet.pt", "lfw.bin"]
    folder = _plan(d, {"name": "s", "models": [{"id": "m", "source": "onnx", "path": "m.onnx"}],
                       "devices": [cpu], "protocols": [{
                           "id": "f", "kind": "identification",
                           "detector": {"name": "dlib", "model": "mtcnn"},
                           "dataset": {"kind": "identity_folder", "images": "imgs"}}]})
    assert [str(p.relative_to(d)) for p in folder["m@cpu@f"].input_paths()] == [
        "m.onnx", "imgs", "mtcnn/shape_predictor_5_face_landmarks.dat"]


def test_every_dataset_kind_declares_its_inputs() -> None:
    """A kind without its own ``input_paths`` would be resumed whatever its files hold."""
    for kind, cls in DATASET_KINDS.items():
        assert "input_paths" in cls.__dict__, kind


def test_fingerprint_is_the_content_and_the_listing(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("a,b,1,0\n")
    st = pairs.stat()
    before = InputDigests().digest(pairs)
    with open(pairs, "r+b") as f:
        f.write(b"a,b,0,0\n")
    os.utime(pairs, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert InputDigests().digest(pairs) != before  # same size, time and inode: still seen
    images = tmp_path / "images" / "alice"
    images.mkdir(parents=True)
    (images / "1.jpg").write_bytes(b"jpg")
    listing = InputDigests().digest(tmp_path / "images")
    assert listing.startswith("listing:")
    (images / ".DS_Store").write_bytes(b"hidden")
    assert InputDigests().digest(tmp_path / "images") == listing
    (images / "2.jpg").write_bytes(b"jpg")
    assert InputDigests().digest(tmp_path / "images") != listing
    assert InputDigests().digest(tmp_path / "nothing") == MISSING


def test_a_fifo_is_never_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pairs.csv"
    os.mkfifo(fifo)
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(InputDigests().digest(fifo)), daemon=True)
    t.start()
    t.join(60)
    assert got and got[0].startswith("not a regular file"), got


def test_record_round_trips_its_fingerprint() -> None:
    cell = {"id": "m@d@p", "slug": "m@d@p", "model": "m", "device": "d", "protocol": "p",
            "kind": "efficiency", "spec_sha256": "s", "status": "ok", "reason": None,
            "error": None, "started": None, "duration_s": 1.0, "metrics": {}, "details": {},
            "artifacts": {}}
    inputs = {"/m.onnx": "sha256:" + "0" * 64}
    new = {**cell, "inputs_sha256": inputs_sha256(inputs), "inputs": inputs, "resumed": True}
    for d in (cell, new):  # an older record (no fingerprint) loads and writes back unchanged
        rec = CellRecord.from_dict(d)
        assert rec.to_dict() == d and list(rec.to_dict()) == list(d)
    assert CellRecord.from_dict(new).inputs == inputs and CellRecord.from_dict(cell).inputs is None
