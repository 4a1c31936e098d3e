"""Precision variants through a real run: an int8 device quantizes MobileFaceNet once (static,
calibrated on real LFW crops) and runs it for verification and efficiency; variants that cannot
run (torch and dlib int8, a model that came quantized) are skipped with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facebench.io import sha256_file

from .conftest import Background
from .kit import (
    CPU,
    LFW,
    SHARED,
    Ctx,
    cells_by_id,
    lfw_rows,
    model,
    run_suite,
    scenario,
    scenario_name,
    verification,
    write_pair_csv,
    write_suite,
)

SFACE = SHARED / "models" / "face_recognition_sface_2021dec_int8bq.onnx"
INT8 = {**CPU, "id": "cpu-ort-int8", "precision": "int8",
        "quantization": {"calibration_images": 16, "seed": 0}}
EFF = {"id": "eff", "kind": "efficiency", "warmup": 1, "min_iters": 3, "min_seconds": 0}


@scenario(order=2)
def precision_variants(ctx: Ctx) -> Path:
    d = ctx.dir
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(25, 2))  # the real LFW-100 subset
    devices = [{**CPU, "id": "cpu-ort"}, INT8,
               {**CPU, "id": "torch-int8", "engine": "torch", "precision": "int8"},
               {"id": "dlib-int8", "engine": "dlib", "precision": "int8"}]
    write_suite(d / "suite.yaml", {
        "name": "precision", "models": [model("mfn"), model("sface", SFACE)],
        "devices": devices,
        "protocols": [
            verification("lfw", pairs, LFW / "images", models=["mfn"]),
            verification("noflip", pairs, LFW / "images", flip=False, models=["mfn"],
                         devices=["cpu-ort-int8"]),
            {**EFF, "devices": ["cpu-ort", "cpu-ort-int8"]},
        ]})
    env = {**ctx.env, "FACEBENCH_CACHE": str(d / "cache")}  # its own: count quantized models
    run_suite(ctx, d / "suite.yaml", env=env)
    return d


@pytest.fixture(scope="module")
def run(background: Background) -> Path:
    return background.result(scenario_name(precision_variants))


@pytest.fixture(scope="module")
def cells(run: Path) -> dict[str, dict[str, Any]]:
    found = cells_by_id(run / "out")
    for c in found.values():
        assert c["status"] in ("ok", "skipped"), (c["id"], c.get("error"))
    return found


def test_int8_cell_records_how_it_was_quantized(cells: dict[str, dict[str, Any]]) -> None:
    p = cells["mfn@cpu-ort-int8@lfw"]["details"]["precision"]
    assert p["precision"] == "int8" and p["mode"] == "static" and p["reason"] is None
    assert p["per_channel"] is True and p["weight_type"] == "QInt8"
    assert p["activation_type"] in ("QUInt8", "QInt8")
    cal = p["calibration"]
    assert cal["protocol"] == "lfw" and cal["images_requested"] == 16 and cal["seed"] == 0
    assert 0 < cal["images_used"] <= cal["images_sampled"] == 16 and cal["flip"] is False
    assert p["model_sha256"] == sha256_file(p["model_path"])
    assert Path(p["model_path"]).parent.name == "quantized" and p["quantize_s"] > 0
    assert p["reused"] is False
    assert cells["mfn@cpu-ort@lfw"]["details"]["precision"] == {"precision": "fp32"}


def test_int8_embeddings_are_not_the_fp32_ones(run: Path,
                                               cells: dict[str, dict[str, Any]]) -> None:
    fp32, int8 = cells["mfn@cpu-ort@lfw"], cells["mfn@cpu-ort-int8@lfw"]
    key = [c["details"]["acquire"]["embedding_cache"]["key"] for c in (fp32, int8)]
    assert key[0] != key[1]
    out = run / "out"
    scores = [(out / c["artifacts"]["scores"]).read_text() for c in (fp32, int8)]
    assert scores[0] != scores[1]
    assert fp32["metrics"]["pairs"] == int8["metrics"]["pairs"] == 100
    assert abs(fp32["metrics"]["accuracy"] - int8["metrics"]["accuracy"]) <= 0.05


def test_one_quantization_serves_every_cell(run: Path,
                                            cells: dict[str, dict[str, Any]]) -> None:
    first = cells["mfn@cpu-ort-int8@lfw"]["details"]["precision"]
    for other in ("mfn@cpu-ort-int8@noflip", "mfn@cpu-ort-int8@eff"):
        p = cells[other]["details"]["precision"]
        assert p["reused"] is True and p["model_sha256"] == first["model_sha256"], other
    assert len(list((run / "cache" / "quantized").glob("*.onnx"))) == 1


def test_efficiency_times_the_int8_model_and_counts_the_source(
        cells: dict[str, dict[str, Any]]) -> None:
    fp32, int8 = cells["mfn@cpu-ort@eff"], cells["mfn@cpu-ort-int8@eff"]
    assert int8["details"]["source"]["run_path"] == int8["details"]["precision"]["model_path"]
    assert int8["details"]["engine_info"]["int8"] == "static"
    assert int8["metrics"]["params"] == fp32["metrics"]["params"]
    assert int8["metrics"]["gmac"] == fp32["metrics"]["gmac"]
    assert int8["metrics"]["model_size_bytes"] < fp32["metrics"]["model_size_bytes"] / 2
    assert int8["metrics"]["latency.p50_ms"] > 0


@pytest.mark.parametrize(("cell", "words"), [
    ("mfn@torch-int8@lfw", "int8 is provided through onnxruntime.quantization; use engine "
                           "onnxruntime"),
    ("mfn@dlib-int8@lfw", "dlib's network runs in float32 only"),
    ("sface@cpu-ort-int8@eff", "already quantized"),
])
def test_variants_that_cannot_run_are_skipped_with_the_reason(
        cells: dict[str, dict[str, Any]], cell: str, words: str) -> None:
    assert cells[cell]["status"] == "skipped"
    assert words in cells[cell]["reason"]
