"""Two uninterrupted runs of the same suite on CPU — each with a cold alignment cache of its
own — give byte-identical scores and identical verification metrics (real LFW subset)."""

from __future__ import annotations

from pathlib import Path

from .conftest import Run
from .kit import assert_same_results, facebench


def test_two_runs_are_identical(lfw100: Path, reference_run: Run, fb_env: dict[str, str],
                                tmp_path: Path) -> None:
    env = {**fb_env, "FACEBENCH_CACHE": str(tmp_path / "cache")}
    res = facebench(["run", str(lfw100), "--out", str(tmp_path / "out"), "--no-progress"],
                    env, tmp_path)
    assert res.returncode == 0, res.stderr
    assert_same_results(tmp_path / "out", reference_run.out)
