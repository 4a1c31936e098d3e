"""The results of a run: ``results.json`` (schema-versioned) and the tidy ``results.csv``.

The contract is documented in ``docs/results.md``. A cell's record is :class:`CellRecord`;
:func:`load_results` is the one reader of ``results.json`` (report, gates, history, ``--resume``
and the Python API use it): it refuses a file over :data:`MAX_RESULTS_BYTES`, nested deeper than
:data:`MAX_JSON_DEPTH`, or whose structure is not the contract's (:func:`check_results`: ids as
bounded as a suite's, metrics numbers or null), with one ``ValueError`` naming the file.
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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from facebench._version import __version__
from facebench.bounds import ID_PATTERN, MAX_ID_LENGTH
from facebench.io import atomic_write_json, atomic_write_text, read_json_bounded
from facebench.metrics.catalog import flag as out_of_range

SCHEMA_VERSION = 1
CSV_COLUMNS = ["run_id", "cell_id", "model", "device", "protocol", "kind", "status", "metric",
               "value", "flag"]
Status = Literal["pending", "ok", "failed", "skipped"]
#: The largest results.json read, and how deep its arrays and objects may nest (a run's nest
#: 8 deep; Python's parser recurses, so 100,000 ``[`` would end in ``RecursionError``).
MAX_RESULTS_BYTES = 256 * 2**20
MAX_JSON_DEPTH = 64
#: Names and keys of a results.json (run id, metric and dataset names, timestamps, kinds).
MAX_NAME_LENGTH = 200
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


_ID = ID_PATTERN[1:-1]
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
CellId = Annotated[str, StringConstraints(pattern=f"^{_ID}@{_ID}@{_ID}$",
                                          max_length=3 * MAX_ID_LENGTH + 2)]
#: A cell's folder under OUT/cells: its id (earlier runs: ``model__device__protocol``).
Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+@-]*$",
                                        max_length=3 * MAX_ID_LENGTH + 4)]
#: A name or key: one line of printable text, at most :data:`MAX_NAME_LENGTH` characters.
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH,
                                        pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$",
                                         max_length=MAX_NAME_LENGTH)]


class _Part(BaseModel):
    """A part of results.json: the keys the readers use, typed; other keys are kept."""

    model_config = ConfigDict(extra="allow", strict=True)


class _Git(_Part):
    commit: Name | None = None
    branch: Name | None = None
    dirty: bool | None = None


class _Run(_Part):
    id: RunId
    started: Name | None = None
    finished: Name | None = None
    command: list[str] | str | None = None
    suite_path: str | None = None
    suite_sha256: Name | None = None
    suite_text: str | None = None
    git: _Git | None = None


class _Entry(_Part):
    id: Id


class _Suite(_Part):
    name: Name | None = None
    report: dict[str, Any] | None = None
    gates: list[Any] | None = None
    models: list[_Entry] | None = None
    devices: list[_Entry] | None = None
    protocols: list[_Entry] | None = None


class _Environment(_Part):
    fingerprint: Name | None = None
    libraries: dict[str, Any] | None = None
    cpu_flags: list[Any] | None = None


class _Error(_Part):
    type: str | None = None
    message: str | None = None
    traceback: str | None = None


class _Latency(_Part):
    samples_ms: list[float] | None = None


class _Details(_Part):
    latency: dict[str, _Latency] | None = None


class CellDoc(_Part):
    """What :func:`check_results` requires of a cell (docs/results.md, "Cell"); the typed record
    the runner builds is :class:`CellRecord`."""

    id: CellId
    slug: Slug | None = None
    model: Id
    device: Id
    protocol: Id
    kind: Literal["verification", "identification", "efficiency"]
    spec_sha256: Name | None = None
    status: Status
    reason: str | None = None
    error: _Error | None = None
    started: Name | None = None
    duration_s: float | None = None
    metrics: dict[Name, float | int | None] = Field(default_factory=dict)
    details: _Details = Field(default_factory=_Details)
    artifacts: dict[Name, str] = Field(default_factory=dict)
    node: dict[str, Any] | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers(cls, metrics: Any) -> Any:
        for name, value in metrics.items() if isinstance(metrics, dict) else ():
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float)):
                raise ValueError(f"metric {_short(name)} is {_short(value)}, not a number or "
                                 "null (docs/results.md: metrics are float | int | null)")
            if isinstance(value, int) and abs(value) >= 2**64:
                raise ValueError(f"metric {_short(name)} is {_short(value)}, out of range")
        return metrics


class _Results(_Part):
    schema_version: int
    facebench_version: Name | None = None
    run: _Run
    suite: _Suite | None = None
    environment: _Environment | None = None
    datasets: dict[Name, dict[str, Any]] | None = None
    cells: list[CellDoc]


def _short(value: Any) -> str:
    """``repr(value)``, at most 60 characters (a tampered value may be megabytes long)."""
    text = repr(value) if not isinstance(value, str | list | dict) or len(value) < 100 else (
        repr(value[:40]) if isinstance(value, str) else f"a {type(value).__name__} of "
        f"{len(value)}")
    return text if len(text) <= 60 else text[:59] + "…"


def _where(loc: tuple[int | str, ...]) -> str:
    """``cells[3].metrics`` from pydantic's error location (long keys shortened)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            text = part if len(part) <= 40 else part[:40] + "…"
            out += f".{text!r}" if not part.isidentifier() else f".{text}"
    return out.lstrip(".") or "top level"


