"""Checks of a suite's inputs on its raw (interpolated) mapping: files, zoo names, file formats.

They read the mapping, not the validated :class:`~facebench.suite.schema.Suite`, so a missing
file is reported even where a schema error elsewhere (in the same model, even) stops the
suite from validating: one pass reports every problem. Each problem is ``location: message``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from facebench.datasets.pairs import required_inputs
from facebench.datasets.specs import KINDS
from facebench.paths import SuitePath
from facebench.suite.schema import LfwPairsDataset, PairCsvDataset

_PATH = TypeAdapter(SuitePath)
#: Dataset models by ``kind``: which path fields a kind has.
_DATASETS: dict[str, type] = {"lfw_pairs": LfwPairsDataset, "pair_csv": PairCsvDataset, **KINDS}
#: The file format each file-based detector reads, and what its file is.
_DETECTOR_FILES: dict[str, tuple[str, str]] = {
    "yunet": ("onnx", "YuNet needs its ONNX model (face_detection_yunet.onnx)"),
    "retinaface": ("torch", "RetinaFace needs its PyTorch weights (a torch.save file such as "
                            "retinaface_mobilenet0.25.pth)"),
}
_FORMAT_NAMES = {"onnx": "an ONNX model", "torch": "a PyTorch checkpoint (torch.save)",
                 None: "neither an ONNX model nor a PyTorch checkpoint"}
#: ONNX ModelProto field tags that may follow ``ir_version`` (field 1) in a serialized model.
_ONNX_NEXT_TAGS = frozenset({0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA})


def model_file_format(path: Path) -> Literal["onnx", "torch"] | None:
    """``"onnx"``, ``"torch"`` (``torch.save``: zip or legacy pickle) or ``None``, from the
    first bytes of a regular file; nothing is loaded."""
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80
                                           and 2 <= head[1] <= 5):
        return "torch"
    # ir_version (field 1, varint, small), then the next ModelProto field
    if len(head) > 2 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS:
        return "onnx"
    return None


def _items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict):
            yield i, item


def _as_path(value: Any, base_dir: Path) -> Path | None:
    """A raw path value resolved as the schema resolves it; ``None`` when blank or not a path
    (the schema reports a wrong type)."""
    if isinstance(value, str) and not value.strip():
        return None
    try:
        return _PATH.validate_python(value, context={"base_dir": base_dir})
    except ValidationError:
        return None


def _missing(loc: str, path: Path | None, is_dir: bool = False) -> str | None:
    if path is None or (path.is_dir() if is_dir else path.is_file()):
        return None
    kind = "directory" if is_dir else "file"
    if path.exists() or path.is_symlink():
        found = "a directory" if path.is_dir() else "not a regular file"
        return f"{loc}: expected a {kind}, found {found}: {path}"
    return f"{loc}: {kind} not found: {path}"


def zoo_problem(arch: str) -> str | None:
    """Why ``arch`` is not a zoo architecture (listing the known ones), or ``None``."""
    # torch, imported only for suites that name a zoo model
    from facebench.zoo.registry import resolve

    try:
        resolve(arch)
    except KeyError as exc:
        return f"{exc.args[0]}; see `facebench models`"
    return None


def detector_file_problem(name: str, path: Path) -> str | None:
    """Why ``path`` (a regular file) is not the kind of file detector ``name`` reads."""
    if name not in _DETECTOR_FILES:
        return None
    want, needs = _DETECTOR_FILES[name]
    got = model_file_format(path)
    if got == want:
        return None
    other = next((n for n, (fmt, _) in _DETECTOR_FILES.items() if fmt == got), None)
    hint = f"; for this file use name: {other}" if other else ""
    return f"{path} is {_FORMAT_NAMES[got]}, but {needs}{hint}"


def input_problems(data: dict[str, Any], base_dir: Path) -> list[str]:
    """Missing or wrong input files and unknown zoo architectures of raw suite ``data``."""
    problems: list[str] = []

    def need(loc: str, value: Any, is_dir: bool = False) -> Path | None:
        path = _as_path(value, base_dir)
        problem = _missing(loc, path, is_dir)
        if problem:
            problems.append(problem)
            return None
        return path

    for i, m in _items(data.get("models")):
        zoo = m.get("source") == "zoo"
        arch = m.get("arch")
        if zoo and isinstance(arch, str) and arch.strip() and (problem := zoo_problem(arch)):
            problems.append(f"models[{i}].arch: {problem}")
        if m.get("optional") is True:
            continue
        need(f"models[{i}].path", m.get("path"))
        if zoo:  # on other sources 'weights' is a schema error, not a file to look for
            need(f"models[{i}].weights", m.get("weights"))

    for i, p in _items(data.get("protocols")):
        if p.get("kind") == "efficiency" or p.get("optional") is True:
            continue
        dataset = p.get("dataset")
        if isinstance(dataset, dict):
            kind = dataset.get("kind", "lfw_pairs")
            fields = getattr(_DATASETS.get(kind), "model_fields", {})
            given = {k: _as_path(v, base_dir) for k, v in dataset.items() if k in fields}
            for name, path, is_dir in required_inputs(SimpleNamespace(**given)):
                need(f"protocols[{i}].dataset.{name}", path, is_dir)
        det = p.get("detector")
        if not isinstance(det, dict):
            continue
        name = det.get("name", "yunet")
        loc = f"protocols[{i}].detector.model"
        path = need(loc, det.get("model"), is_dir=name == "mtcnn")
        if (path is not None and isinstance(name, str) and path.is_file()
                and (problem := detector_file_problem(name, path))):
            problems.append(f"{loc}: {problem}")
        if name == "mtcnn" and _as_path(det.get("model"), base_dir) is None:
            from facebench.faces.detect.mtcnn import INSTALL_HINT, default_weights_dir

            if default_weights_dir() is None:
                problems.append(f"{loc}: MTCNN weights not found; {INSTALL_HINT}")
    return problems
