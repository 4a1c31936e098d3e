"""facebench: benchmark face-recognition models for accuracy and cost in one run.

From Python (see docs/results.md, "From Python")::

    import facebench

    run = facebench.run("suites/lfw.yaml", out="runs/lfw")   # a facebench.api.Run
    df = facebench.load_results("runs/lfw")                   # tidy DataFrame, one row per metric

``run``, ``load_results`` and ``Run`` are imported on first use (PEP 562), so ``import facebench``
stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from facebench._version import __version__

__all__ = ["Run", "__version__", "load_results", "run"]

_API = frozenset({"Run", "load_results", "run"})


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("facebench.api"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from facebench.api import Run, load_results, run
