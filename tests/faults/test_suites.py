"""Malformed suites: one located message per problem naming the field and the fix, exit 2 from
both ``facebench validate`` and ``facebench run``, and nothing written (``--out`` never made).

Every case is one edit of a valid suite over the real shared files; the expected stderr is
exact. Every case goes through the CLI app in-process (both commands); a few also through
``python -m facebench.cli`` in a real process.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .kit import SHARED, facebench, facebench_many, lines

BASE = """\
name: faults
description: the valid suite every case edits once
models:
  - id: mfn
    source: onnx
    path: ${FACEBENCH_SHARED}/models/mobilefacenet_128d.onnx
devices:
  - id: cpu
    engine: onnxruntime
    batch_sizes: [1, 8]
protocols:
  - id: lfw
    kind: verification
    dataset:
      kind: lfw_pairs
      pairs: ${FACEBENCH_SHARED}/data/lfw/pairs.txt
      images: ${FACEBENCH_SHARED}/data/lfw/images
      max_folds: 2
    detector:
      name: yunet
      model: ${FACEBENCH_SHARED}/models/face_detection_yunet.onnx
    batch_size: 32
gates:
  - lfw.accuracy >= 0.9
"""


def edit(old: str, new: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert text.count(old) == 1, old
        return text.replace(old, new)

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    text: str | None  # None: the suite file does not exist
    problems: list[str]  # ``{S}``: the shared folder; ``{F}``: this case's suite file


def case(name: str, change: Callable[[str], str] | str | None, *problems: str) -> Case:
    text = change(BASE) if callable(change) else change
    return Case(name, text, list(problems))


SCHEMA_HINT = "(check spelling; see `facebench schema`)"
FOLDS = ("protocols[0].dataset.max_folds: k-fold cross-validation needs at least 2 folds: each "
         "fold's threshold is chosen on the other folds, so one fold has none; use 2 or more")
MODEL = "${FACEBENCH_SHARED}/models/mobilefacenet_128d.onnx"

CASES = [
    case("yaml_syntax", edit("batch_sizes: [1, 8]", "batch_sizes: [1, 8"),
         "(yaml) line 11, column 10: expected ',' or ']', but got ':'; fix the YAML syntax"),
    case("yaml_tab_indent", edit("    engine: onnxruntime", "\tengine: onnxruntime"),
         "(yaml) line 9, column 1: found character '\\t' that cannot start any token; "
         "fix the YAML syntax"),
    case("top_level_list", "- mfn\n- cpu\n",
         "(suite): expected a mapping with models, devices, protocols"),
    case("empty_file", "",
         "(suite): expected a mapping with models, devices, protocols"),
    case("unknown_key", edit("    source: onnx\n", "    source: onnx\n    colour: RGB\n"),
         f"models[0].colour: unknown key 'colour' {SCHEMA_HINT}"),
    case("misspelt_required_key", edit("devices:\n", "devises:\n"),
         "devises: unknown key 'devises'; did you mean 'devices' (required, missing)?"),
    case("missing_required_field", edit("    source: onnx\n", ""),
         "models[0].source: required field is missing"),
    case("wrong_type_list", edit("batch_sizes: [1, 8]", "batch_sizes: eight"),
         "devices[0].batch_sizes: Input should be a valid list (got 'eight')"),
    case("wrong_type_bool", edit("    batch_size: 32\n", "    batch_size: 32\n    flip: maybe\n"),
         "protocols[0].flip: Input should be a valid boolean, unable to interpret input "
         "(got 'maybe')"),
    case("models_not_a_list", edit(f"models:\n  - id: mfn\n    source: onnx\n    path: {MODEL}",
                                   f"models:\n  id: mfn\n  source: onnx\n  path: {MODEL}"),
         "models: Input should be a valid list"),
    case("negative_batch_size", edit("batch_sizes: [1, 8]", "batch_sizes: [1, -8]"),
         "devices[0].batch_sizes[1]: Input should be greater than 0 (got -8)"),
    case("zero_protocol_batch_size", edit("batch_size: 32", "batch_size: 0"),
         "protocols[0].batch_size: Input should be greater than 0 (got 0)"),
    case("missing_model_file", edit("mobilefacenet_128d.onnx", "mobilefacenet_64d.onnx"),
         "models[0].path: file not found: {S}/models/mobilefacenet_64d.onnx"),
    case("missing_image_folder", edit("lfw/images", "lfw/imagez"),
         "protocols[0].dataset.images: directory not found: {S}/data/lfw/imagez"),
    case("duplicate_ids", edit("devices:\n", f"  - id: mfn\n    source: onnx\n    path: {MODEL}\n"
                                             "devices:\n"),
         "models[1].id: duplicate id 'mfn' (also models[0]); ids must be unique"),
    case("empty_matrix", edit(f"models:\n  - id: mfn\n    source: onnx\n    path: {MODEL}\n",
                              "models: []\n"),
         "models: is empty; list at least 1 entry (a suite runs every model × device × "
         "protocol, so an empty list leaves nothing to run)"),
    case("no_devices", edit("devices:\n  - id: cpu\n    engine: onnxruntime\n"
                            "    batch_sizes: [1, 8]\n", "devices: []\n"),
         "devices: is empty; list at least 1 entry (a suite runs every model × device × "
         "protocol, so an empty list leaves nothing to run)"),
    case("unset_environment_variable", edit(MODEL, "${FB_FAULTS_UNSET}/mobilefacenet_128d.onnx"),
         "models[0].path: environment variable FB_FAULTS_UNSET is not set (export it, or write "
         "${FB_FAULTS_UNSET:-default})"),
    case("bad_gate_expression", edit("lfw.accuracy >= 0.9", "lfw.accuracy >>= 0.9"),
         "gates[0]: cannot parse 'lfw.accuracy >>= 0.9': expected '[cells:]metric OP number[%]' "
         "or '[cells:]metric OP baseline ± number[%]' with OP one of >=, <=, >, <, == (e.g. "
         "'lfw.accuracy >= 0.985', 'latency.p90_ms <= baseline + 10%'); '>>=' is not an "
         "operator (got 'lfw.accuracy >>= 0.9')"),
    case("gate_without_bound", edit("  - lfw.accuracy >= 0.9", "  - {metric: accuracy}"),
         "gates[0]: gate on 'accuracy' needs exactly one of op+value, max_regression, max_drop "
         "(found: none)"),
    case("unknown_protocol_kind", edit("kind: verification", "kind: verifcation"),
         "protocols[0]: Input tag 'verifcation' found using 'kind' does not match any of the "
         "expected tags: 'verification', 'efficiency', 'identification' (use one of the "
         "documented kinds)"),
    case("unknown_engine", edit("engine: onnxruntime", "engine: tensorflow"),
         "devices[0].engine: Input should be 'torch', 'torch_compile', 'onnxruntime' or 'dlib' "
         "(got 'tensorflow')"),
    case("unknown_device", edit("    engine: onnxruntime\n",
                                "    engine: onnxruntime\n    device: tpu\n"),
         "devices[0].device: Input should be 'cpu' or 'cuda' (got 'tpu')"),
    case("bad_dataset_kind", edit("kind: lfw_pairs", "kind: lfw_pair"),
         "protocols[0].dataset: unknown dataset kind; use one of lfw_pairs, pair_csv, "
         "insightface_bin, identity_folder, identity_file, ijb"),
    case("unknown_id_reference", edit("    batch_size: 32\n",
                                      "    batch_size: 32\n    models: [mobilefacenet]\n"),
         "protocols[0].models[0]: unknown id 'mobilefacenet'; known: mfn"),
    case("id_with_html", edit("  - id: mfn", "  - id: <script>alert(1)</script>"),
         "models[0].id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._+-]*$' "
         "(got '<script>alert(1)</script>')"),
    case("suite_name_with_html", edit("name: faults", "name: <b>faults</b>"),
         "name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9._+-]*$' "
         "(got '<b>faults</b>')"),
    case("onnx_without_path", edit(f"    path: {MODEL}\n", ""),
         "models[0]: source 'onnx' needs 'path' (the model file)"),
    case("detector_without_model", edit(
        "      model: ${FACEBENCH_SHARED}/models/face_detection_yunet.onnx\n", ""),
         "protocols[0].detector: detector 'yunet' needs 'model' (its weights file)"),
    case("far_target_out_of_range", edit("    batch_size: 32\n",
                                         "    batch_size: 32\n    far_targets: [0.01, 1.5]\n"),
         "protocols[0].far_targets[1]: Input should be less than 1 (got 1.5)"),
    case("zero_std", edit("    source: onnx\n", "    source: onnx\n    preprocess: {std: 0}\n"),
         "models[0].preprocess.std: Input should be greater than 0 (got 0)"),
    case("zero_max_folds", edit("max_folds: 2", "max_folds: 0"), f"{FOLDS} (got 0)"),
    case("several_problems_at_once",  # schema errors do not hide the missing file
         lambda t: edit("engine: onnxruntime", "engine: tensorflow")(
             edit("max_folds: 2", "max_folds: -1")(edit("_128d.onnx", "_64d.onnx")(t))),
         "models[0].path: file not found: {S}/models/mobilefacenet_64d.onnx",
         "devices[0].engine: Input should be 'torch', 'torch_compile', 'onnxruntime' or 'dlib' "
         "(got 'tensorflow')",
         f"{FOLDS} (got -1)"),
    case("suite_file_missing", None, "suite file not found: {F}"),
]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def write_cases(d: Path) -> None:
    for c in [Case("base", BASE, []), *CASES]:
        if c.text is not None:
            (d / f"{c.name}.yaml").write_text(c.text, encoding="utf-8")


@pytest.fixture(scope="module")
def outcomes(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``validate`` and ``run --out`` of every case through the CLI app in this process (the
    next test checks the same in a real process), plus the valid base suite."""
    from typer.testing import CliRunner

    from facebench.cli import app

    d = tmp_path_factory.mktemp("suites")
    write_cases(d)
    runner = CliRunner()
    env = {"FACEBENCH_SHARED": str(shared), "FB_FAULTS_UNSET": None}
    res: dict[str, Any] = {"dir": d}
    for c in [Case("base", BASE, []), *CASES]:
        path = str(d / f"{c.name}.yaml")
        for command, args in (("validate", []),
                              ("run", ["--out", str(d / "out" / c.name), "--no-progress"])):
            if c.name == "base" and command == "run":
                continue  # running the valid suite is other tests' job
            r = runner.invoke(app, [command, path, *args], env=env)
            res[f"{command}:{c.name}"] = Outcome(r.exit_code, r.stdout, r.stderr)
    return res


