"""Cross-references of a suite, checked on its raw (interpolated) mapping: ids are unique, and
every id that a protocol, a device, a gate or the report names exists and is of the right kind.

They read the raw mapping, not the validated :class:`~facebench.suite.schema.Suite`, so they
run even where a schema error elsewhere stops the suite from validating. Only values of the
right type are read (an id that is a list is the schema's problem to report, never hashed
here). Each problem is one ``location: message`` line.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from facebench.gates.spec import Gate, metric_kinds

#: Protocol kinds whose images a quantization may calibrate on / a paper table may show.
IMAGE_KINDS = ("verification", "identification")
#: Every protocol kind (the schema's tags).
PROTOCOL_KINDS = ("verification", "efficiency", "identification")
_PARTS = ("model", "device", "protocol")


def items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, mapping)`` of each mapping in a list (anything else: nothing); the raw-suite
    checks (:mod:`facebench.suite.checks` too) read lists through it."""
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict):
            yield i, item


def _texts(value: Any) -> Iterator[tuple[int, str]]:
    """``(index, string)`` of each string in a list (anything else: nothing)."""
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, str):
            yield i, item


def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]…``, or ``None`` where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _known(ids: Any) -> str:
    return ", ".join(sorted(ids)) or "none"


def _duplicate_ids(data: dict[str, Any], field: str) -> list[str]:
    """A problem for each string id of ``data[field]`` that an earlier item already has."""
    seen: dict[str, int] = {}
    problems = []
    for i, item in items(data.get(field)):
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in seen:
            problems.append(f"{field}[{i}].id: duplicate id {ident!r} (also "
                            f"{field}[{seen[ident]}]); ids must be unique")
        seen.setdefault(ident, i)
    return problems


def _all_ids(data: dict[str, Any], field: str) -> set[str] | None:
    """Every id of ``data[field]``, or ``None`` unless it is a non-empty list of mappings with
    string ids (a part of the matrix that is not known exactly is not checked against)."""
    items = data.get(field)
    if not isinstance(items, list) or not items:
        return None
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    return set(ids) if all(isinstance(x, str) for x in ids) else None  # type: ignore[arg-type]


def _protocol_kinds(data: dict[str, Any]) -> dict[str, str] | None:
    """Protocol id → kind, or ``None`` unless every protocol has a string id and a known
    kind."""
    if _all_ids(data, "protocols") is None:
        return None
    out: dict[str, str] = {}
    for p in data["protocols"]:
        if p.get("kind") not in PROTOCOL_KINDS:
            return None
        out.setdefault(p["id"], p["kind"])
    return out


def reference_problems(data: dict[str, Any]) -> list[str]:
    """Duplicate ids and unknown or wrong-kind id references of raw suite ``data`` (always
    runs). References into a list are checked where that list's ids (and, for protocols,
    kinds) are all known: an invalid id is its own problem, not one more per reference."""
    problems = [p for f in ("models", "devices", "protocols") for p in _duplicate_ids(data, f)]
    ids = {f: _all_ids(data, f) for f in ("models", "devices")}
    kinds = _protocol_kinds(data)
    for i, p in items(data.get("protocols")):
        for key, known in ids.items():
            for j, ref in _texts(p.get(key)):
                if known is not None and ref not in known:
                    problems.append(f"protocols[{i}].{key}[{j}]: unknown id {ref!r}; known: "
                                    f"{_known(known)}")
    image = None if kinds is None else {k for k, kind in kinds.items() if kind in IMAGE_KINDS}
    for i, d in items(data.get("devices")):
        ref = _get(d, "quantization", "calibrate_on")
        if isinstance(ref, str) and image is not None and ref not in image:
            problems.append(f"devices[{i}].quantization.calibrate_on: {ref!r} is not a "
                            f"verification or identification protocol; known: {_known(image)}")
    table = _get(data, "report", "paper_table")
    verification = (None if kinds is None
                    else {k for k, kind in kinds.items() if kind == "verification"})
    for j, ref in _texts(_get(table, "protocols")):
        if verification is not None and ref not in verification:
            problems.append(f"report.paper_table.protocols[{j}]: {ref!r} is not a "
                            f"verification protocol; known: {_known(verification)}")
    for j, row in items(_get(table, "published")):
        model = row.get("model")
        if isinstance(model, str) and ids["models"] is not None and model not in ids["models"]:
            problems.append(f"report.paper_table.published[{j}].model: unknown model id "
                            f"{model!r}; known: {_known(ids['models'])}")
    problems += gate_problems(data)
    return problems


