"""The ``facebench`` command line: a thin layer over the pipeline modules.

Exit codes: 0 success; 1 a gate failed; 2 bad input (suite, files, usage); 3 ``run`` finished
but some cell failed (``--allow-failed-cells``: 0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark face-recognition models: accuracy and cost in one run.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
#: Exit status of ``run`` when the run finished but some cell failed.
EXIT_FAILED_CELLS = 3


def _suite_error(exc: Exception) -> None:
    from facebench.suite import SuiteError

    if isinstance(exc, SuiteError):
        err.print(f"[red]{escape(exc.path)}: {len(exc.problems)} problem(s)[/red]")
        for p in exc.problems:
            err.print(f"  {p}", markup=False, highlight=False)
    else:  # the message may hold paths or user text: never read it as rich markup
        err.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
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
    out.print(f"{escape(str(suite))}: ok — {len(s.models)} model(s) × {len(s.devices)} device(s) × "
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
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out: reuse "
                                         "finished cells whose settings are unchanged, run "
                                         "new, changed and failed ones")] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Evaluate the suite's gates")] = False,
    baseline: Annotated[str | None, typer.Option(help="Baseline for --gate (see `gate`)")] = None,
    junit: Annotated[Path | None, typer.Option(help="With --gate: JUnit XML file")] = None,
    summary: Annotated[Path | None, typer.Option(help="With --gate: Markdown summary")] = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    allow_failed_cells: Annotated[bool, typer.Option(
        "--allow-failed-cells", help=f"Exit 0 when the run finished but some cell failed "
        f"(default: exit {EXIT_FAILED_CELLS})")] = False,
) -> None:
    """Run a suite: every model × device × protocol cell, then the reports.

    Exit 0 when every cell is ok or skipped, 3 when the run finished but some cell failed (0
    with --allow-failed-cells), 2 on bad input; with --gate, 1 when a gate failed."""
    from facebench.runner.run import RunOptions, run_suite
    from facebench.suite import SuiteError

    gate_only = [flag for flag, v in (("--baseline", baseline), ("--junit", junit),
                                      ("--summary", summary)) if v is not None]
    if gate_only and not gate:
        _suite_error(ValueError(f"{', '.join(gate_only)} only apply with --gate; add --gate, or "
                                "run `facebench gate` on the results afterwards"))
    opts = RunOptions(out=out_dir, only=only, dry_run=dry_run, resume=resume, executor=executor,
                      address=address, progress=not no_progress)
    try:
        results = run_suite(suite, opts, err)
    except (SuiteError, ValueError, OSError, ImportError) as exc:
        _suite_error(exc)
    if results is None:
        return
    out_path = Path(results["run"].get("out_dir") or ".")
    _record_history(results, out_path / "results.json")
    if gate:
        from facebench.gates import gate_command

        code = gate_command(results, baseline_ref=baseline, junit=junit, summary=summary,
                            record=False)
        if code:
            raise typer.Exit(code)
    failed = [c["id"] for c in results["cells"] if c["status"] == "failed"]
    if failed and not allow_failed_cells:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        err.print(f"[red]{len(failed)} of {len(results['cells'])} cell(s) failed:[/red] "
                  f"{escape(shown)} (exit {EXIT_FAILED_CELLS}; --allow-failed-cells exits 0)")
        raise typer.Exit(EXIT_FAILED_CELLS)


def _record_history(results: dict, results_path: Path) -> None:
    from facebench.history import HistoryStore

    try:
        HistoryStore().record(results, results_path)
    except Exception as exc:  # noqa: BLE001 - history is a convenience, never fatal
        err.print(f"[yellow]history not recorded:[/yellow] {escape(str(exc))}")


@app.command()
def gate(
    results_path: Annotated[Path, typer.Argument(help="results.json or a run's output folder")],
    baseline: Annotated[str | None, typer.Option(
        help="latest, latest:BRANCH, a run id, or a results.json/folder")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here")] = None,
    summary: Annotated[Path | None, typer.Option(
        help="Append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")] = None,
    history: Annotated[str | None, typer.Option(help="History database URL")] = None,
    extra: Annotated[list[str] | None, typer.Option(
        "--gate", help="An extra gate expression (repeatable)")] = None,
    on_fingerprint_mismatch: Annotated[str, typer.Option(help="warn or fail")] = "warn",
) -> None:
    """Evaluate gates: exit 0 all pass, 1 a gate failed, 2 usage or run errors."""
    from facebench.gates import gate_command

    if on_fingerprint_mismatch not in ("warn", "fail"):
        err.print("--on-fingerprint-mismatch must be 'warn' or 'fail'")
        raise typer.Exit(2)
    code = gate_command(results_path, baseline_ref=baseline, junit=junit, summary=summary,
                        history_url=history, extra_gates=extra,
                        on_fingerprint_mismatch=on_fingerprint_mismatch)  # type: ignore[arg-type]
    raise typer.Exit(code)


@app.command("history")
def history_cmd(
    url: Annotated[str | None, typer.Option(
        help="SQLAlchemy URL (default .facebench/history.db or $FACEBENCH_HISTORY)")] = None,
    suite: Annotated[str | None, typer.Option()] = None,
    commit: Annotated[str | None, typer.Option()] = None,
    branch: Annotated[str | None, typer.Option()] = None,
    machine: Annotated[str | None, typer.Option(help="Machine fingerprint prefix")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List recorded runs, filtered by suite, git commit, branch or machine."""
    from facebench.history import history_command

    raise typer.Exit(history_command(url, suite, commit, branch, machine, limit, as_json))


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="Output folder of a run")],
    baseline: Annotated[Path | None, typer.Option(help="Another run's folder")] = None,
    with_history: Annotated[bool, typer.Option(
        "--with-history", help="Plot metric trends from the history database")] = False,
) -> None:
    """Re-render report.html and report.md from results.json alone (exit 2 when the results
    cannot be read or rendered)."""
    from facebench.results import load_results, refuse_own_baseline, results_file
    from facebench.runner.run import history_of, render

    try:
        results = load_results(results_dir)
        base = load_results(baseline) if baseline else None
        if base is not None:
            refuse_own_baseline(results, base, baseline, results_dir)
        history = history_of(results) if with_history else None
    except (FileNotFoundError, ValueError) as exc:
        _suite_error(exc)
    target = results_dir if results_dir.is_dir() else results_dir.parent
    if not render(target, results, err, baseline=base, history=history,
                  source=str(results_file(results_dir))):
        raise typer.Exit(2)  # the line above names the problem; results.json is untouched


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
    if len(s) == 0:
        _suite_error(ValueError(f"{scores}: no pairs (only a header); a score file needs one row "
                                "per pair: pair_id,score,label[,fold,fta]"))
    folds = s.fold
    if folds is not None and folds.min() == folds.max():
        err.print(f"note: {scores}: every pair is in fold {folds[0]}; k-fold "
                  "cross-validated accuracy needs pairs in at least 2 folds, so accuracy and its "
                  "confusion counts use one threshold chosen on all pairs (threshold_policy "
                  "all_data, optimistic). AUC, EER and TAR@FAR do not depend on folds.",
                  markup=False, highlight=False)
        folds = None
    kw = {"far_targets": tuple(far)} if far else {}
    try:
        res = compute_verification_metrics(s.score, s.label, folds=folds, fta=s.fta,
                                           bootstrap=bootstrap, **kw)
    except ValueError as exc:  # e.g. a bad --far or --bootstrap: name the file it was for
        _suite_error(ValueError(f"{scores}: {exc}"))
    if as_json:
        from facebench.io import to_json

        sys.stdout.write(to_json({"metrics": res.metrics, "details": res.details}))
        return
    for k, v in res.metrics.items():
        out.print(f"{k:28s} {'n/a' if v is None else v}")


