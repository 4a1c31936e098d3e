"""Formatting of metric values for humans, and escaping of user text for Markdown.

Every formatter returns ``"n/a"`` for an undefined value (``None``, NaN, ±inf): the contract says
null means 0/0, which must never read as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from facebench.markdown import md as md  # re-exported: the one Markdown escaper
from facebench.metrics.catalog import Format, flag, metric_info

NA = "n/a"


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is undefined or not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pct(value: Any, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage without the sign: ``0.9853 -> "98.53"``."""
    v = number(value)
    return NA if v is None else f"{v * 100:.{digits}f}"


def fixed(value: Any, digits: int = 2) -> str:
    v = number(value)
    return NA if v is None else f"{v:,.{digits}f}"


def count(value: Any) -> str:
    v = number(value)
    return NA if v is None else f"{round(v):,}"


def sig(value: Any, digits: int = 3) -> str:
    """``digits`` significant digits, no exponent for everyday magnitudes."""
    v = number(value)
    if v is None:
        return NA
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def ms(value: Any) -> str:
    """Milliseconds with precision that suits the magnitude."""
    v = number(value)
    if v is None:
        return NA
    return f"{v:,.3f}" if abs(v) < 1 else f"{v:,.2f}" if abs(v) < 100 else f"{v:,.1f}"


def mega(value: Any, digits: int = 2) -> str:
    """Bytes or counts in millions (MB = 10⁶ bytes, M params)."""
    v = number(value)
    return NA if v is None else f"{v / 1e6:,.{digits}f}"


def signed_pp(value: Any, digits: int = 2) -> str:
    """A difference of fractions in signed percentage points: ``-0.003 -> "−0.30 pp"``."""
    v = number(value)
    if v is None:
        return NA
    text = f"{abs(v) * 100:.{digits}f}"
    sign = "±" if float(text) == 0 else "+" if v > 0 else "−"
    return f"{sign}{text} pp"


#: Short names of the float dtypes in the weights-by-precision text (others keep numpy's).
PRECISION_SHORT = {"float64": "fp64", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def weights_by_precision(by_dtype: Any) -> str:
    """Weight elements by stored precision in millions, largest first:
    ``{"int8": {"elements": 9762178, ...}, "float32": {"elements": 213764, ...}}`` ->
    ``"9.76 M int8 + 0.21 M fp32"``. Values may also be plain counts. Precisions that round to
    0.00 M (shape tensors and other small change) are left out unless that leaves nothing, then
    the largest is shown with three significant digits."""
    if not isinstance(by_dtype, dict):
        return NA
    counts = []
    for dtype, entry in by_dtype.items():
        n = number(entry.get("elements") if isinstance(entry, dict) else entry)
        if n is not None and n > 0:
            counts.append((n, PRECISION_SHORT.get(str(dtype), str(dtype))))
    if not counts:
        return NA
    counts.sort(key=lambda t: (-t[0], t[1]))
    shown = [f"{mega(n)} M {name}" for n, name in counts if round(n / 1e6, 2) > 0]
    return " + ".join(shown) or f"{sig(counts[0][0] / 1e6, 3)} M {counts[0][1]}"


def far_text(value: Any) -> str:
    """A FAR as a short percentage, e.g. ``0.000967 -> "0.097 %"``."""
    v = number(value)
    return NA if v is None else f"{sig(v * 100, 2)} %"


#: How each catalog display format renders a defined value (facebench.metrics.catalog).
FORMATS: dict[Format, Callable[[Any], str]] = {
    "percent": lambda v: f"{pct(v)} %",
    "percent_value": lambda v: f"{fixed(v, 1)} %",
    "count": lambda v: count(v),
    "ms": lambda v: f"{ms(v)} ms",
    "seconds": lambda v: f"{sig(v, 3)} s",
    "megabytes": lambda v: f"{mega(v)} MB",
    "per_second": lambda v: f"{fixed(v, 1)} img/s",
    "fixed4": lambda v: fixed(v, 4),
    "sig4": lambda v: sig(v, 4),
    "signed_pp": lambda v: signed_pp(v),
    "ratio": lambda v: f"{sig(v, 3)}×",
}


def metric_format(name: str) -> Format:
    """The catalog's display format of a metric (``sig4`` for a name it does not list)."""
    info = metric_info(name)
    return "sig4" if info is None else info.format


def metric(name: str, value: Any) -> str:
    """Any contract metric with its natural unit (used in delta and history tables); a value
    above the catalog's maximum is a measurement error and says so instead."""
    if number(value) is None:
        return NA
    if flag(name, value):
        return "measurement error"
    return FORMATS[metric_format(name)](value)


def delta(name: str, diff: float | None, rel: float | None) -> str:
    """A signed change: percentage points for fraction metrics, else relative %."""
    if diff is None:
        return NA
    if diff == 0:
        return "±0"
    sign = "+" if diff > 0 else "−"
    if metric_format(name) in ("percent", "signed_pp"):
        return f"{sign}{abs(diff) * 100:.2f} pp"
    if rel is not None:
        return f"{sign}{abs(rel) * 100:.1f} %"
    return f"{sign}{sig(abs(diff), 3)}"
