"""Escaping of text from data (ids, file names, error messages) for GitHub-flavoured Markdown.

One function for every Markdown facebench writes: ``report.md`` (:mod:`facebench.report`) and
the gate summary / PR comment (:mod:`facebench.gates.summary`). It depends on nothing else in
facebench, so both layers import it without a cycle.
"""

from __future__ import annotations

import html
import re
from typing import Any

from markupsafe import Markup

__all__ = ["md"]

#: Characters that open emphasis, code spans, links and images, strikethrough or table cells,
#: and the backslash itself. ``< > &`` are HTML-escaped first. Escaping ``[`` and ``]`` is enough
#: against ``[text](url)`` and ``![alt](url)``: a ``(`` or ``!`` alone starts nothing.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
#: GFM's extended autolinks (a bare ``https://…`` or ``www.…`` becomes a link): escaping the
#: ``:`` of the scheme or the ``.`` after ``www`` keeps them plain text.
_AUTOLINK = re.compile(r"(?i)(\b(?:https?|ftp)):(?=//)|(\bwww)\.")


def md(text: Any) -> Markup:
    """Escape user text for GitHub-flavoured Markdown: HTML-escape ``& < >``, then
    backslash-escape the characters that start emphasis, code, links, images, strikethrough or
    table cells, and break bare-URL autolinks; newlines become spaces (a table row is one
    line). User text never starts a line, so line-start markers (``#``, ``-``, ``>``) need no
    escape. A :class:`~markupsafe.Markup` value is returned as it is (already safe)."""
    if isinstance(text, Markup):
        return text
    s = html.escape(str(text), quote=False)
    s = _MD_SPECIAL.sub(r"\\\1", s)
    s = _AUTOLINK.sub(lambda m: f"{m[1]}\\:" if m[1] else f"{m[2]}\\.", s)
    return Markup(" ".join(s.splitlines()))
