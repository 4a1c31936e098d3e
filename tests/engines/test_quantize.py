"""int8 through onnxruntime.quantization on the real MobileFaceNet ONNX, calibrated on real LFW
crops (YuNet + ArcFace alignment): QDQ graph, agreement with fp32, the cache, dynamic mode, a
model that came quantized, and the variants that cannot run."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import pytest
from faults.kit import LFW, MFN, lfw_rows, model, suite, verification, write_pair_csv

from facebench.engines import (
    EngineConfig,
    EngineError,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
)
from facebench.engines.quantize import (
    MARK,
    NO_CALIBRATION,
    already_quantized,
    quantize_onnx,
    recommended_settings,
    target_path,
)
from facebench.pipeline.calibrate import CalibrationSample, calibration_sample, sample_images
from facebench.pipeline.embed import l2_normalize
from facebench.pipeline.embeddings import crop_size, protocol_acquire_config
from facebench.plan import plan
from facebench.suite.schema import Suite

ORT = EngineConfig(engine="onnxruntime", intra_op_threads=1, inter_op_threads=1)
INT8 = EngineConfig(engine="onnxruntime", intra_op_threads=1, inter_op_threads=1, int8="static")
SOURCE = ModelSource(kind="onnx", path=MFN)


def ops(path: Path) -> collections.Counter[str]:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def sample_of(shared: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``sample_of(n, seed)``: the calibration sample of a 40-pair real LFW protocol."""
    d = tmp_path_factory.mktemp("calib")
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(10, 2))
    s = Suite.model_validate(suite("q", [model("mfn")], [
        verification("lfw", pairs, LFW / "images")]))
    cell = plan(s)[0]
    acq = protocol_acquire_config(cell.protocol, cell.model.align,
                                  crop_size(cell.model, cell.protocol), d / "cache")

    def make(n: int, seed: int = 0) -> CalibrationSample:
        return calibration_sample(cell.protocol, acq, cell.model.preprocess, n, seed)

    return make


