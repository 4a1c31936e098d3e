"""``facebench gate``: evaluate a run's gates, write JUnit/Markdown, record the run in history."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from facebench.gates.evaluate import (
    GateOutcome,
    evaluate_gates,
    exit_code,
    uncovered_failed_cells,
)
from facebench.gates.junit import write_junit
from facebench.gates.spec import Gate, GateSpecError, MismatchPolicy, parse_gates
from facebench.gates.summary import markdown_summary
from facebench.history.store import (
    BaselineNotFound,
    HistoryStore,
    is_path_ref,
    suite_name,
)
from facebench.results import load_results, refuse_own_baseline
from facebench.text import plain

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_TAG = {"pass": "PASS ", "fail": "FAIL ", "error": "ERROR", "skip": "SKIP "}


def _err(msg: str) -> int:
    print(f"error: {plain(msg, lines=True)}", file=sys.stderr)
    return EXIT_USAGE


def _append_summary(path: str | os.PathLike[str], text: str) -> None:
    """Append ``text`` ($GITHUB_STEP_SUMMARY semantics); an OSError names the file."""
    target = Path(path)
    try:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from exc


def _baseline(
    ref: str, results: dict[str, Any], store: HistoryStore | None, warnings: list[str]
) -> dict[str, Any] | None:
    """Resolve ``ref``; ``None`` (with a warning) when ``latest…`` finds no earlier run."""
    if is_path_ref(ref):
        return load_results(ref)
    assert store is not None
    try:
        return store.resolve(ref, suite=suite_name(results), exclude=str(results["run"]["id"]))
    except BaselineNotFound as exc:
        if ref == "latest" or ref.startswith("latest:"):
            warnings.append(f"{exc}; relative gates are skipped (first run?)")
            return None
        raise


def print_outcomes(outcomes: list[GateOutcome], warnings: list[str]) -> None:
    """Plain-text report on stdout, warnings on stderr: one line each, text from the results
    (gate names, ids, messages) with its control characters escaped (:func:`plain`)."""
    for w in dict.fromkeys([*warnings, *(w for o in outcomes for w in o.warnings)]):
        print(f"WARNING: {plain(w)}", file=sys.stderr)
    for o in outcomes:
        print(f"{_TAG[o.status]} {plain(o.label)} [{plain(o.cell_id or '-')}]: "
              f"{plain(o.message)}")


def gate_command(
    results_path: str | os.PathLike[str] | dict[str, Any],
    baseline_ref: str | None = None,
    junit: str | os.PathLike[str] | None = None,
    summary: str | os.PathLike[str] | None = None,
    history_url: str | None = None,
    *,
    extra_gates: list[str] | None = None,
    on_fingerprint_mismatch: MismatchPolicy = "warn",
    record: bool = True,
) -> int:
    """Evaluate the suite's ``gates`` (plus ``extra_gates``) against ``baseline_ref``.

    ``results_path`` is a results.json, its output directory, or an in-memory results dict
    (``facebench run --gate``).

    Returns 0 when all gates pass, 1 when a gate failed or errored, 2 on usage/run errors: a
    missing or malformed results file, bad gate specs, an unknown baseline, an unusable
    history database, or failed cells that no gate covers. ``latest``/``latest:BRANCH`` that
    find no earlier run skip the relative gates with a warning. The run is recorded in the
    history (idempotent) after the baseline is resolved, unless ``record`` is false. The
    Markdown summary is appended (``$GITHUB_STEP_SUMMARY`` semantics).
    """
    path: Path | None = None
    if isinstance(results_path, dict):
        results = results_path
    else:
        path = Path(results_path)
        try:
            results = load_results(path)
        except (OSError, ValueError) as exc:
            return _err(f"cannot read results: {exc}")
    try:
        gates: list[Gate] = parse_gates(
            (results.get("suite") or {}).get("gates") or [], prefix="suite.gates"
        )
        gates += parse_gates(list(extra_gates or []), prefix="--gate")
    except GateSpecError as exc:
        return _err(f"bad gate specification:\n{exc}")

    warnings: list[str] = []
    store: HistoryStore | None = None
    baseline: dict[str, Any] | None = None
    try:
        if record or (baseline_ref and not is_path_ref(baseline_ref)):
            store = HistoryStore(history_url)
        if baseline_ref:
            baseline = _baseline(baseline_ref, results, store, warnings)
        if baseline is not None:
            own = path if path is not None else results.get("run", {}).get("out_dir")
            refuse_own_baseline(results, baseline, baseline_ref, own)
        if store is not None and record:
            store.record(results, path.parent if path and path.is_file() else path)
    except (BaselineNotFound, OSError, ValueError) as exc:
        return _err(f"bad baseline {baseline_ref!r}: {exc}")
    except SQLAlchemyError as exc:
        return _err(f"history database unusable: {exc}")
    finally:
        if store is not None:
            store.close()

    outcomes = evaluate_gates(
        results, gates, baseline, on_fingerprint_mismatch=on_fingerprint_mismatch
    )
    uncovered = uncovered_failed_cells(results, outcomes)
    if uncovered:
        warnings.append(f"failed cells not covered by any gate: {', '.join(uncovered)}")
    print_outcomes(outcomes, warnings)
    try:
        if junit:
            write_junit(outcomes, junit)
        if summary:
            run_id = str(results["run"]["id"])
            base_id = (baseline or {}).get("run", {}).get("id")
            _append_summary(summary, markdown_summary(outcomes, run_id=run_id,
                                                      baseline_id=base_id, warnings=warnings))
    except OSError as exc:
        return _err(f"{exc.strerror or exc}; choose another --junit/--summary file")
    code = exit_code(outcomes)
    if code == EXIT_OK and uncovered:
        return _err(f"run has failed cells no gate covers: {', '.join(uncovered)}")
    return code