def test_base_suite_is_valid(outcomes: dict) -> None:
    res = outcomes["validate:base"]
    assert res.exit_code == 0, res.stderr
    assert lines(res.stdout) == [f"{outcomes['dir'] / 'base.yaml'}: ok — 1 model(s) × 1 device(s) "
                                 "× 1 protocol(s) → 1 cell(s)"]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_malformed_suite(c: Case, outcomes: dict) -> None:
    d: Path = outcomes["dir"]
    path = d / f"{c.name}.yaml"
    expected = [f"{path}: {len(c.problems)} problem(s)",
                *(p.replace("{S}", str(SHARED)).replace("{F}", str(path)) for p in c.problems)]
    for command in ("validate", "run"):
        res = outcomes[f"{command}:{c.name}"]
        assert res.exit_code == 2, (command, res.stdout, res.stderr)
        assert lines(res.stderr) == expected, command
        assert res.stdout == ""
    assert not (d / "out" / c.name).exists(), "a bad suite wrote output"


REAL_PROCESS = ["yaml_syntax", "unset_environment_variable", "bad_gate_expression"]


def test_exit_code_2_from_a_real_process(fb_env: dict[str, str], tmp_path: Path) -> None:
    """The same outcome from ``python -m facebench.cli`` in its own process, for a few cases."""
    write_cases(tmp_path)
    env = {k: v for k, v in fb_env.items() if k != "FB_FAULTS_UNSET"}
    jobs = {f"{command}:{name}": [command, str(tmp_path / f"{name}.yaml"), *extra]
            for name in REAL_PROCESS
            for command, extra in (("validate", []),
                                   ("run", ["--out", str(tmp_path / name), "--no-progress"]))}
    got = facebench_many(jobs, env, tmp_path)
    by_name = {c.name: c for c in CASES}
    for key, res in got.items():
        name = key.partition(":")[2]
        problems = by_name[name].problems
        assert res.returncode == 2, (key, res.stderr)
        assert lines(res.stderr) == [f"{tmp_path / name}.yaml: {len(problems)} problem(s)",
                                     *problems], key
        assert not (tmp_path / name).exists()