def _cells(data: dict[str, Any], models: set[str], devices: set[str]
           ) -> list[tuple[str, str, str, str]] | None:
    """``(model, device, protocol, kind)`` of every cell the raw suite plans (as
    :func:`facebench.plan.plan`: a protocol's models/devices lists select), or ``None`` when
    a protocol's kind or selection is not valid (the cells are not known exactly)."""
    out = []
    for item in data.get("protocols") or []:
        kind = item.get("kind")
        if kind not in PROTOCOL_KINDS:
            return None
        chosen = {}
        for key, known in (("models", models), ("devices", devices)):
            given = item.get(key)
            if given is None:
                chosen[key] = known
            elif isinstance(given, list) and all(isinstance(r, str) and r in known
                                                 for r in given):
                chosen[key] = set(given)
            else:
                return None
        out += [(m, d, item["id"], kind) for m in sorted(chosen["models"])
                for d in sorted(chosen["devices"])]
    return out


def _gate_loc(i: int, item: Any, field: str) -> str:
    """``gates[i].field`` for a gate written as a mapping, ``gates[i]`` for a compact one."""
    return f"gates[{i}].{field}" if isinstance(item, dict) else f"gates[{i}]"


def gate_problems(data: dict[str, Any]) -> list[str]:
    """Gates whose model, device or protocol selector matches no id of the suite, or that
    select no cell reporting their metric: they would only fail after the whole run. Checked
    where the suite's ids and cells are known exactly (else their own problems are reported)."""
    gates = data.get("gates")
    if not isinstance(gates, list):
        return []
    known = {part: _all_ids(data, f"{part}s") for part in _PARTS}
    models, devices = known["model"], known["device"]
    cells = (_cells(data, models, devices)
             if models is not None and devices is not None and known["protocol"] is not None
             else None)
    problems: list[str] = []
    for i, item in enumerate(gates):
        try:
            gate = Gate.model_validate(item)
        except ValidationError:
            continue  # the schema reports it
        unmatched = [part for part in _PARTS if known[part] is not None and not any(
            fnmatch.fnmatchcase(x, getattr(gate, part)) for x in known[part])]
        for part in unmatched:
            problems.append(f"{_gate_loc(i, item, part)}: {part} {getattr(gate, part)!r} "
                            f"matches no {part} of the suite; known: {_known(known[part])}")
        versus = "better_than" if gate.better_than is not None else "vs"
        if gate.versus is not None and models is not None and not any(
                fnmatch.fnmatchcase(x, gate.versus) for x in models):
            problems.append(f"{_gate_loc(i, item, versus)}: {versus} {gate.versus!r} matches "
                            f"no model of the suite; known: {_known(models)}")
        if unmatched or cells is None:
            continue
        selected = [c for c in cells if gate.matches(*c[:3])]
        wanted = metric_kinds(gate.metric)
        if not selected:
            problems.append(f"gates[{i}]: {gate.selector} selects no cell (the protocols' "
                            "models and devices lists leave none); the gate could never pass")
        elif not any(kind in wanted for *_, kind in selected):
            got = sorted({f"{p} ({kind})" for _, _, p, kind in selected})
            problems.append(f"{_gate_loc(i, item, 'metric')}: {gate.metric!r} is reported by "
                            f"{' and '.join(wanted)} cells, but the gate selects only "
                            f"{', '.join(got)}; the gate could never pass")
    return problems
