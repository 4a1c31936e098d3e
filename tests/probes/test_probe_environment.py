"""Machine peak, busy rule, fingerprint and git info."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from facebench import environment as env


@pytest.mark.parametrize(("flags", "mhz", "cores", "want"), [
    ({"avx512f", "avx2", "fma"}, 2000.0, 1, 128.0),   # Skylake-SP: 16 lanes × 2 × 2 units × 2 GHz
    ({"avx2", "fma", "avx"}, 3000.0, 4, 384.0),        # Haswell: 8 × 2 × 2 × 3 GHz × 4
    ({"avx", "sse2"}, 3000.0, 1, 48.0),                # Sandy Bridge: 8 add + 8 mul per cycle
    ({"sse", "sse2"}, 2000.0, 2, 32.0),                # SSE: 4 add + 4 mul per cycle
    ({"asimd"}, 2000.0, 1, 32.0),                      # NEON, 2 × 128-bit FMA pipes
])
def test_cpu_peak_formula(flags: set, mhz: float, cores: int, want: float,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEBENCH_CPU_PEAK_GFLOPS", raising=False)
    peak = env.cpu_peak_gflops(cores=cores, flags=flags, mhz=mhz)
    assert peak is not None and peak["gflops"] == pytest.approx(want)
    assert f"{cores} cores" in peak["how"] and "assumed" in peak["how"]


def test_cpu_peak_unknown_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACEBENCH_CPU_PEAK_GFLOPS", raising=False)
    assert env.vector_profile(set(), machine="x86_64") is None
    assert env.vector_profile(set(), machine="aarch64") == ("neon", 4, True)
    assert env.cpu_peak_gflops(cores=1, flags={"avx2", "fma"}, mhz=0.0) is None
    monkeypatch.setenv("FACEBENCH_CPU_PEAK_GFLOPS", "10")
    assert env.cpu_peak_gflops(cores=3)["gflops"] == 30.0


def test_this_machine_peak_is_sane() -> None:
    peak = env.cpu_peak_gflops(cores=1)
    if peak is None:
        pytest.skip("no vector ISA or clock readable here")
    assert 1.0 < peak["gflops"] < 1000.0  # one core of anything made this century


def test_busy_rule() -> None:
    assert env.is_busy([0.2, 0, 0], [0.4, 0, 0], cores=2) is False
    assert env.is_busy([1.5, 0, 0], [0.4, 0, 0], cores=2) is True      # busy before
    # after 60 s with 2 of our threads, ~1.26 of the after-load is ours
    ours = env.own_load(2, 60.0)
    assert ours == pytest.approx(2 * (1 - math.exp(-1)))
    assert env.is_busy([0.1, 0, 0], [1.5, 0, 0], cores=2, own_threads=2, duration_s=60) is False
    assert env.is_busy([0.1, 0, 0], [1.5, 0, 0], cores=2) is True
    assert env.is_busy(None, None, cores=2) is None


def test_fingerprint() -> None:
    a, b = env.fingerprint({"intra_op": 1}), env.fingerprint()
    for key in ("cpu_model", "cpu_flags", "logical_cores", "physical_cores", "cores_used",
                "memory_bytes", "os", "python", "libraries", "load_avg", "busy", "fingerprint"):
        assert key in a
    assert a["fingerprint"] == b["fingerprint"] and len(a["fingerprint"]) == 64
    assert a["threads"] == {"intra_op": 1} and "threads" not in b
    assert a["logical_cores"] == os.cpu_count()
    assert a["libraries"]["numpy"] and a["libraries"]["onnxruntime"]
    assert set(a["cpu_flags"]) <= set(env.RELEVANT_FLAGS)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_info(tmp_path: Path) -> None:
    assert env.git_info(tmp_path) == {"commit": None, "branch": None, "dirty": None}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "trunk")
    assert env.git_info(tmp_path) == {"commit": None, "branch": "trunk", "dirty": False}
    (tmp_path / "f.txt").write_text("1")
    git("add", "f.txt")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "x")
    info = env.git_info(tmp_path)
    assert info == {"commit": git("rev-parse", "HEAD"), "branch": "trunk", "dirty": False}
    (tmp_path / "f.txt").write_text("2")
    assert env.git_info(tmp_path)["dirty"] is True
