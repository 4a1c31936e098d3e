"""The results of a run: ``results.json`` (schema-versioned) and the tidy ``results.csv``.

The contract is documented in ``docs/results.md``. A cell's record is :class:`CellRecord`;
:func:`load_results` is the one reader of ``results.json`` (report, gates, history and the CLI
use it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from facebench._version import __version__
from facebench.io import atomic_write_json, atomic_write_text, read_json

SCHEMA_VERSION = 1
CSV_COLUMNS = ["run_id", "cell_id", "model", "device", "protocol", "kind", "status", "metric",
               "value"]
Status = Literal["pending", "ok", "failed", "skipped"]
#: The keys every cell record has, in the order results.json writes them.
CELL_KEYS = ("id", "slug", "model", "device", "protocol", "kind", "spec_sha256", "status",
             "reason", "error", "started", "duration_s", "metrics", "details", "artifacts")
#: Keys a cell record has only when they are set, in the order results.json writes them.
OPTIONAL_KEYS = ("inputs_sha256", "inputs", "node")


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


@dataclass
class CellRecord:
    """One cell of ``results.json`` (docs/results.md, "Cell"), typed.

    :meth:`to_dict` gives the JSON object, keys in the contract's order: the fields, then
    ``inputs_sha256`` and ``inputs`` (the runner's fingerprint of the files the cell read) and
    ``node`` (Ray executor only) when set, then any other keys a runner added (``finished``,
    ``resumed``…) in their order. ``CellRecord.from_dict(d).to_dict() == d`` for every cell.
    """

    id: str
    slug: str
    model: str
    device: str
    protocol: str
    kind: str
    spec_sha256: str | None = None
    status: Status = "pending"
    reason: str | None = None
    error: dict[str, Any] | None = None
    started: str | None = None
    duration_s: float | None = None
    metrics: dict[str, float | int | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    #: ``--resume``'s key of the contents the cell read, and its parts (path → digest);
    #: records of earlier versions have neither (``--resume`` reruns them).
    inputs_sha256: str | None = None
    inputs: dict[str, str] | None = None
    node: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as results.json stores it."""
        out = {k: getattr(self, k) for k in CELL_KEYS}
        for key in OPTIONAL_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "cell") -> CellRecord:
        """A record from its JSON object; ``ValueError`` naming ``where`` and the missing key."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a cell must be a JSON object, got {type(data).__name__}")
        missing = [k for k in ("id", "model", "device", "protocol", "kind", "status")
                   if k not in data]
        if missing:
            raise ValueError(f"{where}: cell {data.get('id', '?')!r} has no "
                             f"{', '.join(missing)} (see docs/results.md, \"Cell\")")
        known = {k: data[k] for k in (*CELL_KEYS, *OPTIONAL_KEYS) if k in data}
        known.setdefault("slug", data["id"])
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**known, extra=extra)


def tidy_rows(results: dict[str, Any], missing: Any = "") -> list[dict[str, Any]]:
    """One row per cell × metric; failed/skipped cells give one ``status`` row. An undefined
    value (and the value of a ``status`` row) is ``missing``."""
    run_id = results["run"]["id"]
    rows = []
    for c in results["cells"]:
        base = {"run_id": run_id, "cell_id": c["id"], "model": c["model"], "device": c["device"],
                "protocol": c["protocol"], "kind": c["kind"], "status": c["status"]}
        metrics = c.get("metrics") or {}
        if c["status"] != "ok" or not metrics:
            rows.append({**base, "metric": "status", "value": missing})
            continue
        for name, value in metrics.items():
            rows.append({**base, "metric": name, "value": missing if value is None else value})
    return rows


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` and ``results.csv`` atomically."""
    atomic_write_json(out_dir / "results.json", results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(tidy_rows(results))
    atomic_write_text(out_dir / "results.csv", buf.getvalue())


def results_file(path: str | os.PathLike[str]) -> Path:
    """The ``results.json`` a path names: the file itself, or the one in an output folder."""
    p = Path(path)
    return p / "results.json" if p.is_dir() else p


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``results.json`` (a file, or the one in a run's output folder) as a dict, checking
    that it is facebench's and that this version reads its ``schema_version``.

    Raises ``FileNotFoundError`` when there is no such file and ``ValueError`` (naming the file
    and what to do) when it is not a results.json this facebench reads.
    """
    p = results_file(path)
    if not p.is_file():
        raise FileNotFoundError(f"no results.json at {p}; give a run's output folder or its "
                                "results.json (written by `facebench run SUITE --out DIR`)")
    try:
        data = read_json(p)
    except ValueError as exc:  # not JSON, or not UTF-8
        raise ValueError(f"{p}: not a readable results.json ({exc}); re-run the suite with "
                         "`facebench run SUITE --out DIR` to write it again") from None
    return check_results(data, str(p))


def check_results(data: Any, where: str) -> dict[str, Any]:
    """``data`` when it is a results dict this facebench reads; else ``ValueError`` naming
    ``where`` (a file, or a run in the history) and what to do."""
    if not isinstance(data, dict) or not ("schema_version" in data or "run" in data):
        raise ValueError(f"{where} is not a facebench results.json (no 'schema_version'/'run'); "
                         "give the output folder or results.json of a `facebench run`")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = (isinstance(version, int) and not isinstance(version, bool)
                 and version > SCHEMA_VERSION)
        todo = (f"upgrade facebench (this is {__version__}) to read it" if newer else
                "re-run the suite with this facebench (`facebench run SUITE --out DIR`)")
        raise ValueError(f"{where}: schema_version {version!r} is not supported (facebench "
                         f"{__version__} reads schema_version {SCHEMA_VERSION}); {todo}")
    bad = [k for k, kind in (("run", dict), ("cells", list)) if not isinstance(data.get(k), kind)]
    if bad:
        raise ValueError(f"{where}: {' and '.join(repr(k) for k in bad)} missing or malformed; "
                         "the file is damaged: re-run the suite (`facebench run SUITE --out "
                         "DIR`)")
    return data


def refuse_own_baseline(results: dict[str, Any], baseline: dict[str, Any], baseline_ref: Any,
                        results_path: str | Path | None = None) -> None:
    """Raise ``ValueError`` when ``baseline`` is the run itself: the same ``results.json``
    (``out``, ``./out/`` and ``out/results.json`` are one file) or the same run id (a copy).
    A run compared with itself shows no change and passes every relative gate."""
    run_id = (results.get("run") or {}).get("id")
    same = run_id is not None and run_id == (baseline.get("run") or {}).get("id")
    if not same and results_path is not None:
        mine, theirs = results_file(str(results_path)), results_file(str(baseline_ref))
        same = mine.exists() and theirs.exists() and os.path.samefile(mine, theirs)
    if same:
        raise ValueError(f"baseline {baseline_ref} is this run itself (run id {run_id}); a run "
                         "is never its own baseline: give an earlier run's output folder or "
                         "results.json, a run id, or latest:BRANCH")
