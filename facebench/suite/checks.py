"""Checks of a suite's inputs on its raw (interpolated) mapping: files, zoo names, file formats.

They read the mapping, not the validated :class:`~facebench.suite.schema.Suite`, so a missing
file is reported even where a schema error elsewhere (in the same model, even) stops the
suite from validating: one pass reports every problem. Each problem is ``location: message``.
"""

from __future__ import annotations

import typing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pydantic import TypeAdapter, ValidationError

from facebench.datasets.pairs import required_inputs
from facebench.datasets.specs import KINDS
from facebench.faces.detect.base import BUILTIN, detectors_for, model_problem
from facebench.paths import SuitePath
from facebench.suite.references import items
from facebench.suite.schema import LfwPairsDataset, PairCsvDataset

_PATH = TypeAdapter(SuitePath)


def _holds_path(annotation: Any) -> bool:
    return annotation is Path or any(_holds_path(a) for a in typing.get_args(annotation))


#: The path fields of each dataset kind (an ijb ``images`` is a name inside ``root``).
_DATASET_PATHS: dict[str, set[str]] = {
    kind: {name for name, f in spec.model_fields.items() if _holds_path(f.annotation)}
    for kind, spec in {"lfw_pairs": LfwPairsDataset, "pair_csv": PairCsvDataset,
                       **KINDS}.items()}


def _as_path(value: Any, base_dir: Path) -> Path | None:
    """A raw path value resolved as the schema resolves it; ``None`` when blank or not a path
    (the schema reports a wrong type)."""
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return _PATH.validate_python(value, context={"base_dir": base_dir})
    except ValidationError:
        return None


def _missing(loc: str, path: Path | None, is_dir: bool = False) -> str | None:
    if path is None or (path.is_dir() if is_dir else path.is_file()):
        return None
    kind = "directory" if is_dir else "file"
    if path.exists() or path.is_symlink():
        found = "a directory" if path.is_dir() else "not a regular file"
        return f"{loc}: expected a {kind}, found {found}: {path}"
    return f"{loc}: {kind} not found: {path}"


def zoo_problem(arch: str) -> str | None:
    """Why ``arch`` is not a zoo architecture (listing the known ones), or ``None``."""
    # torch, imported only for suites that name a zoo model
    from facebench.zoo.registry import resolve

    try:
        resolve(arch)
    except KeyError as exc:
        return f"{exc.args[0]}; see `facebench models`"
    return None


def detector_problem(name: str, model: Path | None) -> str | None:
    """Why ``model`` (``None``: the default) cannot serve detector ``name``, with the
    detector it would serve when there is one."""
    problem = model_problem(name, model)
    if problem is None or model is None:
        return problem
    other = next((n for n in detectors_for(model) if n != name), None)
    return problem + (f"; for this file use name: {other}" if other else "")


def _detector_problems(loc: str, det: dict[str, Any], base_dir: Path) -> list[str]:
    """The detector's model checked by the detector itself (file kind, keys, folder)."""
    name, raw = det.get("name", "yunet"), det.get("model")
    model = _as_path(raw, base_dir)
    blank = raw is None or (isinstance(raw, str) and not raw.strip())
    if not isinstance(name, str) or name not in BUILTIN or (model is None and not blank):
        return []  # an unknown name or a bad path: the schema reports it
    problem = detector_problem(name, model)
    return [f"{loc}.model: {problem}"] if problem else []


def input_problems(data: dict[str, Any], base_dir: Path) -> list[str]:
    """Missing or wrong input files and unknown zoo architectures of raw suite ``data``."""
    problems: list[str] = []

    def need(loc: str, value: Any, is_dir: bool = False) -> None:
        problem = _missing(loc, _as_path(value, base_dir), is_dir)
        if problem:
            problems.append(problem)

    for i, m in items(data.get("models")):
        zoo = m.get("source") == "zoo"
        arch = m.get("arch")
        if zoo and isinstance(arch, str) and arch.strip() and (problem := zoo_problem(arch)):
            problems.append(f"models[{i}].arch: {problem}")
        if m.get("optional") is True:
            continue
        need(f"models[{i}].path", m.get("path"))
        if zoo:  # on other sources 'weights' is a schema error, not a file to look for
            need(f"models[{i}].weights", m.get("weights"))

    for i, p in items(data.get("protocols")):
        if p.get("kind") == "efficiency" or p.get("optional") is True:
            continue
        dataset = p.get("dataset")
        if isinstance(dataset, dict) and isinstance(kind := dataset.get("kind", "lfw_pairs"),
                                                     str):
            fields = _DATASET_PATHS.get(kind, set())
            given = {k: _as_path(v, base_dir) for k, v in dataset.items() if k in fields}
            for name, path, is_dir in required_inputs(SimpleNamespace(**given)):
                need(f"protocols[{i}].dataset.{name}", path, is_dir)
        det = p.get("detector")
        if isinstance(det, dict):
            problems += _detector_problems(f"protocols[{i}].detector", det, base_dir)
    return problems