def test_yaml_alias_bomb_is_refused_in_linear_time(fb_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    """Nested YAML aliases (12 levels × 9 = 2.8e11 leaves, from a 1 KB file) are not expanded:
    the unknown key is reported at once, within a bounded time and memory."""
    bomb = ["x-anchors:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", '
            '"lol"]']
    bomb += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12)]
    path = tmp_path / "bomb.yaml"
    path.write_text(BASE + "\n".join(bomb) + "\n", encoding="utf-8")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    res = facebench(["validate", str(path)], fb_env, tmp_path, timeout=120, preexec_fn=limit)
    assert res.returncode == 2, res.stderr[-2000:]
    assert lines(res.stderr) == [f"{path}: 1 problem(s)",
                                 f"x-anchors: unknown key 'x-anchors' {SCHEMA_HINT}"]


def test_only_matching_no_cell(fb_env: dict[str, str], tmp_path: Path) -> None:
    """A valid suite with ``--only`` that selects nothing is bad input too: exit 2, no output."""
    path = tmp_path / "base.yaml"
    path.write_text(BASE, encoding="utf-8")
    res = facebench(["run", str(path), "--only", "nope@*", "--out", str(tmp_path / "out")],
                    fb_env, tmp_path)
    assert res.returncode == 2, res.stderr
    assert lines(res.stderr) == ["error: --only ['nope@*'] matches no cell of suite 'faults'"]
    assert not (tmp_path / "out").exists()
