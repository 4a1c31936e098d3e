"""The Ray shard runner a cell gets when the Ray executor runs it: each shard of a sharded cell
(:func:`facebench.pipeline.embeddings.embed_shard`) becomes a Ray task on a node that has the
cell's device. The pipeline sees only the :class:`~facebench.pipeline.context.ShardRunner`
interface; elsewhere (local executor, no Ray) it runs shards itself, one after another.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from facebench.plan import Cell
from facebench.runner.ray_cluster import (
    ADDRESS_ENV,
    MAX_RETRIES,
    NODE_IP_ENV,
    SHARD_SHARE,
    ray_session,
    task_options,
)


def _on_node(fn: Callable[..., Any], *args: Any) -> Any:
    """A Ray task: ``fn(*args)``, tagged with the node that ran it."""
    import ray

    out = fn(*args)
    out.node = ray.get_runtime_context().get_node_id()
    return out


class RayShards:
    """Shards as Ray tasks on the cluster at ``address``, placed like the cell's device."""

    name = "ray"

    def __init__(self, cell: Cell, address: str, node_ip: str | None = None) -> None:
        self.cell, self.address, self.node_ip = cell, address, node_ip

    def map(self, fn: Callable[..., Any], args: list[tuple[Any, ...]],
            done: Callable[[Any], None]) -> None:
        with ray_session(self.address, node_ip=self.node_ip) as ray:
            remote = ray.remote(_on_node).options(
                **task_options(self.cell.device, SHARD_SHARE), max_retries=MAX_RETRIES,
                retry_exceptions=False, name=f"facebench-shard:{self.cell.id}")
            pending = [remote.remote(fn, *a) for a in args]
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                done(ray.get(ready[0]))


def shard_runner(cell: Cell, address: str | None = None) -> RayShards | None:
    """The shard runner of a cell run by the Ray executor (its subprocess has the cluster's
    address in the environment), else ``None``."""
    address = address or os.environ.get(ADDRESS_ENV)
    if not address or not getattr(cell.protocol, "shard_size", None):
        return None
    return RayShards(cell, address, os.environ.get(NODE_IP_ENV))
