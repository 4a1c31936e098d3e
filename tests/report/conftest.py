"""Fixtures: realistic results dicts (see builders.py) and one rendered report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from facebench.report import render_report

from .builders import build_results

XSS = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def results() -> dict[str, Any]:
    """The current run; one model id and the suite name are a script tag."""
    return build_results(seed=0, suite_name=XSS, busy=True)


@pytest.fixture(scope="session")
def baseline() -> dict[str, Any]:
    """An older run: mobilefacenet less accurate and (wider MLP) slower, the others alike."""
    return build_results(seed=1, models=(("mobilefacenet", 0.52, 96), ("arcface-r18", 0.66, 64),
                                         (XSS, 0.45, 8)))


@pytest.fixture(scope="session")
def history() -> list[dict[str, Any]]:
    return [build_results(seed=s) for s in (1, 2)]


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``$FACEBENCH_ARTIFACTS/report`` (kept after the run) or a temp folder."""
    root = os.environ.get("FACEBENCH_ARTIFACTS")
    path = Path(root) / "report" if root else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def rendered(results: dict[str, Any], baseline: dict[str, Any], history: list[dict[str, Any]],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return render_report(results, tmp_path_factory.mktemp("report"), baseline=baseline,
                         history=history)
