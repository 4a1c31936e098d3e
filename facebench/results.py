"""The results of a run: ``results.json`` (schema-versioned) and the tidy ``results.csv``.

The contract is documented in ``docs/results.md``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facebench import __version__
from facebench.io import atomic_write_json, atomic_write_text, read_json

SCHEMA_VERSION = 1
CSV_COLUMNS = ["run_id", "cell_id", "model", "device", "protocol", "kind", "status", "metric",
               "value"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def run_header(suite_path: Path, suite_text: str, command: list[str],
               git: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": new_run_id(),
        "started": now(),
        "finished": None,
        "command": command,
        "cwd": os.getcwd(),
        "suite_path": str(suite_path),
        "suite_sha256": hashlib.sha256(suite_text.encode("utf-8")).hexdigest(),
        "suite_text": suite_text,
        "git": git or {"commit": None, "branch": None, "dirty": None},
    }


def new_results(run: dict[str, Any], suite: dict[str, Any], environment: dict[str, Any]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "facebench_version": __version__,
        "run": run,
        "suite": suite,
        "environment": environment,
        "datasets": {},
        "cells": [],
    }


def tidy_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per cell × metric; failed/skipped cells give one ``status`` row."""
    run_id = results["run"]["id"]
    rows = []
    for c in results["cells"]:
        base = {"run_id": run_id, "cell_id": c["id"], "model": c["model"], "device": c["device"],
                "protocol": c["protocol"], "kind": c["kind"], "status": c["status"]}
        metrics = c.get("metrics") or {}
        if c["status"] != "ok" or not metrics:
            rows.append({**base, "metric": "status", "value": ""})
            continue
        for name, value in metrics.items():
            rows.append({**base, "metric": name, "value": "" if value is None else value})
    return rows


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` and ``results.csv`` atomically."""
    atomic_write_json(out_dir / "results.json", results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(tidy_rows(results))
    atomic_write_text(out_dir / "results.csv", buf.getvalue())


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from a file or an output directory, checking its version."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"no results.json at {path}; run `facebench run SUITE --out DIR`")
    data = read_json(path)
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version!r} not supported "
                         f"(this facebench reads {SCHEMA_VERSION})")
    return data


def refuse_own_baseline(results: dict[str, Any], baseline: dict[str, Any], baseline_ref: Any,
                        results_path: str | Path | None = None) -> None:
    """Raise ``ValueError`` when ``baseline`` is the run itself: the same ``results.json``
    (``out``, ``./out/`` and ``out/results.json`` are one file) or the same run id (a copy).
    A run compared with itself shows no change and passes every relative gate."""
    run_id = (results.get("run") or {}).get("id")
    same = run_id is not None and run_id == (baseline.get("run") or {}).get("id")
    if not same and results_path is not None:
        mine, theirs = _results_file(results_path), _results_file(baseline_ref)
        same = mine.exists() and theirs.exists() and os.path.samefile(mine, theirs)
    if same:
        raise ValueError(f"baseline {baseline_ref} is this run itself (run id {run_id}); a run "
                         "is never its own baseline: give an earlier run's output folder or "
                         "results.json, a run id, or latest:BRANCH")


def _results_file(path: Any) -> Path:
    p = Path(str(path))
    return p / "results.json" if p.is_dir() else p
