"""Reports a reviewer reads: ``report.html`` (self-contained), ``report.md`` and figures.

Public API: :func:`render_report`. The comparison logic lives in :mod:`.compare`.
"""

from facebench.report.render import render_report

__all__ = ["render_report"]
