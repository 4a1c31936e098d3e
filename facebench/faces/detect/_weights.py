"""Strict state-dict loading for the PyTorch detectors (RetinaFace, MTCNN).

Reading (``weights_only=True``, ``state_dict`` wrappers, ``module.`` prefixes) is the zoo's
:func:`facebench.zoo.weights.read_state_dict`; this adds the all-or-nothing key check and the
file's sha256, and raises ``ValueError`` with a detector-specific hint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from facebench.io import sha256_file
from facebench.zoo.weights import WeightsError, read_state_dict


def _names(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:5])
    return shown + (f" … (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def key_problems(got: Mapping[str, Any], want: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and wrongly shaped keys of ``got`` against ``want`` (pure)."""
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    shapes = [
        f"{k} {tuple(got[k].shape)} != {tuple(v.shape)}"
        for k, v in want.items()
        if k in got and isinstance(got[k], torch.Tensor) and got[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_names(shapes)}")
    return problems


def read_strict(path: Path, model: torch.nn.Module, what: str, hint: str
                ) -> Mapping[str, Any]:
    """The state dict at ``path``, with exactly ``model``'s keys and shapes (nothing loaded
    into ``model``). An unreadable file or any key problem raises ``ValueError`` naming
    ``path``, the keys, ``what`` the file should have been, and ``hint`` (what to do)."""
    try:
        state = read_state_dict(path)
    except WeightsError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise ValueError(f"{path}: not a loadable PyTorch state dict ({reason}); {hint}") from exc
    problems = key_problems(state, model.state_dict())
    if problems:
        raise ValueError(f"{path}: does not match {what} ({'; '.join(problems)}); {hint}")
    return state


def load_strict(path: Path, model: torch.nn.Module, what: str, hint: str) -> str:
    """Load the state dict at ``path`` into ``model`` exactly (:func:`read_strict`); return the
    file's sha256 hex."""
    model.load_state_dict(read_strict(path, model, what, hint), strict=True)
    return sha256_file(path)
