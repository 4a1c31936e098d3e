"""``facebench run``: plan a suite, run its cells, keep results.json current, render reports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from facebench.environment import cpu_peak_gflops, fingerprint
from facebench.environment import git_info as _git
from facebench.io import atomic_write_json, create_new
from facebench.pipeline.efficiency import PEAKS_FILE
from facebench.plan import Cell, plan
from facebench.probes.efficiency import rebase_on_run_peaks
from facebench.probes.peaks import PeakCache, environment_block
from facebench.probes.pytest_benchmark import to_pytest_benchmark_json
from facebench.results import (
    check_results,
    load_results,
    new_results,
    now,
    run_header,
    write_results,
)
from facebench.runner.comparisons import attach_model_comparisons
from facebench.runner.inputs import InputDigests, stale_reason
from facebench.runner.interleave import attach_interleaved
from facebench.runner.local import run_cells
from facebench.runner.outdir import WRITE_PROBE, OutputLock, check_ours, refuse_links
from facebench.runner.ray_executor import make_ray_executor
from facebench.runner.variants import attach_precision_comparisons
from facebench.runner.worker import skip_reason
from facebench.suite import Suite, load_suite
from facebench.text import plain

REPO_DIR = Path(__file__).resolve().parents[2]


@dataclass
class RunOptions:
    out: Path | None = None
    only: list[str] | None = None
    dry_run: bool = False
    resume: bool = False
    executor: str = "local"
    address: str | None = None
    progress: bool = True
    report: bool = True


def default_out(suite: Suite) -> Path:
    return Path("runs") / suite.name


#: Free space a run needs at least in its output folder (results, scores, reports, figures).
MIN_FREE_BYTES = 8 * 2**20


def check_writable(out: Path) -> None:
    """Fail before any work when the output folder cannot be written or has no room; nothing is
    created when it fails on a file in the way or a disk without room."""
    if out.exists() and not out.is_dir():
        raise OSError(f"output folder {out} is a file, not a folder; choose another with --out")
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None:
        free = shutil.disk_usage(existing).free
        if free < MIN_FREE_BYTES:
            raise OSError(f"output folder {out} has only {free // 1024} KiB free, a run needs at "
                          f"least {MIN_FREE_BYTES // 2**20} MiB; free some space or choose "
                          "another with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f"{WRITE_PROBE}.{os.getpid()}"
        os.close(create_new(probe))
        probe.unlink()
    except OSError as exc:
        raise OSError(f"output folder {out} is not writable ({exc.strerror or exc}); "
                      "choose another with --out") from None


def sweep_stale(out: Path) -> None:
    """Remove what a killed run leaves behind: half-written temp files of atomic writes
    (``.NAME.*.tmp``) and job files of cells (``.job.*.json``). Results are never touched.
    A symbolic link among facebench's folders is refused first: nothing is deleted through it."""
    refuse_links(out)
    for folder in (out, out / "figures", *(out / "cells").glob("*/")):
        for pattern in (".*.tmp", ".job.*.json"):
            for stale in folder.glob(pattern):
                stale.unlink(missing_ok=True)


def environment() -> dict[str, Any]:
    return fingerprint()


def git_info() -> dict[str, Any]:
    return _git(REPO_DIR)


def run_suite(suite_path: Path, opts: RunOptions, console: Console | None = None) -> dict | None:
    """Run a suite file; returns the results dict (``None`` for a dry run)."""
    console = console or Console(stderr=True)
    suite = load_suite(suite_path)
    cells = plan(suite, opts.only)
    if opts.dry_run:
        skipped = 0
        for c in cells:
            reason = skip_reason(c)
            skipped += reason is not None
            note = f"  [yellow]skipped: {escape(reason)}[/yellow]" if reason else ""
            console.print(f"{c.id}  [dim]({c.kind})[/dim]{note}")
        console.print(f"{len(cells)} cell(s), {skipped} to be skipped; nothing run (--dry-run)")
        return None
    if not cells:
        raise ValueError(f"--only {opts.only} matches no cell of suite {suite.name!r}")
    execute = _executor(opts)  # a bad --executor (or no Ray) before anything is created
    out = (opts.out or default_out(suite)).resolve()
    check_ours(out)
    check_writable(out)
    with OutputLock(out):
        return _run_in(out, suite_path, suite, cells, opts, console, execute)


