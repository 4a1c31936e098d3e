"""An output folder under attack (issue 16, items 1, 5, 8 and 12): cells whose ids join to the
same folder name, two runs on one ``--out`` at once, an ``--out`` that facebench did not make,
symbolic links planted inside ``--out/cells``, and the modes of the files a run writes.

Every run is a real ``facebench run`` process on real LFW pairs and the trained MobileFaceNet."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.datasets.identity import write_pair_csv as write_identity_pairs
from facebench.datasets.insightface_bin import write_insightface_bin
from facebench.datasets.pairs import build
from facebench.gates.junit import write_junit
from facebench.history import HistoryStore
from facebench.io import atomic_write_json
from facebench.metrics import compute_verification_metrics
from facebench.runner.outdir import WRITE_PROBE, check_ours
from facebench.runner.run import check_writable
from facebench.scores import ScoreTable, read_scores, write_scores

from .kit import (
    CPU,
    LFW,
    facebench,
    leftovers,
    lfw_rows,
    lines,
    model,
    results,
    suite,
    unparsable_json,
    verification,
    write_pair_csv,
    write_suite,
)

UMASK = 0o022


def with_umask() -> None:
    os.umask(UMASK)


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``facebench ARGS`` under umask 022 (so that modes are known: 0644 files)."""
    return facebench(args, env, cwd, preexec_fn=with_umask)


def small_suite(d: Path) -> Path:
    """One verification cell (``mfn@cpu@lfw``) over 8 real LFW pairs in 2 folds."""
    write_pair_csv(d / "pairs.csv", lfw_rows(2, 2))
    return write_suite(d / "suite.yaml", suite("small", [model("mfn")], [
        verification("lfw", d / "pairs.csv", LFW / "images")]))


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under ``folder`` (not following links): file bytes, or a link's target."""
    got: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            got[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            got[rel] = path.read_bytes()
    return got


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, fb_env: dict[str, str]) -> Path:
    """A finished run of the small suite into a folder that existed, empty, beforehand."""
    d = tmp_path_factory.mktemp("finished")
    out = d / "out"
    out.mkdir()
    res = run_cli(["run", str(small_suite(d)), "--out", str(out), "--no-progress"], fb_env, d)
    assert res.returncode == 0, res.stderr
    assert [c["status"] for c in results(out)["cells"]] == ["ok"]
    return out


def copy_of(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished, out, symlinks=True)
    return out


def rerun(out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    suite_file = Path(results(out)["run"]["suite_path"])
    return run_cli(["run", str(suite_file), "--out", str(out), "--no-progress", *extra], env,
                   out.parent)


# ---- item 1: one folder per cell -----------------------------------------------------------

def test_cells_whose_ids_join_alike_get_folders_of_their_own(
        fb_env: dict[str, str], tmp_path: Path) -> None:
    """Model ``a`` on device ``b__c`` and model ``a__b`` on device ``c`` (different models):
    each cell's recorded metrics recompute from its own scores.csv."""
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(5, 2))
    bgr = {**model("a__b"), "preprocess": {**model("a__b")["preprocess"], "color": "BGR"}}
    spec = suite("collide", [model("a"), bgr], [verification("lfw", pairs, LFW / "images")])
    spec["devices"] = [{**CPU, "id": "b__c"}, {**CPU, "id": "c"}]
    out = tmp_path / "out"
    res = run_cli(["run", str(write_suite(tmp_path / "suite.yaml", spec)), "--out", str(out),
                   "--no-progress"], fb_env, tmp_path)
    assert res.returncode == 0, res.stderr
    cells = results(out)["cells"]
    assert sorted(c["id"] for c in cells) == ["a@b__c@lfw", "a@c@lfw", "a__b@b__c@lfw",
                                              "a__b@c@lfw"]
    for cell in cells:
        assert cell["status"] == "ok", cell["error"]
        table = read_scores(out / cell["artifacts"]["scores"])
        again = compute_verification_metrics(table.score, table.label, folds=table.fold,
                                             fta=table.fta, far_targets=(0.1,)).metrics
        assert {k: cell["metrics"][k] for k in again} == again, cell["id"]
    scores = [c["artifacts"]["scores"] for c in cells]
    assert len(set(scores)) == 4, scores
    # the two models differ, so a shared folder could not have gone unnoticed above
    by_id = {c["id"]: c for c in cells}
    assert by_id["a@b__c@lfw"]["metrics"] != by_id["a__b@c@lfw"]["metrics"]