@pytest.fixture(scope="module")
def static(sample_of, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """MobileFaceNet quantized statically on 16 real crops."""
    s = sample_of(16)
    out = tmp_path_factory.mktemp("quantized")
    settings = recommended_settings(ORT, "static", True, s.identity())
    return quantize_onnx(MFN, out, settings, s.batches), s, out


def test_static_is_qdq_and_runs(static) -> None:  # type: ignore[no-untyped-def]
    made, sample, out = static
    assert made.mode == "static" and made.reason is None and not made.reused
    assert made.calibration_images == sample.used == 16 and not sample.failed
    counts = ops(made.path)
    assert counts["QuantizeLinear"] > 10 and counts["DequantizeLinear"] > 10
    meta = {p.key for p in onnx.load(str(made.path)).metadata_props}
    assert MARK in meta  # provenance: not mistaken for a model that came quantized
    assert already_quantized(made.path) is None
    assert made.path.parent == out and made.path.name.startswith("mobilefacenet_128d-")
    assert made.seconds > 0 and made.sha256 and made.settings["per_channel"] is True


def test_int8_embeddings_follow_fp32(static, sample_of) -> None:  # type: ignore[no-untyped-def]
    made, _, _ = static
    other = sample_of(24, seed=7)  # crops it was not calibrated on
    x = np.concatenate(list(other.batches()))
    fp32 = l2_normalize(create_engine(SOURCE, ORT).infer(x))
    int8 = l2_normalize(create_engine(ModelSource(kind="onnx", path=made.path), INT8).infer(x))
    cos = np.einsum("ij,ij->i", fp32, int8)
    assert cos.mean() > 0.95, cos
    assert not np.allclose(fp32, int8)  # it is a different model


def test_reused_when_the_key_is_the_same(static) -> None:  # type: ignore[no-untyped-def]
    made, sample, out = static
    mtime = made.path.stat().st_mtime_ns

    def never() -> list[np.ndarray]:
        raise AssertionError("a reused model is not calibrated again")

    again = quantize_onnx(MFN, out, recommended_settings(ORT, "static", True, sample.identity()),
                          never)
    assert again.reused and again.path == made.path and again.sha256 == made.sha256
    assert again.calibration_images == 16 and again.seconds == made.seconds
    assert made.path.stat().st_mtime_ns == mtime


def test_the_key_follows_seed_count_and_per_channel(sample_of, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = sample_of(16)

    def path(s: CalibrationSample, per_channel: bool = True) -> Path:
        return target_path(MFN, tmp_path, recommended_settings(ORT, "static", per_channel,
                                                               s.identity()))

    assert path(base) == path(sample_of(16))
    assert path(base) != path(sample_of(16, seed=1))
    assert path(base) != path(sample_of(17))
    assert path(base) != path(base, per_channel=False)


def test_sample_is_seeded_and_without_replacement() -> None:
    images = [Path(f"/x/{i}.jpg") for i in range(50)]
    a = sample_images(images, 20, 3)
    assert a == sample_images(images, 20, 3) and len(set(a)) == 20
    assert a != sample_images(images, 20, 4)
    assert a == sorted(a, key=images.index)  # dataset order
    assert sample_images(images, 80, 0) == images


def test_dynamic(tmp_path: Path) -> None:
    made = quantize_onnx(MFN, tmp_path, recommended_settings(ORT, "dynamic"), None)
    assert made.mode == "dynamic" and made.reason is None and made.calibration_images is None
    counts = ops(made.path)
    assert counts["ConvInteger"] > 10 and counts["DynamicQuantizeLinear"] > 10
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    out = create_engine(ModelSource(kind="onnx", path=made.path),
                        EngineConfig(engine="onnxruntime", int8="dynamic")).infer(x)
    assert out.shape == (2, 128) and np.isfinite(out).all()


def test_static_without_calibration_is_dynamic_with_the_reason(tmp_path: Path) -> None:
    made = quantize_onnx(MFN, tmp_path, recommended_settings(ORT, "static"), None)
    assert made.mode == "dynamic" and made.reason == NO_CALIBRATION


def test_a_model_that_came_quantized_is_not_quantized_again(models_dir: Path,
                                                             tmp_path: Path) -> None:
    sface = models_dir / "face_recognition_sface_2021dec_int8bq.onnx"
    assert "DequantizeLinear" in (already_quantized(sface) or "")
    assert already_quantized(MFN) is None
    with pytest.raises(EngineUnavailable, match="already quantized"):
        quantize_onnx(sface, tmp_path, recommended_settings(ORT, "dynamic"), None)
    reason = check_available(INT8, ModelSource(kind="onnx", path=sface))
    assert reason and "already quantized" in reason and "fp32" in reason
    assert check_available(ORT, ModelSource(kind="onnx", path=sface)) is None


@pytest.mark.parametrize(("cfg", "words"), [
    (EngineConfig(engine="torch", int8="static"), "use engine onnxruntime"),
    (EngineConfig(engine="torch_compile", int8="static"), "use engine onnxruntime"),
    (EngineConfig(engine="dlib", int8="static"), "dlib"),
    (EngineConfig(engine="onnxruntime", device="cuda", int8="static"), "tensorrt"),
    (EngineConfig(engine="onnxruntime", device="cuda", providers=("tensorrt",),
                  int8="dynamic"), "mode: static"),
])
def test_variants_that_cannot_run_say_why(cfg: EngineConfig, words: str) -> None:
    reason = check_available(cfg)
    assert reason and words in reason and "int8" in reason


def test_the_engine_refuses_a_float_model_labelled_int8() -> None:
    with pytest.raises(EngineError, match="quantize it first"):
        create_engine(SOURCE, INT8)


def test_facenet_with_batchnorm_after_matmul_quantizes_and_runs(
        shared: Path, tmp_path: Path) -> None:
    """FaceNet's TF graph keeps a BatchNormalization on the 2-D bottleneck after its last MatMul:
    per-channel QDQ of it made a model onnxruntime refused at run time. Normalisations stay
    float, and the result runs (checked before it is cached) and keeps the embeddings."""
    facenet = shared / "models" / "facenet_inception_resnet_v1_casia.onnx"
    rng = np.random.default_rng(0)
    batches = [(rng.uniform(0, 255, (2, 3, 160, 160)).astype(np.float32) - 127.5) / 128.0]
    settings = recommended_settings(ORT, "static", True, {"test": "facenet"})
    made = quantize_onnx(facenet, tmp_path, settings, lambda: iter(batches))
    counts = ops(made.path)
    assert counts["DequantizeLinear"] > 100
    src = ModelSource(kind="onnx", path=facenet, input_size=(160, 160))
    q = ModelSource(kind="onnx", path=made.path, input_size=(160, 160))
    e32 = l2_normalize(create_engine(src, ORT).infer(batches[0]))
    e8 = l2_normalize(create_engine(q, INT8).infer(batches[0]))
    assert e8.shape == (2, 512) and np.all(np.sum(e32 * e8, axis=1) > 0.9)
