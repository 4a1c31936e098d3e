"""The efficiency cell on the shared MobileFaceNet: names of docs/results.md, numbers that agree
with independent recomputation from the recorded samples."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from facebench.engines import EngineConfig, EngineUnavailable, ModelSource
from facebench.probes.efficiency import metric_names, run_efficiency, run_efficiency_isolated

ROOT = Path(__file__).resolve().parents[2]
FAST = {"warmup": 2, "min_iters": 5, "min_seconds": 0.05}


def documented_names(batch_sizes: tuple[int, ...]) -> set[str]:
    """Efficiency metric names parsed from docs/results.md (``.x`` extends the previous name)."""
    text = (ROOT / "docs" / "results.md").read_text()
    section = text.split("### Efficiency metric names", 1)[1].split("`details`", 1)[0]
    names: set[str] = set()
    prefix = ""
    for tok in re.findall(r"`([^`]+)`", section):
        if tok.startswith("details."):  # a pointer into details, not a metric
            continue
        if tok.startswith("."):
            tok = prefix + tok
        elif "." in tok:
            prefix = tok.rsplit(".", 1)[0]
        names.add(tok)
    out = set()
    for n in names:
        out |= {n.replace("{B}", str(b)) for b in batch_sizes} if "{B}" in n else {n}
    return out


@pytest.fixture(scope="module")
def mfn(models_dir: Path) -> ModelSource:
    return ModelSource(kind="onnx", path=models_dir / "mobilefacenet_128d.onnx")


@pytest.fixture(scope="module")
def cell(mfn: ModelSource) -> dict:
    steps: list[tuple[int, int]] = []
    out = run_efficiency(mfn, EngineConfig(engine="onnxruntime", intra_op_threads=1),
                         batch_sizes=(2, 1), progress=lambda d, t: steps.append((d, t)), **FAST)
    out["steps"] = steps
    return out


def test_names_are_the_documented_ones(cell: dict) -> None:
    want = documented_names((1, 2))
    assert set(metric_names((1, 2))) == want
    assert set(cell["metrics"]) == want


def test_numbers_agree_with_samples(cell: dict, mfn: ModelSource) -> None:
    m, d = cell["metrics"], cell["details"]
    for b in (1, 2):
        ms = np.asarray(d["latency"][str(b)]["samples_ms"])
        assert m[f"latency.b{b}.samples"] == ms.size >= FAST["min_iters"]
        assert m[f"latency.b{b}.p50_ms"] == pytest.approx(np.percentile(ms, 50))
        assert m[f"latency.b{b}.p99_ms"] == pytest.approx(np.percentile(ms, 99))
        assert m[f"latency.b{b}.mean_ms"] == pytest.approx(ms.mean())
        assert m[f"latency.b{b}.min_ms"] == pytest.approx(ms.min())
        wall = d["latency"][str(b)]["wall_s"]
        assert wall >= FAST["min_seconds"]
        assert m[f"throughput.b{b}"] == pytest.approx(b * ms.size / wall)
        rate = d["rate"]["gflops_per_s"][str(b)]
        assert rate == pytest.approx(m["gflops"] * b / (np.percentile(ms, 50) / 1e3))
    assert m["latency.p50_ms"] == m["latency.b1.p50_ms"]
    assert m["latency.p90_ms"] == m["latency.b1.p90_ms"]
    assert m["gflops_per_s"] == d["rate"]["gflops_per_s"]["2"]
    assert m["model_size_bytes"] == mfn.path.stat().st_size
    assert m["cold_start_ms"] == pytest.approx(
        d["cold_start"]["create_ms"] + d["cold_start"]["first_inference_ms"])
    # In-process, memory freed by earlier tests may be reused: only >= 0 is guaranteed here.
    assert m["memory.peak_rss_bytes"] > m["memory.peak_rss_delta_bytes"] >= 0
    assert d["threads"] == {"intra_op": 1, "inter_op": None}
    assert d["engine_info"]["providers"] == ["CPUExecutionProvider"]
    assert cell["steps"] == [(i, 4) for i in range(5)]


def test_compute_numbers(cell: dict) -> None:
    m, comp = cell["metrics"], cell["details"]["compute"]
    if "skipped" in comp:
        pytest.skip(f"compute counter unavailable: {comp['skipped']}")
    assert m["gflops"] == pytest.approx(2 * m["gmac"])
    assert 0.1 < m["gmac"] < 0.5 and 0.5e6 < m["params"] < 2e6  # MobileFaceNet: ~0.23 GMAC, ~1M
    peak = cell["details"]["rate"]["peak"]
    if m["pct_of_peak"] is not None:
        assert m["pct_of_peak"] == pytest.approx(
            100 * m["gflops_per_s"] / peak["measured"]["gflops"])


def test_unavailable_config_raises(mfn: ModelSource) -> None:
    cfg = EngineConfig(engine="onnxruntime", device="cuda")
    try:
        run_efficiency(mfn, cfg, **FAST)
    except EngineUnavailable as exc:
        assert "not available" in exc.reason
    else:
        pytest.skip("CUDA provider available here")


def test_isolated_run(mfn: ModelSource) -> None:
    out = run_efficiency_isolated(mfn, EngineConfig(engine="onnxruntime", intra_op_threads=1),
                                  batch_sizes=[1], timeout_s=120, **FAST)
    assert out["metrics"]["latency.b1.samples"] >= FAST["min_iters"]
    assert out["details"]["engine_info"]["threads"]["intra_op"] == 1
    # A fresh process: loading the 4 MB model and ORT's arenas must show up in the delta.
    delta = out["metrics"]["memory.peak_rss_delta_bytes"]
    assert 4e6 < delta < 1e9
    with pytest.raises(EngineUnavailable):
        run_efficiency_isolated(mfn, EngineConfig(engine="torch", device="cuda"), **FAST)
