"""Models with different native pipelines in one suite, through the real CLI on real LFW pairs:
MobileFaceNet on ArcFace-template crops (112) and FaceNet on its authors' box crop (detector box
+ 32 px, 160×160). Each image is detected once and aligned once per alignment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.faults.kit import (
    LFW,
    SHARED,
    facebench,
    lfw_rows,
    lines,
    model,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

FACENET = SHARED / "models" / "facenet_inception_resnet_v1_casia.onnx"


@pytest.fixture(scope="module")
def two_pipelines(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    if not FACENET.is_file():
        pytest.skip(f"{FACENET} not found")
    d = tmp_path_factory.mktemp("native")
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(per_fold=5, folds=4))
    facenet = {"id": "facenet", "source": "onnx", "path": str(FACENET), "embedding_size": 512,
               "align": {"method": "box_crop", "margin_px": 32, "size": [160, 160]},
               "normalize": {"color": "RGB", "mean": 127.5, "std": 128.0,
                             "input_size": [160, 160]}}
    s = write_suite(d / "suite.yaml", suite("native", [model("mfn"), facenet],
                                            [verification("lfw", pairs, LFW / "images",
                                                          bootstrap=0)]))
    env = {**os.environ, "FACEBENCH_SHARED": str(SHARED), "FACEBENCH_CACHE": str(d / "cache"),
           "FACEBENCH_HISTORY": f"sqlite:///{d}/history.db", "PYTHONWARNINGS": "ignore"}
    return s, env


def test_align_detects_once_and_aligns_once_per_alignment(
        two_pipelines: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    s, env = two_pipelines
    res = facebench(["align", str(s)], env, tmp_path)
    assert res.returncode == 0, res.stderr
    out = lines(res.stdout)
    assert len(out) == 2, out  # one line per alignment
    assert any("similarity 112×112" in ln for ln in out)
    assert any("box_crop 160×160" in ln for ln in out)
    cache = Path(env["FACEBENCH_CACHE"])
    rows = (s.parent / "pairs.csv").read_text(encoding="utf-8").splitlines()[1:]
    n_images = len({name for row in rows for name in row.split(",")[:2]})
    (detector,) = list((cache / "align").iterdir())  # one detector → one folder
    crops = sorted(p for p in detector.iterdir() if p.is_dir())
    assert len(crops) == 2 and all(len(list(c.rglob("*.npz"))) == n_images for c in crops)
    again = lines(facebench(["align", str(s)], env, tmp_path).stdout)
    assert all(f"{n_images} already cached" in ln for ln in again), again


def test_each_model_runs_through_its_own_pipeline(two_pipelines: tuple[Path, dict[str, str]],
                                                 tmp_path: Path) -> None:
    s, env = two_pipelines
    res = facebench(["run", str(s), "--out", str(tmp_path / "out"), "--no-progress"], env,
                    tmp_path, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    cells = {c["model"]: c for c in json.loads((tmp_path / "out" / "results.json").read_text(
        encoding="utf-8"))["cells"]}
    fn, mfn = cells["facenet"], cells["mfn"]
    assert fn["details"]["align"] == {"method": "box_crop", "size": [160, 160],
                                      "margin_px": 32.0, "margin_fraction": None}
    assert mfn["details"]["align"]["method"] == "similarity"
    assert mfn["details"]["align"]["size"] == [112, 112]
    assert fn["details"]["preprocess"]["input_size"] == [160, 160]
    for c in (fn, mfn):
        assert c["status"] == "ok", c.get("error")
        assert c["metrics"]["accuracy"] >= 0.95, c["metrics"]
        m = c["metrics"]
        assert m["images_per_s"] > 0 and m["time.embed_s"] > 0 and m["time.total_s"] > 0
        assert c["details"]["acquire"]["parallel"]["batch_size"] == 1  # the device's smallest
