"""dlib model pieces that need no dataset: cost counts, face selection, cache keys."""

from __future__ import annotations

import dlib
import pytest

from facebench.models_dlib import (
    RESNET_FILE,
    DlibConfig,
    _select,
    count_macs,
    count_params,
    default_model_dir,
    dlib_unavailable,
    run_efficiency_dlib,
)
from facebench.probes.efficiency import metric_names


def test_params_read_from_the_file_match_the_published_architecture() -> None:
    counts = count_params(default_model_dir() / RESNET_FILE)
    assert counts["total"] == count_macs()["params"] == 5_614_592
    assert counts["fc_"] == 256 * 128
    assert abs(count_macs()["macs"] / 1e9 - 0.2709) < 1e-4


@pytest.mark.parametrize(("policy", "expected"), [
    ("highest_score", 1), ("largest", 2), ("closest_to_center", 1)])
def test_face_selection_policies(policy: str, expected: int) -> None:
    rects = dlib.rectangles([dlib.rectangle(0, 0, 50, 50), dlib.rectangle(100, 100, 150, 150),
                             dlib.rectangle(10, 10, 200, 200)])
    assert _select(rects, [0.5, 0.9, 0.1], (250, 250, 3), policy) == rects[expected]


def test_cache_key_covers_every_setting() -> None:
    base = DlibConfig.default()
    keys = {base.key(), DlibConfig.default(flip=True).key(),
            DlibConfig.default(num_jitters=5).key(), DlibConfig.default(select="largest").key(),
            DlibConfig.default(upsample=(0,)).key()}
    assert len(keys) == 5 and base.key() == DlibConfig.default().key()


def test_availability() -> None:
    assert dlib_unavailable("cpu") is None
    if not dlib.DLIB_USE_CUDA:
        assert "CUDA" in (dlib_unavailable("cuda") or "")


def test_efficiency_entry_reports_every_metric() -> None:
    out = run_efficiency_dlib(batch_sizes=(1, 2), warmup=0, min_iters=2, min_seconds=0)
    m = out["metrics"]
    assert set(m) == set(metric_names((1, 2)))
    assert m["params"] == 5_614_592 and m["gflops"] == pytest.approx(2 * m["gmac"])
    assert m["latency.b1.samples"] >= 2 and m["latency.b2.p50_ms"] > 0
    assert m["memory.peak_rss_bytes"] > 0 and m["cold_start_ms"] > 0
