"""The content fingerprint of what a cell reads: ``--resume``'s key besides its settings.

A cell's inputs are the paths its specs declare (:meth:`facebench.plan.Cell.input_paths`). A
regular file counts by the sha256 of its bytes, a folder by its listing (the relative path and
size of every file below it, hidden entries skipped), anything else by what it is (missing,
unreadable, not a regular file: never read, so a FIFO cannot block). A finished cell is reused
only when the digests recorded with it (``inputs_sha256``, per path ``inputs``) equal today's.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facebench.io import sha256_file
from facebench.plan import Cell
from facebench.results import CellRecord

#: The digest of a path that does not exist.
MISSING = "missing"


def _listing(folder: str, rel: str = "") -> Iterator[str]:
    """``relative path<TAB>size`` of every file below ``folder``, sorted, hidden entries
    skipped; a symbolic link also gives its target, and is not descended into."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.name.startswith("."):
            continue
        name = f"{rel}{e.name}"
        if e.is_dir(follow_symlinks=False):
            yield from _listing(e.path, f"{name}/")
            continue
        try:
            size = e.stat().st_size
        except OSError:
            size = -1
        link = f"\t-> {os.readlink(e.path)}" if e.is_symlink() else ""
        yield f"{name}\t{size}{link}"


def listing_sha256(folder: str | Path) -> str:
    """sha256 of a folder's listing (:func:`_listing`)."""
    digest = hashlib.sha256()
    for line in _listing(str(folder)):
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()


class InputDigests:
    """Digests of cells' inputs. One instance serves one run: it reads each version of a file
    (path, size, modification time, inode) once, and each folder's listing once."""

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, ...], str] = {}

    def digest(self, path: Path) -> str:
        """``sha256:…`` of a file's bytes, ``listing:…`` of a folder, or what else it is."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return MISSING
        except OSError as exc:
            return f"unreadable: {exc.strerror or exc}"
        if stat.S_ISDIR(st.st_mode):
            key: tuple[Any, ...] = ("dir", str(path))
            how = listing_sha256
            kind = "listing"
        elif stat.S_ISREG(st.st_mode):
            key = ("file", str(path), st.st_size, st.st_mtime_ns, st.st_ino)
            how = sha256_file
            kind = "sha256"
        else:
            return f"not a regular file (mode {stat.filemode(st.st_mode)})"
        if key not in self._memo:
            try:
                self._memo[key] = f"{kind}:{how(path)}"
            except OSError as exc:
                return f"unreadable: {exc.strerror or exc}"
        return self._memo[key]

    def __call__(self, cell: Cell) -> dict[str, str]:
        """Path → digest of everything ``cell`` reads."""
        return {str(p): self.digest(p) for p in cell.input_paths()}


def inputs_sha256(inputs: dict[str, str]) -> str:
    """One key for a cell's ``inputs`` (path → digest)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def stale_reason(rec: dict[str, Any], cell: Cell, inputs: dict[str, str]) -> str | None:
    """Why the stored record ``rec`` of ``cell`` does not describe what the cell would compute
    today (``None`` when it does): its settings changed, the contents of a file it reads (or a
    folder's listing) changed, or it was recorded without a fingerprint of its inputs."""
    if rec.get("spec_sha256") != cell.spec_sha256:
        return "settings changed"
    recorded = rec.get("inputs_sha256")
    if recorded is None:
        return "no fingerprint of its input files (an older facebench recorded it)"
    if recorded == inputs_sha256(inputs):
        return None
    before = rec.get("inputs") if isinstance(rec.get("inputs"), dict) else {}
    changed = sorted(p for p in {*before, *inputs} if before.get(p) != inputs.get(p))
    return f"inputs changed: {', '.join(changed) or 'their fingerprint'}"


def with_inputs(rec: dict[str, Any], inputs: dict[str, str]) -> dict[str, Any]:
    """``rec`` with the fingerprint of the inputs the cell was started on."""
    typed = CellRecord.from_dict(rec)
    typed.inputs_sha256, typed.inputs = inputs_sha256(inputs), inputs
    return typed.to_dict()
