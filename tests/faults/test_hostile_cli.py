"""Issue 27, items 11 and 13 (the command line): every bad option value, output path, checkpoint
or dataset is one line on stderr naming it, exit 2, never a traceback; an option that cannot
be honoured is refused before anything is created; ``make-ijb`` deletes only its own output.

Every case runs the real CLI in its own process on real files: the trained MobileFaceNet, LFW
images (also packed into an insightface ``.bin``), RetinaFace's detector weights, the committed
example run's results.json."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from facebench.datasets.insightface_bin import write_insightface_bin

from .kit import (
    LFW,
    ROOT,
    SHARED,
    YUNET,
    facebench,
    lfw_rows,
    lines,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

EXAMPLE = ROOT / "reports" / "lfw-mobilefacenet"
RETINAFACE = SHARED / "models" / "retinaface_mobilenet0.25.pth"


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` (not following links): file bytes, a link's target, or
    ``"dir"``."""
    got: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            got[rel] = f"-> {os.readlink(path)}"
        else:
            got[rel] = path.read_bytes() if path.is_file() else "dir"
    return got


def one_line_error(res: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit 2, no traceback, exactly one line on stderr that names each of ``names``."""
    assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stdout + res.stderr, res.stderr[-2000:]
    got = lines(res.stderr)
    assert len(got) == 1, res.stderr
    for name in names:
        assert name in got[0], (name, got[0])
    return got[0]


def small_suite(d: Path) -> Path:
    """One verification cell (``mfn@cpu@lfw``) over 8 real LFW pairs."""
    write_pair_csv(d / "pairs.csv", lfw_rows(2, 2))
    return write_suite(d / "suite.yaml", suite("small", [model("mfn")], [
        verification("lfw", d / "pairs.csv", LFW / "images")]))


def score_file(d: Path) -> Path:
    """A real score file: 40 pairs in 2 folds, scores that separate most of them."""
    rows = [f"{i},{0.2 + 0.6 * (i % 2) + 0.01 * (i % 7):.3f},{i % 2},{i % 2 ^ (i // 20)}"
            for i in range(40)]
    (d / "scores.csv").write_text("pair_id,score,label,fold\n" + "\n".join(rows) + "\n")
    return d / "scores.csv"


# ---- item 11: output paths, sizes, checkpoints, datasets -------------------------------------

def test_schema_out_a_folder(tmp_path: Path, fb_env: dict[str, str]) -> None:
    (tmp_path / "d").mkdir()
    res = facebench(["schema", "--out", "d"], fb_env, tmp_path)
    one_line_error(res, "--out", "d", "folder")
    assert not any((tmp_path / "d").iterdir())


def test_schema_out_under_a_file(tmp_path: Path, fb_env: dict[str, str]) -> None:
    (tmp_path / "f.txt").write_text("mine\n")
    res = facebench(["schema", "--out", "f.txt/schema.json"], fb_env, tmp_path)
    one_line_error(res, "--out", "f.txt")
    assert (tmp_path / "f.txt").read_text() == "mine\n"


@pytest.mark.parametrize("flag", ["--summary", "--junit"])
def test_gate_output_a_folder(flag: str, tmp_path: Path, fb_env: dict[str, str]) -> None:
    run = shutil.copytree(EXAMPLE, tmp_path / "run")
    (tmp_path / "d").mkdir()
    res = facebench(["gate", str(run), flag, str(tmp_path / "d")], fb_env, tmp_path)
    one_line_error(res, flag, str(tmp_path / "d"))
    assert not any((tmp_path / "d").iterdir())


def test_run_gate_summary_a_folder_is_refused_before_the_run(tmp_path: Path,
                                                            fb_env: dict[str, str]) -> None:
    (tmp_path / "d").mkdir()
    res = facebench(["run", str(small_suite(tmp_path)), "--out", str(tmp_path / "out"),
                     "--gate", "--summary", str(tmp_path / "d"), "--no-progress"], fb_env,
                    tmp_path)
    one_line_error(res, "--summary")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", ["0", "-5", "100000", "16"])
def test_export_input_size(size: str, tmp_path: Path, fb_env: dict[str, str]) -> None:
    """Out of bounds (0, -5, 100000), or a size the architecture cannot take (16: its 7×7 head)."""
    res = facebench(["export", "mobilefacenet", "--onnx", "m.onnx", "--input-size", size],
                    fb_env, tmp_path)
    line = one_line_error(res)
    assert ("--input-size" in line) or ("16×16" in line and "MobileFaceNet" in line), line
    assert list(tmp_path.iterdir()) == []


def _csv(d: Path) -> Path:
    return write_pair_csv(d / "w.csv", lfw_rows(1, 1))


def _pickle(d: Path) -> Path:
    (d / "w.pkl").write_bytes(pickle.dumps({"conv1.weight": [1.0, 2.0]}, protocol=4))
    return d / "w.pkl"


def _detector(d: Path) -> Path:
    return RETINAFACE


@pytest.mark.parametrize("make", [_csv, _pickle, _detector], ids=["csv", "pickle", "detector"])
def test_export_weights_that_are_not_a_checkpoint_of_the_model(make, tmp_path: Path,
                                                               fb_env: dict[str, str]) -> None:
    weights = make(tmp_path)
    res = facebench(["export", "mobilefacenet", "--onnx", str(tmp_path / "m.onnx"),
                     "--weights", str(weights)], fb_env, tmp_path)
    line = one_line_error(res, str(weights))
    assert "weights_only" not in line  # never the advice to unpickle it unrestricted
    if make is _detector:
        assert "none of its" in line and "not a checkpoint of this architecture" in line
    assert not (tmp_path / "m.onnx").exists()


def test_export_weights_with_nan(tmp_path: Path, fb_env: dict[str, str]) -> None:
    """MobileFaceNet's own state dict with one NaN: refused by name, not exported."""
    import torch

    from facebench.zoo import get_model

    sd = get_model("mobilefacenet").state_dict()
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[key].view(-1)[0] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    res = facebench(["export", "mobilefacenet", "--onnx", str(tmp_path / "m.onnx"),
                     "--weights", str(tmp_path / "nan.pt")], fb_env, tmp_path)
    one_line_error(res, "nan.pt", key, "NaN")
    assert not (tmp_path / "m.onnx").exists()


def test_export_weights_giving_nan_embeddings_fail_parity(tmp_path: Path,
                                                          fb_env: dict[str, str]) -> None:
    """Finite weights whose embeddings overflow (last BatchNorm: gamma 3e38, variance 0): the
    parity check used to skip NaN differences and call the NaN model ok (max |Δ| 0). Now the
    export fails (exit 1, one line) and leaves nothing at --onnx."""
    import torch

    from facebench.zoo import get_model

    sd = get_model("mobilefacenet").state_dict()
    sd["features.layers.3.weight"].fill_(3e38)
    sd["features.layers.3.running_var"].fill_(0)
    torch.save(sd, tmp_path / "overflow.pt")
    res = facebench(["export", "mobilefacenet", "--onnx", str(tmp_path / "m.onnx"),
                     "--weights", str(tmp_path / "overflow.pt")], fb_env, tmp_path)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    got = lines(res.stderr)
    assert len(got) == 1 and "m.onnx" in got[0] and "NaN or infinite" in got[0], got
    assert sorted(p.name for p in tmp_path.iterdir()) == ["overflow.pt"]


def test_align_on_a_damaged_bin(tmp_path: Path, fb_env: dict[str, str]) -> None:
    """An insightface ``.bin`` of real LFW images, cut short: one line naming it."""
    rows = lfw_rows(2, 1)
    images = [(LFW / "images" / p).read_bytes() for a, b, _, _ in rows for p in (a, b)]
    good = write_insightface_bin(tmp_path / "good.bin", images, [bool(y) for *_, y, _ in rows])
    cut = tmp_path / "lfw.bin"
    cut.write_bytes(good.read_bytes()[:5000])
    proto = verification("bin", "-", "-", detector=False)
    proto["dataset"] = {"kind": "insightface_bin", "path": str(cut), "folds": 2}
    s = write_suite(tmp_path / "bin.yaml", suite("bin", [model("mfn")], [proto]))
    res = facebench(["align", str(s)], fb_env, tmp_path)
    one_line_error(res, str(cut))


# ---- item 13: unbounded or silent options ----------------------------------------------------

def test_align_only_matching_nothing_lists_the_protocols(tmp_path: Path,
                                                          fb_env: dict[str, str]) -> None:
    res = facebench(["align", str(small_suite(tmp_path)), "--only", "nosuch"], fb_env, tmp_path)
    one_line_error(res, "--only", "nosuch", "lfw")


def test_align_warms_what_reads_images(tmp_path: Path, fb_env: dict[str, str]) -> None:
    """The verification protocol is aligned (one line), the efficiency one has nothing to align;
    naming only the efficiency protocol is an error that says so."""
    rows = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(2, 1))
    n = len({p for a, b, _, _ in lfw_rows(2, 1) for p in (a, b)})
    s = write_suite(tmp_path / "suite.yaml", suite("two", [model("mfn")], [
        verification("lfw", rows, LFW / "images"),
        {"id": "eff", "kind": "efficiency", "batch_sizes": [1]}]))
    env = {**fb_env, "FACEBENCH_CACHE": str(tmp_path / "cache")}
    for cached in (0, n):
        res = facebench(["align", str(s), "--workers", "1"], env, tmp_path)
        assert res.returncode == 0, res.stderr
        got = lines(res.stdout)
        assert len(got) == 1, got
        assert got[0].startswith(f"lfw: {n} images, similarity 112×112 — {cached} already cached")
    res = facebench(["align", str(s), "--only", "eff"], env, tmp_path)
    one_line_error(res, "nothing to align", "eff")


