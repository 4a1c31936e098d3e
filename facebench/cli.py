"""The ``facebench`` command line: a thin layer over the pipeline modules.

Exit codes: 0 success; 1 a gate failed (``export``: the ONNX file failed its parity check); 2
bad input (suite, files, usage: one line on stderr, never a traceback); 3 ``run`` finished but
some cell failed (``--allow-failed-cells``: 0).

Every numeric option has bounds (typer ``min``/``max``, the suite file's own from
:mod:`facebench.bounds` where one exists), and every output file named on the command line is
checked before any work (:func:`_output_file`).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from facebench.bounds import (
    MAX_BOOTSTRAP,
    MAX_EMBEDDING,
    MAX_LIST,
    MAX_SEED,
    MAX_SIDE,
    MAX_WORKERS,
    MIN_SIDE,
)

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark face-recognition models: accuracy and cost in one run.")
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
#: Exit status of ``run`` when the run finished but some cell failed.
EXIT_FAILED_CELLS = 3


def _suite_error(exc: Exception) -> NoReturn:
    from facebench.suite import SuiteError

    if isinstance(exc, SuiteError):
        err.print(f"[red]{escape(exc.path)}: {len(exc.problems)} problem(s)[/red]")
        for p in exc.problems:
            err.print(f"  {p}", markup=False, highlight=False)
    else:  # the message may hold paths or user text: never read it as rich markup
        err.print(f"[red]error:[/red] {escape(_message(exc))}", markup=True, highlight=False)
    raise typer.Exit(2)


def _message(exc: Exception) -> str:
    """The text of an error without Python's decoration (``[Errno 2]``, a KeyError's quotes),
    on one line."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    elif isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    else:
        text = str(exc)
    return _one_line(text)


def _one_line(text: str) -> str:
    """``text``'s lines joined by spaces (spaces inside a line, as in a path, are kept)."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(message: str) -> NoReturn:
    """One line on stderr (never read as rich markup), exit 2."""
    _suite_error(ValueError(message))


def _output_file(path: Path | None, flag: str, example: str) -> None:
    """Refuse, before any work, an output file named on the command line that cannot be one:
    a folder, or a path under a file. Missing parent folders are created by the writer."""
    if path is None:
        return
    try:
        if path.is_dir():
            _fail(f"{flag} {path}: is a folder; give a file path (e.g. {path / example})")
        above = next((p for p in path.parents if p.exists()), None)
        if above is not None and not above.is_dir():
            _fail(f"{flag} {path}: {above} is a file, not a folder; choose another path")
    except OSError as exc:  # e.g. a name too long for the file system
        _fail(f"{flag} {path}: unusable path ({exc.strerror or exc}); choose another path")


@app.command()
def validate(suite: Annotated[Path, typer.Argument(help="Suite YAML file")]) -> None:
    """Check a suite file; print every problem with its location."""
    from facebench.plan import plan
    from facebench.suite import SuiteError, load_suite

    try:
        s = load_suite(suite)
        cells = plan(s)
    except (SuiteError, ValueError) as exc:  # plan: cells whose folders would clash
        _suite_error(exc)
    out.print(f"{escape(str(suite))}: ok — {len(s.models)} model(s) × {len(s.devices)} device(s) × "
              f"{len(s.protocols)} protocol(s) → {len(cells)} cell(s)")


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--out", "-o")] = None) -> None:
    """Print (or write) the JSON Schema of suite files."""
    from facebench.io import atomic_write_text
    from facebench.suite.schema import json_schema

    _output_file(output, "--out", "schema.json")
    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        try:
            atomic_write_text(output, text)
        except OSError as exc:
            _fail(f"--out: {_message(exc)}; choose another path")
    else:
        sys.stdout.write(text)


class Executor(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    """Where ``run`` executes its cells."""

    local = "local"
    ray = "ray"


class BootstrapMethod(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11
    """How ``metrics`` resamples for its CIs."""

    identity = "identity"
    pair = "pair"


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run cells matching a glob on model@device@protocol (repeatable)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List cells, run nothing")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out: reuse "
                                         "finished cells whose settings and input files are "
                                         "unchanged, run new, changed and failed ones")] = False,
    gate: Annotated[bool, typer.Option("--gate", help="Evaluate the suite's gates")] = False,
    baseline: Annotated[str | None, typer.Option(help="Baseline for --gate (see `gate`)")] = None,
    junit: Annotated[Path | None, typer.Option(help="With --gate: JUnit XML file")] = None,
    summary: Annotated[Path | None, typer.Option(help="With --gate: Markdown summary")] = None,
    executor: Annotated[Executor, typer.Option(help="local or ray")] = Executor.local,
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
    _output_file(junit, "--junit", "junit.xml")
    _output_file(summary, "--summary", "summary.md")
    opts = RunOptions(out=out_dir, only=only, dry_run=dry_run, resume=resume,
                      executor=Executor(executor).value,
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
        _fail("--on-fingerprint-mismatch must be 'warn' or 'fail'")
    _output_file(junit, "--junit", "junit.xml")
    _output_file(summary, "--summary", "summary.md")
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
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIST, help="Most runs listed")] = 50,
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
    bootstrap: Annotated[int, typer.Option(
        min=0, max=MAX_BOOTSTRAP, help="Bootstrap resamples for CIs (0: none)")] = 0,
    bootstrap_method: Annotated[BootstrapMethod, typer.Option(
        help="identity: resample identities (needs the file's identity_a/identity_b "
        "columns; else pair, with a note); pair: resample pairs")] = BootstrapMethod.identity,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every verification metric from a score file alone."""
    from facebench.metrics import compute_verification_metrics
    from facebench.scores import read_identities, read_scores

    bad = next((f for f in far or [] if not 0 < f <= 1), None)  # NaN fails both comparisons
    if bad is not None:
        _fail(f"--far {bad}: a FAR target is a false accept rate in (0, 1], e.g. --far 0.001")
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
    identities = None
    if bootstrap and bootstrap_method == BootstrapMethod.identity:
        identities = read_identities(scores)
        if identities is None:
            err.print(f"note: {scores} has no identity_a/identity_b columns: the bootstrap "
                      "resamples pairs (--bootstrap-method pair)", markup=False, highlight=False)
    try:
        res = compute_verification_metrics(s.score, s.label, folds=folds, fta=s.fta,
                                           bootstrap=bootstrap, identities=identities, **kw)
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
    embedding_size: Annotated[int | None, typer.Option(min=1, max=MAX_EMBEDDING)] = None,
    input_size: Annotated[int, typer.Option(
        min=MIN_SIDE, max=MAX_SIDE, help="Square input side")] = 112,
) -> None:
    """Export a zoo model to ONNX (opset 17, dynamic batch) with a torch-parity check.

    Exit 2 on bad input (model name, sizes, a checkpoint that is not one or does not fit), 1
    when the exported file fails the parity check (nothing is left at --onnx)."""
    from facebench.zoo import get_model
    from facebench.zoo.export import ExportParityError, export_onnx
    from facebench.zoo.weights import WeightsError, load_weights

    _output_file(onnx, "--onnx", "model.onnx")
    try:
        net = get_model(model, embedding_size)
        if weights is not None:
            load_weights(net, weights)
        parity = export_onnx(net, onnx, input_size=(input_size, input_size))
    except (KeyError, ValueError, OSError, WeightsError) as exc:
        _suite_error(exc)
    except ExportParityError as exc:
        err.print(f"[red]error:[/red] {escape(_message(exc))}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"{escape(str(onnx))}: opset {parity['opset']}, dynamic batch; max |Δ| on normalized "
              f"embeddings vs torch = {parity['max_abs_diff']:.2e} "
              f"({'ok' if parity['ok'] else 'FAILED'}, tolerance {parity['tolerance']})")
    sys.stdout.write(json.dumps({k: str(v) if isinstance(v, Path) else v
                                 for k, v in parity.items()}) + "\n")


