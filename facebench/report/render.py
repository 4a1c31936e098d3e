"""Render ``report.html`` (one self-contained file) and ``report.md`` (+ ``figures/*.svg``)
from a ``results.json`` dict, without re-running anything.

Escaping: the HTML template autoescapes every value. For Markdown, every string of the view
model is first escaped for GitHub-flavoured Markdown (:func:`fmt.md`: HTML entities plus
backslash-escapes), except text shown inside ``<pre>`` (tracebacks, the suite file), which
Jinja's autoescape HTML-escapes at output like any other unmarked string.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from facebench.io import atomic_write_text
from facebench.report import fmt
from facebench.report.figures import Figure, render_figures
from facebench.report.summary import history_series
from facebench.report.view import build

TEMPLATES = Path(__file__).with_name("templates")
#: View fields that are not Markdown-escaped: ``<pre>`` text (HTML-escaped at output instead),
#: figure file names (already file-safe) and the inline SVG (not used in Markdown).
MD_RAW_KEYS = frozenset({"traceback", "suite_text", "file", "svg"})
_PROLOG = re.compile(r"^.*?(?=<svg\b)|<metadata>.*?</metadata>\s*", re.S)


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(text))


def _csp_hash(script: Any) -> str:
    digest = hashlib.sha256(str(script).encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


@cache
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["slug"] = _slug
    env.filters["csp_hash"] = _csp_hash
    return env


def md_safe(obj: Any, key: str = "") -> Any:
    """A deep copy of the view model with every string escaped for Markdown (as Markup)."""
    if key in MD_RAW_KEYS:
        return obj
    if isinstance(obj, str):
        return fmt.md(obj)
    if isinstance(obj, dict):
        return {k: md_safe(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(md_safe(v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: md_safe(getattr(obj, f.name), f.name)
                                           for f in dataclasses.fields(obj)})
    return obj


def inline_svg(svg: str) -> Markup:
    """matplotlib's SVG without the XML prolog and metadata, for embedding in HTML.

    Trusted: matplotlib escapes all text it writes (labels end up as XML-escaped comments)."""
    return Markup(_PROLOG.sub("", svg, count=2))


def _figure_view(f: Figure) -> dict[str, Any]:
    return {"name": f.name, "title": f.title, "caption": f.caption, "note": f.note or "",
            "section": f.section,
            "file": f"figures/{f.name}.svg" if f.svg else "",
            "svg": inline_svg(f.svg) if f.svg else ""}


def render_report(results: dict[str, Any], out_dir: Path, baseline: dict[str, Any] | None = None,
                  history: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``figures/*.svg`` into ``out_dir`` atomically
    (a symbolic link at ``figures`` is an ``OSError``: nothing is written through it).

    ``baseline`` is another results dict to show deltas against (cells matched by id);
    ``history`` is a list of earlier runs (history points or whole results dicts) for the trend
    figure. Returns ``{"html": …, "md": …, "figures/<name>.svg": …}``.
    """
    out_dir = Path(out_dir)
    series = history_series(history, results) if history is not None else None
    figures = render_figures(results, series)
    view = build(results, baseline)
    view["figures"] = [_figure_view(f) for f in figures]
    view["history_runs"] = len(series) if series is not None else 0
    html = _env().get_template("report.html.j2").render(view)
    md = _env().get_template("report.md.j2").render(md_safe(view))
    paths: dict[str, Path] = {}
    for f in figures:
        if f.svg:
            rel = f"figures/{f.name}.svg"
            paths[rel] = atomic_write_text(out_dir / rel, f.svg, root=out_dir)
    paths["md"] = atomic_write_text(out_dir / "report.md", md, root=out_dir)
    paths["html"] = atomic_write_text(out_dir / "report.html", html, root=out_dir)
    return paths
