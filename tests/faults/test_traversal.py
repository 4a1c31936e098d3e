"""Path traversal in pair lists (``../`` escapes, absolute paths, a symlink out of the root) is
refused through ``facebench run``: the cell fails naming the file, line and path, and nothing
outside the dataset root is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@scenario(order=6)
def traversal(ctx: Ctx) -> dict[str, Path]:
    d = ctx.dir
    root = d / "images"
    a, b, _, _ = lfw_rows(1, 1)[0]
    for rel in (a, b):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((LFW / "images" / rel).read_bytes())
    os.symlink("/etc/passwd", root / "link.jpg")
    files = {
        "dotdot": write_pair_csv(d / "dotdot.csv", [(a, b, 1, 0), (a, "../../etc/passwd", 0, 0)]),
        "absolute": write_pair_csv(d / "absolute.csv", [("/etc/passwd", b, 0, 0)]),
        "symlink": write_pair_csv(d / "symlink.csv", [(a, b, 1, 0), ("link.jpg", a, 0, 0)]),
    }
    files["lfw"] = d / "pairs.txt"
    files["lfw"].write_text("1\t1\n../../../etc\t1\t2\nA\t1\tB\t1\n", encoding="utf-8")
    protocols = [verification(k, files[k], root, detector=False) for k in
                 ("dotdot", "absolute", "symlink")]
    protocols.append(verification("lfw", files["lfw"], root, kind="lfw_pairs", detector=False))
    write_suite(d / "suite.yaml", suite("traversal", [model("mfn")], protocols))
    out = run_suite(ctx, d / "suite.yaml", "--allow-failed-cells")  # else exit 3
    return {"out": out, "root": root, **files}


@pytest.fixture(scope="module")
def run(background: Background) -> dict[str, Path]:
    return background.result(scenario_name(traversal))


CASES = {
    "dotdot": "{f}:3: path '../../etc/passwd' escapes the image root {root}",
    "absolute": "{f}:2: absolute path '/etc/passwd' not allowed; paths are relative to the "
                "image root {root}",
    "symlink": "{f}:3: path 'link.jpg' escapes the image root {root}",
    "lfw": "{f}:2: path '../../../etc/../../../etc_0001.jpg' escapes the image root {root}",
}


@pytest.mark.parametrize("kind", CASES)
def test_escaping_path_is_refused(run: dict[str, Path], kind: str) -> None:
    cell = cells_by_id(run["out"])[f"mfn@cpu@{kind}"]
    assert cell["status"] == "failed"
    assert (cell["error"]["type"], cell["error"]["message"]) == (
        "DatasetError", CASES[kind].format(f=run[kind], root=run["root"]))
    assert not (run["out"] / "cells" / cell["slug"] / "scores.csv").exists()


def test_nothing_from_outside_reaches_the_outputs(run: dict[str, Path]) -> None:
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    for p in run["out"].rglob("*"):
        if p.is_file() and p.suffix in (".json", ".csv", ".md", ".html", ".log"):
            assert passwd not in p.read_text(errors="replace"), p
