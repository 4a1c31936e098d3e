"""Load a suite file: YAML (safe) → ``${VAR}`` interpolation → schema → file checks.

Every problem is collected with its location (``models[1].path: file not found: …``) and raised
together as one :class:`SuiteError`, so a user fixes a suite in one pass.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from facebench.datasets.pairs import required_inputs
from facebench.suite.schema import DATASET_KINDS, Suite, reference_problems

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SuiteError(Exception):
    """A suite that cannot be run; ``problems`` holds one located message each."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(suite)"


def interpolate(node: Any, env: dict[str, str], where: tuple[Any, ...] = (),
                problems: list[str] | None = None, seen: dict[int, Any] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a YAML tree.

    A node reached again through a YAML alias is interpolated once and stays shared, so the
    work is linear in the file (nested aliases would otherwise expand exponentially)."""
    problems = problems if problems is not None else []
    seen = seen if seen is not None else {}
    if isinstance(node, dict | list):
        if id(node) in seen:
            return seen[id(node)]
        if isinstance(node, dict):
            mapping: dict[Any, Any] = {}
            seen[id(node)] = mapping
            mapping.update({k: interpolate(v, env, (*where, k), problems, seen)
                            for k, v in node.items()})
            return mapping
        items: list[Any] = []
        seen[id(node)] = items
        items.extend(interpolate(v, env, (*where, i), problems, seen) for i, v in enumerate(node))
        return items
    if not isinstance(node, str):
        return node

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value not in (None, ""):
            return value
        if default is not None:
            return default
        problems.append(
            f"{_loc(where)}: environment variable {name} is not set "
            f"(export it, or write ${{{name}:-default}})"
        )
        return ""

    return _VAR.sub(sub, node)


def _pydantic_problems(err: ValidationError) -> list[str]:
    problems = []
    errors = [(tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)), e)
              for e in err.errors()]
    # a misspelt required key is one problem: reported once, at the misspelling
    missing = [loc for loc, e in errors if e["type"] == "missing" and loc]
    meant: dict[tuple[Any, ...], str] = {}
    for loc, e in errors:
        if e["type"] == "extra_forbidden":
            near = difflib.get_close_matches(
                str(loc[-1]), [str(m[-1]) for m in missing if m[:-1] == loc[:-1]], n=1)
            if near:
                meant[loc] = near[0]
                missing.remove((*loc[:-1], near[0]))
    for loc, e in errors:
        msg = e["msg"].removeprefix("Value error, ")
        if loc in meant:
            msg = f"unknown key {loc[-1]!r}; did you mean {meant[loc]!r} (required, missing)?"
        elif e["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} (check spelling; see `facebench schema`)"
        elif e["type"] == "missing" and loc not in missing:
            continue
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            msg += " (use one of the documented kinds)"
        elif e["type"] == "too_short" and not e.get("input"):
            need = (e.get("ctx") or {}).get("min_length", 1)
            msg = (f"is empty; list at least {need} entry (a suite runs every model × device × "
                   "protocol, so an empty list leaves nothing to run)")
        got = e.get("input")
        hint = ""
        if e["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
            hint = f" (got {got!r})"
        problems.append(f"{_loc(loc)}: {msg}{hint}")
    return problems


#: Tags pydantic puts in the location of a tagged-union member; a user never writes them.
_UNION_TAGS = {"verification", "efficiency", "identification", *DATASET_KINDS}


def _file_problems(suite: Suite) -> list[str]:
    problems: list[str] = []

    def need(loc: str, path: Path | None, optional: bool = False, is_dir: bool = False) -> None:
        if path is None or optional:
            return
        ok = path.is_dir() if is_dir else path.is_file()
        if not ok:
            kind = "directory" if is_dir else "file"
            problems.append(f"{loc}: {kind} not found: {path}")

    for i, m in enumerate(suite.models):
        need(f"models[{i}].path", m.path, m.optional)
        need(f"models[{i}].weights", m.weights, m.optional)
    for i, p in enumerate(suite.protocols):
        if p.kind == "efficiency":
            continue
        for name, path, is_dir in required_inputs(p.dataset):
            need(f"protocols[{i}].dataset.{name}", path, p.optional, is_dir=is_dir)
        det = p.detector
        need(f"protocols[{i}].detector.model", det.model, p.optional, is_dir=det.name == "mtcnn")
        if det.name == "mtcnn" and det.model is None and not p.optional:
            from facebench.detect.mtcnn import INSTALL_HINT, default_weights_dir

            if default_weights_dir() is None:
                problems.append(f"protocols[{i}].detector.model: MTCNN weights not found; "
                                + INSTALL_HINT)
    return problems


def load_suite(path: str | Path, env: dict[str, str] | None = None) -> Suite:
    """Read, interpolate and validate a suite file; raise :class:`SuiteError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(path, [f"suite file not found: {path}"])
    text = path.read_text(encoding="utf-8")
    return parse_suite(text, path, env)


def parse_suite(text: str, path: str | Path, env: dict[str, str] | None = None) -> Suite:
    """Validate suite ``text`` as if read from ``path`` (relative paths resolve against it)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(path, [f"(yaml) {where}: {problem}; fix the YAML syntax"]) from None
    if not isinstance(raw, dict):
        raise SuiteError(path, ["(suite): expected a mapping with models, devices, protocols"])
    problems: list[str] = []
    data = interpolate(raw, dict(os.environ if env is None else env), (), problems)
    # A field whose variable is unset is reported once, not again as "file not found" etc.
    unset = {p.partition(": ")[0] for p in problems}
    problems += reference_problems(data)
    try:
        suite = Suite.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as err:
        raise SuiteError(path, problems + _besides(_pydantic_problems(err), unset)) from None
    problems += _besides(_file_problems(suite), unset)
    if problems:
        raise SuiteError(path, problems)
    return suite


def _besides(problems: list[str], locations: set[str]) -> list[str]:
    """``problems`` minus those at (or inside) one of ``locations``."""
    def inside(loc: str) -> bool:
        return any(loc == x or loc.startswith((f"{x}.", f"{x}[")) for x in locations)

    return [p for p in problems if not inside(p.partition(": ")[0])]

