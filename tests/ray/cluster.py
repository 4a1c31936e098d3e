"""A small real Ray cluster on 127.0.0.1 for tests: a head started with ``ray start`` and extra
nodes, each with its own custom resources. Every process is found by its own temp folder or
cluster port and stopped by PID (never ``ray stop``, which would stop other users' Ray)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
STORE_BYTES = 200 * 1024**2


def ray_env() -> dict[str, str]:
    """What every Ray process of a test gets: loopback only, no usage statistics, a token."""
    return {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DISABLE_USAGE_STATS": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1 (see ray_executor)
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": os.environ.get("RAY_AUTH_TOKEN") or secrets.token_hex(32),
        "RAY_kill_child_processes_on_worker_exit_with_raylet_subreaper": "true",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """``ray start --head`` on 127.0.0.1 plus worker nodes, all with 1 CPU by default."""

    def __init__(self, num_cpus: int = 1) -> None:
        self.temp = Path(tempfile.mkdtemp(prefix="fbrc-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.num_cpus = num_cpus
        self.env = {**os.environ, **ray_env()}
        self.helpers: list[subprocess.Popen] = []
        self.node_ids: dict[str, str] = {}  # resource name -> node id

    def _agent_ports(self) -> dict[str, int]:
        return {"dashboard_agent_listen_port": free_port(), "metrics_export_port": free_port(),
                "runtime_env_agent_port": free_port(), "metrics_agent_port": free_port()}

    def start_head(self, resources: dict[str, float]) -> None:
        ports = self._agent_ports()
        cmd = ["ray", "start", "--head", "--node-ip-address", "127.0.0.1",
               "--port", str(self.port), "--dashboard-host", "127.0.0.1",
               "--include-dashboard=false", "--temp-dir", str(self.temp),
               "--num-cpus", str(self.num_cpus), "--resources", json.dumps(resources),
               "--object-store-memory", str(STORE_BYTES), "--disable-usage-stats",
               "--ray-client-server-port", str(free_port()),
               "--dashboard-agent-listen-port", str(ports["dashboard_agent_listen_port"]),
               "--dashboard-agent-grpc-port", str(ports["metrics_agent_port"]),
               "--metrics-export-port", str(ports["metrics_export_port"]),
               "--runtime-env-agent-port", str(ports["runtime_env_agent_port"])]
        ray_bin = Path(sys.executable).with_name("ray")
        cmd[0] = str(ray_bin) if ray_bin.exists() else "ray"
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        if out.returncode != 0:
            raise RuntimeError(f"ray start --head failed:\n{out.stdout[-2000:]}\n"
                               f"{out.stderr[-2000:]}")
        self._remember(resources)

    def add_node(self, resources: dict[str, float]) -> str:
        """A worker node on 127.0.0.1 (``ray start --address`` refuses one when Ray is kept on
        loopback, so this uses the same ``Node`` class it does, via ``_worker_node.py``)."""
        spec = {"gcs_address": self.address, "num_cpus": self.num_cpus, "resources": resources,
                "object_store_memory": STORE_BYTES, "temp_dir": str(self.temp),
                "ports": self._agent_ports()}
        proc = subprocess.Popen([sys.executable, str(HERE / "_worker_node.py"), json.dumps(spec)],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        self.helpers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("worker node did not start")
        return self._remember(resources)

    def _remember(self, resources: dict[str, float]) -> str:
        """Wait until a live node offers ``resources``; return its id."""
        from facebench.runner.ray_executor import ray_session

        deadline = time.monotonic() + 60
        while True:
            with ray_session(self.address) as ray:
                nodes = ray.nodes()
            for node in nodes:
                have = node.get("Resources", {})
                if node.get("Alive") and all(k in have for k in resources):
                    self.node_ids.update({k: node["NodeID"] for k in resources})
                    return node["NodeID"]
            if time.monotonic() > deadline:
                raise RuntimeError(f"no node with {resources} joined the cluster")
            time.sleep(0.5)

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: by temp folder or address, plus their children."""
        mine = re.compile(f"({re.escape(str(self.temp))}|{re.escape(self.address)})(?![\\w-])")
        found: dict[int, psutil.Process] = {p.pid: p for p in self.helpers_alive()}
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid():
                continue
            if any(mine.search(arg) for arg in proc.info.get("cmdline") or []):
                found[proc.pid] = proc
        for proc in list(found.values()):
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in proc.children(recursive=True)})
        found.pop(os.getpid(), None)
        return list(found.values())

    def helpers_alive(self) -> list[psutil.Process]:
        out = []
        for h in self.helpers:
            with contextlib.suppress(psutil.Error):
                out.append(psutil.Process(h.pid))
        return out

    def stop(self) -> None:
        """Stop every process of the cluster (by PID) and remove its temp folder."""
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.terminate()
        _, alive = psutil.wait_procs(procs, timeout=5)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=5)
        for h in self.helpers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                h.wait(timeout=5)
        shutil.rmtree(self.temp, ignore_errors=True)