def _run_in(out: Path, suite_path: Path, suite: Suite, cells: list[Cell], opts: RunOptions,
            console: Console, execute: Any) -> dict:
    """The run itself, in ``out`` (facebench's) while this process holds its lock."""
    sweep_stale(out)
    (out / PEAKS_FILE).unlink(missing_ok=True)  # each run measures its machine's peaks anew
    text = Path(suite_path).read_text(encoding="utf-8")
    header = run_header(Path(suite_path).resolve(), text, sys.argv, git_info())
    previous = _previous(out, console) if opts.resume else None
    every_cell = plan(suite)
    suite_dump = suite.model_dump(mode="json")
    digests = InputDigests()  # this run's: every input file is read again
    if previous is not None:
        results = replan(previous, header, suite_dump, every_cell, digests)
    else:
        results = new_results(header, suite_dump, environment())
    results["run"]["out_dir"] = str(out)
    order = {c.id: i for i, c in enumerate(every_cell)}
    by_id: dict[str, dict] = {c["id"]: c for c in results["cells"]}
    write_results(out, results)

    def on_done(rec: dict[str, Any]) -> None:
        datasets = rec.pop("dataset", None)
        if datasets:
            results["datasets"].update(datasets)
        by_id[rec["id"]] = rec
        results["cells"] = sorted(by_id.values(), key=lambda r: order.get(r["id"], len(order)))
        write_results(out, results)
        status = rec["status"]
        style = {"ok": "green", "skipped": "yellow"}.get(status, "red")
        extra = rec.get("reason") or (rec.get("error") or {}).get("message") or ""
        note = "(resumed)" if rec.get("resumed") else ""
        if rec.get("rerun_reason"):
            note = f"(rerun: {str(rec['rerun_reason'])[:400]})"
        console.print(f"[{style}]{status:>7}[/{style}] {escape(plain(rec['id']))} "
                      f"{escape(plain(note))} {escape(plain(str(extra)[:160]))}")

    with _progress(console, opts.progress) as bar:
        cells_task = bar.add_task("cells", total=len(cells))
        inner = bar.add_task("", total=None, visible=False)

        def on_progress(cell: Cell, stage: str, done: int, total: int) -> None:
            bar.update(inner, description=f"  {cell.id}: {escape(plain(stage))}", completed=done,
                       total=total, visible=True)

        def done_and_advance(rec: dict[str, Any]) -> None:
            on_done(rec)
            bar.update(inner, visible=False)
            bar.advance(cells_task)

        execute(cells, suite_dump, out, suite.cache_dir, resume=opts.resume,
                        timeout_s=suite.cell_timeout_s, on_cell_done=done_and_advance,
                        progress=on_progress, digests=digests)
    write_results(out, results)  # the cells' own results are safe before the interleaved pass
    attach_interleaved(results, out, every_cell, suite.cache_dir, suite.cell_timeout_s,
                       say=lambda line: console.print(escape(plain(line)), highlight=False))
    try:
        attach_precision_comparisons(results, out, every_cell)
    except Exception as exc:  # noqa: BLE001 - a comparison never loses the results
        console.print(f"[yellow]precision comparison failed:[/yellow] {type(exc).__name__}: "
                      f"{escape(plain(exc))}")
    try:
        attach_model_comparisons(results, out)
    except Exception as exc:  # noqa: BLE001 - a comparison never loses the results
        console.print(f"[yellow]model comparison failed:[/yellow] {type(exc).__name__}: "
                      f"{escape(plain(exc))}")
    results["run"]["finished"] = now()
    # a resumed run keeps the peaks its reused cells were divided by, the new ones override them;
    # every efficiency cell is then divided by the run's final (best) peak of its key
    earlier = results["environment"].get("peaks")
    peaks = {**(earlier if isinstance(earlier, dict) else {}), **PeakCache(out / PEAKS_FILE).load()}
    if peaks:
        results["environment"].update(environment_block(peaks, cpu_peak_gflops()))
        here = socket.gethostname()
        for cell in results.get("cells") or []:
            node = cell.get("node") if isinstance(cell.get("node"), dict) else {}
            if (cell.get("kind") == "efficiency" and cell.get("status") == "ok"
                    and node.get("hostname", here) == here):  # another machine: its own peak
                rebase_on_run_peaks(cell, peaks)
    with contextlib.suppress(OSError):
        results["environment"]["load_avg_after"] = list(os.getloadavg())
    write_results(out, results)
    try:
        write_interop(out, results)
    except Exception as exc:  # noqa: BLE001 - an export never loses the results
        console.print(f"[yellow]pytest-benchmark export failed:[/yellow] {escape(plain(exc))}")
    if opts.report:
        render(out, results, console)
    console.print(f"results: {escape(str(out / 'results.json'))}")
    return results


