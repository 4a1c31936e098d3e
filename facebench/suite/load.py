"""Load a suite file: YAML (safe) → ``${VAR}`` interpolation → schema → file checks.

Every problem is collected with its location (``models[1].path: file not found: …``) and raised
together as one :class:`SuiteError`, so a user fixes a suite in one pass: the schema, the id
references and the input files are checked independently (files on the raw mapping,
:mod:`facebench.suite.checks`), so one kind of problem never hides another.

Before any of that, a file over :data:`MAX_SUITE_BYTES`, one that is not UTF-8, YAML nested
deeper than :data:`MAX_DEPTH` or a key given twice in one mapping is refused with one line.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from facebench.faces.align import ALIGN_METHODS, TEMPLATE_TAGS
from facebench.faces.degrade import CORRUPTIONS
from facebench.suite.checks import input_problems
from facebench.suite.degrade_checks import degrade_problems
from facebench.suite.references import reference_problems
from facebench.suite.schema import DATASET_KINDS, NORMALIZE_TAGS, Suite

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

#: Largest suite file read (bytes): 256 KiB, 50 times the largest shipped suite; within it even
#: dense YAML parses in seconds. Suites are a few KB; data belongs in pair/identity files.
MAX_SUITE_BYTES = 256 << 10
#: Deepest nesting of mappings and lists (a real suite nests fewer than 10 levels).
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _SuiteYamlError(yaml.MarkedYAMLError):
    """A YAML document this loader refuses; its message says what to do."""


class SuiteLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python tags; aliases shared, never copied) that also refuses
    a key repeated in one mapping and nesting deeper than :data:`MAX_DEPTH` (PyYAML composes
    recursively: 100,000 levels would end in ``RecursionError``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        nested = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _SuiteYamlError(
                    problem=f"nested deeper than {MAX_DEPTH} levels (a suite needs fewer than "
                    "10); flatten the file", problem_mark=self.peek_event().start_mark)
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE_TAG:
                continue
            seen = first.setdefault((key.tag, key.value), key)
            if seen is not key:
                raise _SuiteYamlError(
                    problem=f"duplicate key {key.value!r} (first on line "
                    f"{seen.start_mark.line + 1}); a key may appear once in a mapping: keep one",
                    problem_mark=key.start_mark)
        return node


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
    # a list too short for a fixed-length tuple is one problem, at the tuple
    short: dict[tuple[Any, ...], list[int]] = {}
    for loc, e in errors:
        if e["type"] == "missing" and loc and isinstance(loc[-1], int):
            short.setdefault(loc[:-1], []).append(loc[-1])
    for loc, e in errors:
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing" and loc and isinstance(loc[-1], int):
            absent = short[loc[:-1]]
            if loc[-1] != absent[0]:
                continue
            loc, msg = loc[:-1], f"expected {max(absent) + 1} values, got {min(absent)}"
            if loc[-1] in ("mean", "std"):
                msg += " (one value, or one per channel)"
        elif loc in meant:
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
            msg = f"is empty; list at least {need} entry"
            if len(loc) == 1:
                msg += (" (a suite runs every model × device × protocol, so an empty list "
                        "leaves nothing to run)")
            elif loc[0] == "protocols" and loc[-1] in ("models", "devices"):
                msg += (f" (a protocol that lists no {loc[-1]} selects no cell; leave "
                        f"'{loc[-1]}' out to run every one)")
        got = e.get("input")
        hint = ""
        if e["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
            hint = f" (got {_elided(repr(got))})"
        problems.append(f"{_loc(loc)}: {msg}{hint}")
    return problems


def _elided(text: str, keep: int = 60) -> str:
    """``text``, its middle replaced by ``…`` when longer than ``2 * keep`` characters."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}…{text[-keep:]}"


#: Tags pydantic puts in the location of a tagged-union member; a user never writes them.
_UNION_TAGS = {"verification", "efficiency", "identification", *DATASET_KINDS, *ALIGN_METHODS,
               *NORMALIZE_TAGS, *TEMPLATE_TAGS, *CORRUPTIONS}


def _too_big(path: Path, size: int) -> SuiteError:
    return SuiteError(path, [
        f"{path}: {size:,} bytes; a suite file may be at most {MAX_SUITE_BYTES >> 10} KiB "
        "(suites are a few KB: keep pair lists and data in their own files)"])


def load_suite(path: str | Path, env: dict[str, str] | None = None) -> Suite:
    """Read, interpolate and validate a suite file; raise :class:`SuiteError` on any problem."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(path, [f"suite file not found: {path}"])
    if (size := path.stat().st_size) > MAX_SUITE_BYTES:
        raise _too_big(path, size)
    with path.open("rb") as f:
        data = f.read(MAX_SUITE_BYTES + 1)
    if len(data) > MAX_SUITE_BYTES:  # it grew since stat
        raise _too_big(path, len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(path, [f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                                f"{exc.start}); save the suite as UTF-8"]) from None
    return parse_suite(text, path, env)


def parse_suite(text: str, path: str | Path, env: dict[str, str] | None = None) -> Suite:
    """Validate suite ``text`` as if read from ``path`` (relative paths resolve against it)."""
    path = Path(path)
    if len(text) > MAX_SUITE_BYTES:
        raise _too_big(path, len(text.encode("utf-8")))
    try:
        raw = yaml.load(text, Loader=SuiteLoader)  # a SafeLoader: no Python tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        fix = "" if isinstance(exc, _SuiteYamlError) else "; fix the YAML syntax"
        raise SuiteError(path, [f"(yaml) {where}: {problem}{fix}"]) from None
    if not isinstance(raw, dict):
        raise SuiteError(path, ["(suite): expected a mapping with models, devices, protocols"])
    problems: list[str] = []
    data = interpolate(raw, dict(os.environ if env is None else env), (), problems)
    # A field whose variable is unset is reported once, not again as "file not found" etc.
    unset = {p.partition(": ")[0] for p in problems}
    problems += reference_problems(data)
    base_dir = path.resolve().parent
    suite: Suite | None = None
    try:
        suite = Suite.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as err:
        problems += _besides(_pydantic_problems(err), unset)
    problems += _besides(input_problems(data, base_dir), unset)
    if suite is not None:
        problems += degrade_problems(suite)
    if problems or suite is None:
        # one line each, whatever a message quotes (a library's error text may span lines)
        lines = [" ".join(p.splitlines()) for p in problems]
        raise SuiteError(path, _in_file_order(lines, data))
    return suite


_ITEM = re.compile(r"^([^.\[:]+)(?:\[(\d+)\])?")


def _in_file_order(problems: list[str], data: dict[str, Any]) -> list[str]:
    """``problems`` grouped by the top-level key and list item they are at, in the order the
    file gives them (stable: each item keeps its problems' order)."""
    keys = {str(k): n for n, k in enumerate(data)}

    def key(problem: str) -> tuple[int, int]:
        m = _ITEM.match(problem.partition(": ")[0])
        if m is None or m[1] not in keys:
            return (-1, -1)
        return (keys[m[1]], int(m[2]) if m[2] else -1)

    return sorted(problems, key=key)


def _besides(problems: list[str], locations: set[str]) -> list[str]:
    """``problems`` minus those at (or inside) one of ``locations``."""
    def inside(loc: str) -> bool:
        return any(loc == x or loc.startswith((f"{x}.", f"{x}[")) for x in locations)

    return [p for p in problems if not inside(p.partition(": ")[0])]

