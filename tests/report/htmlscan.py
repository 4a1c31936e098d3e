"""A small html.parser walk of report.html: ids, tables (cell text + classes), scripts, text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "input", "link", "path", "use", "rect", "circle", "line",
        "polyline", "polygon", "stop", "ellipse", "image"}


@dataclass
class Td:
    text: str = ""
    cls: str = ""
    sort: str | None = None
    spans: list[tuple[str, str]] = field(default_factory=list)  # (class, text) of <span>s


@dataclass
class Scan:
    ids: dict[str, str] = field(default_factory=dict)  # id -> tag
    tables: dict[str, list[list[Td]]] = field(default_factory=dict)  # id -> body rows
    headers: dict[str, list[str]] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    svg_in: dict[str, int] = field(default_factory=dict)  # figure id -> number of <svg>
    text: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    imgs: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scan = Scan()
        self.stack: list[str] = []
        self.table: str | None = None
        self.figure: str | None = None
        self.td: Td | None = None
        self.span: list[str] | None = None
        self.in_head = False
        self.head: list[str] = []
        self.script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.scan.ids[a["id"]] = tag
        if tag == "a" and "href" in a:
            self.scan.links.append(a["href"])
        if tag in ("img", "link", "iframe", "source", "audio", "video"):
            self.scan.imgs.append(a.get("src") or a.get("href") or "")
        if tag == "script":
            self.script = []
        elif tag == "table" and "id" in a:
            self.table = a["id"]
            self.scan.tables[self.table] = []
            self.scan.headers[self.table] = []
        elif tag == "figure" and "id" in a:
            self.figure = a["id"]
            self.scan.svg_in[self.figure] = 0
        elif tag == "svg" and self.figure:
            self.scan.svg_in[self.figure] += 1
        elif tag == "tr" and self.table and "tbody" in self.stack:
            self.scan.tables[self.table].append([])
        elif tag == "th" and self.table:
            self.in_head, self.head = True, []
        elif tag == "td" and self.table and self.scan.tables[self.table]:
            self.td = Td(cls=a.get("class", ""), sort=a.get("data-sort"))
            self.scan.tables[self.table][-1].append(self.td)
        elif tag == "span" and self.td is not None:
            self.span = [a.get("class", "")]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self.script is not None:
            self.scan.scripts.append("".join(self.script))
            self.script = None
        elif tag == "table":
            self.table = None
        elif tag == "figure":
            self.figure = None
        elif tag == "td":
            self.td = None
        elif tag == "th" and self.in_head and self.table:
            self.scan.headers[self.table].append("".join(self.head).strip())
            self.in_head = False
        elif tag == "span" and self.span is not None and self.td is not None:
            self.td.spans.append((self.span[0], "".join(self.span[1:]).strip()))
            self.span = None
        if self.stack and tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.script is not None:
            self.script.append(data)
            return
        self.scan.text.append(data)
        if self.in_head:
            self.head.append(data)
        if self.span is not None:
            self.span.append(data)
        elif self.td is not None and "small" not in self.stack[-1:]:
            self.td.text += data


def scan(html: str) -> Scan:
    p = _Parser()
    p.feed(html)
    p.close()
    return p.scan


def column(scan_: Scan, table: str, header: str) -> int:
    return scan_.headers[table].index(header)


def row(scan_: Scan, table: str, first: str) -> list[Td]:
    """The body row whose first cell's text is ``first``."""
    rows = [r for r in scan_.tables[table] if r and r[0].text.strip() == first]
    assert rows, f"no row {first!r} in {table}: {[r[0].text for r in scan_.tables[table]]}"
    return rows[0]
