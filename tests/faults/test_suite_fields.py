"""Every value of a suite, replaced by a list or a mapping (issue 27, item 5).

``models: [[m]]``, ``id: [v]``, ``kind: [pair_csv]``, ``calibrate_on: [v]`` and
``paper_table.protocols: [[v]]`` ended ``facebench validate`` in ``unhashable type`` (exit 1),
and ``~nosuchuser/`` or a 300-character name in a path in ``RuntimeError`` / ``ENAMETOOLONG``.
Rather than those five spellings, this walks a valid suite that sets every string-valued field
of every object of the schema (checked below, so a new field or object must be added here) and
puts ``[value]`` and ``{value: value}`` at each scalar in turn, and an unknown ``~user`` and an
over-long name at each path: each is exactly one located problem, exit 2, no traceback.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel

from facebench.suite.load import parse_suite
from facebench.suite.schema import Suite

from .kit import facebench_many, lines

#: ``{S}``: the shared folder; ``{T}``: this test's folder (files made by :func:`_files`).
SUITE: dict[str, Any] = {
    "name": "fields",
    "description": "every field of the schema",
    "cache_dir": "{T}/cache",
    "cell_timeout_s": 600,
    "models": [
        {"id": "mfn", "source": "onnx", "path": "{S}/models/mobilefacenet_128d.onnx",
         "embedding_size": 128, "optional": False, "description": "MobileFaceNet",
         "align": {"method": "similarity", "size": [112, 112], "reference_size": [112, 112],
                   "template": [[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4],
                                [70.7, 92.2]]},
         "normalize": {"color": "RGB", "mean": [127.5, 127.5, 127.5], "std": 128.0,
                       "per_image": False, "layout": "NCHW", "input_size": [112, 112],
                       "flip": True},
         "reference": {"lfw_accuracy": 0.99, "source": "paper", "note": "MS1M"}},
        {"id": "box", "source": "onnx", "path": "{S}/models/mobilefacenet_128d.onnx",
         "align": {"method": "box_crop", "margin_px": 32}},
        {"id": "frac", "source": "onnx", "path": "{S}/models/mobilefacenet_128d.onnx",
         "align": {"method": "box_crop", "margin_fraction": 0.2}},
        {"id": "chip", "source": "onnx", "path": "{S}/models/mobilefacenet_128d.onnx",
         "align": {"method": "dlib_chip", "size": [150, 150], "padding": 0.25}},
        {"id": "flat", "source": "onnx", "path": "{S}/models/mobilefacenet_128d.onnx",
         "align": {"method": "none", "size": [112, 112]}},
        {"id": "zoo", "source": "zoo", "arch": "mobilefacenet", "weights": "{T}/zoo.pth"},
    ],
    "devices": [
        {"id": "cpu", "engine": "onnxruntime", "device": "cpu", "providers": ["cpu"],
         "threads": {"intra_op": 1, "inter_op": 1}, "precision": "int8", "fp16": False,
         "quantization": {"mode": "static", "per_channel": True, "calibration_images": 10,
                          "calibrate_on": "lfw", "seed": 1},
         "batch_sizes": [1, 8], "label": "cpu-node"},
    ],
    "protocols": [
        {"id": "lfw", "kind": "verification",
         "dataset": {"kind": "lfw_pairs", "pairs": "{S}/data/lfw/pairs.txt",
                     "images": "{S}/data/lfw/images", "ext": ".jpg", "max_folds": 2},
         "detector": {"name": "yunet", "model": "{S}/models/face_detection_yunet.onnx",
                      "score_threshold": 0.6, "select": "largest"},
         "align_size": 112, "flip": True, "fta_policy": "reject", "far_targets": [0.01],
         "bootstrap": 100, "bootstrap_method": "identity", "batch_size": 8,
         "cache_embeddings": True, "shard_size": 100,
         "workers": 1, "requires_weights": False, "optional": False, "cell_timeout_s": 60,
         "models": ["mfn"], "devices": ["cpu"]},
        {"id": "csv", "kind": "verification",
         "dataset": {"kind": "pair_csv", "pairs": "{T}/pairs.csv",
                     "images": "{S}/data/lfw/images"},
         "detector": {"name": "retinaface",
                      "model": "{S}/models/retinaface_mobilenet0.25.pth"},
         "degrade": {"stage": "source", "sides": "both", "seed": 3, "accuracy_floor": 0.9,
                     "corruptions": [
                         {"name": "resolution", "levels": [16]},
                         {"name": "blur", "levels": [1.5]},
                         {"name": "motion_blur", "levels": [9], "angle": 30},
                         {"name": "jpeg", "levels": [20]},
                         {"name": "noise", "levels": [8]},
                         {"name": "gamma", "levels": [2.2]},
                         {"name": "occlusion", "levels": ["mask", "sunglasses"]}]}},
        {"id": "bin", "kind": "verification",
         "dataset": {"kind": "insightface_bin", "path": "{T}/lfw.bin", "folds": 2,
                     "extract_dir": "{T}/bin"}},
        {"id": "folder", "kind": "verification",
         "dataset": {"kind": "identity_folder", "images": "{S}/data/lfw/images",
                     "extensions": [".jpg"], "pairs": "drawn", "n_genuine": 20,
                     "n_impostor": 20, "folds": 2,
                     "seed": 1, "pairs_out": "{T}/drawn.csv", "min_images": 2},
         "detector": {"name": "dlib"}},
        {"id": "file", "kind": "verification",
         "dataset": {"kind": "identity_file", "identities": "{T}/identities.txt",
                     "images": "{S}/data/lfw/images", "pairs_out": "{T}/drawn-file.csv",
                     "pairs": "all", "impostor_sample": 100}},
        {"id": "ijb", "kind": "verification",
         "dataset": {"kind": "ijb", "root": "{T}/ijb", "prefix": "ijbc",
                     "images": "loose_crop", "galleries": ["G1"], "probes": "mixed",
                     "templates": {"media": "mean", "detector_score": False, "norm": False}}},
        {"id": "search", "kind": "identification",
         "dataset": {"kind": "identity_folder", "images": "{S}/data/lfw/images"},
         "detector": {"name": "mtcnn"},
         "align_size": 112, "flip": False, "ranks": [1, 5], "max_rank": 5,
         "fpir_targets": [0.1], "open_set_rank": 1, "gallery_images": 1, "unenrolled": 0.1,
         "distractors": ["{T}/distractors"], "seed": 2,
         "search": {"backend": "numpy", "chunk_rows": 4096},
         "batch_size": 8, "cache_embeddings": False, "workers": 1,
         "requires_weights": False, "optional": False, "cell_timeout_s": 60,
         "models": ["mfn"], "devices": ["cpu"]},
        {"id": "eff", "kind": "efficiency", "warmup": 1, "min_iters": 2, "min_seconds": 0.1,
         "batch_sizes": [1], "cell_timeout_s": 60, "models": ["mfn", "zoo"],
         "devices": ["cpu"]},
    ],
    "gates": [
        "lfw.accuracy >= 0.9",
        {"metric": "accuracy", "op": ">=", "value": 0.9, "direction": "higher",
         "model": "mfn", "device": "cpu", "protocol": "lfw", "name": "lfw accuracy"},
        {"metric": "latency.p50_ms", "max_regression": 0.1, "protocol": "eff", "alpha": 0.05,
         "bootstrap": 200, "seed": 1, "overload_threshold": 0.3, "contention_guard": True,
         "on_fingerprint_mismatch": "warn"},
        {"metric": "eer", "max_drop": 0.01, "protocol": "lfw"},
        {"metric": "accuracy", "model": "mfn", "protocol": "lfw", "better_than": "box"},
        {"metric": "accuracy", "model": "mfn", "protocol": "lfw", "vs": "box", "op": ">=",
         "value": -0.01},
    ],
    "report": {
        "title": "Fields", "formats": ["html", "md"],
        "paper_table": {"protocols": ["lfw"], "published": [
            {"label": "MobileFaceNet (paper)", "model": "mfn", "test_set": "LFW",
             "training": "MS1M", "source": "paper", "accuracy": 0.99, "precision": 0.99,
             "recall": 0.99, "specificity": 0.99, "f1": 0.99}]},
    },
}


def _leaves(node: Any, where: str = "") -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    """``(location, key path, value)`` of every scalar of ``node``."""
    items = (node.items() if isinstance(node, dict) else enumerate(node)
             if isinstance(node, list) else None)
    if items is None:
        yield where, (), node
        return
    for key, value in items:
        loc = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else key
        for sub, keys, leaf in _leaves(value, loc):
            yield sub, (key, *keys), leaf


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("{S}", "{T}"))


LONG = "/tmp/" + "n" * 300 + "/x"
VARIANTS = {"list": lambda v: [v], "mapping": lambda v: {str(v): v},
            "unknown_user": lambda v: "~nosuchuser27/x", "long_name": lambda v: LONG}
CASES = [(loc, keys, variant) for loc, keys, value in _leaves(SUITE) for variant in VARIANTS
         if variant in ("list", "mapping") or _is_path(value)]


def _files(d: Path) -> None:
    """The inputs ``{T}`` names: only their existence is checked at validation."""
    (d / "zoo.pth").write_bytes(b"PK\x03\x04")
    (d / "pairs.csv").write_text("left,right,label\n", encoding="utf-8")
    (d / "lfw.bin").write_bytes(b"\x80\x04")
    (d / "identities.txt").write_text("a.jpg 1\n", encoding="utf-8")
    for folder in ("ijb", "distractors"):
        (d / folder).mkdir()


def _render(node: Any, shared: Path, d: Path) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, shared, d) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, shared, d) for v in node]
    if isinstance(node, str):
        return node.replace("{S}", str(shared)).replace("{T}", str(d))
    return node


def _replaced(node: Any, keys: tuple[Any, ...], make: Any) -> Any:
    if not keys:
        return make(node)
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[keys[0]] = _replaced(node[keys[0]], keys[1:], make)
    return copy


@pytest.fixture(scope="module")
def suite_dir(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fields")
    _files(d)
    (d / "base.yaml").write_text(yaml.safe_dump(_render(SUITE, shared, d), sort_keys=False),
                                 encoding="utf-8")
    return d


def _validate(path: Path) -> Any:
    from typer.testing import CliRunner

    from facebench.cli import app

    return CliRunner().invoke(app, ["validate", str(path)])


def _str_fields(model: type[BaseModel]) -> set[str]:
    """Fields of ``model`` whose value is (or holds) a string: str, Literal, Path."""
    def holds_str(tp: Any) -> bool:
        if tp in (str, Path) or (typing.get_origin(tp) is Literal
                                 and any(isinstance(a, str) for a in typing.get_args(tp))):
            return True
        return any(holds_str(a) for a in typing.get_args(tp))

    return {name for name, f in model.model_fields.items() if holds_str(f.annotation)}


def _objects(node: Any) -> Iterator[BaseModel]:
    """Every pydantic object inside a validated suite."""
    if isinstance(node, BaseModel):
        yield node
        for name in type(node).model_fields:
            yield from _objects(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _objects(item)


def _models(tp: Any, seen: set[type]) -> set[type]:
    """Every pydantic model class the annotation ``tp`` can hold, recursively."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen.add(tp)
            for f in tp.model_fields.values():
                _models(f.annotation, seen)
        return seen
    for arg in typing.get_args(tp):
        if not isinstance(arg, str | int | float | types.NoneType):
            _models(arg, seen)
    return seen


