"""Hostile suites (issue 16, items 6 and 9): numbers that passed validation and then hung or
failed a run, wrong model files, duplicate keys, and files that crashed ``validate`` (not UTF-8,
100,000 levels deep, 50 MB). Each is refused by ``facebench validate`` and ``facebench run``
with exit 2 and one located line per problem, every problem in one pass, and ``run`` writes
nothing.

Every case goes through the CLI app in this process (both commands); the YAML-level ones, the
seven-problem suite and a few others also through ``python -m facebench.cli`` in real processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .kit import ROOT, SHARED, facebench_many, lines

BASE = """\
name: hostile
models:
  - id: mfn
    source: onnx
    path: ${FACEBENCH_SHARED}/models/mobilefacenet_128d.onnx
    preprocess: {color: RGB, mean: 127.5, std: 128.0, input_size: [112, 112]}
devices:
  - id: cpu
    engine: onnxruntime
    threads: {intra_op: 1, inter_op: 1}
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
    bootstrap: 1000
  - id: eff
    kind: efficiency
    warmup: 10
    min_iters: 100
    min_seconds: 2
"""

YUNET = "${FACEBENCH_SHARED}/models/face_detection_yunet.onnx"
RETINA = "${FACEBENCH_SHARED}/models/retinaface_mobilenet0.25.pth"
ZOO = "  - id: zoo\n    source: zoo\n    arch: ARCH\n    embedding_size: 128\ndevices:\n"
FOLDS = ("k-fold cross-validation needs at least 2 folds: each fold's threshold is chosen on the "
         "other folds, so one fold has none; use 2 or more")
NOT_BOOL = "expected a number, not true/false"
KNOWN_ZOO = ("known: ir100, ir50, ir_se100, ir_se50, iresnet100, iresnet18, iresnet200, "
             "iresnet34, iresnet50, mbf, mobilefacenet (aliases: se_lresnet100e_ir); see "
             "`facebench models`")


def edit(*pairs: str) -> Callable[[str], str]:
    """Replace ``old`` by ``new`` for each (old, new) pair; each ``old`` occurs once."""
    def apply(text: str) -> str:
        for old, new in zip(pairs[::2], pairs[1::2], strict=True):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        return text

    return apply


@dataclass(frozen=True)
class Case:
    name: str
    text: str | bytes
    problems: list[str]  # ``{S}``: the shared folder; ``{F}``: this case's suite file
    env: tuple[tuple[str, str], ...] = ()


def case(name: str, change: Callable[[str], str] | str | bytes, *problems: str,
         env: dict[str, str] | None = None) -> Case:
    text = change(BASE) if callable(change) else change
    return Case(name, text, list(problems), tuple((env or {}).items()))


def seven_problems(text: str) -> str:
    """One suite, seven problems of every kind: schema errors in the same model as a missing
    file, an unknown zoo arch, an unknown id reference, a missing folder and a wrong detector
    file. The landed code reported only the schema and reference ones (4)."""
    return edit(
        "mobilefacenet_128d.onnx", "mobilefacenet_64d.onnx",
        "mean: 127.5, std: 128.0", "mean: 127.5, std: .nan",
        "devices:\n", ZOO.replace("ARCH", "mobilefacenett"),
        "batch_sizes: [1, 8]", "batch_sizes: []",
        "lfw/images", "lfw/imagez",
        "name: yunet", "name: retinaface",
        "    bootstrap: 1000\n", "    bootstrap: 1000\n    models: [mfn, mobilefacenet]\n",
    )(text)


MFN = "${FACEBENCH_SHARED}/models/mobilefacenet_128d.onnx"
SFACE = "${FACEBENCH_SHARED}/models/face_recognition_sface_2021dec_int8bq.onnx"
NOT_YUNET = ("is an ONNX model but not YuNet: 1 input(s), outputs {out} (YuNet: one NCHW image, "
             "outputs cls_8 … kps_32); YuNet needs its ONNX model (face_detection_yunet.onnx)")
MTCNN_HINT = ("install the weights with `pip install --no-deps facenet-pytorch==2.6.0` "
              "(facebench reads only its pnet.pt/rnet.pt/onet.pt) or set the detector's model "
              "to a folder holding them")
NEVER = "the gate could never pass"
UNKNOWN_METRIC = ("unknown metric 'accurcy'; did you mean 'accuracy', 'accuracy_std', "
                  "'accuracy_ci_low'? see docs/results.md for the metrics facebench reports")


def gates(*items: str) -> str:
    return BASE + "gates:\n" + "".join(f"  - {item}\n" for item in items)


def one_pass_27(text: str) -> str:
    """Issue 27 item 9: ten independent problems, of which the landed code reported three (a
    failing field hid the checks that relate two others, and references, gates and detector
    files went unchecked)."""
    return edit(
        "    batch_sizes: [1, 8]\n", "    batch_sizes: [1, 8]\n    label: [gpu]\n"
                                   "    fp16: true\n    precision: int8\n",
        "devices:\n", "  - id: bare\n    source: onnx\n    embedding_size: 0\ndevices:\n",
        YUNET, MFN,
        "    min_seconds: 2\n", "    min_seconds: 2\n    models: []\n",
    )(text) + ("  - id: mtcnn\n    kind: verification\n    dataset:\n"
               "      pairs: ${FACEBENCH_SHARED}/data/lfw/pairs.txt\n"
               "      images: ${FACEBENCH_SHARED}/data/lfw/images\n"
               "    detector:\n      name: mtcnn\n      model: ${FACEBENCH_SHARED}/models\n"
               "gates:\n  - nosuch.accuracy >= 0.9\n"
               "  - {metric: accurcy, op: '>=', value: 0.9}\n"
               "  - {metric: accuracy, op: '>=', value: 0.9, device: gpu}\n")


CASES = [
    # item 6: numbers
    case("bootstrap_1e30", edit("bootstrap: 1000", "bootstrap: " + "1" + "0" * 30),
         "protocols[0].bootstrap: Input should be less than or equal to 100000 "
         f"(got 1{'0' * 30})"),
    case("warmup_1e9", edit("warmup: 10", "warmup: 1000000000"),
         "protocols[1].warmup: Input should be less than or equal to 10000 (got 1000000000)"),
    case("min_iters_1e9", edit("min_iters: 100", "min_iters: 1000000000"),
         "protocols[1].min_iters: Input should be less than or equal to 100000 "
         "(got 1000000000)"),
    case("device_batch_sizes_empty", edit("batch_sizes: [1, 8]", "batch_sizes: []"),
         "devices[0].batch_sizes: is empty; list at least 1 entry"),
    case("efficiency_batch_sizes_empty",
         edit("min_seconds: 2\n", "min_seconds: 2\n    batch_sizes: []\n"),
         "protocols[1].batch_sizes: is empty; list at least 1 entry"),
    case("batch_sizes_true", edit("batch_sizes: [1, 8]", "batch_sizes: [true]"),
         f"devices[0].batch_sizes[0]: {NOT_BOOL} (got True)"),
    case("batch_size_huge", edit("batch_sizes: [1, 8]", "batch_sizes: [1, 10000000]"),
         "devices[0].batch_sizes[1]: Input should be less than or equal to 4096 (got 10000000)"),
    case("input_size_0_-5", edit("input_size: [112, 112]", "input_size: [0, -5]"),
         "models[0].preprocess.input_size[0]: Input should be greater than or equal to 16 "
         "(got 0)",
         "models[0].preprocess.input_size[1]: Input should be greater than or equal to 16 "
         "(got -5)"),
    case("std_nan", edit("std: 128.0", "std: .nan"),
         "models[0].preprocess.std: Input should be a finite number (got nan)"),
    case("mean_inf", edit("mean: 127.5", "mean: .inf"),
         "models[0].preprocess.mean: Input should be a finite number (got inf)"),
    case("min_seconds_inf", edit("min_seconds: 2", "min_seconds: .inf"),
         "protocols[1].min_seconds: Input should be a finite number (got inf)"),
    case("min_seconds_true", edit("min_seconds: 2", "min_seconds: true"),
         f"protocols[1].min_seconds: {NOT_BOOL} (got True)"),
    case("embedding_size_1e12",
         edit("    source: onnx\n", "    source: onnx\n    embedding_size: 1000000000000\n"),
         "models[0].embedding_size: Input should be less than or equal to 4096 "
         "(got 1000000000000)"),
    case("threads_huge", edit("intra_op: 1,", "intra_op: 100000,"),
         "devices[0].threads.intra_op: Input should be less than or equal to 1024 (got 100000)"),
    case("workers_zero_and_huge_far",
         edit("    bootstrap: 1000\n", "    bootstrap: 1000\n    workers: 0\n"
              "    far_targets: [.nan]\n"),
         "protocols[0].far_targets[0]: Input should be a finite number (got nan)",
         "protocols[0].workers: Input should be greater than or equal to 1 (got 0)"),
    case("detector_threshold_nan", edit("name: yunet", "name: yunet\n      score_threshold: .nan"),
         "protocols[0].detector.score_threshold: Input should be a finite number (got nan)"),
    case("gate_value_nan", BASE + "gates:\n  - {metric: accuracy, op: '>=', value: .nan}\n",
         "gates[0].value: Input should be a finite number (got nan)"),
    case("gate_bootstrap_1e30", BASE + "gates:\n  - {metric: latency.p50_ms, max_regression: "
         f"0.1, bootstrap: 1{'0' * 30}}}\n",
         f"gates[0].bootstrap: Input should be less than or equal to 100000 (got 1{'0' * 30})"),
    case("max_folds_1", edit("max_folds: 2", "max_folds: 1"),
         f"protocols[0].dataset.max_folds: {FOLDS} (got 1)"),
    case("insightface_bin_folds_1",
         edit("      kind: lfw_pairs\n      pairs: ${FACEBENCH_SHARED}/data/lfw/pairs.txt\n"
              "      images: ${FACEBENCH_SHARED}/data/lfw/images\n      max_folds: 2\n",
              "      kind: insightface_bin\n      path: ${FACEBENCH_SHARED}/data/lfw/pairs.txt\n"
              "      folds: 1\n"),
         f"protocols[0].dataset.folds: {FOLDS} (got 1)"),
    # item 6: models and detectors
    case("unknown_zoo_arch", edit("devices:\n", ZOO.replace("ARCH", "mobilefacenett")),
         f"models[1].arch: unknown zoo model 'mobilefacenett'; {KNOWN_ZOO}"),
    case("retinaface_given_yunet_weights", edit("name: yunet", "name: retinaface"),
         "protocols[0].detector.model: {S}/models/face_detection_yunet.onnx is an ONNX model, "
         "but RetinaFace needs its PyTorch weights (a torch.save file such as "
         "retinaface_mobilenet0.25.pth); for this file use name: yunet"),
    case("yunet_given_retinaface_weights", edit(YUNET, RETINA),
         "protocols[0].detector.model: {S}/models/retinaface_mobilenet0.25.pth is a PyTorch "
         "checkpoint (torch.save), but YuNet needs its ONNX model (face_detection_yunet.onnx); "
         "for this file use name: retinaface"),
    case("weights_on_onnx_model", edit("    source: onnx\n", f"    source: onnx\n    weights: "
                                                             f"{RETINA}\n"),
         "models[0].weights: weights apply to zoo models only; a 'onnx' model is its 'path' "
         "file (remove 'weights') (got '{S}/models/retinaface_mobilenet0.25.pth')"),
    case("duplicate_yaml_key", edit("    min_seconds: 2\n", "    min_seconds: 2\n"
                                                           "    warmup: 0\n"),
         "(yaml) line 29, column 5: duplicate key 'warmup' (first on line 26); a key may "
         "appear once in a mapping: keep one"),
    case("duplicate_top_level_key", BASE + "models: []\n",
         "(yaml) line 29, column 1: duplicate key 'models' (first on line 2); a key may appear "
         "once in a mapping: keep one"),
    # item 9: one pass, and files that crashed validate
    case("seven_problems_in_one_pass", seven_problems,
         "models[0].preprocess.std: Input should be a finite number (got nan)",
         "models[0].path: file not found: {S}/models/mobilefacenet_64d.onnx",
         f"models[1].arch: unknown zoo model 'mobilefacenett'; {KNOWN_ZOO}",
         "devices[0].batch_sizes: is empty; list at least 1 entry",
         "protocols[0].models[1]: unknown id 'mobilefacenet'; known: mfn, zoo",
         "protocols[0].dataset.images: directory not found: {S}/data/lfw/imagez",
         "protocols[0].detector.model: {S}/models/face_detection_yunet.onnx is an ONNX model, "
         "but RetinaFace needs its PyTorch weights (a torch.save file such as "
         "retinaface_mobilenet0.25.pth); for this file use name: yunet"),
    case("not_utf8", BASE.replace("name: hostile", "name: hostile  # café").encode("latin-1"),
         "{F}: not UTF-8 text (byte 0xe9 at offset 20); save the suite as UTF-8"),
    case("nested_100000_levels", BASE + "x: " + "[" * 100_000 + "]" * 100_000 + "\n",
         "(yaml) line 29, column 103: nested deeper than 100 levels (a suite needs fewer than "
         "10); flatten the file"),
    case("fifty_megabytes", BASE + ("# padding\n" * (5 << 20)),
         f"{{F}}: {len(BASE) + 10 * (5 << 20):,} bytes; a suite file may be at most 256 KiB "
         "(suites are a few KB: keep pair lists and data in their own files)"),
]
CASES += [
    # issue 27 item 9: one pass; references, gates and detector files checked at validation
    case("one_pass_ten_problems", one_pass_27,
         "models[1].embedding_size: Input should be greater than 0 (got 0)",
         "models[1]: source 'onnx' needs 'path' (the model file)",
         "devices[0].label: Input should be a valid string",
         "devices[0]: fp16: true contradicts precision: int8; keep precision only",
         f"protocols[0].detector.model: {{S}}/models/mobilefacenet_128d.onnx "
         f"{NOT_YUNET.format(out='embeddings')}",
         "protocols[1].models: is empty; list at least 1 entry (a protocol that lists no "
         "models selects no cell; leave 'models' out to run every one)",
         f"protocols[2].detector.model: {{S}}/models lacks pnet.pt, rnet.pt, onet.pt; "
         f"{MTCNN_HINT}",
         "gates[0]: protocol 'nosuch' matches no protocol of the suite; known: eff, lfw, mtcnn",
         f"gates[1].metric: {UNKNOWN_METRIC} (got 'accurcy')",
         "gates[2].device: device 'gpu' matches no device of the suite; known: cpu"),
    case("gate_unknown_protocol", gates("nosuch.accuracy >= 0.9"),
         "gates[0]: protocol 'nosuch' matches no protocol of the suite; known: eff, lfw"),
    case("gate_unknown_model", gates("'mfm@cpu:accuracy >= 0.9'"),
         "gates[0]: model 'mfm' matches no model of the suite; known: mfn"),
    case("gate_unknown_device_glob", gates("{metric: accuracy, op: '>=', value: 0.9, "
                                           "device: 'gpu*'}"),
         "gates[0].device: device 'gpu*' matches no device of the suite; known: cpu"),
    case("gate_unknown_metric", gates("{metric: accurcy, op: '>=', value: 0.9}"),
         f"gates[0].metric: {UNKNOWN_METRIC} (got 'accurcy')"),
    case("gate_metric_of_another_kind", gates("lfw.latency.p50_ms <= 10"),
         f"gates[0]: 'latency.p50_ms' is reported by efficiency cells, but the gate selects "
         f"only lfw (verification); {NEVER}"),
    case("gate_selects_no_cell",
         edit("    min_seconds: 2\n", "    min_seconds: 2\n    models: [mfn]\n")(BASE).replace(
             "devices:\n", ZOO.replace("ARCH", "mobilefacenet")) + "gates:\n"
         "  - 'zoo@cpu@eff:latency.p50_ms <= 10'\n",
         f"gates[0]: zoo@cpu@eff selects no cell (the protocols' models and devices lists "
         f"leave none); {NEVER}"),
    case("protocol_devices_empty", edit("    min_seconds: 2\n",
                                        "    min_seconds: 2\n    devices: []\n"),
         "protocols[1].devices: is empty; list at least 1 entry (a protocol that lists no "
         "devices selects no cell; leave 'devices' out to run every one)"),
    case("references_beside_a_list_id",
         edit("    batch_sizes: [1, 8]\n", "    batch_sizes: [1, 8]\n    quantization: "
              "{calibrate_on: eff}\n", "    min_seconds: 2\n",
              "    min_seconds: 2\n    models: [[mfn]]\n")(BASE)
         + "report:\n  paper_table:\n    protocols: [eff]\n",
         "devices[0].quantization.calibrate_on: 'eff' is not a verification or identification "
         "protocol; known: lfw",
         "protocols[1].models[0]: Input should be a valid string",
         "report.paper_table.protocols[0]: 'eff' is not a verification protocol; known: lfw"),
    # detector model files: the right kind of file for the detector named
    case("yunet_given_a_recognizer", edit(YUNET, MFN),
         f"protocols[0].detector.model: {{S}}/models/mobilefacenet_128d.onnx "
         f"{NOT_YUNET.format(out='embeddings')}"),
    case("yunet_given_sface", edit(YUNET, SFACE),
         f"protocols[0].detector.model: {{S}}/models/"
         f"face_recognition_sface_2021dec_int8bq.onnx {NOT_YUNET.format(out='fc1')}"),
    case("mtcnn_folder_without_weights",
         edit("name: yunet", "name: mtcnn", YUNET, "${FACEBENCH_SHARED}/models"),
         f"protocols[0].detector.model: {{S}}/models lacks pnet.pt, rnet.pt, onet.pt; "
         f"{MTCNN_HINT}"),
    case("dlib_folder_without_predictor",
         edit("name: yunet", "name: dlib", YUNET, "${FACEBENCH_SHARED}/models"),
         "protocols[0].detector.model: {S}/models lacks shape_predictor_5_face_landmarks.dat; "
         "point 'model' at a folder holding them (default: the face_recognition_models "
         "package's)"),
]
BY_NAME = {c.name: c for c in CASES}


def write_cases(d: Path) -> None:
    for c in CASES:
        data = c.text if isinstance(c.text, bytes) else c.text.encode("utf-8")
        (d / f"{c.name}.yaml").write_bytes(data)


def expected(c: Case, path: Path) -> list[str]:
    return [f"{path}: {len(c.problems)} problem(s)",
            *(p.replace("{S}", str(SHARED)).replace("{F}", str(path)) for p in c.problems)]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None


@pytest.fixture(scope="module")
def outcomes(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``validate`` and ``run --out`` of every case through the CLI app in this process.

    ``run`` gets ``--only`` matching no cell: a suite that wrongly passes validation then
    stops at once with another message (the case fails) instead of running LFW."""
    from typer.testing import CliRunner

    from facebench.cli import app

    d = tmp_path_factory.mktemp("hostile")
    write_cases(d)
    (d / "base.yaml").write_text(BASE, encoding="utf-8")
    runner = CliRunner()
    res: dict[str, Any] = {"dir": d}
    for name in ["base", *BY_NAME]:
        env = {"FACEBENCH_SHARED": str(shared), **dict(BY_NAME[name].env if name in BY_NAME
                                                        else ())}
        for command, args in (("validate", []),
                              ("run", ["--out", str(d / "out" / name), "--no-progress",
                                       "--only", "none@none@none"])):
            if name == "base" and command == "run":
                continue  # running the valid suite is other tests' job
            r = runner.invoke(app, [command, str(d / f"{name}.yaml"), *args], env=env)
            res[f"{command}:{name}"] = Outcome(r.exit_code, r.stdout, r.stderr,
                                               r.exception if r.exit_code != 2 else None)
    return res


