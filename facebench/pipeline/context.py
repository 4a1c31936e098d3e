"""What a cell needs besides its specs: output folder, cache, progress reporting, and the shard
runner (cluster access) the runner hands in, so that ``pipeline/`` never imports ``runner/``."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facebench.engines import EngineConfig, ModelSource
from facebench.suite.schema import DeviceSpec, ModelSpec


class ShardRunner(Protocol):
    """Runs ``fn(*args)`` for each args tuple somewhere (e.g. Ray tasks on a cluster), calling
    ``done(result)`` as each finishes (any order)."""

    name: str

    def map(self, fn: Callable[..., Any], args: list[tuple[Any, ...]],
            done: Callable[[Any], None]) -> None: ...


@dataclass
class CellContext:
    out_dir: Path  # the run's output folder
    cell_dir: Path  # cells/<slug>/
    cache_dir: Path | None
    progress: Callable[[str, int, int], None] = field(default=lambda stage, done, total: None)
    shards: ShardRunner | None = None  # where sharded cells send their shards (None: here)


def stdout_progress(min_interval_s: float = 0.25) -> Callable[[str, int, int], None]:
    """Progress as JSON lines on stdout, read by the parent runner (throttled)."""
    last = [0.0]

    def report(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < min_interval_s:
            return
        last[0] = now
        sys.stdout.write(json.dumps({"progress": stage, "done": done, "total": total}) + "\n")
        sys.stdout.flush()

    return report


def engine_parts(model: ModelSpec, device: DeviceSpec) -> tuple[ModelSource, EngineConfig]:
    """The engine layer's ``ModelSource`` and ``EngineConfig`` for a model on a device."""
    source = ModelSource(
        kind=model.source,  # type: ignore[arg-type]
        path=model.path,
        arch=model.arch,
        embedding_size=model.embedding_size,
        weights=model.weights,
        input_size=tuple(model.preprocess.input_size),  # type: ignore[arg-type]
        layout=model.preprocess.layout,
    )
    cfg = EngineConfig(
        engine=device.engine,
        device=device.device,
        intra_op_threads=device.threads.intra_op,
        inter_op_threads=device.threads.inter_op,
        fp16=device.fp16,
        int8=device.quantization.mode if device.precision == "int8" else None,
        providers=tuple(device.providers),
    )
    return source, cfg