def test_the_suite_is_valid_and_sets_every_string_field(suite_dir: Path) -> None:
    """The base suite validates, holds every object of the schema, and gives every
    string-valued field of each (so the cases below reach all of them)."""
    res = _validate(suite_dir / "base.yaml")
    assert res.exit_code == 0, res.stderr
    suite = parse_suite((suite_dir / "base.yaml").read_text(), suite_dir / "base.yaml", {})
    given: dict[type, set[str]] = {}
    for obj in _objects(suite):
        given.setdefault(type(obj), set()).update(obj.model_fields_set)
    classes = _models(Suite, set())
    assert classes - set(given) == set(), "objects of the schema this suite never holds"
    unset = {cls.__name__: sorted(_str_fields(cls) - given[cls]) for cls in classes}
    assert {k: v for k, v in unset.items() if v} == {}, "string fields this suite never sets"
    assert len(CASES) > 300


@pytest.mark.parametrize(("loc", "keys", "variant"), CASES,
                         ids=[f"{loc}={variant}" for loc, _, variant in CASES])
def test_a_value_of_the_wrong_shape_is_one_located_problem(
        loc: str, keys: tuple[Any, ...], variant: str, suite_dir: Path, shared: Path) -> None:
    path = suite_dir / f"{loc}={variant}.yaml"
    suite = _replaced(_render(SUITE, shared, suite_dir), keys, VARIANTS[variant])
    path.write_text(yaml.safe_dump(suite, sort_keys=False), encoding="utf-8")
    res = _validate(path)
    assert res.exit_code == 2, (res.exception, res.stdout, res.stderr[-3000:])
    header, *problems = lines(res.stderr)
    assert header == f"{path}: {len(problems)} problem(s)"
    # one problem, at the value (or the object a kind/method tag could not pick); a mapping
    # is a gate's other form, so there the problems are the mapping's keys, inside it
    gate_mapping = keys[0] == "gates" and len(keys) == 2 and variant == "mapping"
    assert len(problems) == 1 or gate_mapping, problems
    for problem in problems:
        where = problem.partition(": ")[0]
        assert (loc == where or loc.startswith((f"{where}.", f"{where}["))
                or gate_mapping and where.startswith(f"{loc}.")), problems
    if variant in ("unknown_user", "long_name"):
        assert problems[0].startswith(f"{loc}: cannot "), problems
        assert ("~nosuchuser27" in problems[0] or "File name too long" in problems[0]), problems


