"""The notebook API: ``facebench.run`` on a real 100-pair LFW suite returns what
``facebench.load_results`` reads back; ``import facebench`` stays light."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from faults.kit import LFW, make_lfw100

import facebench
from facebench.history import HistoryStore


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[facebench.Run, Path]:
    if not (LFW / "pairs.txt").is_file():
        pytest.skip(f"LFW not found at {LFW}")
    d = tmp_path_factory.mktemp("api")
    mp = pytest.MonkeyPatch()
    mp.setenv("FACEBENCH_CACHE", str(d / "cache"))
    mp.setenv("FACEBENCH_HISTORY", f"sqlite:///{d / 'history.db'}")
    try:
        run = facebench.run(make_lfw100(d), out=d / "out", only=["*@*@flip"], progress=False,
                            report=False)
    finally:
        mp.undo()
    return run, d


def test_run_returns_what_load_results_reads(api_run: tuple[facebench.Run, Path]) -> None:
    run, d = api_run
    assert isinstance(run, facebench.Run) and run.path == (d / "out").resolve()
    assert run.failed == []
    pd.testing.assert_frame_equal(run.frame, facebench.load_results(run.path))
    assert run.results == facebench.results.load_results(run.path)
    assert list(dict.fromkeys(run.frame.cell_id)) == ["mfn@cpu@flip"]  # only=


def test_run_frame_is_the_results_csv_with_units(api_run: tuple[facebench.Run, Path]) -> None:
    run, _ = api_run
    csv = pd.read_csv(run.path / "results.csv", dtype={"run_id": str})
    frame = run.frame
    assert frame[csv.columns.tolist()].astype(str).iloc[:, :8].equals(
        csv.astype(str).iloc[:, :8])
    for got, want in zip(frame.value, csv.value, strict=True):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12)
    acc = frame.set_index("metric").loc["accuracy"]
    assert 0.5 < acc.value <= 1 and (acc.unit, acc.direction) == ("fraction", "higher")
    assert frame.set_index("metric").loc["pairs"].value == 100
    assert frame.unit.notna().all() and frame.direction.notna().all()


def test_run_is_recorded_in_the_history(api_run: tuple[facebench.Run, Path]) -> None:
    run, d = api_run
    with HistoryStore(f"sqlite:///{d / 'history.db'}") as store:
        assert store.has_run(run.results["run"]["id"])


def test_import_facebench_stays_light() -> None:
    code = ("import sys, facebench; heavy = [m for m in ('pandas', 'facebench.api', "
            "'facebench.runner.run', 'sqlalchemy') if m in sys.modules]; print(heavy); "
            "assert not heavy; assert callable(facebench.load_results); "
            "assert 'pandas' in sys.modules")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
