"""The import graph of ``facebench/`` (read with ``ast``): no cycles, and layers import downwards.

Every import counts: module level and inside functions, ``from facebench.x import y`` (an edge to
``facebench.x.y`` when ``y`` is a submodule), relative imports, and
``importlib.import_module("facebench....")`` with a literal name. Only ``if TYPE_CHECKING:``
blocks are skipped (they never run). A package ``__init__`` that re-exports its submodules is an
ordinary edge; importing ``facebench.a.b`` is also an edge to the package ``facebench.a`` (Python
runs its ``__init__`` first) unless the importer lies inside ``facebench.a``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pytest

from facebench.datasets.specs import KINDS
from facebench.suite.schema import DATASET_KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "facebench"

#: ``(importer, forbidden target)`` prefixes, relative to the package: importer → target is
#: an error.
LAYER_RULES: tuple[tuple[str, str], ...] = (
    ("pipeline", "runner"),
    *((low, high) for low in ("faces", "engines", "metrics", "datasets", "search")
      for high in ("pipeline", "runner", "report", "gates", "history", "cli")),
)


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``file:line``; ``via`` is the imported module when
    ``target`` is only its package (whose ``__init__`` Python runs first)."""

    source: str
    target: str
    file: str
    line: int
    via: str | None = None

    def __str__(self) -> str:
        how = f", importing {self.via}" if self.via else ""
        return f"{self.source} -> {self.target}  ({self.file}:{self.line}{how})"


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` below the package folder ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` (``else`` is kept)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names ``node`` imports; ``from x import y`` gives ``x.y`` (y may be a name)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            if node.level - 1 >= len(package):
                return []
            head = package[: len(package) - (node.level - 1)]
            base = ".".join([*head, base] if base else head)
        return [f"{base}.{alias.name}" for alias in node.names]
    if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module":
            return [node.args[0].value]
    return []


def import_graph(root: Path) -> tuple[nx.DiGraph, list[Edge]]:
    """The module graph of the package folder ``root``; each graph edge keeps the
    :class:`Edge` of its first line (attribute ``edge``); every import's edges are listed.

    An import of ``p.q.m`` is an edge to ``p.q.m`` (the longest name that is a module of the
    package) and to the packages ``p.q`` and ``p`` that Python initialises first, except the
    importer's own packages (initialised before it) unless it imports a name from one."""
    modules = _modules(root)
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(modules)
    edges: list[Edge] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root.parent).as_posix()
        for node in _nodes(tree):
            for name in _names(node, module, path.name == "__init__.py"):
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                found, parent = name, name
                while parent:
                    own = parent == module or module.startswith(parent + ".")
                    if parent == found != module or not own:
                        edge = Edge(module, parent, rel, node.lineno,  # type: ignore[attr-defined]
                                    None if parent == found else found)
                        edges.append(edge)
                        kept = graph.get_edge_data(module, parent)
                        if kept is None or edge.line < kept["edge"].line:
                            graph.add_edge(module, parent, edge=edge)
                    parent = parent.rpartition(".")[0]
    return graph, edges


def find_cycles(graph: nx.DiGraph) -> list[tuple[list[str], list[Edge]]]:
    """Each strongly connected component of more than one module, with one shortest cycle
    through its first module (by name) as edges in order."""
    out = []
    for component in sorted(sorted(c) for c in nx.strongly_connected_components(graph)):
        if len(component) < 2:
            continue
        sub = graph.subgraph(component)
        start = component[0]
        path = min((nx.shortest_path(sub, start, p) for p in sub.predecessors(start)),
                   key=lambda p: (len(p), p))
        path.append(start)
        out.append((component, [sub.edges[a, b]["edge"] for a, b in itertools.pairwise(path)]))
    return out


def cycle_report(graph: nx.DiGraph) -> list[str]:
    """Readable lines for every import cycle: its modules, then one cycle edge by edge."""
    lines = []
    for component, cycle in find_cycles(graph):
        lines.append(f"import cycle among {len(component)} modules: {', '.join(component)}")
        lines.append("  " + " -> ".join([e.source for e in cycle] + [cycle[0].source]))
        lines.extend(f"    {e}" for e in cycle)
    return lines


def layer_violations(edges: list[Edge], package: str = "facebench") -> list[Edge]:
    """Edges that break :data:`LAYER_RULES` (a lower layer importing an upper one)."""

    def under(module: str, prefix: str) -> bool:
        full = f"{package}.{prefix}"
        return module == full or module.startswith(full + ".")

    return [e for e in edges if e.via is None
            and any(under(e.source, low) and under(e.target, high) for low, high in LAYER_RULES)]


# ---- the real package ----------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    graph, _ = import_graph(PACKAGE)
    lines = cycle_report(graph)
    assert not lines, "import cycles in facebench/ (break each one):\n" + "\n".join(lines)