def test_run_executor_bogus_creates_nothing(tmp_path: Path, fb_env: dict[str, str]) -> None:
    res = facebench(["run", str(small_suite(tmp_path)), "--out", str(tmp_path / "out"),
                     "--executor", "bogus", "--no-progress"], fb_env, tmp_path)
    assert not (tmp_path / "out").exists()  # no folder, no results.json
    one_line_error(res, "--executor", "bogus")


def test_metrics_bootstrap_is_bounded(tmp_path: Path, fb_env: dict[str, str]) -> None:
    res = facebench(["metrics", str(score_file(tmp_path)), "--bootstrap", "1000000000"],
                    fb_env, tmp_path, timeout=120)
    one_line_error(res, "--bootstrap")


#: A numeric option of every command with 0, -1, huge and non-numeric values.
NUMERIC = {
    "history --limit": ["0", "-1", "1e21", str(10**21), "x"],
    "metrics --bootstrap": ["-1", str(10**9), "1e3", "x"],
    "metrics --far": ["0", "-1", "2", "nan", "inf", "x"],
    "export --input-size": ["0", "-1", str(10**9), "x"],
    "export --embedding-size": ["0", "-1", str(10**9), "x"],
    "align --workers": ["0", "-1", str(10**6), "x"],
    "make-ijb --subjects": ["0", "-1", str(10**30), "x"],
    "make-ijb --min-images": ["0", "-1", "2", str(10**30), "x"],
    "make-ijb --seed": ["-1", str(2**32), str(10**30), "x"],
}
SWEEP = [(cmd, value) for cmd, values in NUMERIC.items() for value in values]


