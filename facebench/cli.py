"""The ``facebench`` command line: a thin layer over the pipeline modules.

Exit codes: 0 success; 1 a gate failed; 2 bad input (suite, files, usage).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark face-recognition models: accuracy and cost in one run.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _suite_error(exc: Exception) -> None:
    from facebench.suite import SuiteError

    if isinstance(exc, SuiteError):
        err.print(f"[red]{exc.path}: {len(exc.problems)} problem(s)[/red]")
        for p in exc.problems:
            err.print(f"  {p}", markup=False, highlight=False)
    else:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    raise typer.Exit(2)


@app.command()
def validate(suite: Annotated[Path, typer.Argument(help="Suite YAML file")]) -> None:
    """Check a suite file; print every problem with its location."""
    from facebench.plan import plan
    from facebench.suite import SuiteError, load_suite

    try:
        s = load_suite(suite)
    except SuiteError as exc:
        _suite_error(exc)
    cells = plan(s)
    out.print(f"{suite}: ok — {len(s.models)} model(s) × {len(s.devices)} device(s) × "
              f"{len(s.protocols)} protocol(s) → {len(cells)} cell(s)")


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--out", "-o")] = None) -> None:
    """Print (or write) the JSON Schema of suite files."""
    from facebench.suite.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
    else:
        sys.stdout.write(text)


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run cells matching a glob on model@device@protocol (repeatable)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List cells, run nothing")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cells already finished")] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Evaluate the suite's gates")] = False,
    baseline: Annotated[str | None, typer.Option(help="Baseline for --gate/report")] = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Run a suite: every model × device × protocol cell, then the reports."""
    from facebench.runner.run import RunOptions, run_suite
    from facebench.suite import SuiteError

    opts = RunOptions(out=out_dir, only=only, dry_run=dry_run, resume=resume, executor=executor,
                      address=address, progress=not no_progress)
    try:
        results = run_suite(suite, opts, err)
    except (SuiteError, ValueError, OSError, ImportError) as exc:
        _suite_error(exc)
    if results is None:
        return
    _record_history(results, opts.out)
    if gate:
        from facebench.gates import gate_command

        raise typer.Exit(gate_command(results, baseline_ref=baseline))


def _record_history(results: dict, out_dir: Path | None) -> None:
    try:
        from facebench.history import HistoryStore
    except ImportError:
        return
    try:
        HistoryStore().record(results, out_dir)
    except Exception as exc:  # noqa: BLE001 - history is a convenience, never fatal
        err.print(f"[yellow]history not recorded:[/yellow] {exc}")


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="Output folder of a run")],
    baseline: Annotated[Path | None, typer.Option(help="Another run's folder")] = None,
) -> None:
    """Re-render report.html and report.md from results.json alone."""
    from facebench.results import load_results
    from facebench.runner.run import render

    try:
        results = load_results(results_dir)
        base = load_results(baseline) if baseline else None
    except (FileNotFoundError, ValueError) as exc:
        _suite_error(exc)
    target = results_dir if results_dir.is_dir() else results_dir.parent
    render(target, results, err, baseline=base)


@app.command()
def metrics(
    scores: Annotated[Path, typer.Argument(help="Score file (CSV or Parquet)")],
    far: Annotated[list[float] | None, typer.Option(help="FAR targets (repeatable)")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for CIs")] = 0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every verification metric from a score file alone."""
    from facebench.metrics import compute_verification_metrics
    from facebench.scores import read_scores

    try:
        s = read_scores(scores)
    except (OSError, ValueError) as exc:
        _suite_error(exc)
    kw = {"far_targets": tuple(far)} if far else {}
    res = compute_verification_metrics(s.score, s.label, folds=s.fold, fta=s.fta,
                                       bootstrap=bootstrap, **kw)
    if as_json:
        from facebench.io import to_json

        sys.stdout.write(to_json({"metrics": res.metrics, "details": res.details}))
        return
    for k, v in res.metrics.items():
        out.print(f"{k:28s} {'n/a' if v is None else v}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
