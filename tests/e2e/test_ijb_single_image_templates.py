"""Cross-check: a template protocol whose templates are single images gives exactly the pair
protocol's scores and metrics on the same pairs.

100 real LFW View 2 pairs run twice through ``facebench run``: as a ``pair_csv`` protocol with
YuNet detecting the landmarks, and as an ``ijb`` dataset whose "loose crops" are the same LFW
files, one face per template and media, with the landmarks and scores YuNet found written to
the landmark file. Same landmarks → same crops → same embeddings → same pair scores; the ijb
cell chooses its threshold on all pairs, which the pair scores reproduce through
``compute_verification_metrics(folds=None)``.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from facebench.faces.acquire import AcquireConfig, acquire
from facebench.faces.align import SimilarityAlign
from facebench.metrics import compute_verification_metrics
from tests.e2e.conftest import facebench
from tests.faults.kit import lfw_rows

MACHINE = ("time.", "images_per_s")


def _scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([float(r["score"]) for r in rows]),
            np.array([int(r["label"]) for r in rows]))


@pytest.fixture(scope="module")
def two_runs(lfw_dir: Path, models_dir: Path, run_env: dict[str, str],
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    d = tmp_path_factory.mktemp("single-templates")
    rows = lfw_rows(25, 2)
    names = sorted({n for a, b, _, _ in rows for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    (d / "pairs.csv").write_text("path1,path2,label,fold\n" + "".join(
        f"{a},{b},{y},{f}\n" for a, b, y, f in rows))
    yunet = models_dir / "face_detection_yunet.onnx"
    cfg = AcquireConfig(detector="yunet", detector_options={"model": yunet},
                        select="closest_to_center", align=SimilarityAlign(size=(112, 112)),
                        cache_dir=None)
    faces, _ = acquire([lfw_dir / "images" / n for n in names], cfg, workers=1)
    root = d / "ijb"
    (root / "loose_crop").mkdir(parents=True)
    (root / "meta").mkdir()
    table, marks = [], []
    for face in faces:
        assert face.crop is not None, names[face.index]  # every image of these pairs has a face
        name = f"{face.index + 1}.jpg"
        shutil.copyfile(lfw_dir / "images" / names[face.index], root / "loose_crop" / name)
        table.append(f"{name} {face.index + 1} {face.index + 1}\n")
        pts = " ".join(f"{v:.9g}" for v in np.asarray(face.landmarks, np.float32).reshape(-1))
        marks.append(f"{name} {pts} {face.score:.9g}\n")
    (root / "meta" / "one_face_tid_mid.txt").write_text("".join(table))
    (root / "meta" / "one_name_5pts_score.txt").write_text("".join(marks))
    (root / "meta" / "one_template_pair_label.txt").write_text("".join(
        f"{index[a] + 1} {index[b] + 1} {y}\n" for a, b, y, _ in rows))
    model = {"id": "mfn", "source": "onnx", "path": str(models_dir / "mobilefacenet_128d.onnx"),
             "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0}}
    suite = {"name": "single", "models": [model],
             "devices": [{"id": "cpu", "engine": "onnxruntime", "threads": {"intra_op": 1}}],
             "protocols": [
                 {"id": "pairs", "kind": "verification",
                  "dataset": {"kind": "pair_csv", "pairs": str(d / "pairs.csv"),
                              "images": str(lfw_dir / "images")},
                  "detector": {"name": "yunet", "model": str(yunet)},
                  "far_targets": [0.1, 0.05]},
                 {"id": "templates", "kind": "verification",
                  "dataset": {"kind": "ijb", "root": str(root)},
                  "far_targets": [0.1, 0.05]}]}
    (d / "suite.yaml").write_text(yaml.safe_dump(suite))
    facebench("run", str(d / "suite.yaml"), "--out", str(d / "out"), "--no-progress",
              env=run_env)
    cells = json.loads((d / "out" / "results.json").read_text())["cells"]
    return {c["protocol"]: c | {"out": d / "out"} for c in cells}


def test_single_image_templates_score_exactly_like_pairs(two_runs: dict[str, dict]) -> None:
    pairs, tpl = two_runs["pairs"], two_runs["templates"]
    assert pairs["status"] == tpl["status"] == "ok", (pairs.get("error"), tpl.get("error"))
    s_pairs, y_pairs = _scores(pairs["out"] / pairs["artifacts"]["scores"])
    s_tpl, y_tpl = _scores(tpl["out"] / tpl["artifacts"]["scores"])
    np.testing.assert_array_equal(y_pairs, y_tpl)
    np.testing.assert_array_equal(s_pairs, s_tpl)  # bit-for-bit: same crops, same embeddings

    # the template cell's metrics are those of the pair scores with one threshold on all pairs
    expected = compute_verification_metrics(s_pairs, y_pairs, folds=None,
                                            far_targets=(0.1, 0.05)).metrics
    got = {k: v for k, v in tpl["metrics"].items() if k in expected}
    assert got == pytest.approx(expected, nan_ok=True)
    # and the fold-free metrics agree with the pair protocol's own cell
    for key in ("auc", "eer", "tar@far=1e-1", "far_achieved@far=1e-1", "tar@far=5e-2"):
        assert tpl["metrics"][key] == pytest.approx(pairs["metrics"][key]), key
    assert tpl["details"]["threshold_policy"] == "all_data"
    pooled = tpl["details"]["templates"]
    assert pooled["templates"] == pooled["faces_pooled"] == pooled["media_pooled"]
    assert tpl["details"]["acquire"]["detector"]["name"] == "given"
