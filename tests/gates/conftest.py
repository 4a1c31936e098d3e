"""Real result files for gate tests: each made by a fresh ``make_run.py`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MAKE_RUN = Path(__file__).with_name("make_run.py")
#: One intra-op thread: on this shared 2-core box 2 threads are bimodal under load (see docs/ci.md).
TIMING = ("--threads", "1", "--samples", "150")


def make_run(out: Path, run_id: str, *args: str, gates: list[Any] | None = None) -> Path:
    """Run make_run.py in a fresh interpreter; return the results.json path."""
    cmd = [sys.executable, str(MAKE_RUN), str(out), "--run-id", run_id, *args]
    if gates is not None:
        cmd += ["--gates", json.dumps(gates)]
    subprocess.run(cmd, check=True, timeout=120)
    return out / "results.json"


@pytest.fixture(scope="session")
def run_factory(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``run_factory(run_id, *args, gates=…)`` → a fresh real results.json (TIMING defaults)."""
    root = tmp_path_factory.mktemp("runs")

    def factory(run_id: str, *args: str, gates: list[Any] | None = None) -> Path:
        return make_run(root / run_id, run_id, *TIMING, *args, gates=gates)

    return factory


@pytest.fixture(scope="session")
def full_run(run_factory: Callable[..., Path]) -> Path:
    """A real run with an efficiency cell and an LFW-subset verification cell."""
    return run_factory("full-1", "--verify-pairs", "15")


@pytest.fixture(scope="session")
def broken_run(run_factory: Callable[..., Path]) -> Path:
    """A real run with a failed cell (a genuine ORT error) and two gates in its suite."""
    gates = [
        "params <= 2e6",
        {"metric": "latency.p90_ms", "op": "<=", "value": 1000, "protocol": "efficiency"},
    ]
    return run_factory("broken-1", "--fail-cell", gates=gates)


@pytest.fixture(scope="session")
def full_results(full_run: Path) -> dict[str, Any]:
    return json.loads(full_run.read_text())


SUITE = """\
name: gate-smoke
models:
  - id: mobilefacenet-128d
    source: onnx
    path: {model}
    preprocess: {{color: RGB, mean: 127.5, std: 128.0, input_size: [112, 112]}}
devices:
  - id: cpu-ort
    engine: onnxruntime
    device: cpu
    threads: {{intra_op: 1, inter_op: 1}}
    batch_sizes: [1]
protocols:
  - id: efficiency
    kind: efficiency
    warmup: 10
    min_iters: 150
    min_seconds: 0.3
gates:
  - "params <= 2e6"
  - "latency.p90_ms <= 1000"
  - "params <= 500000"
  - "latency.p50_ms <= baseline + 10%"
report:
  formats: [md]
"""


@pytest.fixture(scope="session")
def real_run(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``facebench run SUITE --gate --baseline latest:main`` in a subprocess, history in tmp.

    Returns ``{"rc", "stdout", "stderr", "out", "history"}``; the suite's third gate fails.
    """
    root = tmp_path_factory.mktemp("real-run")
    suite = root / "gate-smoke.yaml"
    suite.write_text(SUITE.format(model=shared / "models" / "mobilefacenet_128d.onnx"))
    history = f"sqlite:///{root / 'history.db'}"
    env = {**os.environ, "FACEBENCH_HISTORY": history}
    cmd = [
        sys.executable,
        "-m",
        "facebench.cli",
        "run",
        str(suite),
        "--out",
        str(root / "out"),
        "--no-progress",
        "--gate",
        "--baseline",
        "latest:main",
    ]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return {
        "rc": proc.returncode,
        "stdout": proc.stdout,
        "stderr": proc.stderr,
        "out": root / "out",
        "history": history,
    }
