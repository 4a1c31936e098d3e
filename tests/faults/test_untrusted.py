"""Data never runs code: a pickled ``.bin`` dataset, a ``torch.load`` checkpoint and a suite
file whose payloads would create a file are refused through ``facebench`` itself, with a clear
message, and the file never appears. A control proves each payload is live: plain
``pickle.loads`` of the same bytes does create its file."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import Background
from .kit import (
    LFW,
    Ctx,
    cells_by_id,
    facebench_many,
    lfw_rows,
    lines,
    model,
    run_suite,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)


class Payload:
    """Unpickling this calls ``os.system("touch MARKER")``."""

    def __init__(self, marker: Path) -> None:
        self.command = f"touch {marker}"

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def unpickle_in_subprocess(data: bytes, tmp: Path) -> None:
    """The control: what a plain ``pickle.load`` of ``data`` does (in its own process)."""
    blob = tmp / "control.pkl"
    blob.write_bytes(data)
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.load(open(sys.argv[1], "
                    "'rb'))", str(blob)], check=True, capture_output=True)


def evil_bin(path: Path, marker: Path) -> Path:
    """An insightface-style ``.bin``: ``(bins, issame_list)`` with a payload among the bins."""
    with open(path, "wb") as f:
        pickle.dump(([Payload(marker), b"\xff\xd8"], [True]), f, protocol=4)
    return path


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A ``torch.save`` file whose state dict holds a payload instead of a tensor."""
    import torch

    torch.save({"conv1.weight": Payload(marker)}, path)
    return path


@scenario(order=4)
def untrusted(ctx: Ctx) -> dict[str, Path]:
    d = ctx.dir
    paths = {"dir": d, "bin": evil_bin(d / "lfw.bin", d / "PWNED-bin"),
             "pth": evil_checkpoint(d / "backbone.pth", d / "PWNED-pth")}
    write_pair_csv(d / "pairs.csv", lfw_rows(1, 2))
    zoo = {"id": "zoo-evil", "source": "zoo", "arch": "mobilefacenet", "embedding_size": 128,
           "weights": str(paths["pth"])}
    evil = verification("evil-bin", "", "", detector=False, models=["mfn"])
    evil["dataset"] = {"kind": "insightface_bin", "path": str(paths["bin"]), "folds": 2}
    write_suite(d / "suite.yaml", suite("untrusted", [model("mfn"), zoo], [
        evil,
        verification("real", d / "pairs.csv", LFW / "images", detector=False,
                     models=["zoo-evil"]),
    ]))
    paths["out"] = run_suite(ctx, d / "suite.yaml", "--allow-failed-cells")  # else exit 3
    return paths


@pytest.fixture(scope="module")
def run(background: Background) -> dict[str, Path]:
    return background.result(scenario_name(untrusted))


def test_the_payloads_are_live(tmp_path: Path) -> None:
    marker = tmp_path / "control"
    unpickle_in_subprocess(pickle.dumps(([Payload(marker)], [True])), tmp_path)
    assert marker.is_file()


def test_pickled_bin_is_refused_and_runs_nothing(run: dict[str, Path]) -> None:
    cell = cells_by_id(run["out"])["mfn@cpu@evil-bin"]
    assert cell["status"] == "failed"
    assert (cell["error"]["type"], cell["error"]["message"]) == ("DatasetError", (
        f"{run['bin']}: refused to load: forbidden global 'posix.system': only bytes, str, "
        "numbers, bools, lists, tuples, dicts and numpy arrays may be unpickled here (no "
        "arbitrary objects or callables). A verification .bin holds only (list of image bytes, "
        "list of bools); rewrite it with "
        "facebench.datasets.insightface_bin.write_insightface_bin"))
    assert not (run["dir"] / "PWNED-bin").exists()


def test_checkpoint_with_code_is_refused_and_runs_nothing(run: dict[str, Path]) -> None:
    cell = cells_by_id(run["out"])["zoo-evil@cpu@real"]
    assert cell["status"] == "failed"
    assert cell["error"]["type"] == "WeightsError"
    assert cell["error"]["message"].startswith(f"{run['pth']}: ")
    assert not (run["dir"] / "PWNED-pth").exists()
    # the control: the checkpoint's pickle does run the payload when loaded without limits
    with zipfile.ZipFile(run["pth"]) as z:
        (name,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
        data = z.read(name)
    unpickle_in_subprocess(data, run["dir"])
    assert (run["dir"] / "PWNED-pth").is_file()
    (run["dir"] / "PWNED-pth").unlink()


def test_checkpoint_refusal_names_the_forbidden_global(run: dict[str, Path]) -> None:
    cell = cells_by_id(run["out"])["zoo-evil@cpu@real"]
    assert cell["error"]["message"] == (
        f"{run['pth']}: holds a pickled Python object (posix.system), which weights_only=True "
        "refuses; in a trusted environment re-save it with "
        "torch.save(model.state_dict(), path)")


def test_suite_yaml_with_a_python_tag_is_refused(fb_env: dict[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "PWNED-yaml"
    path = tmp_path / "suite.yaml"
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n'
                    "models: []\ndevices: []\nprotocols: []\n", encoding="utf-8")
    got = facebench_many({"validate": ["validate", str(path)],
                          "run": ["run", str(path), "--out", str(tmp_path / "out")]},
                         fb_env, tmp_path)
    for res in got.values():
        assert res.returncode == 2
        assert lines(res.stderr) == [
            f"{path}: 1 problem(s)",
            "(yaml) line 1, column 7: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'; fix the YAML syntax"]
    assert not marker.exists() and not (tmp_path / "out").exists()
