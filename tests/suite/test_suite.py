"""Suite files: schema, interpolation, path resolution, located errors, exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from facebench.plan import plan
from facebench.suite import SuiteError, load_suite
from facebench.suite.load import parse_suite
from facebench.suite.schema import json_schema

ROOT = Path(__file__).resolve().parents[2]

BASE = """
name: t
models:
  - id: m
    source: onnx
    path: model.onnx
devices:
  - id: cpu-ort
    engine: onnxruntime
protocols:
  - id: eff
    kind: efficiency
"""


@pytest.fixture()
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "model.onnx").write_bytes(b"x")
    return tmp_path


def problems(text: str, where: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SuiteError) as exc:
        parse_suite(text, where / "suite.yaml", env or {})
    return exc.value.problems


def test_relative_paths_resolve_against_suite_file(suite_dir: Path) -> None:
    suite = parse_suite(BASE, suite_dir / "suite.yaml", {})
    assert suite.models[0].path == (suite_dir / "model.onnx").resolve()


def test_interpolation_with_defaults(suite_dir: Path) -> None:
    text = BASE.replace("path: model.onnx", "path: ${MODEL_DIR:-.}/${MODEL_NAME}")
    suite = parse_suite(text, suite_dir / "suite.yaml", {"MODEL_NAME": "model.onnx"})
    assert suite.models[0].path == (suite_dir / "model.onnx").resolve()
    other = suite_dir / "elsewhere"
    other.mkdir()
    (other / "model.onnx").write_bytes(b"x")
    suite = parse_suite(text, suite_dir / "suite.yaml",
                        {"MODEL_NAME": "model.onnx", "MODEL_DIR": str(other)})
    assert suite.models[0].path == (other / "model.onnx").resolve()


def test_unset_variable_is_located(suite_dir: Path) -> None:
    text = BASE.replace("path: model.onnx", "path: ${NOT_SET_ANYWHERE}")
    (msg,) = [p for p in problems(text, suite_dir) if "NOT_SET_ANYWHERE" in p]
    assert msg.startswith("models[0].path: environment variable NOT_SET_ANYWHERE is not set")


def test_every_problem_reported_with_location(suite_dir: Path) -> None:
    text = """
name: t
models:
  - id: m
    source: onnx
    path: model.onnx
  - id: m2
    source: onnx
    path: missing.onnx
    colour: RGB
devices:
  - id: d
    engine: onnxruntime
    batch_sizes: [one]
protocols:
  - id: eff
    kind: efficiency
    models: [nope]
"""
    got = problems(text, suite_dir)
    assert any(p.startswith("models[1].colour: unknown key 'colour'") for p in got), got
    assert any(p.startswith("devices[0].batch_sizes[0]:") for p in got), got
    assert any(p.startswith("protocols[0].models[0]: unknown id 'nope'") for p in got), got
    # schema errors (even in the same model) do not hide the missing file
    missing = f"models[1].path: file not found: {(suite_dir / 'missing.onnx').resolve()}"
    assert missing in got and len(got) == 4, got
    fixed = text.replace("    colour: RGB\n", "").replace("[one]", "[1]").replace(
        "models: [nope]", "models: [m2]")
    (msg,) = problems(fixed, suite_dir)
    assert msg == f"models[1].path: file not found: {(suite_dir / 'missing.onnx').resolve()}"


def test_duplicate_ids_and_yaml_syntax(suite_dir: Path) -> None:
    dup = BASE.replace("protocols:", "  - id: cpu-ort\n    engine: torch\nprotocols:")
    assert any("devices[1].id: duplicate id 'cpu-ort'" in p for p in problems(dup, suite_dir))
    (msg,) = problems("name: [unclosed\n", suite_dir)
    assert msg.startswith("(yaml) line ")


def test_cli_validate_exit_codes(suite_dir: Path) -> None:
    good = suite_dir / "good.yaml"
    good.write_text(BASE)
    bad = suite_dir / "bad.yaml"
    bad.write_text(BASE.replace("engine: onnxruntime", "engine: tensorflow\n    wat: 1"))
    cmd = [sys.executable, "-m", "facebench.cli", "validate"]
    ok = subprocess.run([*cmd, str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "1 cell(s)" in ok.stdout
    res = subprocess.run([*cmd, str(bad)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "devices[0].engine:" in res.stderr and "devices[0].wat: unknown key" in res.stderr


def test_repository_suites_validate() -> None:
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        suite = load_suite(path)
        assert plan(suite), path


def test_json_schema_export(tmp_path: Path) -> None:
    schema = json_schema()
    assert {"models", "devices", "protocols"} <= set(schema["properties"])
    out = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-m", "facebench.cli", "schema", "--out", str(out)],
                   check=True)
    assert json.loads(out.read_text()) == schema


def test_plan_expands_and_filters(suite_dir: Path) -> None:
    text = BASE.replace("protocols:", "  - id: cpu-torch\n    engine: torch\nprotocols:") + """
  - id: eff2
    kind: efficiency
    devices: [cpu-torch]