def test_ids_that_differ_only_in_case_are_refused(fb_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    """On a case-insensitive file system (macOS, Windows) ``mfn@…`` and ``MFN@…`` would be one
    folder: planning refuses them, naming both cells."""
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(2, 2))
    suite_file = write_suite(tmp_path / "suite.yaml", suite("case", [model("mfn"), model("MFN")], [
        verification("lfw", pairs, LFW / "images")]))
    for args in (["run", str(suite_file), "--out", str(tmp_path / "out"), "--dry-run"],
                 ["validate", str(suite_file)]):  # validate: a traceback before issue 27
        res = run_cli(args, fb_env, tmp_path)
        assert res.returncode == 2, res.stderr
        assert lines(res.stderr) == [
            "error: cells 'mfn@cpu@lfw' and 'MFN@cpu@lfw' would share one output folder "
            "(cells/mfn@cpu@lfw) on a case-insensitive file system; give the models, devices or "
            "protocols ids that differ by more than case"]


# ---- item 5: one run at a time per output folder --------------------------------------------

def test_two_runs_on_one_folder_at_once(fb_env: dict[str, str], tmp_path: Path) -> None:
    """Started together: one run completes, the other stops at once with exit 2 naming the
    folder and the PID holding it, and records nothing in the history."""
    env = {**fb_env, "FACEBENCH_HISTORY": f"sqlite:///{tmp_path / 'history.db'}"}
    suite_file = small_suite(tmp_path)
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "facebench.cli", "run", str(suite_file),
                               "--out", str(out), "--no-progress"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=with_umask) for _ in range(2)]
    done = [(p, *p.communicate(timeout=600)) for p in procs]
    assert sorted(p.returncode for p, _, _ in done) == [0, 2], [e for _, _, e in done]
    (winner, _, won), = [d for d in done if d[0].returncode == 0]
    (_, stdout, refused), = [d for d in done if d[0].returncode == 2]
    assert stdout == ""
    assert lines(refused) == [
        f"error: output folder {out} is in use by another facebench run (pid {winner.pid}); "
        "wait for it to finish, or choose another folder with --out"]
    got = results(out)
    assert [c["status"] for c in got["cells"]] == ["ok"], won
    assert unparsable_json(out) == [] and leftovers(out) == []
    assert [r.run_id for r in HistoryStore(env["FACEBENCH_HISTORY"]).list_runs()] == [
        got["run"]["id"]]


# ---- item 8: a folder facebench did not make; links inside one it did ----------------------

