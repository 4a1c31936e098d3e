"""dlib behind the common interfaces, on real LFW images and dlib's real model files: the
``dlib`` detector, the ``dlib`` engine, its compute counts and the shared efficiency probe.

Every expected value is computed with dlib directly in the test, as ``models_dlib`` did it."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from facebench.engines import (
    EngineConfig,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
)
from facebench.engines.dlib_engine import (
    CNN_FILE,
    LANDMARKS_FILE,
    RESNET_FILE,
    count_macs,
    count_params,
    default_model_dir,
    dlib_unavailable,
)
from facebench.faces.detect import create_detector
from facebench.probes.efficiency import metric_names, run_efficiency_isolated

MODELS = default_model_dir()
#: Real LFW images: one HOG finds only at upsample 1, four with two faces, three plain ones.
IMAGES = ["Susan_Collins/Susan_Collins_0001.jpg", "Anton_Balasingham/Anton_Balasingham_0001.jpg",
          "Charlotte_Rampling/Charlotte_Rampling_0002.jpg", "Uma_Thurman/Uma_Thurman_0002.jpg",
          "John_Ashcroft/John_Ashcroft_0003.jpg", "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
          "Laura_Morante/Laura_Morante_0001.jpg", "Paul_Shanley/Paul_Shanley_0001.jpg"]
DLIB_SOURCE = ModelSource(kind="dlib", input_size=(150, 150), layout="NHWC")
CPU = EngineConfig(engine="dlib")


@pytest.fixture(scope="module")
def bgr_images(lfw_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(lfw_dir / "images" / name)) for name in IMAGES]


@pytest.fixture(scope="module")
def reference() -> tuple[object, object, object]:
    """dlib's HOG detector, 5-point predictor and ResNet, loaded directly."""
    return (dlib.get_frontal_face_detector(),
            dlib.shape_predictor(str(MODELS / LANDMARKS_FILE)),
            dlib.face_recognition_model_v1(str(MODELS / RESNET_FILE)))


def expected_faces(bgr: np.ndarray, hog: object, predictor: object) -> list[tuple]:
    """models_dlib's path: RGB, HOG at upsample 0 then 1, landmarks of every rectangle."""
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    for up in (0, 1):
        rects, scores, _ = hog.run(rgb, up, 0.0)
        if len(rects):
            break
    return [((r.left(), r.top(), r.right(), r.bottom()), s,
             [(p.x, p.y) for p in predictor(rgb, r).parts()])
            for r, s in zip(rects, scores, strict=True)]


def test_detector_gives_dlib_boxes_scores_and_landmarks(bgr_images: list[np.ndarray],
                                                       reference: tuple) -> None:
    hog, predictor, _ = reference
    det = create_detector("dlib", threads=1)
    assert det.name == "dlib" and det.landmarks_scheme == "dlib5"
    counts = []
    for name, bgr in zip(IMAGES, bgr_images, strict=True):
        want = expected_faces(bgr, hog, predictor)
        got = det.detect(bgr)
        counts.append(len(got))
        assert len(got) == len(want) > 0, name
        for d, (box, score, points) in zip(got, want, strict=True):
            assert d.box.dtype == np.float32 and d.landmarks.dtype == np.float32
            assert d.landmarks.shape == (5, 2)
            assert d.box.tolist() == list(box) and d.score == score, name
            assert d.landmarks.tolist() == [list(p) for p in points], name
    assert counts[0] == 1 and counts[1:5] == [2, 2, 2, 2]
    # no face: an empty list (the acquisition step records the failure to acquire)
    assert det.detect(np.full((250, 250, 3), 128, np.uint8)) == []
    s = det.settings()
    assert s["dlib_version"] == dlib.__version__ and s["hog"]["upsample"] == [0, 1]
    assert len(s["landmarks"]["sha256"]) == 64 and s["fallback"] is None


def test_detector_upsample_and_cnn_fallback(bgr_images: list[np.ndarray],
                                            reference: tuple) -> None:
    _, predictor, _ = reference
    bgr = bgr_images[0]  # HOG finds this face only at upsample 1
    assert create_detector("dlib", upsample=[0]).detect(bgr) == []
    det = create_detector("dlib", upsample=[0], cnn_fallback=True)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    cnn = dlib.cnn_face_detection_model_v1(str(MODELS / CNN_FILE))
    (want,) = cnn(rgb, 0)
    (got,) = det.detect(bgr)
    r = want.rect
    assert got.box.tolist() == [r.left(), r.top(), r.right(), r.bottom()]
    assert got.score == pytest.approx(want.confidence)
    assert got.landmarks.tolist() == [[p.x, p.y] for p in predictor(rgb, r).parts()]
    assert det.settings()["fallback"]["file"] == CNN_FILE
    assert det.settings() != create_detector("dlib", upsample=[0]).settings()