def _problem(exc: ValidationError) -> str:
    """The first problem of ``exc`` as ``where: what`` (and how many more)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    what = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{_where(first['loc'])}: {what}{more}"


def check_cell(data: Any, where: str) -> dict[str, Any]:
    """``data`` when it is a cell record as results.json holds it (:class:`CellDoc`); else
    ``ValueError`` naming ``where`` and the first problem."""
    try:
        doc = CellDoc.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{where}: {_problem(exc)}") from None
    _check_cell_id(doc, where)
    return data


def _check_cell_id(cell: CellDoc, where: str) -> None:
    if cell.id != f"{cell.model}@{cell.device}@{cell.protocol}":
        raise ValueError(f"{where}: cell id {cell.id!r} is not model@device@protocol "
                         f"({cell.model}@{cell.device}@{cell.protocol})")


def device_precisions(results: dict[str, Any]) -> dict[str, str]:
    """Device id → ``fp32`` | ``fp16`` | ``int8`` from the suite dump (``fp16: true`` is
    fp16; a results.json from before precisions existed is all fp32)."""
    out = {}
    for d in (results.get("suite") or {}).get("devices") or []:
        if isinstance(d, dict) and d.get("id") is not None:
            out[str(d["id"])] = str(d.get("precision") or ("fp16" if d.get("fp16") else "fp32"))
    return out


def metric_flag(cell: dict[str, Any], name: str) -> str | None:
    """Why a cell's metric is a measurement error, never a result: the one the cell recorded
    (``details.metric_errors``, its value then null), or a value above the catalog's maximum
    (an older record); None when it is not flagged."""
    details = cell.get("details")
    errors = details.get("metric_errors") if isinstance(details, dict) else None
    recorded = errors.get(name) if isinstance(errors, dict) else None
    return str(recorded) if recorded else out_of_range(name, (cell.get("metrics") or {}).get(name))


def tidy_rows(results: dict[str, Any], missing: Any = "") -> list[dict[str, Any]]:
    """One row per cell × metric; failed/skipped cells give one ``status`` row. An undefined
    value (and the value of a ``status`` row) is ``missing``; a flagged one
    (:func:`metric_flag`) is ``missing`` too, with the reason in ``flag`` (else ``missing``)."""
    run_id = results["run"]["id"]
    rows = []
    for c in results["cells"]:
        base = {"run_id": run_id, "cell_id": c["id"], "model": c["model"], "device": c["device"],
                "protocol": c["protocol"], "kind": c["kind"], "status": c["status"]}
        metrics = c.get("metrics") or {}
        if c["status"] != "ok" or not metrics:
            rows.append({**base, "metric": "status", "value": missing, "flag": missing})
            continue
        for name, value in metrics.items():
            why = metric_flag(c, name)
            rows.append({**base, "metric": name,
                         "value": missing if value is None or why else value,
                         "flag": why or missing})
    return rows


def write_results(out_dir: Path, results: dict[str, Any]) -> None:
    """Write ``results.json`` and ``results.csv`` atomically."""
    atomic_write_json(out_dir / "results.json", results, root=out_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(tidy_rows(results))
    atomic_write_text(out_dir / "results.csv", buf.getvalue(), root=out_dir)


def results_file(path: str | os.PathLike[str]) -> Path:
    """The ``results.json`` a path names: the file itself, or the one in an output folder."""
    p = Path(path)
    return p / "results.json" if p.is_dir() else p


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``results.json`` (a file, or the one in a run's output folder) as a dict, checking
    that it is facebench's, that this version reads its ``schema_version`` and that its
    structure is the contract's (:func:`check_results`).

    Raises ``FileNotFoundError`` when there is no such file and ``ValueError`` (one line naming
    the file, the problem and what to do) when it is not a results.json this facebench reads:
    not JSON, over :data:`MAX_RESULTS_BYTES`, nested deeper than :data:`MAX_JSON_DEPTH`, or
    malformed.
    """
    p = results_file(path)
    if not p.is_file():
        raise FileNotFoundError(f"no results.json at {p}; give a run's output folder or its "
                                "results.json (written by `facebench run SUITE --out DIR`)")
    try:
        data = read_json_bounded(p, max_bytes=MAX_RESULTS_BYTES, max_depth=MAX_JSON_DEPTH)
    except ValueError as exc:  # not JSON, not UTF-8, too large, too deep
        raise ValueError(f"{p}: not a readable results.json ({_one_line(exc)}); re-run the "
                         "suite with `facebench run SUITE --out DIR` to write it again") from None
    return check_results(data, str(p))


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "…"