@app.command()
def models(
    count: Annotated[bool, typer.Option(help="Count params and GMAC (fvcore, 1×3×H×W)")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the built-in architectures: params, GMAC, input and embedding size."""
    from rich.table import Table

    from facebench.zoo import describe, list_models

    rows = []
    for info in list_models():
        row = {"name": info.name, "family": info.family,
               "input": f"{info.input_size[0]}×{info.input_size[1]}",
               "embedding": info.embedding_size, "description": info.description}
        if count:
            d = describe(info.name)
            row.update(params=d["params"], gmac=round(d["gmac"], 3))
        rows.append(row)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("name", "params", "GMAC", "input", "embedding", "description")
    for r in rows:
        table.add_row(r["name"], f"{r.get('params', 0):,}" if count else "-",
                      str(r.get("gmac", "-")), r["input"], str(r["embedding"]), r["description"])
    out.print(table)


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Zoo architecture (see `facebench models`)")],
    onnx: Annotated[Path, typer.Option("--onnx", help="Output .onnx file")],
    weights: Annotated[Path | None, typer.Option(help="Checkpoint to load first")] = None,
    embedding_size: Annotated[int | None, typer.Option()] = None,
    input_size: Annotated[int, typer.Option(help="Square input side")] = 112,
) -> None:
    """Export a zoo model to ONNX (opset 17, dynamic batch) with a torch-parity check."""
    from facebench.zoo import get_model
    from facebench.zoo.export import export_onnx
    from facebench.zoo.weights import load_weights

    try:
        net = get_model(model, embedding_size)
        if weights is not None:
            load_weights(net, weights)
        parity = export_onnx(net, onnx, input_size=(input_size, input_size))
    except (KeyError, ValueError, OSError) as exc:
        _suite_error(exc)
    out.print(f"{escape(str(onnx))}: opset {parity['opset']}, dynamic batch; max |Δ| on normalized "
              f"embeddings vs torch = {parity['max_abs_diff']:.2e} "
              f"({'ok' if parity['ok'] else 'FAILED'}, tolerance {parity['tolerance']})")
    sys.stdout.write(json.dumps({k: str(v) if isinstance(v, Path) else v
                                 for k, v in parity.items()}) + "\n")


@app.command()
def align(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file")],
    only: Annotated[list[str] | None, typer.Option(help="Protocol ids (repeatable)")] = None,
    workers: Annotated[int, typer.Option(help="Detection processes")] = 2,
) -> None:
    """Precompute the landmark/aligned-crop cache for a suite's datasets."""
    from facebench.pipeline.warm import warm_alignment_cache
    from facebench.suite import SuiteError, load_suite

    try:
        s = load_suite(suite)
    except SuiteError as exc:
        _suite_error(exc)
    for line in warm_alignment_cache(s, only, workers):
        out.print(line)


@app.command("make-ijb")
def make_ijb(
    lfw_images: Annotated[Path, typer.Argument(help="LFW image folder (<Name>/<file>.jpg)")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder (new, empty, or an earlier "
                                            "make-ijb output)")],
    subjects: Annotated[int, typer.Option(help="Identities to use")] = 40,
    min_images: Annotated[int, typer.Option(help="Images an identity needs (>= 3)")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of every draw")] = 0,
    detector: Annotated[str, typer.Option(help="yunet, retinaface or mtcnn")] = "yunet",
    detector_model: Annotated[Path | None, typer.Option(
        help="Detector weights (YuNet: face_detection_yunet.onnx)")] = None,
) -> None:
    """Write a small IJB-format dataset (templates, media, 1:1 pairs, 1:N lists) from LFW."""
    from facebench.datasets.make_ijb import make_ijb_from_lfw
    from facebench.faces.images import ImageError

    try:
        m = make_ijb_from_lfw(lfw_images, out_dir, detector=detector,
                              detector_model=detector_model, subjects=subjects,
                              min_images=min_images, seed=seed,
                              progress=lambda k, n: err.print(f"  subject {k}/{n}",
                                                              highlight=False))
    except (ValueError, OSError, ImageError) as exc:
        _suite_error(exc)
    c = m["counts"]
    out.print(f"{escape(str(out_dir))}: {c['faces']} faces of {c['subjects']} subjects in "
              f"{c['templates']} templates ({c['media']} media); 1:1: {c['genuine_pairs']} "
              f"genuine + {c['impostor_pairs']} impostor template pairs; 1:N: galleries "
              + ", ".join(f"{g} {n}" for g, n in c["galleries"].items())
              + f", {c['probe_templates']} probe templates; "
              f"{len(m['skipped_images'])} image(s) skipped (manifest.json)", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
