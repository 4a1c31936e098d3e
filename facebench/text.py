"""Text from data (ids, names, messages read from a results.json or a suite) made safe to show.

One function, :func:`plain`, for everything facebench prints or writes from data outside Markdown
and HTML: the console lines of ``run``, ``gate`` and ``history`` and the JUnit XML of ``gate``.
An ANSI escape sequence, a NUL or a bidirectional override in a gate name or an error message is
shown as a visible escape (``\\x1b``), never sent to the terminal, and never makes an XML file
malformed. It depends on nothing else in facebench, so every layer may import it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["plain"]

#: C0 and C1 controls and DEL (ANSI escapes, NUL, carriage return), bidirectional controls and
#: line separators (text that reorders or splits what follows it), lone surrogates (from JSON
#: ``\ud800``; not encodable) and the noncharacters U+FFFE/U+FFFF (not allowed in XML).
_UNSAFE = ("\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
           "\u2066-\u2069\ud800-\udfff\ufffe\uffff")
_ONE_LINE = re.compile(f"[\t\n\r{_UNSAFE}]")
_LINES = re.compile(f"[\r{_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain(text: Any, *, lines: bool = False) -> str:
    """``str(text)`` with every control character written as a visible escape (``\\x1b``,
    ``\\u202e``). One line unless ``lines``: then tabs and newlines are kept (a traceback)."""
    return (_LINES if lines else _ONE_LINE).sub(_escape, str(text))