"""
    suite = parse_suite(text, suite_dir / "suite.yaml", {})
    ids = [c.id for c in plan(suite)]
    assert ids == ["m@cpu-ort@eff", "m@cpu-torch@eff", "m@cpu-torch@eff2"]
    assert [c.id for c in plan(suite, ["cpu-torch"])] == ids[1:]
    assert [c.id for c in plan(suite, ["*@eff2"])] == ids[2:]


def test_cell_spec_hash_tracks_edits(suite_dir: Path) -> None:
    """--resume keys finished cells on this hash: any edit to a cell's specs changes it."""
    a = plan(parse_suite(BASE, suite_dir / "suite.yaml", {}))[0]
    b = plan(parse_suite(BASE, suite_dir / "suite.yaml", {}))[0]
    edited = BASE.replace("kind: efficiency", "kind: efficiency\n    min_iters: 7")
    c = plan(parse_suite(edited, suite_dir / "suite.yaml", {}))[0]
    assert a.spec_sha256 == b.spec_sha256 != c.spec_sha256


def test_committed_json_schema_is_current() -> None:
    """docs/suite.schema.json (for editors: `# yaml-language-server: $schema=…`) is what the
    code exports; regenerate with `facebench schema --out docs/suite.schema.json`."""
    committed = json.loads((ROOT / "docs" / "suite.schema.json").read_text())
    assert committed == json_schema()


MTCNN_PROTOCOL = """
  - id: v
    kind: verification
    dataset: {kind: pair_csv, pairs: pairs.csv, images: .}
    detector: DETECTOR
"""


def test_mtcnn_detector_model_is_a_folder(suite_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``mtcnn`` takes a weights folder, or none (the installed facenet-pytorch's); without
    either, validation says how to install them."""
    import facebench.faces.detect.mtcnn as mtcnn

    (suite_dir / "pairs.csv").write_text("left,right,label\n")

    def suite(detector: str) -> str:
        return BASE + MTCNN_PROTOCOL.replace("DETECTOR", detector)

    assert problems(suite("{name: mtcnn, model: weights}"), suite_dir) == [
        f"protocols[1].detector.model: directory not found: {(suite_dir / 'weights').resolve()}"]
    (suite_dir / "weights").mkdir()
    weights = (suite_dir / "weights").resolve()
    [problem] = problems(suite("{name: mtcnn, model: weights}"), suite_dir)
    assert problem.startswith(f"protocols[1].detector.model: {weights} lacks pnet.pt, rnet.pt, "
                              "onet.pt; install the weights")
    installed = mtcnn.default_weights_dir()
    monkeypatch.setattr(mtcnn, "default_weights_dir", lambda: None)
    [problem] = problems(suite("{name: mtcnn}"), suite_dir)
    assert problem.startswith("protocols[1].detector.model: MTCNN weights not found")
    assert "pip install --no-deps facenet-pytorch==2.6.0" in problem
    [problem] = problems(suite("{name: retinaface}"), suite_dir)
    assert "needs 'model'" in problem
    if installed is None:
        pytest.skip("facenet-pytorch's MTCNN weights are not installed")
    for name in mtcnn.WEIGHT_FILES:
        (weights / name).symlink_to(installed / name)
    parsed = parse_suite(suite("{name: mtcnn, model: weights}"), suite_dir / "suite.yaml", {})
    assert parsed.protocols[1].detector.model == weights
