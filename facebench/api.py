"""The Python API for notebooks: run a suite, read results as a tidy pandas DataFrame.

``facebench.run(suite, out=...)`` runs a suite file exactly as ``facebench run`` does (the same
runner) and returns a :class:`Run`; ``facebench.load_results(path)`` reads a run's folder (or
its ``results.json``) into a DataFrame with one row per cell × metric: the columns of
``results.csv`` (docs/results.md) plus the metric's ``unit`` and ``direction`` from
:mod:`facebench.metrics.catalog`. ``value`` is a float, NaN where the metric is undefined (0/0)
and on the one ``status`` row of a failed or skipped cell.

The dict form of ``results.json`` is :func:`facebench.results.load_results`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from facebench.history import HistoryStore
from facebench.metrics.catalog import metric_info
from facebench.results import CSV_COLUMNS, tidy_rows
from facebench.results import load_results as load_results_dict
from facebench.runner.run import RunOptions, run_suite

#: Columns of the DataFrames :func:`load_results` and :attr:`Run.frame` return.
COLUMNS = [*CSV_COLUMNS, "unit", "direction"]


def results_frame(results: dict[str, Any], source: str = "results") -> pd.DataFrame:
    """The tidy DataFrame of a results dict (one row per cell × metric, see the module doc).

    ``source`` names where the dict came from in the error raised for a non-numeric value.
    """
    rows = tidy_rows(results, missing=None)
    for row in rows:
        value = row["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{source}: cell {row['cell_id']!r} metric {row['metric']!r} is "
                             f"{value!r}, not a number or null (docs/results.md: metrics are "
                             "float | int | null)")
        row["value"] = math.nan if value is None else float(value)
        info = metric_info(row["metric"]) if row["metric"] != "status" else None
        row["unit"] = None if info is None else info.unit
        row["direction"] = None if info is None else info.direction
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    return frame


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A run's results as a tidy DataFrame (columns :data:`COLUMNS`); ``path`` is the run's
    output folder or its ``results.json``. Several runs: ``pd.concat`` their frames (``run_id``
    tells them apart).

    Built on :func:`facebench.results.load_results`, the one validated reader, and raises as it
    does: ``FileNotFoundError``, or ``ValueError`` naming the file (a ``schema_version`` this
    facebench does not read; a damaged or edited file: too large, nested too deep, ids a suite
    could not hold, a structure not the contract's).
    """
    return results_frame(load_results_dict(path), str(path))


@dataclass
class Run:
    """A finished run: ``path`` its output folder, ``results`` the results.json dict and
    ``frame`` the tidy DataFrame of :func:`load_results`."""

    path: Path
    results: dict[str, Any] = field(repr=False)
    frame: pd.DataFrame = field(repr=False)

    @property
    def failed(self) -> list[str]:
        """Ids of the cells that failed (``status`` rows of :attr:`frame` say why not ok)."""
        return [c["id"] for c in self.results["cells"] if c["status"] == "failed"]


def run(suite: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
        only: Sequence[str] | None = None, resume: bool = False, executor: str = "local",
        address: str | None = None, progress: bool = True, report: bool = True,
        history: bool = True) -> Run:
    """Run the suite file ``suite`` as ``facebench run SUITE --out OUT`` does and return the
    :class:`Run`.

    ``out`` defaults to ``runs/<suite name>``; ``only`` are ``model@device@protocol`` globs
    (``--only``); ``resume`` continues the run in ``out`` (``--resume``); ``executor`` and
    ``address`` choose the local or Ray executor; ``progress`` shows the progress bars on
    stderr; ``report`` renders report.html / report.md; ``history`` records the run in the
    history database (``$FACEBENCH_HISTORY`` or ``.facebench/history.db``) as the CLI does,
    warning instead of failing when it cannot. A failed cell does not raise: see
    :attr:`Run.failed`. A bad suite, an unusable output folder or an ``only`` that matches
    nothing raise (``SuiteError``, ``OSError``, ``ValueError``).
    """
    opts = RunOptions(out=None if out is None else Path(out),
                      only=None if only is None else list(only), resume=resume,
                      executor=executor, address=address, progress=progress, report=report)
    results = run_suite(Path(suite), opts, Console(stderr=True, soft_wrap=True))
    assert results is not None  # None only for a dry run
    folder = Path(results["run"]["out_dir"])
    if history:
        try:
            with HistoryStore() as store:
                store.record(results, folder / "results.json")
        except Exception as exc:  # noqa: BLE001 - history is a convenience, never fatal
            warnings.warn(f"history not recorded: {exc}", stacklevel=2)
    return Run(folder, results, results_frame(results, str(folder / "results.json")))
