"""A real LFW run shared by the end-to-end tests (full View 2: 7,701 images, 6,000 pairs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def facebench(*args: str, env: dict[str, str] | None = None,
              check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a subprocess."""
    res = subprocess.run([sys.executable, "-m", "facebench.cli", *args], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"facebench {' '.join(args)} exited {res.returncode}\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="session")
def run_env(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cache = os.environ.get("FACEBENCH_CACHE") or str(tmp_path_factory.mktemp("cache"))
    return {"FACEBENCH_SHARED": str(shared), "FACEBENCH_CACHE": cache,
            "FACEBENCH_HISTORY": f"sqlite:///{tmp_path_factory.mktemp('hist')}/history.db"}


@pytest.fixture(scope="session")
def lfw_run(run_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``facebench run suites/lfw-mobilefacenet.yaml`` on the full LFW View 2."""
    out = tmp_path_factory.mktemp("lfw-run")
    facebench("run", "suites/lfw-mobilefacenet.yaml", "--out", str(out), "--no-progress",
              env=run_env)
    return out
