"""Suite path fields: relative paths resolve against the suite file's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = Path(value).expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path.resolve() if path.is_absolute() else path


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
