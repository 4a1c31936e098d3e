"""Issue 16, item 2: every cache key covers the content of every file that changes the output.

- The alignment (crop) cache: a different YuNet model file with the same name in another folder
  must not reuse the first file's crops (nor the embeddings made from them).
- The embedding cache: an image replaced by another of the same size and modification time must
  not reuse the old embeddings.

Each case compares a run over a shared, warm cache with a run of the same suite over a fresh
cache of its own: the two must agree byte for byte (``scores.csv``) and in every metric.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from .conftest import Background
from .kit import (
    LFW,
    YUNET,
    Ctx,
    cells_by_id,
    lfw_rows,
    model,
    run_suite,
    scenario,
    scenario_name,
    stable,
    suite,
    verification,
    write_pair_csv,
    write_suite,
)

CELL = "mfn@cpu@lfw"


def perturbed_yunet(path: Path) -> Path:
    """A real, working YuNet whose landmark heads are shifted: the biases of the last
    convolution of every ``multi_level_kps`` head are raised by 1 (one stride unit), so every
    landmark moves by 8-32 px while the faces are still found."""
    net = onnx.load(str(YUNET))
    changed = 0
    for init in net.graph.initializer:
        if "multi_level_kps" in init.name and init.name.endswith("conv2.bias"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1.0, init.name))
            changed += 1
    assert changed == 3
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(net, str(path))
    return path


def run_cell(ctx: Ctx, suite_file: Path, out: str, cache: Path) -> dict[str, Any]:
    """Run the suite with ``cache`` as FACEBENCH_CACHE; the cell's record and scores.csv."""
    run_suite(ctx, suite_file, out=out, env={**ctx.env, "FACEBENCH_CACHE": str(cache)})
    cell = cells_by_id(ctx.dir / out)[CELL]
    assert cell["status"] == "ok", cell.get("error")
    return {"cell": cell, "scores": ctx.dir / out / cell["artifacts"]["scores"]}


def scores_of(run: dict[str, Any]) -> bytes:
    return run["scores"].read_bytes()


def metrics_of(run: dict[str, Any]) -> dict[str, Any]:
    return stable(run["cell"]["metrics"])


@scenario(order=3)
def same_name_other_yunet(ctx: Ctx) -> dict[str, Any]:
    """YuNet file A at ``x/face_detection_yunet.onnx``, then a different file B at
    ``y/face_detection_yunet.onnx`` over the same cache, then B again over a fresh cache."""
    d = ctx.dir
    a = d / "x" / "face_detection_yunet.onnx"
    a.parent.mkdir()
    shutil.copyfile(YUNET, a)
    b = perturbed_yunet(d / "y" / "face_detection_yunet.onnx")
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(5, 2))

    def suite_with(detector: Path, name: str) -> Path:
        proto = verification("lfw", pairs, LFW / "images")
        proto["detector"]["model"] = str(detector)
        return write_suite(d / f"{name}.yaml", suite(name, [model("mfn")], [proto]))

    shared = d / "cache-shared"
    return {
        "a": run_cell(ctx, suite_with(a, "yunet-a"), "out-a", shared),
        "b": run_cell(ctx, suite_with(b, "yunet-b"), "out-b", shared),
        "b_fresh": run_cell(ctx, suite_with(b, "yunet-b"), "out-b-fresh", d / "cache-fresh"),
    }


@pytest.fixture(scope="module")
def yunet_runs(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(same_name_other_yunet))


def test_the_other_yunet_really_changes_the_crops(yunet_runs: dict[str, Any]) -> None:
    """Control: with caches of their own, the two YuNet files give different scores."""
    assert scores_of(yunet_runs["a"]) != scores_of(yunet_runs["b_fresh"])


def test_same_named_yunet_does_not_reuse_the_crop_cache(yunet_runs: dict[str, Any]) -> None:
    b, fresh = yunet_runs["b"], yunet_runs["b_fresh"]
    assert scores_of(b) == scores_of(fresh)
    assert metrics_of(b) == metrics_of(fresh)
    assert b["cell"]["details"]["acquire"]["cache_hits"] == 0


def test_yunet_settings_name_the_model_by_content(yunet_runs: dict[str, Any]) -> None:
    det_a = yunet_runs["a"]["cell"]["details"]["acquire"]["detector"]
    det_b = yunet_runs["b"]["cell"]["details"]["acquire"]["detector"]
    assert det_a["model"] == det_b["model"] == "face_detection_yunet.onnx"
    assert det_a["model_sha256"] != det_b["model_sha256"]


# ---- the embedding cache: image content, not (path, size, mtime) ------------------------------

@scenario(order=3)
def image_replaced_in_place(ctx: Ctx) -> dict[str, Any]:
    """Real LFW images as BMP files (a BMP's size depends only on its dimensions; every LFW
    image is 250×250). One image of a genuine pair is replaced by another person's face with
    the same size and modification time between two runs over one cache."""
    d = ctx.dir
    rows = lfw_rows(5, 2)
    root = d / "images"
    names = sorted({p for r in rows for p in r[:2]})
    for name in names:
        dest = root / Path(name).with_suffix(".bmp")
        dest.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(dest), cv2.imread(str(LFW / "images" / name)))
    bmp_rows = [(str(Path(a).with_suffix(".bmp")), str(Path(b).with_suffix(".bmp")), y, f)
                for a, b, y, f in rows]
    pairs = write_pair_csv(d / "pairs.csv", bmp_rows)
    proto = verification("lfw", pairs, root)
    suite_file = write_suite(d / "suite.yaml", suite("bmp", [model("mfn")], [proto]))
    shared = d / "cache-shared"
    first = run_cell(ctx, suite_file, "out-1", shared)

    genuine = root / bmp_rows[0][1]  # second image of the first genuine pair
    other = root / bmp_rows[-1][1]  # an impostor's image: someone else
    st = genuine.stat()
    stranger = cv2.imread(str(other))
    assert stranger.shape == cv2.imread(str(genuine)).shape
    ok, data = cv2.imencode(".bmp", stranger)
    assert ok and len(data) == st.st_size
    genuine.write_bytes(np.asarray(data).tobytes())
    os.utime(genuine, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert genuine.stat().st_size == st.st_size and genuine.stat().st_mtime_ns == st.st_mtime_ns

    return {
        "first": first,
        "second": run_cell(ctx, suite_file, "out-2", shared),
        "fresh": run_cell(ctx, suite_file, "out-fresh", d / "cache-fresh"),
    }


@pytest.fixture(scope="module")
def image_runs(background: Background) -> dict[str, Any]:
    return background.result(scenario_name(image_replaced_in_place))


def test_the_replaced_image_really_changes_the_scores(image_runs: dict[str, Any]) -> None:
    """Control: the replacement changes the result computed from scratch."""
    assert scores_of(image_runs["first"]) != scores_of(image_runs["fresh"])


def test_replaced_image_does_not_reuse_the_embedding_cache(image_runs: dict[str, Any]) -> None:
    second, fresh = image_runs["second"], image_runs["fresh"]
    assert not second["cell"]["details"]["acquire"]["embedding_cache"]["hit"]
    assert scores_of(second) == scores_of(fresh)
    assert metrics_of(second) == metrics_of(fresh)