def _executor(opts: RunOptions) -> Any:
    if opts.executor == "local":
        return run_cells
    if opts.executor == "ray":
        return make_ray_executor(opts.address)
    raise ValueError(f"unknown executor {opts.executor!r}; use 'local' or 'ray'")


def replan(previous: dict[str, Any], header: dict[str, Any], suite_dump: dict[str, Any],
           cells: list[Cell], digests: InputDigests) -> dict[str, Any]:
    """The results ``--resume`` continues: the earlier run's, re-planned from the current suite
    file. The suite (and its file's text and hash) become the current ones; records of cells no
    longer in the suite, whose spec changed since, or whose recorded input files changed since
    (``digests``) are dropped (the executor reuses the finished cells that remain and runs the
    others), and so are the dataset entries of protocols no record uses any more."""
    by_id = {c.id: c for c in cells}
    results = previous
    results["suite"] = suite_dump
    results["run"].update({k: header[k] for k in ("suite_path", "suite_sha256", "suite_text")})
    results["run"]["resumed"] = now()
    results["cells"] = [r for r in previous["cells"] if _still_holds(r, by_id, digests)]
    used = {r.get("protocol") for r in results["cells"]}
    results["datasets"] = {k: v for k, v in previous.get("datasets", {}).items() if k in used}
    return results


def _still_holds(rec: Any, cells: dict[str, Cell], digests: InputDigests) -> bool:
    """Whether a record of an earlier run describes its cell as planned now: same settings, and
    the same input contents when the record has their fingerprint (one without is kept until
    its cell runs again)."""
    cell = cells.get(rec.get("id")) if isinstance(rec, dict) else None
    if cell is None or rec.get("spec_sha256") != cell.spec_sha256:
        return False
    return rec.get("inputs_sha256") is None or stale_reason(rec, cell, digests(cell)) is None


def _previous(out: Path, console: Console) -> dict | None:
    """The results ``--resume`` continues (read by the one validated loader); ``None``, with a
    warning when there is a results.json it refuses, to start from the cells' own records."""
    try:
        return load_results(out)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        console.print(f"[yellow]warning:[/yellow] {escape(plain(exc))}; resuming from the "
                      "cells' own records", highlight=False)
        return None


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, disable=not enabled, transient=True)


def write_interop(out: Path, results: dict[str, Any]) -> Path | None:
    """``pytest-benchmark.json`` beside the results (for pytest-benchmark compare and
    github-action-benchmark) when the run has efficiency cells."""
    data = to_pytest_benchmark_json(results)
    if not data.get("benchmarks"):
        return None
    return atomic_write_json(out / "pytest-benchmark.json", data, root=out)


def history_of(results: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """Earlier runs of the same suite from the history database, oldest first (each checked as
    results.json is: ``ValueError`` naming the run when one is not readable)."""
    from facebench.history import HistoryStore, suite_name  # SQLAlchemy: only when asked for

    with HistoryStore() as store:
        runs = store.list_runs(suite=suite_name(results), limit=limit)
        return [check_results(store.results(r.run_id),
                              f"run {r.run_id} in the history at {store.url}")
                for r in reversed(runs)]


def render(out: Path, results: dict[str, Any], console: Console,
           baseline: dict | None = None, history: list[dict] | None = None,
           source: str | None = None) -> bool:
    """Render report.html / report.md; a report failure never loses the results: it is one
    line on ``console`` (naming ``source``, the results file, when given) and ``False``."""
    try:
        from facebench.report import render_report  # matplotlib: only when rendering

        paths = render_report(results, out, baseline=baseline, history=history)
    except Exception as exc:  # noqa: BLE001 - results are already safe on disk
        where = f" ({escape(plain(source))})" if source else ""
        console.print(f"[red]report rendering failed{where}:[/red] "
                      f"{escape(plain(type(exc).__name__))}: {escape(plain(exc))}",
                      highlight=False)
        return False
    for p in paths.values():
        console.print(f"report: {escape(str(p))}")
    return True


