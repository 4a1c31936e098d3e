"""The data behind the report's robustness section, read from ``results.json`` alone.

A degraded cell (``details.degrade``: its level, and ``base``, the clean protocol) belongs to
the model's *line*: the model on its device with its clean protocol, so models that each run in
their own native pipeline (their own protocol) are compared level by level. Per corruption,
levels keep the suite's order, read as mild → severe.

- **Relative robustness** of a line on a corruption: the area under its accuracy-vs-severity
  curve (clean at step 0, each level one step, trapezoids) divided by the area of a line that
  stays at its clean accuracy (``k`` steps × clean accuracy). 1 = unaffected; ImageNet-C's
  relative measures normalise by the clean figure the same way.
- **First level below the floor**: the first level (suite order) whose accuracy is below the
  protocol's ``degrade.accuracy_floor``; ``clean`` when the clean accuracy already is.
- **Ranking** at a level: lines by accuracy (higher first; equal accuracies share a rank).

Plain data only: :mod:`facebench.report.view` formats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from facebench.report.fmt import number
from facebench.report.summary import ok_cells


@dataclass
class Line:
    """One model on one device in its clean protocol, and its cells per level name."""

    model: str
    device: str
    base: str
    clean: dict[str, Any] | None = None
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.model} ({self.base} · {self.device})"


@dataclass
class Corruption:
    name: str
    levels: list[str]  # level names in suite order (``resolution-32``)


@dataclass
class Robustness:
    lines: list[Line]
    corruptions: list[Corruption]
    floor: float | None


def accuracy(cell: dict[str, Any] | None) -> float | None:
    return None if cell is None else number((cell.get("metrics") or {}).get("accuracy"))


def relative_robustness(clean: float | None, accuracies: list[float | None]) -> float | None:
    """Trapezoid area under ``[clean, *accuracies]`` at unit steps over ``len(accuracies)`` ×
    ``clean``; ``None`` when a value is missing or the clean accuracy is 0."""
    if clean is None or not clean or not accuracies or any(a is None for a in accuracies):
        return None
    points = [clean, *accuracies]
    area = sum((a + b) / 2 for a, b in zip(points[:-1], points[1:], strict=True))
    return area / (len(accuracies) * clean)


def first_below(clean: float | None, levels: list[str], accuracies: list[float | None],
                floor: float | None) -> str | None:
    """The first level whose accuracy is below ``floor`` (``clean`` when the clean one is;
    ``None`` when none is, or when a value is missing before one is)."""
    if floor is None or clean is None:
        return None
    if clean < floor:
        return "clean"
    for name, a in zip(levels, accuracies, strict=True):
        if a is None:
            return None
        if a < floor:
            return name
    return None


def ranks(values: dict[str, float | None]) -> dict[str, int]:
    """Competition ranks by value, higher first (1, 1, 3); lines without a value get none."""
    known = {k: v for k, v in values.items() if v is not None}
    return {k: 1 + sum(1 for w in known.values() if w > v) for k, v in known.items()}


def robustness(results: dict[str, Any]) -> Robustness | None:
    """The robustness data of a run, or ``None`` when it has no degraded cell."""
    lines: dict[tuple[str, str, str], Line] = {}
    corruptions: dict[str, Corruption] = {}
    floor: float | None = None
    cells = ok_cells(results, "verification")
    for c in cells:
        d = (c.get("details") or {}).get("degrade")
        if not isinstance(d, dict) or not d.get("base") or not d.get("level_name"):
            continue
        key = (str(c.get("model")), str(c.get("device")), str(d["base"]))
        line = lines.setdefault(key, Line(*key))
        name = str(d["level_name"])
        line.levels[name] = c
        corr = corruptions.setdefault(str(d.get("name")), Corruption(str(d.get("name")), []))
        if name not in corr.levels:
            corr.levels.append(name)
        floor = number(d.get("accuracy_floor")) if floor is None else floor
    if not lines:
        return None
    for c in cells:
        key = (str(c.get("model")), str(c.get("device")), str(c.get("protocol")))
        if key in lines and "degrade" not in (c.get("details") or {}):
            lines[key].clean = c
    return Robustness(list(lines.values()), list(corruptions.values()), floor)


def line_robustness(line: Line, corr: Corruption) -> float | None:
    return relative_robustness(accuracy(line.clean),
                               [accuracy(line.levels.get(n)) for n in corr.levels])


def mean_robustness(line: Line, data: Robustness) -> float | None:
    """A line's relative robustness averaged over the corruptions (``None`` if one is)."""
    values = [line_robustness(line, c) for c in data.corruptions]
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def model_robustness(results: dict[str, Any]) -> dict[str, float]:
    """Model id → its mean relative robustness (first line of the model), for the paper
    table's robustness column."""
    data = robustness(results)
    out: dict[str, float] = {}
    for line in data.lines if data else []:
        value = mean_robustness(line, data)  # type: ignore[arg-type]
        if value is not None:
            out.setdefault(line.model, value)
    return out
