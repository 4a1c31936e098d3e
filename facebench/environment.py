"""Machine fingerprint, machine peak compute, load/busy rule and facebench's git state.

Everything here reads the machine without changing it and never raises for a missing source
(unknown values are ``None``).
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: The flags kept in the fingerprint: those that change what math kernels can run.
RELEVANT_FLAGS = (
    "sse", "sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimdhp", "asimddp", "sve", "sve2",
    "bf16", "i8mm",
)
#: Libraries whose versions are recorded (distribution names).
LIBRARIES = (
    "torch", "onnxruntime", "onnxruntime-gpu", "onnx", "numpy", "opencv-python-headless",
    "opencv-python", "opencv-contrib-python", "psutil", "fvcore", "pydantic", "scikit-learn",
    "onnxconverter-common", "tensorrt", "facebench",
)
#: Busy rule: the machine counts as busy when others' 1-minute load exceeds this × cores.
BUSY_LOAD_PER_CORE = 0.5


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _cpuinfo_field(text: str, name: str) -> str | None:
    m = re.search(rf"^{re.escape(name)}\s*:\s*(.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else ``platform.processor()``."""
    info = _read("/proc/cpuinfo") or ""
    for field in ("model name", "Model", "Hardware", "cpu model"):
        value = _cpuinfo_field(info, field)
        if value:
            return value
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> set[str]:
    """All CPU feature flags (x86 ``flags`` / ARM ``Features``); empty when unknown."""
    info = _read("/proc/cpuinfo") or ""
    value = _cpuinfo_field(info, "flags") or _cpuinfo_field(info, "Features") or ""
    return set(value.split())


def cores_used() -> int:
    """CPUs this process may run on (affinity), else the logical count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_max_mhz() -> tuple[float | None, str]:
    """Highest clock in MHz and where it was read from."""
    khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if khz and khz.strip().isdigit():
        return int(khz) / 1000.0, "cpufreq cpuinfo_max_freq"
    mhz = _cpuinfo_field(_read("/proc/cpuinfo") or "", "cpu MHz")
    if mhz:
        try:
            return float(mhz), "/proc/cpuinfo 'cpu MHz' (current clock, not turbo)"
        except ValueError:
            pass
    return None, "unknown"


def vector_profile(flags: set[str], machine: str | None = None) -> tuple[str, int, bool] | None:
    """``(isa, fp32 lanes per vector, fused multiply-add)`` of the widest usable vector ISA."""
    machine = machine or platform.machine()
    if "avx512f" in flags:
        return "avx512", 16, True
    if "avx2" in flags or "avx" in flags:
        return ("avx2" if "avx2" in flags else "avx"), 8, "fma" in flags
    if "sse" in flags or "sse2" in flags:
        return "sse", 4, False
    if machine in ("aarch64", "arm64") or "asimd" in flags or "neon" in flags:
        return "neon", 4, True
    return None


def cpu_peak_gflops(
    cores: int | None = None, flags: set[str] | None = None, mhz: float | None = None,
    fma_units: int | None = None,
) -> dict[str, Any] | None:
    """Nominal FP32 peak of ``cores`` cores: ``{"gflops": value, "how": derivation}``, or None.

    peak = cores × GHz × lanes × (2 if FMA else 1) × vector units per core, where lanes is the
    fp32 width of the widest ISA (AVX-512: 16, AVX/AVX2: 8, SSE/NEON: 4) and the FLOPs per lane are
    2 for a fused multiply-add. Units per core are ASSUMED (no CPUID reports them): 2 for
    AVX-512/AVX2/AVX server and desktop cores (two FMA ports since Haswell; Xeons with one
    AVX-512 FMA unit are over-estimated 2×), 2 for SSE (separate add and mul ports; counted as
    unfused), 2 for NEON (Cortex-A76 class). The clock is cpufreq's maximum, else the clock
    /proc/cpuinfo reports (in VMs often the base clock: turbo then makes the true peak higher),
    and AVX-512 frequency licences lower it: treat ``pct_of_peak`` as approximate.
    ``$FACEBENCH_CPU_PEAK_GFLOPS`` (per core) overrides it all.
    """
    cores = cores or cores_used()
    env = os.environ.get("FACEBENCH_CPU_PEAK_GFLOPS")
    if env:
        per_core = float(env)
        return {"gflops": per_core * cores, "how": f"$FACEBENCH_CPU_PEAK_GFLOPS={env} per core "
                f"× {cores} cores"}
    profile = vector_profile(cpu_flags() if flags is None else flags)
    source = "given"
    if mhz is None:
        mhz, source = cpu_max_mhz()
    if profile is None or not mhz:
        return None
    isa, lanes, fma = profile
    units = fma_units if fma_units is not None else 2
    flops_per_cycle = lanes * (2 if fma else 1) * units
    gflops = cores * mhz / 1000.0 * flops_per_cycle
    how = (f"{cores} cores × {mhz / 1000.0:.3f} GHz ({source}) × {lanes} fp32 lanes ({isa}) × "
           f"{2 if fma else 1} flop/lane ({'FMA' if fma else 'no FMA'}) × {units} vector units/core"
           f" (assumed) = {gflops:.1f} GFLOP/s")
    return {"gflops": gflops, "how": how}


#: Dense peak GFLOP/s of known GPUs (vendor datasheets, SXM boards): (fp32, fp16 tensor core).
GPU_PEAKS: dict[str, tuple[float, float]] = {
    "H200": (66_900.0, 989_400.0),
    "H100 80GB HBM3": (66_900.0, 989_400.0),
    "H100 PCIe": (51_200.0, 756_000.0),
    "A100": (19_500.0, 312_000.0),
    "L4": (30_300.0, 121_000.0),
    "T4": (8_100.0, 65_000.0),
}


def gpu_peak_gflops(device_name: str, fp16: bool = False) -> dict[str, Any] | None:
    """Datasheet dense peak of a GPU by name (``torch.cuda.get_device_name``), or None."""
    for key, (fp32, half) in GPU_PEAKS.items():
        if key.lower() in device_name.lower():
            value = half if fp16 else fp32
            kind = "fp16 tensor-core dense" if fp16 else "fp32 non-tensor"
            return {"gflops": value, "how": f"datasheet {kind} peak of {key}: {value:.0f} GFLOP/s"}
    return None


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones left out)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def load_avg() -> list[float] | None:
    """1, 5 and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 3) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def own_load(threads: int, duration_s: float) -> float:
    """Expected contribution to the 1-minute load average of ``threads`` runnable threads kept
    busy for ``duration_s`` seconds: threads × (1 − e^(−t/60)) (the kernel's exponential average
    with a 60 s time constant)."""
    return threads * (1.0 - math.exp(-max(0.0, duration_s) / 60.0))


