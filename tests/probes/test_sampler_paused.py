"""The efficiency cell times without its RSS sampler running: the sampler samples the cold start
and warm-up and is paused inside the timed loops (issue 25: its wake-ups competed with the
timed code for the cores), yet the peak still covers the model (shared MobileFaceNet, real
onnxruntime engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebench.engines import EngineConfig, ModelSource
from facebench.probes.efficiency import run_efficiency


@pytest.mark.parametrize("warmup", [2, 0])
def test_sampler_paused_in_timed_loops(models_dir: Path, warmup: int) -> None:
    source = ModelSource(kind="onnx", path=models_dir / "mobilefacenet_128d.onnx")
    out = run_efficiency(source, EngineConfig(engine="onnxruntime", intra_op_threads=1),
                         batch_sizes=(1, 8), warmup=warmup, min_iters=5, min_seconds=1.5,
                         memory_interval_s=0.01)
    mem, lat = out["details"]["memory"], out["details"]["latency"]
    timed_s = sum(lat[b]["wall_s"] for b in ("1", "8"))
    assert timed_s >= 3
    # unpaused, the sampler would have taken up to timed_s / 0.01 ≥ 300 more samples in the
    # timed loops; paused it takes 2 per loop (pause, resume) besides those of the cold start
    # and warm-up (at most one per interval) and the first and last
    outside = mem["duration_s"] - timed_s
    assert mem["samples"] <= 2 * 2 + 2 + outside / 0.01 + 5
    # the model's weights and arena are in the peak (a ~4 MB ONNX file, batch-8 activations)
    assert out["metrics"]["memory.peak_rss_delta_bytes"] > 4e6
    assert "paused inside timed loops" in mem["sampled"]
