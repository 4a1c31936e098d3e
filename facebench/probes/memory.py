"""Peak memory probes, as defined in ``shared/docs/metrics.md``.

Host: :class:`RssSampler` reads the target process's resident set size (RSS, via psutil) every
``interval_s`` (10 ms) in a SEPARATE process, so sampling neither shares the GIL with nor is
paused by the measured code. Results: absolute peak, peak minus
a baseline the caller captured before model load (:func:`current_rss`), and the sample count.
A spike shorter than the interval can be missed; the sampler also reads once at start and once at
stop. :meth:`RssSampler.pause` suspends it (one read, then it blocks) around a timed loop, so that
its wake-ups do not compete with the measured code for the cores; :meth:`RssSampler.resume`
reads once and samples on.

CUDA (torch allocator only): :func:`cuda_reset_peak` right before the measured region, then
:func:`cuda_peak` for max allocated / reserved bytes.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil


def trim_heap() -> bool:
    """Return freed heap memory to the OS (glibc ``malloc_trim(0)``) so that a baseline taken
    next is not inflated by memory earlier work freed but kept resident; False where unsupported.
    """
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def current_rss(pid: int | None = None) -> int:
    """RSS in bytes of ``pid`` (default: this process)."""
    return int(psutil.Process(pid or os.getpid()).memory_info().rss)


@dataclass(frozen=True)
class MemoryStats:
    """What an :class:`RssSampler` saw."""

    peak_rss_bytes: int
    baseline_rss_bytes: int
    peak_rss_delta_bytes: int
    samples: int
    interval_s: float
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sample_loop(pid: int, interval_s: float) -> None:
    """Sampler process body: report "ready <rss>", sample every ``interval_s`` until "stop" (or
    end of input, or the target exits), then report "done <peak> <samples>". "pause" takes one
    sample, answers "paused" and blocks (no wake-ups, no CPU) until "resume", which takes one
    sample and answers "resumed" before sampling on."""
    out = sys.stdout
    try:
        read = psutil.Process(pid).memory_info
        peak, n = read().rss, 1
    except psutil.Error as exc:
        out.write(f"error {exc!r}\n")
        out.flush()
        return
    out.write(f"ready {peak}\n")
    out.flush()
    commands = _Lines(sys.stdin.fileno())
    next_t = time.monotonic()
    while True:
        next_t += interval_s
        command = commands.next(max(0.0, next_t - time.monotonic()))
        if command == "pause":
            peak, n = _sample(read, peak, n)
            out.write("paused\n")
            out.flush()
            command = commands.next(None)
            if command == "resume":
                peak, n = _sample(read, peak, n)
                out.write("resumed\n")
                out.flush()
                next_t = time.monotonic()
                continue
        if command is not None:
            break  # "stop", end of input or anything unknown
        try:
            rss = read().rss
        except psutil.Error:
            break
        n += 1
        peak = max(peak, rss)
    peak, n = _sample(read, peak, n)
    out.write(f"done {peak} {n}\n")
    out.flush()


def _sample(read: Any, peak: int, n: int) -> tuple[int, int]:
    """One more sample folded into ``(peak, n)``; unchanged when the target is gone."""
    try:
        return max(peak, read().rss), n + 1
    except psutil.Error:
        return peak, n


class _Lines:
    """Lines from a file descriptor, read without Python's buffering so ``select`` stays true."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def next(self, timeout_s: float | None) -> str | None:
        """The next line ("" at end of input), or None when none came within ``timeout_s``."""
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.fd], [], [], timeout_s)
            if not ready:
                return None
            chunk = os.read(self.fd, 256)
            if not chunk:
                return ""
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().strip()


