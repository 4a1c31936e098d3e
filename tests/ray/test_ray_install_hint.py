"""Without Ray, ``--executor ray`` fails with an ImportError that says how to install it."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
sys.modules["ray"] = None  # as if Ray were not installed
from facebench.runner.ray_executor import make_ray_executor
try:
    make_ray_executor(None)
except ImportError as exc:
    print(type(exc).__name__, "|", exc)
"""


def test_missing_ray_says_how_to_install_it() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("RayNotInstalled |")
    assert "pip install 'facebench[ray]'" in out.stdout


def test_cli_reports_it_as_a_usage_error(tmp_path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmodels: [{id: m, source: zoo, arch: mobilefacenet}]\n"
                     "devices: [{id: cpu, engine: torch}]\n"
                     "protocols: [{id: eff, kind: efficiency}]\n")
    code = ("import sys; sys.modules['ray'] = None; from facebench.cli import main; "
            f"sys.argv = ['facebench', 'run', {str(suite)!r}, '--executor', 'ray', "
            f"'--out', {str(tmp_path / 'out')!r}, '--no-progress']; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "pip install 'facebench[ray]'" in out.stdout + out.stderr