def test_detector_model_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=LANDMARKS_FILE):
        create_detector("dlib", model=tmp_path)
    with pytest.raises(ValueError, match="upsample"):
        create_detector("dlib", upsample=[])


def test_missing_dlib_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # import fails
    reason = dlib_unavailable()
    assert reason is not None and "pip install 'facebench[dlib]'" in reason
    assert "face_recognition_models" in reason
    assert check_available(CPU) == reason
    with pytest.raises(ImportError, match=r"facebench\[dlib\]"):
        create_detector("dlib")


def test_engine_descriptors_equal_dlib_per_chip(bgr_images: list[np.ndarray],
                                                reference: tuple) -> None:
    hog, predictor, net = reference
    chips = []
    for bgr in bgr_images[:3]:
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        rect = hog.run(rgb, 1, 0.0)[0][0]
        chips.append(dlib.get_face_chip(rgb, predictor(rgb, rect), size=150, padding=0.25))
    want = np.stack([np.asarray(net.compute_face_descriptor(c)) for c in chips])
    engine = create_engine(DLIB_SOURCE, CPU)
    got = engine.infer(np.stack(chips).astype(np.float32))  # NHWC RGB 0..255
    assert got.dtype == np.float32 and got.shape == (3, 128)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # an NCHW source gets the same descriptors from NCHW batches
    nchw = create_engine(ModelSource(kind="dlib", input_size=(150, 150)), CPU)
    np.testing.assert_allclose(nchw.infer(np.stack(chips).transpose(0, 3, 1, 2)), got, atol=0)
    info = engine.info()
    assert info["engine"] == "dlib" and info["threads"] == {"intra_op": 1, "inter_op": 1}
    assert info["file"].endswith(RESNET_FILE) and len(info["sha256"]) == 64
    with pytest.raises(ValueError, match="NHWC"):
        engine.infer(np.zeros((1, 3, 150, 150), np.float32))


def test_params_are_read_from_the_file_and_match_the_published_architecture() -> None:
    counts = create_engine(DLIB_SOURCE, CPU).compute_counts()
    from_file = count_params(MODELS / RESNET_FILE)
    assert counts["params"] == from_file["total"] == count_macs()["params"] == 5_614_592
    assert from_file["fc_"] == 256 * 128 and round(counts["params"] / 1e6, 1) == 5.6
    assert counts["gmac"] == pytest.approx(0.2709, abs=1e-4)
    assert counts["gflops"] == pytest.approx(2 * counts["gmac"])


def test_engine_availability_reasons() -> None:
    assert check_available(CPU, DLIB_SOURCE) is None
    if not dlib.DLIB_USE_CUDA:
        reason = check_available(EngineConfig(engine="dlib", device="cuda"))
        assert reason is not None and "CUDA" in reason
    ort = EngineConfig(engine="onnxruntime")
    assert "only on engine 'dlib'" in (check_available(ort, DLIB_SOURCE) or "")
    onnx = ModelSource(kind="onnx", path=Path("m.onnx"))
    assert "runs only dlib models" in (check_available(CPU, onnx) or "")
    with pytest.raises(EngineUnavailable, match="only on engine 'dlib'"):
        create_engine(DLIB_SOURCE, ort)
    assert "float32" in (check_available(EngineConfig(engine="dlib", fp16=True)) or "")
    with pytest.raises(ValueError, match=r"150×150.*input_size \[112, 112\]"):
        check_available(CPU, ModelSource(kind="dlib"))
    missing = ModelSource(kind="dlib", path=Path("/nonexistent/net.dat"), input_size=(150, 150))
    with pytest.raises(FileNotFoundError, match="net.dat"):
        create_engine(missing, CPU)


def test_efficiency_probe_runs_engine_dlib() -> None:
    out = run_efficiency_isolated(DLIB_SOURCE, CPU, batch_sizes=(1, 2), warmup=0, min_iters=2,
                                  min_seconds=0)
    m, d = out["metrics"], out["details"]
    assert set(m) == set(metric_names((1, 2)))
    assert m["params"] == 5_614_592 and m["gflops"] == pytest.approx(2 * m["gmac"])
    assert m["model_size_bytes"] == (MODELS / RESNET_FILE).stat().st_size
    assert m["latency.b1.samples"] >= 2 and m["latency.b2.p50_ms"] > 0
    assert m["memory.peak_rss_bytes"] > 0 and m["cold_start_ms"] > 0
    assert m["gflops_per_s"] == pytest.approx(2 * 2 * m["gmac"] / (m["latency.b2.p50_ms"] / 1e3))
    assert d["engine"] == "dlib" and d["compute"]["counted_on"] == "dlib .dat file"
    assert d["source"]["layout"] == "NHWC" and d["source"]["run_path"].endswith(RESNET_FILE)
