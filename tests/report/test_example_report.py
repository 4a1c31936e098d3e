"""The example report committed under reports/ is what the current code renders from its
results.json (regenerate with `facebench report reports/lfw-mobilefacenet`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facebench.report import render_report

EXAMPLE = Path(__file__).resolve().parents[2] / "reports" / "lfw-mobilefacenet"


@pytest.mark.skipif(not (EXAMPLE / "results.json").is_file(), reason="no example report yet")
def test_example_report_matches_current_renderer(tmp_path: Path) -> None:
    results = json.loads((EXAMPLE / "results.json").read_text())
    shutil.copy(EXAMPLE / "results.json", tmp_path / "results.json")
    paths = render_report(results, tmp_path)
    for name in ("report.html", "report.md"):
        fresh = (tmp_path / name).read_text()
        committed = (EXAMPLE / name).read_text()
        assert fresh == committed, (
            f"reports/lfw-mobilefacenet/{name} is stale: run "
            "`facebench report reports/lfw-mobilefacenet` and commit the result")
    for key, path in paths.items():
        if key.startswith("figures/"):
            assert (EXAMPLE / key).read_bytes() == Path(path).read_bytes(), key