def test_layers_import_downwards() -> None:
    _, edges = import_graph(PACKAGE)
    bad = layer_violations(edges)
    assert not bad, ("imports against the layering (pipeline never imports runner; faces, "
                     "engines, metrics and datasets never import pipeline, runner, report, "
                     "gates, history or cli):\n" + "\n".join(f"  {e}" for e in bad))


def test_dataset_specs_live_in_one_module_that_loads_nothing() -> None:
    """Every dataset kind's model is in ``datasets.specs``, which imports no loader; only the
    package ``__init__`` imports the dispatcher ``datasets.load``."""
    graph, _ = import_graph(PACKAGE)
    loaders = [m for m in graph.successors("facebench.datasets.specs")
               if m.startswith("facebench.datasets")]
    assert not loaders, f"facebench.datasets.specs imports {loaders}; specs must load nothing"
    assert set(graph.predecessors("facebench.datasets.load")) == {"facebench.datasets"}
    assert set(KINDS) == set(DATASET_KINDS)


def test_graph_is_read() -> None:
    """The checker sees the package: its modules, and edges of every import form."""
    graph, _ = import_graph(PACKAGE)
    assert graph.number_of_nodes() > 50 and graph.number_of_edges() > 100
    assert graph.has_edge("facebench.datasets", "facebench.datasets.pairs")


# ---- the checker itself, on a synthetic package --------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_checker_finds_cycles_and_layer_breaks(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg import b  # function-local\n    return b\n",
        "pkg/b.py": "from . import c\n",
        "pkg/c.py": "import importlib\n\n\ndef g():\n"
                    "    return importlib.import_module('pkg.a')\n",
        "pkg/pipeline/__init__.py": "",
        "pkg/pipeline/cell.py": "def run():\n    from ..runner.pool import Pool\n    return Pool\n",
        "pkg/runner/__init__.py": "",
        "pkg/runner/pool.py": "class Pool: ...\n",
        "pkg/metrics/__init__.py": "from pkg.metrics.roc import auc\n",
        "pkg/metrics/roc.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg.report import x\nauc = 1\n",
        "pkg/report.py": "import pkg.metrics\n",
    })
    graph, edges = import_graph(root)
    cycles = find_cycles(graph)
    assert [members for members, _ in cycles] == [["pkg.a", "pkg.b", "pkg.c"]]
    cycle = cycles[0][1]
    assert [(e.source, e.target, e.file, e.line) for e in cycle] == [
        ("pkg.a", "pkg.b", "pkg/a.py", 2), ("pkg.b", "pkg.c", "pkg/b.py", 1),
        ("pkg.c", "pkg.a", "pkg/c.py", 5)]
    report = "\n".join(cycle_report(graph))
    assert "pkg.a -> pkg.b -> pkg.c -> pkg.a" in report and "pkg/c.py:5" in report
    # the package __init__ re-exporting a submodule is an edge; TYPE_CHECKING imports are not
    assert graph.has_edge("pkg.metrics", "pkg.metrics.roc")
    assert not graph.has_edge("pkg.metrics.roc", "pkg.report")
    bad = layer_violations(edges, package="pkg")
    assert [(e.source, e.target, e.line) for e in bad] == [
        ("pkg.pipeline.cell", "pkg.runner.pool", 2)]


def test_checker_reports_lower_layer_importing_upper(tmp_path: Path) -> None:
    root = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/datasets/__init__.py": "",
        "pkg/datasets/load.py": "def f():\n    import pkg.cli\n",
        "pkg/cli.py": "",
    })
    _, edges = import_graph(root)
    assert [str(e) for e in layer_violations(edges, package="pkg")] == [
        "pkg.datasets.load -> pkg.cli  (pkg/datasets/load.py:2)"]


@pytest.mark.parametrize("source, expected", [
    ("from pkg import sub", {"pkg.sub"}),                  # a submodule by name
    ("from pkg.sub import thing", {"pkg.sub"}),            # a name from a module
    ("from pkg import VALUE", {"pkg"}),                    # a name from the package __init__
    ("import pkg.sub as s", {"pkg.sub"}),
    ("from pkg.inner.deep import x", {"pkg.inner.deep", "pkg.inner"}),  # + its package
    ("from .inner import deep", {"pkg.inner.deep", "pkg.inner"}),
    ("from . import VALUE, sub", {"pkg", "pkg.sub"}),
    ("if TYPE_CHECKING:\n    import pkg.sub\nelse:\n    import pkg.inner", {"pkg.inner"}),
    ("import importlib\nimportlib.import_module('pkg.sub')", {"pkg.sub"}),
])
def test_checker_resolves_targets(tmp_path: Path, source: str, expected: set[str]) -> None:
    root = _write(tmp_path, {"pkg/__init__.py": "VALUE = 1\n", "pkg/sub.py": "thing = 1\n",
                             "pkg/inner/__init__.py": "", "pkg/inner/deep.py": "x = 1\n",
                             "pkg/user.py": source + "\n"})
    graph, _ = import_graph(root)
    assert set(graph.successors("pkg.user")) == expected
