"""JUnit XML for gate outcomes: one testcase per gate × matched cell.

Text from the results (gate names, cell ids, messages) goes through :func:`facebench.text.plain`
first: a NUL or an ANSI escape in a gate name is written as a visible escape, so the file is
always well-formed XML 1.0."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from facebench.gates.evaluate import GateOutcome
from facebench.io import atomic_path
from facebench.text import plain


def junit_tree(outcomes: list[GateOutcome], suite: str = "facebench.gates") -> ET.ElementTree:
    """Build the XML tree (pure)."""
    count = {s: sum(o.status == s for o in outcomes) for s in ("fail", "error", "skip")}
    root = ET.Element("testsuites", name=suite)
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(outcomes)),
        failures=str(count["fail"]),
        errors=str(count["error"]),
        skipped=str(count["skip"]),
        time="0",
    )
    for o in outcomes:
        message = plain(o.message, lines=True)
        case = ET.SubElement(ts, "testcase", classname=plain(f"{suite}.{o.cell_id or 'run'}"),
                             name=plain(o.label), time="0")
        if o.status == "fail":
            ET.SubElement(case, "failure", message=message, type="GateFailed").text = message
        elif o.status == "error":
            ET.SubElement(case, "error", message=message, type="GateError").text = message
        elif o.status == "skip":
            ET.SubElement(case, "skipped", message=message)
        out = [message] if o.status == "pass" else []
        out += [f"WARNING: {plain(w, lines=True)}" for w in o.warnings]
        if out:
            ET.SubElement(case, "system-out").text = "\n".join(out)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(outcomes: list[GateOutcome], path: str | os.PathLike[str]) -> Path:
    """Write JUnit XML atomically (temp file + ``os.replace``); return the path."""
    dest = Path(path)
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        junit_tree(outcomes).write(f, encoding="utf-8", xml_declaration=True)
    return dest
