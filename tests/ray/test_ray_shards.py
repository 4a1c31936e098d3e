"""Sharded embedding equals the unsharded pipeline: here (no Ray) and as Ray tasks placed on the
node with the cell's device label. Real LFW pairs, YuNet alignment, trained MobileFaceNet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facebench.datasets import load_pairs
from facebench.pipeline.context import CellContext
from facebench.pipeline.embeddings import acquire_config, compute
from facebench.plan import Cell, plan
from facebench.runner.shards import RayShards
from facebench.suite import load_suite
from tests.faults.kit import stable
from tests.ray.cluster import LoopbackCluster
from tests.ray.conftest import verification, write_suite


def _cell(tmp: Path, shared: Path, pairs: Path, cache: Path, label: str | None) -> Cell:
    device = {"id": label or "cpu", **({"label": label} if label else {})}
    suite = write_suite(tmp / "suite.yaml", shared, cache, [device],
                        [verification(shared, pairs, batch_size=16)])
    (cell,) = plan(load_suite(suite))
    return cell


@pytest.fixture(scope="module")
def unsharded(shared: Path, lfw_subset: Path, ray_cache: Path,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    tmp = tmp_path_factory.mktemp("unsharded")
    cell = _cell(tmp, shared, lfw_subset, ray_cache, None)
    ctx = CellContext(out_dir=tmp, cell_dir=tmp, cache_dir=ray_cache)
    pairs = load_pairs(cell.protocol.dataset)
    e = compute(cell, pairs.images, pairs.root, ctx, acquire_config(cell, ctx))
    return e.emb, e.valid, e.acquire, e.fta


def embed_sharded(cell: Cell, pairs: Any, ctx: CellContext, shard_size: int, *,
                  address: str | None = None) -> tuple[Any, ...]:
    """The cell with ``shard_size`` through the pipeline; shards on Ray when ``address``."""
    cell = Cell(cell.model, cell.device, cell.protocol.model_copy(update={"shard_size":
                                                                            shard_size}))
    if address:
        ctx.shards = RayShards(cell, address)
    e = compute(cell, pairs.images, pairs.root, ctx, acquire_config(cell, ctx))
    return e.emb, e.valid, e.acquire, e.fta


def assert_same(sharded: tuple[Any, ...], ref: tuple[Any, ...]) -> None:
    emb, valid, record, fta = sharded
    assert np.array_equal(emb, ref[0], equal_nan=True)  # bit for bit, FtA rows NaN
    assert np.array_equal(valid, ref[1])
    assert fta == ref[3]
    volatile = ("shards", "cache_hits", "parallel")
    same = {k: v for k, v in record.items() if k not in volatile}
    assert same == {k: v for k, v in ref[2].items() if k not in volatile}
    assert record["acquired"] == int(ref[1].sum())


def test_sharded_here_equals_unsharded(shared: Path, lfw_subset: Path, ray_cache: Path,
                                       unsharded: tuple[Any, ...], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cell = _cell(tmp_path, shared, lfw_subset, ray_cache, None)
    pairs = load_pairs(cell.protocol.dataset)
    ctx = CellContext(out_dir=tmp_path, cell_dir=tmp_path, cache_dir=ray_cache)
    out = embed_sharded(cell, pairs, ctx, shard_size=47)
    assert_same(out, unsharded)
    assert out[2]["shards"] == {"size": 47, "count": -(-len(pairs.images) // 47),
                                "executor": "local", "nodes": []}


@pytest.mark.ray
def test_sharded_on_ray_equals_unsharded_and_runs_on_the_labelled_node(
        cluster: LoopbackCluster, shared: Path, lfw_subset: Path, ray_cache: Path,
        unsharded: tuple[Any, ...], tmp_path: Path) -> None:
    cell = _cell(tmp_path, shared, lfw_subset, ray_cache, "edge-orin")
    pairs = load_pairs(cell.protocol.dataset)
    ctx = CellContext(out_dir=tmp_path, cell_dir=tmp_path, cache_dir=ray_cache)
    out = embed_sharded(cell, pairs, ctx, shard_size=60, address=cluster.address)
    assert_same(out, unsharded)
    shards = out[2]["shards"]
    assert shards["executor"] == "ray" and shards["count"] == -(-len(pairs.images) // 60)
    assert shards["nodes"] == [cluster.node_ids["edge-orin"]]


@pytest.mark.ray
def test_sharded_cell_through_the_executor(cluster: LoopbackCluster, shared: Path,
                                           lfw_subset: Path, ray_cache: Path,
                                           tmp_path: Path) -> None:
    """End to end once the verification protocol has ``shard_size`` (the pipeline hook)."""
    from facebench.suite.schema import VerificationProtocol

    if "shard_size" not in VerificationProtocol.model_fields:
        pytest.skip("the verification protocol has no shard_size option yet (pipeline hook)")
    import io

    from rich.console import Console

    from facebench.runner.run import RunOptions, run_suite

    devices = [{"id": "edge-orin", "label": "edge-orin"}]
    results = {}
    for shard in (None, 60):
        extra = {"shard_size": shard} if shard else {}
        suite = write_suite(tmp_path / f"s{shard}.yaml", shared, ray_cache, devices,
                            [verification(shared, lfw_subset, **extra)])
        opts = RunOptions(out=tmp_path / f"out{shard}", executor="ray",
                          address=cluster.address, progress=False, report=False)
        res = run_suite(suite, opts, Console(file=io.StringIO()))
        assert res is not None
        (results[shard],) = res["cells"]
    plain, sharded = results[None], results[60]
    assert sharded["status"] == "ok", sharded.get("error")
    assert stable(sharded["metrics"]) == stable(plain["metrics"])
    assert sharded["details"]["acquire"]["shards"]["nodes"] == [cluster.node_ids["edge-orin"]]