def test_the_issue_spellings_in_real_processes(suite_dir: Path, shared: Path,
                                               fb_env: dict[str, str]) -> None:
    """The five spellings of the issue through ``python -m facebench.cli``: exit 2, one
    located line each, no traceback."""
    base = _render(SUITE, shared, suite_dir)
    spellings = {
        "models": (("protocols", 0, "models", 0), lambda v: [v]),
        "id": (("protocols", 0, "id"), lambda v: [v]),
        "kind": (("protocols", 1, "dataset", "kind"), lambda v: [v]),
        "calibrate_on": (("devices", 0, "quantization", "calibrate_on"), lambda v: [v]),
        "paper_table": (("report", "paper_table", "protocols", 0), lambda v: [v]),
        "tilde": (("models", 0, "path"), lambda v: "~nosuchuser27/m.onnx"),
        "long": (("models", 0, "path"), lambda v: LONG),
    }
    jobs = {}
    for name, (keys, make) in spellings.items():
        path = suite_dir / f"issue-{name}.yaml"
        path.write_text(yaml.safe_dump(_replaced(base, keys, make), sort_keys=False),
                        encoding="utf-8")
        jobs[name] = ["validate", str(path)]
    for name, res in facebench_many(jobs, fb_env, suite_dir, parallel=2).items():
        assert res.returncode == 2, (name, res.stderr[-3000:])
        assert "Traceback" not in res.stderr, name
        assert len(lines(res.stderr)) == 2, (name, res.stderr)
