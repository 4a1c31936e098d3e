"""Models that misbehave at run time — raise, return NaN or Inf, return the wrong shape — fail
their own cell with a clear reason; the trained model's cell in the same suite completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Background
from .kit import (
    LFW,
    Ctx,
    cells_by_id,
    inf_model,
    lfw_rows,
    model,
    nan_model,
    raising_model,
    run_suite,
    scenario,
    scenario_name,
    suite,
    verification,
    write_pair_csv,
    write_suite,
    wrong_shape_model,
)

PAIRS = lfw_rows(3, 2)  # 12 real LFW pairs


@scenario(order=3)
def bad_models(ctx: Ctx) -> Path:
    d = ctx.dir
    models = [model("mfn"),
              model("raises", raising_model(d / "raises.onnx")),
              model("nan", nan_model(d / "nan.onnx")),
              model("inf", inf_model(d / "inf.onnx")),
              model("shape", wrong_shape_model(d / "shape.onnx"))]
    write_pair_csv(d / "pairs.csv", PAIRS)
    write_suite(d / "suite.yaml", suite("models", models, [
        verification("lfw", d / "pairs.csv", LFW / "images")]))
    return run_suite(ctx, d / "suite.yaml", "--allow-failed-cells")  # else exit 3


@pytest.fixture(scope="module")
def run(background: Background) -> Path:
    return background.result(scenario_name(bad_models))


def test_the_good_model_completes(run: Path) -> None:
    cell = cells_by_id(run)["mfn@cpu@lfw"]
    assert cell["status"] == "ok", cell["error"]
    assert cell["metrics"]["pairs"] == len(PAIRS) and cell["metrics"]["fta_pairs"] == 0
    assert 0.5 < cell["metrics"]["accuracy"] <= 1.0
    assert (run / cell["artifacts"]["scores"]).is_file()


def rows(run: Path) -> int:
    """Rows of the first inference call: a batch of acquired images (the device's batch size)
    and their mirrors (flip)."""
    acquire = cells_by_id(run)["mfn@cpu@lfw"]["details"]["acquire"]
    return 2 * min(acquire["parallel"]["batch_size"], acquire["acquired"])


def test_a_model_that_raises_fails_its_cell(run: Path) -> None:
    cell = cells_by_id(run)["raises@cpu@lfw"]
    assert cell["status"] == "failed" and cell["metrics"] == {}
    err = cell["error"]
    assert err["type"] == "Fail"
    assert err["message"].startswith(
        "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape "
        "node. Name:'boom' Status Message: ")
    assert err["message"].endswith(
        "The input tensor cannot be reshaped to the requested shape. "
        f"Input shape:{{{rows(run)},3,112,112}}, requested shape:{{5,5}}\n")


@pytest.mark.parametrize("ident", ["nan", "inf"])
def test_nan_and_inf_embeddings_fail_their_cells(run: Path, ident: str) -> None:
    cell = cells_by_id(run)[f"{ident}@cpu@lfw"]
    assert cell["status"] == "failed" and cell["metrics"] == {}
    assert (cell["error"]["type"], cell["error"]["message"]) == (
        "ValueError", "model returned NaN or Inf embeddings")
    assert not (run / "cells" / cell["slug"] / "scores.csv").exists()


def test_a_wrong_output_shape_fails_its_cell(run: Path) -> None:
    cell = cells_by_id(run)["shape@cpu@lfw"]
    assert cell["status"] == "failed" and cell["metrics"] == {}
    n = rows(run)
    assert (cell["error"]["type"], cell["error"]["message"]) == (
        "EngineError", f"model output has shape ({n}, 3, 112), expected ({n}, D) embeddings")


def test_the_report_lists_every_failed_cell(run: Path) -> None:
    md = (run / "report.md").read_text(encoding="utf-8")
    html = (run / "report.html").read_text(encoding="utf-8")
    for ident in ("raises", "nan", "inf", "shape"):
        assert f"{ident}@cpu@lfw" in md and f"{ident}@cpu@lfw" in html
    assert "model returned NaN or Inf embeddings" in md
