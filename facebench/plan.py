"""Expand a suite into cells: models × devices × protocols, filtered by each protocol."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from facebench.suite.schema import (
    DeviceSpec,
    EfficiencyProtocol,
    IdentificationProtocol,
    ModelSpec,
    Suite,
    VerificationProtocol,
)

#: Protocols whose cells embed images (and so can calibrate an int8 model).
ImageProtocol = VerificationProtocol | IdentificationProtocol

#: Protocol fields that select cells or bound their time, not what a cell computes (an
#: efficiency protocol's interleaved pass runs after its cells, again on every run).
NOT_WORK = {"models", "devices", "cell_timeout_s", "interleave", "rounds"}


@dataclass(frozen=True)
class Cell:
    """One unit of work, run in its own process."""

    model: ModelSpec
    device: DeviceSpec
    protocol: VerificationProtocol | EfficiencyProtocol | IdentificationProtocol
    #: For ``precision: int8`` with static quantization: the protocol whose images calibrate the
    #: activation ranges (None: no protocol with images runs this model, so quantize dynamically).
    calibration: ImageProtocol | None = None

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
        """Hash of the settings that define this cell's work (model, device, protocol specs):
        ``--resume`` reuses a finished cell only when it is unchanged (and so are the contents
        of its :meth:`input_paths`). The protocol's cell selection (``models``, ``devices``)
        and time limit do not change a cell's work."""
        protocol = self.protocol.model_dump(mode="json", exclude=NOT_WORK)
        parts = [self.model.model_dump(mode="json"), self.device.model_dump(mode="json"),
                 protocol]
        if self.calibration is not None:
            parts.append(self.calibration.model_dump(mode="json", exclude=NOT_WORK))
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def input_paths(self) -> list[Path]:
        """Every file (by its bytes) and folder (by its listing) this cell reads: its model,
        its protocol's data and detector weights, and for an int8 cell calibrated on a
        protocol's images that protocol's. ``--resume`` reuses a finished cell only when none of
        them changed (:mod:`facebench.runner.inputs`)."""
        paths = [*self.model.input_paths(), *self.protocol.input_paths()]
        if self.calibration is not None:
            paths += self.calibration.input_paths()
        return list(dict.fromkeys(paths))


def plan(suite: Suite, only: list[str] | None = None) -> list[Cell]:
    """All cells of ``suite`` in a stable order; ``only`` keeps ids matching any glob
    (``model@device@protocol``; a bare word matches any of the three parts)."""
    cells = [
        Cell(model=model, device=device, protocol=proto)
        for proto in expand_degrade(suite.protocols)
        for model in suite.models
        if proto.models is None or model.id in proto.models
        for device in suite.devices
        if proto.devices is None or device.id in proto.devices
    ]
    cells = [_with_calibration(c, suite, cells) for c in cells]
    _check_folders(cells)
    if only:
        cells = [c for c in cells if any(_matches(c, pattern) for pattern in only)]
    return cells


#: Joins a degraded protocol's id to its level's name: ``lfw+resolution-32``.
LEVEL_JOIN = "+"


def expand_degrade(protocols: list) -> list:  # type: ignore[type-arg]
    """Each protocol with ``degrade:`` becomes its clean self (same id, no ``degrade``) and one
    protocol per level (``<id>+<level name>``, ``degrade`` holding that level alone)."""
    out = []
    for proto in protocols:
        spec = getattr(proto, "degrade", None)
        if spec is None:
            out.append(proto)
            continue
        out.append(proto.model_copy(update={"degrade": None}))
        for c in spec.corruptions:
            for value in c.level_values():
                one = spec.model_copy(update={
                    "corruptions": [c.model_copy(update={"levels": [value]})]})
                out.append(proto.model_copy(update={
                    "id": f"{proto.id}{LEVEL_JOIN}{c.level_name(value)}", "degrade": one}))
    seen: set[str] = set()
    for proto in out:
        if proto.id in seen:
            raise ValueError(f"protocol id {proto.id!r} is both a protocol of the suite and a "
                             "level of a degrade: block; rename the protocol")
        seen.add(proto.id)
    return out


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


def _runs(proto: object, model: ModelSpec, device: DeviceSpec) -> bool:
    models, devices = getattr(proto, "models", None), getattr(proto, "devices", None)
    return (models is None or model.id in models) and (devices is None or device.id in devices)


def calibration_protocol(cell: Cell, suite: Suite) -> ImageProtocol | None:
    """The protocol whose images calibrate ``cell``'s int8 model: ``quantization.calibrate_on``;
    else the cell's own protocol when it embeds images; else the first image protocol of the
    suite that runs the same model on the same device. None when not int8 static or none fits."""
    q = cell.device.quantization
    if cell.device.precision != "int8" or q.mode != "static":
        return None
    image_protocols = [p for p in suite.protocols if isinstance(p, ImageProtocol)]
    if q.calibrate_on is not None:
        return next((p for p in image_protocols if p.id == q.calibrate_on), None)
    if isinstance(cell.protocol, ImageProtocol):
        return cell.protocol
    return next((p for p in image_protocols if _runs(p, cell.model, cell.device)), None)


def _with_calibration(cell: Cell, suite: Suite, cells: list[Cell]) -> Cell:
    proto = calibration_protocol(cell, suite)
    if proto is None:
        return cell
    return Cell(model=cell.model, device=cell.device, protocol=cell.protocol, calibration=proto)


def precision_baseline(cell: Cell, cells: list[Cell]) -> Cell | None:
    """The fp32 cell ``cell`` (an fp16 or int8 variant) is compared with: same model, same
    protocol, a device with the same engine and device type at fp32, preferring the same
    threads and batch sizes. None for an fp32 cell or when the run has no such cell."""
    if cell.device.precision == "fp32":
        return None
    candidates = [
        c for c in cells
        if c.model.id == cell.model.id and c.protocol.id == cell.protocol.id
        and c.device.precision == "fp32" and c.device.engine == cell.device.engine
        and c.device.device == cell.device.device
    ]

    def closeness(c: Cell) -> tuple[bool, bool]:
        return (c.device.threads != cell.device.threads,
                c.device.batch_sizes != cell.device.batch_sizes)

    return min(candidates, key=closeness, default=None)
