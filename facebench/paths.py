"""Suite path fields: relative paths resolve against the suite file's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve(value: Path, info: ValidationInfo) -> Path:
    """``value`` with ``~`` expanded, made absolute against the base folder and resolved; a
    path that cannot be (an unknown ``~user``, a name too long for the file system, a link
    loop) is a ``ValueError`` saying why, so validation reports it at its field."""
    base = (info.context or {}).get("base_dir")
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~user of no such user (or no home directory at all)
        head = Path(value).parts[0]
        raise ValueError(f"cannot expand {head!r}: no such user or home directory; write "
                         "the folder out in full") from None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if not path.is_absolute():
        return path
    try:
        path = path.resolve()
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return path  # a missing input is reported where inputs are checked
    except (OSError, RuntimeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot use this path: {why}") from None
    return path


#: A path resolved against ``context["base_dir"]`` (the suite file's folder) when validated.
SuitePath = Annotated[Path, AfterValidator(_resolve)]


def default_cache_dir() -> Path:
    """``$FACEBENCH_CACHE``, else ``$XDG_CACHE_HOME/facebench`` or ``~/.cache/facebench``."""
    env = os.environ.get("FACEBENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facebench"


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it lies below it, else the full path (for listings)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