@app.command()
def align(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file")],
    only: Annotated[list[str] | None, typer.Option(help="Protocol ids (repeatable)")] = None,
    workers: Annotated[int, typer.Option(
        min=1, max=MAX_WORKERS, help="Detection processes")] = 2,
) -> None:
    """Precompute the landmark/aligned-crop cache for a suite's datasets.

    Exit 2 when --only names no protocol of the suite, the suite has nothing to align, or a
    dataset cannot be read (the protocols cached before it stay cached)."""
    from facebench.pipeline.warm import protocols_to_align, warm_alignment_cache
    from facebench.suite import SuiteError, load_suite

    try:
        s = load_suite(suite)
        protocols = protocols_to_align(s, only)
    except (SuiteError, ValueError) as exc:
        _suite_error(exc)
    try:
        for line in warm_alignment_cache(s, protocols, workers):
            out.print(line, markup=False, highlight=False)
    except (ValueError, OSError) as exc:  # a dataset, image or detector file that does not load
        _suite_error(exc)


@app.command("make-ijb")
def make_ijb(
    lfw_images: Annotated[Path, typer.Argument(help="LFW image folder (<Name>/<file>.jpg)")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder (new, empty, or an earlier "
                                            "make-ijb output)")],
    subjects: Annotated[int, typer.Option(min=2, help="Identities to use")] = 40,
    min_images: Annotated[int, typer.Option(min=3, help="Images an identity needs")] = 4,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of every draw")] = 0,
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


#: click's base exception as typer ships it (recent typers vendor their own copy of click).
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__
                                     if c.__name__ == "ClickException")


def _usage_line(exc: Any) -> str:
    """A usage error (bad option value, unknown option) as one line naming the command."""
    ctx = getattr(exc, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    message = _one_line(str(exc.format_message()))
    return f"error: {where}{message}{hint}"


def main() -> None:
    """Run the command line; a usage error is one line on stderr with exit 2, not a panel."""
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as exc:
        if type(exc).__name__ != "NoArgsIsHelpError":  # its help is already printed
            err.print(_usage_line(exc), markup=False, highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        err.print("Aborted!", markup=False, highlight=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
