"""Expand a suite into cells: models × devices × protocols, filtered by each protocol."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass

from facebench.suite.schema import (
    DeviceSpec,
    EfficiencyProtocol,
    ModelSpec,
    Suite,
    VerificationProtocol,
)

#: Protocol fields that select cells or bound their time, not what a cell computes.
NOT_WORK = {"models", "devices", "cell_timeout_s"}


@dataclass(frozen=True)
class Cell:
    """One unit of work, run in its own process."""

    model: ModelSpec
    device: DeviceSpec
    protocol: VerificationProtocol | EfficiencyProtocol

    @property
    def id(self) -> str:
        return f"{self.model.id}@{self.device.id}@{self.protocol.id}"

    @property
    def slug(self) -> str:
        """This cell's folder under ``OUT/cells``: its id. Ids cannot hold ``@``, so no two
        cells share a folder (joined with ``__``, model ``a`` on device ``b__c`` and model
        ``a__b`` on device ``c`` did)."""
        return self.id

    @property
    def kind(self) -> str:
        return self.protocol.kind

    @property
    def spec_sha256(self) -> str:
        """Hash of everything that defines this cell's work (model, device, protocol specs):
        ``--resume`` reuses a finished cell only when it is unchanged. The protocol's cell
        selection (``models``, ``devices``) and time limit do not change a cell's work."""
        protocol = self.protocol.model_dump(mode="json", exclude=NOT_WORK)
        blob = json.dumps([self.model.model_dump(mode="json"), self.device.model_dump(mode="json"),
                           protocol], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def plan(suite: Suite, only: list[str] | None = None) -> list[Cell]:
    """All cells of ``suite`` in a stable order; ``only`` keeps ids matching any glob
    (``model@device@protocol``; a bare word matches any of the three parts)."""
    cells = [
        Cell(model=model, device=device, protocol=proto)
        for proto in suite.protocols
        for model in suite.models
        if proto.models is None or model.id in proto.models
        for device in suite.devices
        if proto.devices is None or device.id in proto.devices
    ]
    _check_folders(cells)
    if only:
        cells = [c for c in cells if any(_matches(c, pattern) for pattern in only)]
    return cells


def _check_folders(cells: list[Cell]) -> None:
    """Refuse two cells whose folders would be one on a case-insensitive file system (macOS,
    Windows): their scores would overwrite each other."""
    seen: dict[str, Cell] = {}
    for cell in cells:
        other = seen.setdefault(cell.slug.casefold(), cell)
        if other is not cell:
            raise ValueError(f"cells {other.id!r} and {cell.id!r} would share one output folder "
                             f"(cells/{other.slug}) on a case-insensitive file system; give the "
                             "models, devices or protocols ids that differ by more than case")


def _matches(cell: Cell, pattern: str) -> bool:
    if "@" in pattern:
        return fnmatch.fnmatchcase(cell.id, pattern)
    parts = (cell.model.id, cell.device.id, cell.protocol.id)
    return any(fnmatch.fnmatchcase(p, pattern) for p in parts)
