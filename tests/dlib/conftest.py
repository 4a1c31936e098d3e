"""dlib fixtures: the ``lfw`` cell of ``suites/dlib-lfw.yaml`` and a context factory.

No ``__init__.py`` in this folder: a ``tests/dlib`` package would shadow the ``dlib`` module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from facebench.pipeline.context import CellContext
from facebench.plan import Cell, plan
from facebench.suite.load import load_suite

pytest.importorskip("dlib")
pytest.importorskip("face_recognition_models")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def dlib_cell(shared: Path) -> Cell:
    """The ``lfw`` cell of suites/dlib-lfw.yaml (dlib ResNet, no flip, closest to centre)."""
    suite = load_suite(ROOT / "suites" / "dlib-lfw.yaml", env={"FACEBENCH_SHARED": str(shared)})
    (cell,) = [c for c in plan(suite) if c.kind == "verification"]
    return cell


@pytest.fixture(scope="session")
def with_protocol() -> Callable[..., Cell]:
    """``(cell, **update) ->`` the cell with protocol fields replaced (``workers=1``...)."""

    def replace(cell: Cell, **update: object) -> Cell:
        return Cell(cell.model, cell.device, cell.protocol.model_copy(update=update))

    return replace


@pytest.fixture
def make_ctx(tmp_path: Path) -> Callable[[Path | None], CellContext]:
    def make(cache: Path | None = None) -> CellContext:
        return CellContext(out_dir=tmp_path, cell_dir=tmp_path, cache_dir=cache)

    return make