class RssSampler:
    """Sample a process's RSS every ``interval_s`` from a separate sampler process.

    The sampler is ``python -m facebench.probes.memory PID INTERVAL`` talking over pipes, not
    a ``multiprocessing`` spawn child: spawn re-imports the caller's ``__main__`` (it fails under
    ``python -`` and re-runs unguarded scripts), and this child needs nothing pickled.

    >>> baseline = current_rss()                       # before the model is loaded
    >>> with RssSampler(baseline_bytes=baseline) as s:  # doctest: +SKIP
    ...     run_model()
    >>> s.result.peak_rss_delta_bytes                   # doctest: +SKIP
    """

    def __init__(
        self, pid: int | None = None, interval_s: float = 0.01, baseline_bytes: int | None = None
    ) -> None:
        self.pid = pid or os.getpid()
        self.interval_s = interval_s
        self.baseline_bytes = baseline_bytes
        self.result: MemoryStats | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._t0 = 0.0

    @property
    def running(self) -> bool:
        """Started and not yet stopped."""
        return self._proc is not None

    def start(self, timeout_s: float = 30.0) -> RssSampler:
        """Start the sampler and wait until it has taken its first sample."""
        if self._proc is not None:
            raise RuntimeError("sampler already started")
        if self.baseline_bytes is None:
            self.baseline_bytes = current_rss(self.pid)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "facebench.probes.memory", str(self.pid), str(self.interval_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1,
        )
        msg = self._readline(timeout_s)
        if not msg.startswith("ready "):
            self._kill()
            raise RuntimeError(f"RSS sampler failed to start: {msg.strip() or 'no answer'}")
        self._t0 = time.monotonic()
        return self

    def _readline(self, timeout_s: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        return self._proc.stdout.readline() if ready else ""

    def pause(self, timeout_s: float = 10.0) -> None:
        """Take one sample and suspend sampling (the sampler blocks, using no CPU) until
        :meth:`resume`: a timed loop runs without the sampler's wake-ups competing for cores."""
        self._say("pause", "paused", timeout_s)

    def resume(self, timeout_s: float = 10.0) -> None:
        """Take one sample and sample on every ``interval_s``."""
        self._say("resume", "resumed", timeout_s)

    def _say(self, command: str, answer: str, timeout_s: float) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("sampler not started")
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        msg = self._readline(timeout_s).strip()
        if msg != answer:
            self._kill()
            raise RuntimeError(f"RSS sampler did not {command}: {msg or 'no answer'}")

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Sampling suspended inside the block (nothing when the sampler is not running)."""
        if not self.running:
            yield
            return
        self.pause()
        try:
            yield
        finally:
            if self.running:
                self.resume()

    def stop(self, timeout_s: float = 10.0) -> MemoryStats:
        """Stop sampling and return the statistics."""
        if self._proc is None or self._proc.stdin is None:
            raise RuntimeError("sampler not started")
        duration = time.monotonic() - self._t0
        try:
            self._proc.stdin.write("stop\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        msg = self._readline(timeout_s).split()
        self._kill()
        if len(msg) != 3 or msg[0] != "done":
            raise RuntimeError(f"RSS sampler gave no result: {msg}")
        peak, n = int(msg[1]), int(msg[2])
        base = int(self.baseline_bytes or 0)
        self.result = MemoryStats(
            peak_rss_bytes=peak,
            baseline_rss_bytes=base,
            peak_rss_delta_bytes=peak - base,
            samples=n,
            interval_s=self.interval_s,
            duration_s=duration,
        )
        return self.result

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> RssSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            if exc[0] is None:
                self.stop()
            else:
                self._kill()


def cuda_reset_peak(device: Any = None) -> None:
    """Synchronize and reset torch's CUDA peak-memory counters (call right before measuring)."""
    import torch

    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)


def cuda_peak(device: Any = None) -> dict[str, int]:
    """torch's CUDA max allocated / reserved bytes since the last :func:`cuda_reset_peak`."""
    import torch

    torch.cuda.synchronize(device)
    return {
        "max_allocated_bytes": int(torch.cuda.max_memory_allocated(device)),
        "max_reserved_bytes": int(torch.cuda.max_memory_reserved(device)),
    }


if __name__ == "__main__":
    _sample_loop(int(sys.argv[1]), float(sys.argv[2]))