def _command(command: str, d: Path) -> list[str]:
    """``command`` with valid arguments (real inputs written into ``d``)."""
    if command == "metrics":
        return ["metrics", str(score_file(d))]
    if command == "export":
        return ["export", "mobilefacenet", "--onnx", str(d / "m.onnx")]
    if command == "align":
        return ["align", str(small_suite(d))]
    if command == "make-ijb":
        return ["make-ijb", str(LFW / "images"), str(d / "ijb"), "--detector-model", str(YUNET)]
    return [command]


@pytest.mark.parametrize(("cmd", "value"), SWEEP, ids=[f"{c}={v}" for c, v in SWEEP])
def test_numeric_options_hold(cmd: str, value: str, tmp_path: Path,
                              fb_env: dict[str, str]) -> None:
    command, flag = cmd.split()
    argv = [*_command(command, tmp_path), f"{flag}={value}"]
    before = snapshot(tmp_path)
    res = facebench(argv, fb_env, tmp_path, timeout=120)
    one_line_error(res, flag)
    assert snapshot(tmp_path) == before  # no output, no partial folder


# ---- item 13: make-ijb deletes only what it wrote --------------------------------------------

MAKE_IJB = ["--subjects", "2", "--min-images", "4", "--detector-model", str(YUNET)]


def make_ijb(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return facebench(["make-ijb", str(LFW / "images"), str(out), *MAKE_IJB], env, out.parent)


@pytest.fixture(scope="module")
def ijb(tmp_path_factory: pytest.TempPathFactory, fb_env: dict[str, str]) -> Path:
    """A real make-ijb output (2 LFW subjects, YuNet)."""
    out = tmp_path_factory.mktemp("ijb") / "ijb"
    res = make_ijb(out, fb_env)
    assert res.returncode == 0, res.stderr
    return out


def test_make_ijb_keeps_a_folder_with_a_copied_manifest(ijb: Path, tmp_path: Path,
                                                        fb_env: dict[str, str]) -> None:
    victim = tmp_path / "mine"
    (victim / "loose_crop").mkdir(parents=True)
    shutil.copy(ijb / "manifest.json", victim / "manifest.json")
    (victim / "notes.txt").write_text("my notes\n")
    (victim / "loose_crop" / "1.jpg").write_bytes((LFW / "images" / lfw_rows(1, 1)[0][0])
                                                  .read_bytes())
    before = snapshot(victim)
    res = make_ijb(victim, fb_env)
    one_line_error(res, str(victim), "not an earlier make-ijb output")
    assert snapshot(victim) == before
    assert [p.name for p in tmp_path.iterdir()] == ["mine"]  # no staging folder left beside


def test_make_ijb_keeps_its_own_output_once_changed(ijb: Path, tmp_path: Path,
                                                    fb_env: dict[str, str]) -> None:
    out = shutil.copytree(ijb, tmp_path / "ijb")
    crop = next((out / "loose_crop").iterdir())
    crop.write_bytes(crop.read_bytes() + b"edited")
    before = snapshot(out)
    res = make_ijb(out, fb_env)
    one_line_error(res, str(out), f"loose_crop/{crop.name} changed")
    assert snapshot(out) == before


def test_make_ijb_replaces_its_own_unchanged_output(ijb: Path, tmp_path: Path,
                                                    fb_env: dict[str, str]) -> None:
    out = shutil.copytree(ijb, tmp_path / "ijb")
    before = snapshot(out)
    res = make_ijb(out, fb_env)
    assert res.returncode == 0, res.stderr
    assert snapshot(out) == before  # same inputs and seed, the same bytes
    assert [p.name for p in tmp_path.iterdir()] == ["ijb"]