def check_results(data: Any, where: str) -> dict[str, Any]:
    """``data`` when it is a results dict this facebench reads; else ``ValueError`` naming
    ``where`` (a file, or a run in the history), the first problem and what to do."""
    if not isinstance(data, dict) or not ("schema_version" in data or "run" in data):
        raise ValueError(f"{where} is not a facebench results.json (no 'schema_version'/'run'); "
                         "give the output folder or results.json of a `facebench run`")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = (isinstance(version, int) and not isinstance(version, bool)
                 and version > SCHEMA_VERSION)
        todo = (f"upgrade facebench (this is {__version__}) to read it" if newer else
                "re-run the suite with this facebench (`facebench run SUITE --out DIR`)")
        shown = repr(version) if isinstance(version, int | float | None) else "(not a number)"
        raise ValueError(f"{where}: schema_version {shown} is not supported (facebench "
                         f"{__version__} reads schema_version {SCHEMA_VERSION}); {todo}")
    bad = [k for k, kind in (("run", dict), ("cells", list)) if not isinstance(data.get(k), kind)]
    if bad:
        raise ValueError(f"{where}: {' and '.join(repr(k) for k in bad)} missing or malformed; "
                         "the file is damaged: re-run the suite (`facebench run SUITE --out "
                         "DIR`)")
    damaged = ("the file is damaged or was edited: re-run the suite (`facebench run SUITE "
               "--out DIR`)")
    try:
        doc = _Results.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{where}: {_problem(exc)}; {damaged}") from None
    seen: set[str] = set()
    for i, cell in enumerate(doc.cells):
        _check_cell_id(cell, f"{where}: cells[{i}]")
        if cell.id in seen:
            raise ValueError(f"{where}: cells[{i}]: cell {cell.id!r} appears twice; {damaged}")
        seen.add(cell.id)
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