def test_base_suite_is_valid(outcomes: dict) -> None:
    res = outcomes["validate:base"]
    assert res.exit_code == 0, res.stderr
    assert lines(res.stdout) == [f"{outcomes['dir'] / 'base.yaml'}: ok — 1 model(s) × 1 "
                                 "device(s) × 2 protocol(s) → 2 cell(s)"]


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_hostile_suite(c: Case, outcomes: dict) -> None:
    """Exit 2 from ``validate`` and ``run``, one located line per problem, nothing written."""
    d: Path = outcomes["dir"]
    for command in ("validate", "run"):
        res = outcomes[f"{command}:{c.name}"]
        assert res.exit_code == 2, (command, res.exception, res.stderr[-2000:])
        assert lines(res.stderr) == expected(c, d / f"{c.name}.yaml"), command
        assert res.stdout == ""
    assert not (d / "out" / c.name).exists(), "a bad suite wrote output"


def test_lfw_folds_1_is_refused_at_validation(fb_env: dict[str, str], tmp_path: Path) -> None:
    """``LFW_FOLDS=1`` on a shipped LFW suite (it always failed at run time: a one-fold
    k-fold has no other fold to pick its threshold on) is a located validation error."""
    suite = ROOT / "suites" / "lfw-mobilefacenet.yaml"
    got = facebench_many({"validate": ["validate", str(suite)],
                          "run": ["run", str(suite), "--out", str(tmp_path / "out"),
                                  "--only", "none@none@none"]},  # never an LFW run
                         {**fb_env, "LFW_FOLDS": "1"}, tmp_path)
    for key, res in got.items():
        assert res.returncode == 2, (key, res.stderr[-2000:])
        assert lines(res.stderr) == [f"{suite}: 1 problem(s)",
                                     f"protocols[0].dataset.max_folds: {FOLDS} (got '1')"], key
    assert not (tmp_path / "out").exists()


