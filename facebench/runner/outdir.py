"""The output folder of a run: whose it is, which run is using it, and links inside it.

- A run writes only into a folder that is new or empty, or that facebench made (it holds
  facebench's lock file, or a ``results.json`` of a run). Any other folder is refused before
  anything in it is deleted or overwritten.
- One run at a time: a run holds an exclusive ``flock`` on ``OUT/.facebench.lock`` from before
  its first write until its reports are written. The kernel drops the lock when the process
  dies (``kill -9`` included), so ``--resume`` never meets a stale lock.
- No symbolic links where facebench keeps its own files (``cells/`` and everything below it,
  ``figures/``): nothing is written or deleted through one. Files are written new (temp file,
  then rename, or created after unlinking what was there): a hard link planted at one of
  facebench's files is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path
from types import TracebackType

from facebench.io import link_error, read_json_bounded, safe_folder
from facebench.results import MAX_JSON_DEPTH, MAX_RESULTS_BYTES

#: Marks a folder as facebench's and holds the lock of the run using it (its PID inside).
LOCK_NAME = ".facebench.lock"
#: The file ``check_writable`` writes and removes to test that a folder takes writes (its name
#: ends in the PID, so that two runs starting on one new folder never remove each other's).
WRITE_PROBE = ".facebench-write-test"
#: How long a refused run waits for the holder's PID to appear in the lock file.
PID_WAIT_S = 2.0


def check_ours(out: Path) -> None:
    """Raise ``OSError`` when ``out`` holds anything and facebench did not make it: a run
    overwrites ``results.json`` and the reports and deletes the temp files it finds. A folder
    not there yet is fine (``check_writable`` makes it)."""
    if not out.is_dir():
        return
    try:
        names = sorted(entry.name for entry in os.scandir(out)
                       if entry.name != LOCK_NAME and not entry.name.startswith(WRITE_PROBE))
    except OSError as exc:
        raise OSError(f"output folder {out} cannot be read ({exc.strerror or exc}); choose "
                      "another with --out") from None
    if not names or os.path.lexists(out / LOCK_NAME) or _is_results(out / "results.json"):
        return
    shown = ", ".join(names[:3]) + (", …" if len(names) > 3 else "")
    raise OSError(f"output folder {out} is not empty and was not made by facebench (it holds "
                  f"{shown}); a run would overwrite and delete files there: choose a new or "
                  "empty folder with --out")


def _is_results(path: Path) -> bool:
    """``path`` is a regular file holding a facebench ``results.json``."""
    if path.is_symlink() or not path.is_file():
        return False
    try:  # bounded: a file of 100,000 "[" is not a run's, and no RecursionError
        data = read_json_bounded(path, max_bytes=MAX_RESULTS_BYTES, max_depth=MAX_JSON_DEPTH)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"schema_version", "run", "suite", "cells"} <= data.keys()


class OutputLock:
    """The exclusive lock of a run on its output folder (a context manager)."""

    def __init__(self, out: Path) -> None:
        path = out / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_error(path) from None
            raise OSError(exc.errno, f"cannot open {path}: {exc.strerror or exc}") from None
        _own_file(fd, path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OSError(f"output folder {out} is in use by another facebench run ({holder}); "
                          "wait for it to finish, or choose another folder with --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (and the PID, so that the next run's refusals name the next holder)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _own_file(fd: int, path: Path) -> None:
    """Refuse (closing ``fd``) a lock file that is not a regular file of its own: the lock
    writes its PID into it, and a hard link would carry that write to another file."""
    st = os.fstat(fd)
    why = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
           f"has {st.st_nlink} hard links" if st.st_nlink > 1 else None)
    if why is not None:
        os.close(fd)
        raise OSError(f"{path} {why}; facebench writes its lock there and never writes through "
                      "a link: remove it, or choose another folder with --out")


def _holder(fd: int) -> str:
    """``pid N`` of the process holding the lock on ``fd``'s file: it writes its PID just after
    taking the lock, so a run refused in that instant waits a moment for it."""
    deadline = time.monotonic() + PID_WAIT_S
    while True:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit() and _alive(int(text)):
            return f"pid {text}"
        if time.monotonic() > deadline:
            return "pid unknown"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def refuse_links(out: Path) -> None:
    """Raise ``OSError`` naming the first symbolic link where facebench keeps its own files:
    ``cells``, ``figures``, or anything below ``cells``."""
    for top in (out / "cells", out / "figures"):
        if top.is_symlink():
            raise link_error(top)
    for folder, dirs, files in os.walk(out / "cells"):  # os.walk never follows links
        for name in sorted((*dirs, *files)):
            if os.path.islink(os.path.join(folder, name)):
                raise link_error(Path(folder, name))


def cell_folder(out: Path, slug: str) -> Path:
    """``out/cells/<slug>``, made when missing; an error when it or ``cells`` is a link."""
    return safe_folder(out, Path("cells", slug))