def test_a_folder_facebench_did_not_make_is_left_alone(fb_env: dict[str, str],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    for name, text in {"notes.txt": "keep", ".draft.tmp": "keep", ".job.1.json": "{}",
                       "results.json": '{"mine": true}', "report.md": "# mine"}.items():
        (out / name).write_text(text)
    before = snapshot(out)
    res = run_cli(["run", str(small_suite(tmp_path)), "--out", str(out), "--no-progress"],
                  fb_env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert lines(res.stderr) == [
        f"error: output folder {out} is not empty and was not made by facebench (it holds "
        ".draft.tmp, .job.1.json, notes.txt, …); a run would overwrite and delete files there: "
        "choose a new or empty folder with --out"]
    assert snapshot(out) == before


def test_a_run_folder_without_the_lock_file_is_still_facebench_s(
        finished: Path, fb_env: dict[str, str], tmp_path: Path) -> None:
    """Folders of runs made before the lock file existed are recognised by results.json."""
    out = copy_of(finished, tmp_path)
    (out / ".facebench.lock").unlink(missing_ok=True)
    res = rerun(out, fb_env, "--resume")
    assert res.returncode == 0, res.stderr
    assert [c["status"] for c in results(out)["cells"]] == ["ok"]


def plant_cell_folder(out: Path, victim: Path) -> Path:
    """The cell's folder becomes a link to ``victim`` (a folder of someone's files)."""
    cell_dir = out / results(out)["cells"][0]["artifacts"]["scores"].rpartition("/")[0]
    shutil.rmtree(cell_dir)
    cell_dir.symlink_to(victim, target_is_directory=True)
    return cell_dir


def plant_cell_file(out: Path, victim: Path) -> Path:
    """The cell's ``stderr.log`` becomes a link to ``victim/notes.txt``."""
    log = out / results(out)["cells"][0]["artifacts"]["scores"].rpartition("/")[0] / "stderr.log"
    log.unlink()
    log.symlink_to(victim / "notes.txt")
    return log


def plant_other_folder(out: Path, victim: Path) -> Path:
    """A folder beside the cells' (no cell of the suite) is a link to ``victim``."""
    link = out / "cells" / "zz-elsewhere"
    link.symlink_to(victim, target_is_directory=True)
    return link


def plant_cells(out: Path, victim: Path) -> Path:
    """``cells`` itself is a link to ``victim``, which holds a copy of the cells."""
    shutil.copytree(out / "cells", victim, dirs_exist_ok=True)
    shutil.rmtree(out / "cells")
    (out / "cells").symlink_to(victim, target_is_directory=True)
    return out / "cells"


@pytest.mark.parametrize("plant", [plant_cell_folder, plant_cell_file, plant_other_folder,
                                   plant_cells], ids=lambda f: f.__name__)
@pytest.mark.parametrize("resume", [False, True], ids=["fresh", "resume"])
def test_links_inside_cells_are_refused(plant: Callable[[Path, Path], Path], resume: bool,
                                        finished: Path, fb_env: dict[str, str],
                                        tmp_path: Path) -> None:
    """Nothing is written or deleted through a link: the run stops before any work, naming it."""
    out = copy_of(finished, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    for name, text in {"notes.txt": "keep", "scores.csv": "keep", ".draft.tmp": "keep",
                       ".job.7.json": "{}"}.items():
        (victim / name).write_text(text)
    link = plant(out, victim)
    before, kept = snapshot(victim), snapshot(out)
    res = rerun(out, fb_env, *(["--resume"] if resume else []))
    assert res.returncode == 2, res.stderr
    assert lines(res.stderr) == [
        f"error: {link} is a symbolic link; facebench never writes or deletes through a link in "
        "its output folder: remove it, or choose another folder with --out"]
    assert snapshot(victim) == before
    assert snapshot(out) == kept


# ---- item 12: the modes of what a run writes -------------------------------------------------

def test_every_file_of_a_run_gets_the_umask_mode(finished: Path) -> None:
    """Under umask 022 every file is 0644 (scores.csv was 0600) and every folder 0755."""
    modes = {str(p.relative_to(finished)): stat.S_IMODE(p.stat().st_mode)
             for p in finished.rglob("*")}
    assert {"results.json", "results.csv", "report.html", "report.md"} <= modes.keys()
    assert any(k.endswith("/scores.csv") for k in modes)
    want = {k: 0o755 if (finished / k).is_dir() else 0o644 for k in modes}
    assert modes == want


WRITERS: dict[str, Callable[[Path], Any]] = {
    "scores.csv": lambda p: write_scores(p, ScoreTable.from_arrays(
        np.array(["0", "1"]), np.array([0.9, 0.1]), np.array([1, 0]), np.array([0, 0]),
        np.array([False, False]))),
    "scores.csv.gz": lambda p: write_scores(p, ScoreTable.from_arrays(
        np.array(["0"]), np.array([0.5]), np.array([1]), np.array([0]), np.array([False]))),
    "junit.xml": lambda p: write_junit([], p),
    "pairs.csv": lambda p: write_identity_pairs(build("x", p.parent, [
        (p.parent / "a.jpg", p.parent / "b.jpg", 1, 0)], "-"), p),
    "data.bin": lambda p: write_insightface_bin(p, [b"a", b"b"], [True]),
    "results.json": lambda p: atomic_write_json(p, {"x": 1}),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_atomic_writers_give_the_umask_mode(name: str, tmp_path: Path) -> None:
    """Every writer goes through facebench.io.atomic_path: never mkstemp's 0600."""
    mask = os.umask(0)
    os.umask(mask)
    path = tmp_path / name
    WRITERS[name](path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp file left


def test_two_runs_starting_on_one_new_folder_keep_their_own_write_probes(tmp_path: Path) -> None:
    """Found by benchmarks/soak_resume.py: two runs started together on a new folder shared one
    write-probe name, so one removed the other's probe and stopped with a false "not writable".
    Each run's probe now carries its PID: another run's probe is neither removed nor taken for a
    foreign file."""
    out = tmp_path / "out"
    out.mkdir()
    other = out / f"{WRITE_PROBE}.{os.getpid() + 1}"  # another run, between write and unlink
    other.write_bytes(b"ok")
    check_ours(out)  # only another run's probe inside: still a new folder
    check_writable(out)
    assert sorted(p.name for p in out.iterdir()) == [other.name]


# ---- issue 27, item 6: nothing is written through a link planted in the output folder --------

def outside_file(folder: Path, name: str, text: str = "someone's file\n") -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))  # an old mtime
    return path


def fingerprint(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under ``folder``: its bytes, modification time (ns) and link count."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_nlink)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cell_dir_of(out: Path) -> Path:
    return out / results(out)["cells"][0]["artifacts"]["scores"].rpartition("/")[0]


def test_report_refuses_a_linked_figures_folder(finished: Path, fb_env: dict[str, str],
                                                tmp_path: Path) -> None:
    """``facebench report OUT`` wrote its SVGs into the target of ``OUT/figures`` (a link to a
    folder outside OUT). Now: exit 2, one line naming the link, nothing written anywhere."""
    out = copy_of(finished, tmp_path)
    victim = tmp_path / "victim"
    outside_file(victim, "keep.txt")
    shutil.rmtree(out / "figures", ignore_errors=True)
    (out / "figures").symlink_to(victim, target_is_directory=True)
    before, kept = fingerprint(victim), snapshot(out)
    res = run_cli(["report", str(out)], fb_env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    got = lines(res.stderr)
    assert len(got) == 1 and f"report rendering failed ({out / 'results.json'})" in got[0], got
    assert f"{out / 'figures'} is a symbolic link" in got[0], got[0]
    assert fingerprint(victim) == before
    assert snapshot(out) == kept  # report.md / report.html not rewritten either


@pytest.mark.parametrize("where", ["cells", "cell"])
def test_report_never_touches_linked_cell_folders(where: str, finished: Path,
                                                  fb_env: dict[str, str], tmp_path: Path) -> None:
    """``report`` writes only report.html, report.md and figures/: a link at ``cells`` or at a
    cell's folder is not written through (and the report itself still renders)."""
    out = copy_of(finished, tmp_path)
    victim = tmp_path / "victim"
    for name in ("scores.csv", "stderr.log", "result.json"):
        outside_file(victim, name)
    link = plant_cells(out, victim) if where == "cells" else plant_cell_folder(out, victim)
    before = fingerprint(victim)
    res = run_cli(["report", str(out)], fb_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert link.is_symlink() and fingerprint(victim) == before


#: Files of a finished run that a rerun writes again (stderr.log: the worker's, opened by the
#: runner; the others by temp file and rename).
REWRITTEN = ["cells/{cell}/stderr.log", "cells/{cell}/scores.csv", "cells/{cell}/result.json",
             "results.json", "results.csv", "report.html", "report.md"]


def test_a_rerun_never_writes_through_hard_links(finished: Path, fb_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    """Each file a rerun rewrites is a hard link to a file outside OUT: the rerun replaces the
    links with new files (stderr.log was opened in place, truncating the outside file)."""
    out = copy_of(finished, tmp_path)
    cell = cell_dir_of(out).name
    suite_file = results(out)["run"]["suite_path"]
    victim = tmp_path / "victim"
    for i, rel in enumerate(REWRITTEN):
        target = out / rel.format(cell=cell)
        target.unlink()
        os.link(outside_file(victim, f"{i}-{target.name}"), target)
    before = fingerprint(victim)
    res = run_cli(["run", suite_file, "--out", str(out), "--no-progress"], fb_env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert fingerprint(victim) == {k: (b, t, 1) for k, (b, t, _) in before.items()}
    for rel in REWRITTEN:  # every one a file of its own again, with the run's content
        path = out / rel.format(cell=cell)
        assert path.stat().st_nlink == 1, rel
        assert b"someone's file" not in path.read_bytes(), rel
    assert [c["status"] for c in results(out)["cells"]] == ["ok"]


def test_a_hard_linked_lock_file_is_refused(finished: Path, fb_env: dict[str, str],
                                            tmp_path: Path) -> None:
    """The lock file takes the run's PID (written in place, it must stay the same file for
    ``flock``): a hard link there would carry the write outside. Refused, nothing written."""
    out = copy_of(finished, tmp_path)
    victim = outside_file(tmp_path / "victim", "lock.txt")
    (out / ".facebench.lock").unlink(missing_ok=True)
    os.link(victim, out / ".facebench.lock")
    before, kept = fingerprint(victim.parent), snapshot(out)
    res = rerun(out, fb_env)
    assert res.returncode == 2, res.stderr
    assert lines(res.stderr) == [
        f"error: {out / '.facebench.lock'} has 2 hard links; facebench writes its lock there and "
        "never writes through a link: remove it, or choose another folder with --out"]
    assert fingerprint(victim.parent) == before and snapshot(out) == kept


def test_resume_over_a_tampered_results_json_starts_from_the_cells(
        finished: Path, fb_env: dict[str, str], tmp_path: Path) -> None:
    """Issue 27, item 8: ``--resume`` reads the previous results.json through the validated
    loader; 200,000 nested ``[`` there was a RecursionError traceback. Now one warning, and the
    cells' own records are reused."""
    out = copy_of(finished, tmp_path)
    suite_file = results(out)["run"]["suite_path"]
    (out / "results.json").write_bytes(b"[" * 200_000)
    res = run_cli(["run", suite_file, "--out", str(out), "--no-progress", "--resume"], fb_env,
                  tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    warned = [ln for ln in lines(res.stderr) if ln.startswith("warning:")]
    assert warned == [f"warning: {out / 'results.json'}: not a readable results.json (nested "
                      "200000 levels deep, more than the 64 allowed); re-run the suite with "
                      "`facebench run SUITE --out DIR` to write it again; resuming from the "
                      "cells' own records"]
    cells = results(out)["cells"]
    assert [(c["status"], c.get("resumed")) for c in cells] == [("ok", True)]


@pytest.mark.parametrize("link", ["figures", "cells", "cell"])
def test_writers_refuse_a_linked_folder_inside_the_output_folder(link: str,
                                                                 tmp_path: Path) -> None:
    """The one rule of every writer under OUT (facebench.io.atomic_path with ``root``): no
    folder between OUT and the file may be a symbolic link."""
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.mkdir()
    rel = {"figures": "figures/a.svg", "cells": "cells/m@d@p/scores.csv",
           "cell": "cells/m@d@p/scores.csv"}[link]
    linked = out / ("figures" if link == "figures" else "cells" if link == "cells"
                    else "cells/m@d@p")
    linked.parent.mkdir(parents=True, exist_ok=True)
    linked.symlink_to(victim, target_is_directory=True)
    table = ScoreTable.from_arrays(np.array(["0"]), np.array([0.5]), np.array([1]),
                                   np.array([0]), np.array([False]))
    with pytest.raises(OSError, match=f"{linked} is a symbolic link"):
        if rel.endswith(".svg"):
            atomic_write_json(out / rel, {"x": 1}, root=out)
        else:
            write_scores(out / rel, table, root=out)
    assert list(victim.iterdir()) == []
