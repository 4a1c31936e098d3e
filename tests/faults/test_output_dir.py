"""An output folder that cannot hold a run: read-only, a file, or a disk without room gets one
clear error (exit 2) before any work, and nothing is written. A disk that fills up during the
run stops it with an error naming the file; results.json stays the last whole version, no temp
file is left, and ``--resume`` finishes once there is room again."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import Background
from .kit import (
    LFW,
    Ctx,
    facebench,
    leftovers,
    lfw_rows,
    lines,
    model,
    results,
    scenario,
    scenario_name,
    suite,
    unparsable_json,
    verification,
    write_pair_csv,
    write_suite,
)


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs root, as in CI's container), unmounted afterwards."""
    path.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


SLUG = "mfn@cpu@lfw"


def small_suite(d: Path) -> Path:
    """A one-cell suite over 8 real LFW pairs."""
    write_pair_csv(d / "pairs.csv", lfw_rows(2, 2))
    return write_suite(d / "suite.yaml", suite("small", [model("mfn")], [
        verification("lfw", d / "pairs.csv", LFW / "images")]))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_suite(tmp_path_factory.mktemp("small"))


def run_into(out: Path, small: Path, env: dict[str, str], cwd: Path) -> list[str]:
    res = facebench(["run", str(small), "--out", str(out), "--no-progress"], env, cwd)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    return lines(res.stderr)


def test_read_only_folder(small: Path, fb_env: dict[str, str], tmp_path: Path) -> None:
    if os.geteuid() == 0:
        ctx = tmpfs(tmp_path / "ro", "64m", read_only=True)
        why = "Read-only file system"
    else:  # without root, permissions make a folder read-only
        (tmp_path / "ro").mkdir(mode=0o555)
        ctx, why = None, "Permission denied"
    with ctx or _nothing():
        for out in (tmp_path / "ro" / "out", tmp_path / "ro"):
            assert run_into(out, small, fb_env, tmp_path) == [
                f"error: output folder {out} is not writable ({why}); choose another with --out"]
        assert list((tmp_path / "ro").iterdir()) == []


def test_output_path_is_a_file(small: Path, fb_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "results.txt"
    out.write_text("keep me\n")
    assert run_into(out, small, fb_env, tmp_path) == [
        f"error: output folder {out} is a file, not a folder; choose another with --out"]
    assert out.read_text() == "keep me\n"


def test_disk_without_room(small: Path, fb_env: dict[str, str], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "64k") as disk:
        out = disk / "out"
        assert run_into(out, small, fb_env, tmp_path) == [
            f"error: output folder {out} has only 64 KiB free, a run needs at least 8 MiB; "
            "free some space or choose another with --out"]
        assert list(disk.iterdir()) == []


def fill(disk: Path) -> Path:
    """Write zeros to ``disk/filler`` until the file system is full."""
    filler = disk / "filler"
    block = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


@dataclass
class Filled:
    """What a run did when its disk filled up, and what ``--resume`` did after."""

    out: Path
    returncode: int
    stderr: str
    bad_json: list[str]
    leftovers: list[str]
    kept: list[str]  # statuses in results.json after the failure
    resumed: subprocess.CompletedProcess[str] | None = None
    statuses: list[str] = field(default_factory=list)
    bad_json_after: list[str] = field(default_factory=list)
    leftovers_after: list[str] = field(default_factory=list)


@scenario(order=8)
def disk_fills(ctx: Ctx) -> Filled:
    small = small_suite(ctx.dir)
    with tmpfs(ctx.dir / "disk", "12m") as disk:
        out = disk / "out"
        proc = subprocess.Popen([sys.executable, "-m", "facebench.cli", "run", str(small),
                                 "--out", str(out), "--no-progress"], cwd=ctx.dir, env=ctx.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not (out / "cells" / SLUG / "stderr.log").exists():  # the cell's worker started
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        filler = fill(disk)
        _, stderr = proc.communicate(timeout=600)
        got = Filled(out, proc.returncode, stderr, unparsable_json(out), leftovers(out),
                     [c["status"] for c in results(out)["cells"]])
        filler.unlink()
        got.resumed = facebench(["run", str(small), "--out", str(out), "--resume",
                                 "--no-progress"], ctx.env, ctx.dir)
        got.statuses = [c["status"] for c in results(out)["cells"]]
        got.bad_json_after, got.leftovers_after = unparsable_json(out), leftovers(out)
    return got


def test_disk_fills_during_the_run(background: Background) -> None:
    got: Filled = background.result(scenario_name(disk_fills))
    assert got.returncode == 2, got.stderr
    # which write meets the full disk first depends on what the failed writes freed
    written = rf"({re.escape(f'cells/{SLUG}/')}result\.json|results\.json|results\.csv)"
    assert re.fullmatch(rf"error: cannot write {re.escape(str(got.out))}/"
                        rf"{written}: No space left on device", lines(got.stderr)[-1]), got.stderr
    assert got.bad_json == [] and got.leftovers == []
    assert got.kept in ([], ["failed"])  # results.json: the last whole version
    assert got.resumed is not None and got.resumed.returncode == 0, got.resumed
    assert got.statuses == ["ok"]
    assert got.bad_json_after == [] and got.leftovers_after == []


@contextmanager
def _nothing() -> Iterator[None]:
    yield