def is_busy(
    load_before: list[float] | None,
    load_after: list[float] | None,
    cores: int,
    own_threads: int = 0,
    duration_s: float = 0.0,
) -> bool | None:
    """Whether others loaded the machine around a measurement.

    Rule: busy when the 1-minute load average of OTHER work exceeds ``BUSY_LOAD_PER_CORE`` (0.5)
    × ``cores``, before the run or after it. Before the run our process is idle (≈ 0); after it,
    :func:`own_load` of our ``own_threads`` over ``duration_s`` is subtracted. None when no load
    average is known.
    """
    if not load_before and not load_after:
        return None
    limit = BUSY_LOAD_PER_CORE * max(1, cores)
    others = []
    if load_before:
        others.append(load_before[0])
    if load_after:
        others.append(load_after[0] - own_load(own_threads, duration_s))
    return max(others) > limit


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return int(pages * size) if pages > 0 and size > 0 else None


def fingerprint(threads: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``environment`` block of results.json (docs/results.md), without before/after loads.

    ``fingerprint`` = sha256 over cpu model, logical/physical cores, memory and OS: equal values
    mean the same machine (as far as benchmarks care). ``busy`` applies :func:`is_busy` to the
    current load average alone.
    """
    flags = cpu_flags()
    logical = os.cpu_count()
    physical = _physical_cores()
    memory = _memory_bytes()
    os_name = platform.platform()
    model = cpu_model()
    used = cores_used()
    key = "|".join(str(v) for v in (model, logical, physical, memory, os_name))
    load = load_avg()
    env: dict[str, Any] = {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in flags if f in RELEVANT_FLAGS),
        "machine": platform.machine(),
        "logical_cores": logical,
        "physical_cores": physical,
        "cores_used": used,
        "cpu_max_mhz": cpu_max_mhz()[0],
        "memory_bytes": memory,
        "os": os_name,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "libraries": library_versions(),
        "load_avg": load,
        "busy": is_busy(load, None, used),
        "busy_rule": f"1-min load of other work > {BUSY_LOAD_PER_CORE} × cores used",
        "fingerprint": hashlib.sha256(key.encode()).hexdigest(),
    }
    if threads is not None:
        env["threads"] = dict(threads)
    return env


def git_info(repo_dir: Path | str) -> dict[str, Any]:
    """``{commit, branch, dirty}`` of the checkout at ``repo_dir``; nulls when not a checkout."""

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(
                ["git", "-C", str(repo_dir), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    if git("rev-parse", "--is-inside-work-tree") != "true":
        return {"commit": None, "branch": None, "dirty": None}
    commit = git("rev-parse", "--verify", "--quiet", "HEAD")
    branch = git("symbolic-ref", "--short", "--quiet", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit or None,
        "branch": branch or None,
        "dirty": None if status is None else bool(status),
    }
