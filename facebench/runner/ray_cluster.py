"""Ray cluster access shared by the cell executor and the shard runner: installing hints, a
session on 127.0.0.1 or a given cluster, the environment Ray needs, and resource requests."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from facebench.suite.schema import DeviceSpec

INSTALL_HINT = "pip install 'facebench[ray]'"
MAX_RETRIES = 2
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
#: A sharded cell's coordinator holds this fraction of its device's resources; each shard the
#: rest, so a node with one unit of a resource runs the coordinator and one shard together.
COORDINATOR_SHARE = 0.001
SHARD_SHARE = 1 - COORDINATOR_SHARE
SHIP_LIMIT_BYTES = 64 * 1024**2
MARKER = ".ray-attempt.json"
#: Set in each cell's subprocess: the cluster to submit shard tasks to, and this node's address.
ADDRESS_ENV, NODE_IP_ENV = "FACEBENCH_RAY_ADDRESS", "FACEBENCH_RAY_NODE_IP"
#: Driver settings forwarded to cell subprocesses (Ray sets OMP_NUM_THREADS in its workers).
FORWARDED_ENV = ("OMP_NUM_THREADS",)
#: Ray keeps 127.0.0.1 as the node address only when this is 0 (see :func:`prepare_env`).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

class RayNotInstalled(ImportError):
    """``--executor ray`` without Ray installed."""


def import_ray() -> Any:
    """The ``ray`` module, or :class:`RayNotInstalled` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayNotInstalled(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}"
                              ) from exc
    if not hasattr(ray, "init"):  # a folder named ray on sys.path, not the package
        raise RayNotInstalled(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")
    return ray


def is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_address(address: str | None) -> str | None:
    """``address``, else ``$RAY_ADDRESS``; ``None`` means a new local instance."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    return None if address == "local" else address


def prepare_env(address: str | None) -> None:
    """Environment for Ray, set before it is imported: no usage statistics; a raylet kills the
    subprocesses of a dead worker; a local or loopback cluster stays on 127.0.0.1 (Ray would
    otherwise swap 127.0.0.1 for this host's network address and listen on every interface)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    os.environ.setdefault("RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper", "true")
    if address is None or is_loopback(address):
        os.environ.setdefault(LOOPBACK_ENV, "0")


def _check_loopback(ray: Any) -> None:
    from ray._private import ray_constants

    if getattr(ray_constants, "ENABLE_RAY_CLUSTER", False):
        raise RuntimeError(
            "Ray was imported before facebench could keep this cluster on loopback; set "
            f"{LOOPBACK_ENV}=0 in the environment (or import facebench's executor first)")


def sigchld_ignored() -> bool:
    """Whether this process ignores SIGCHLD (Linux; Ray's processes do), which makes every
    child's exit status read as 0."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGCHLD - 1) & 1)
    except (OSError, ValueError, AttributeError):
        pass
    return False


@contextmanager
def child_exit_status() -> Iterator[None]:
    """Children's exit statuses are readable inside (SIGCHLD back to default, then restored)."""
    ignored = sigchld_ignored()
    if ignored:
        with contextlib.suppress(ValueError):  # not the main thread: leave it
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        if ignored:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGCHLD, signal.SIG_IGN)


@contextmanager
def ray_session(address: str | None, *, node_ip: str | None = None, num_cpus: int | None = None,
                resources: dict[str, float] | None = None) -> Iterator[Any]:
    """Connected ``ray`` for the duration: an existing connection, the cluster at ``address``
    (or ``$RAY_ADDRESS``), else a new local instance on 127.0.0.1, stopped afterwards."""
    address = resolve_address(address)
    prepare_env(address)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": "warning"}
    temp = None
    ignored_before = sigchld_ignored()
    if address is None:
        _check_loopback(ray)
        temp = tempfile.mkdtemp(prefix="fbray-", dir=os.environ.get("RAY_TMPDIR", "/tmp"))
        ray.init(address="local", num_cpus=num_cpus, resources=resources or None,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, include_dashboard=False,
                 _node_ip_address="127.0.0.1", _temp_dir=temp, **common)
    else:
        ip = node_ip or ("127.0.0.1" if is_loopback(address) else None)
        if ip and not address.startswith("ray://"):
            if ip == "127.0.0.1":
                _check_loopback(ray)
            common["_node_ip_address"] = ip
        ray.init(address=address, **common)
    try:
        yield ray
    finally:
        ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
        if not ignored_before and sigchld_ignored():  # Ray leaves SIGCHLD ignored
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)


# ---- resources -------------------------------------------------------------------------------


def task_options(device: DeviceSpec, share: float = 1.0) -> dict[str, Any]:
    """Ray resource request of work on ``device`` (``share`` of each unit)."""
    opts: dict[str, Any] = {"num_cpus": share}
    if device.device == "cuda":
        opts["num_gpus"] = share
    if device.label:
        opts["resources"] = {device.label: share}
    return opts
