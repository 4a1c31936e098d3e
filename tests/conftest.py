"""Shared fixtures: where ../shared lives, and a fixed LFW subset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$FACEBENCH_SHARED`` or ``../shared`` beside the repository."""
    return Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real-data folder; skipped only outside CI when it is absent."""
    path = shared_dir()
    if not (path / "data" / "lfw" / "pairs.txt").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"../shared is required in CI but missing at {path}")
        pytest.skip(f"real data not found at {path} (set FACEBENCH_SHARED)")
    return path


@pytest.fixture(scope="session")
def lfw_dir(shared: Path) -> Path:
    return shared / "data" / "lfw"


@pytest.fixture(scope="session")
def models_dir(shared: Path) -> Path:
    return shared / "models"