REAL_PROCESS = ["not_utf8", "nested_100000_levels", "fifty_megabytes", "duplicate_yaml_key",
                "seven_problems_in_one_pass", "std_nan", "batch_sizes_true",
                "one_pass_ten_problems"]


def test_real_processes(fb_env: dict[str, str], tmp_path: Path) -> None:
    """The same outcome from ``python -m facebench.cli`` in its own process: no traceback, exit
    2, the located lines; ``run`` creates no ``--out``."""
    write_cases(tmp_path)
    jobs = {f"validate:{name}": ["validate", str(tmp_path / f"{name}.yaml")]
            for name in REAL_PROCESS}
    jobs |= {f"run:{name}": ["run", str(tmp_path / f"{name}.yaml"), "--no-progress",
                             "--out", str(tmp_path / "out" / name)]
             for name in ("nested_100000_levels", "seven_problems_in_one_pass")}
    got = facebench_many(jobs, fb_env, tmp_path)
    for key, res in got.items():
        name = key.partition(":")[2]
        assert res.returncode == 2, (key, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
        assert lines(res.stderr) == expected(BY_NAME[name], tmp_path / f"{name}.yaml"), key
    assert not (tmp_path / "out").exists()


def test_detector_files_made_to_look_right(fb_env: dict[str, str], tmp_path: Path) -> None:
    """Files of the right format but the wrong content: a torch.save state dict that is not
    RetinaFace's, a YuNet ONNX cut short, MTCNN weights swapped (pnet.pt holding onet's). Each
    detector reads its file as it would load it (weights_only, keys and shapes; the ONNX
    graph) and validation names the file and what is wrong; ``run`` writes nothing."""
    import torch

    from facebench.faces.detect.mtcnn import default_weights_dir

    torch.save({"body.conv.weight": torch.zeros(2, 2)}, tmp_path / "retina.pth")
    (tmp_path / "cut.onnx").write_bytes((SHARED / "models" / "face_detection_yunet.onnx")
                                        .read_bytes()[:5000])
    installed = default_weights_dir()
    assert installed is not None, "facenet-pytorch's MTCNN weights are installed with [dev]"
    swapped = tmp_path / "mtcnn"
    swapped.mkdir()
    for name, source in (("pnet.pt", "onet.pt"), ("rnet.pt", "rnet.pt"), ("onet.pt", "onet.pt")):
        (swapped / name).symlink_to(installed / source)
    suite = tmp_path / "suite.yaml"
    suite.write_text(edit("    bootstrap: 1000\n", "    bootstrap: 1000\n" + "".join(
        f"  - id: {name}\n    kind: verification\n    dataset:\n"
        f"      pairs: ${{FACEBENCH_SHARED}}/data/lfw/pairs.txt\n"
        f"      images: ${{FACEBENCH_SHARED}}/data/lfw/images\n"
        f"    detector: {{name: {name}, model: {model}}}\n"
        for name, model in (("retinaface", tmp_path / "retina.pth"),
                            ("yunet", tmp_path / "cut.onnx"), ("mtcnn", swapped))))(BASE),
        encoding="utf-8")
    got = facebench_many({"validate": ["validate", str(suite)],
                          "run": ["run", str(suite), "--out", str(tmp_path / "out")]},
                         fb_env, tmp_path)
    for key, res in got.items():
        assert res.returncode == 2, (key, res.stderr[-2000:])
        header, retina, cut, mtcnn = lines(res.stderr)
        assert header == f"{suite}: 3 problem(s)"
        assert retina.startswith(f"protocols[1].detector.model: {tmp_path / 'retina.pth'}: "
                                 "does not match RetinaFace MobileNet-0.25 (missing keys: "), key
        assert "unexpected keys: body.conv.weight" in retina
        assert cut.startswith(f"protocols[2].detector.model: {tmp_path / 'cut.onnx'} is not a "
                              "readable ONNX model ("), key
        assert mtcnn.startswith(f"protocols[3].detector.model: {swapped / 'pnet.pt'}: does "
                                "not match MTCNN PNet ("), key
    assert not (tmp_path / "out").exists()
