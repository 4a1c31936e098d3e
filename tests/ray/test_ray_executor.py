"""The Ray executor on real Ray: a local instance, and a two-node loopback cluster whose nodes
offer different device labels. Cells are real (trained MobileFaceNet, LFW pairs, YuNet)."""

from __future__ import annotations

import io
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from rich.console import Console

from facebench.io import read_json
from facebench.runner.run import RunOptions, run_suite
from tests.faults.kit import stable
from tests.ray.cluster import LoopbackCluster
from tests.ray.conftest import efficiency, verification, write_suite

pytestmark = pytest.mark.ray

#: Efficiency metrics that do not depend on timing.
STATIC_METRICS = ("params", "gmac", "gflops", "model_size_bytes")


def run(suite: Path, out: Path, executor: str = "ray", address: str | None = None,
        resume: bool = False) -> dict[str, Any]:
    opts = RunOptions(out=out, executor=executor, address=address, resume=resume,
                      progress=False, report=False)
    results = run_suite(suite, opts, Console(file=io.StringIO()))
    assert results is not None
    return results


def cells_by_protocol(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["protocol"]: c for c in results["cells"]}


def assert_same_metrics(cell: dict[str, Any], ref: dict[str, Any]) -> None:
    """Equal deterministic metrics: all of a verification cell's, the static efficiency ones."""
    assert cell["status"] == ref["status"] == "ok", (cell.get("error"), ref.get("error"))
    keys = STATIC_METRICS if cell["kind"] == "efficiency" else tuple(stable(ref["metrics"]))
    got = {k: cell["metrics"].get(k) for k in keys}
    want = {k: ref["metrics"].get(k) for k in keys}
    assert got == want
    assert any(v is not None for v in want.values())


@pytest.fixture(scope="module")
def local_results(shared: Path, lfw_subset: Path, ray_cache: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The reference: the local executor on an efficiency cell and an LFW-subset cell."""
    tmp = tmp_path_factory.mktemp("local")
    suite = write_suite(tmp / "suite.yaml", shared, ray_cache, [{"id": "cpu"}],
                        [efficiency(), verification(shared, lfw_subset)])
    results = run(suite, tmp / "out", executor="local")
    results["out"] = tmp / "out"
    return results


def test_local_ray_instance_equals_local_executor(shared: Path, lfw_subset: Path,
                                                  ray_cache: Path, local_results: dict,
                                                  tmp_path: Path) -> None:
    from facebench.plan import plan
    from facebench.runner.ray_executor import make_ray_executor
    from facebench.suite import load_suite

    suite = load_suite(write_suite(tmp_path / "suite.yaml", shared, ray_cache, [{"id": "cpu"}],
                                   [efficiency(), verification(shared, lfw_subset)]))
    out = tmp_path / "out"
    records: list[dict[str, Any]] = []
    executor = make_ray_executor(None, num_cpus=2)  # a new local instance on 127.0.0.1
    executor(plan(suite), suite.model_dump(mode="json"), out, suite.cache_dir, resume=False,
             timeout_s=None, on_cell_done=records.append)
    ref = cells_by_protocol(local_results)
    got = {r["protocol"]: r for r in records}
    assert set(got) == {"eff", "lfw"}
    for proto, cell in got.items():
        assert_same_metrics(cell, ref[proto])
        assert cell["node"]["node_id"] and cell["node"]["attempt"] == 1
        assert cell["node"]["ip"] == "127.0.0.1"
        assert read_json(out / "cells" / cell["slug"] / "result.json")["node"] == cell["node"]
    ref_scores = local_results["out"] / ref["lfw"]["artifacts"]["scores"]
    assert (out / got["lfw"]["artifacts"]["scores"]).read_bytes() == ref_scores.read_bytes()
    assert not list(out.glob(".ray-probe-*"))
    # Ray ignores SIGCHLD in its driver; the session restores it, so exit statuses still work.
    assert subprocess.run([sys.executable, "-c", "raise SystemExit(3)"]).returncode == 3


def test_cells_run_on_the_node_with_their_label(cluster: LoopbackCluster, shared: Path,
                                                lfw_subset: Path, ray_cache: Path,
                                                local_results: dict, tmp_path: Path) -> None:
    devices = [{"id": "cpu-box", "label": "cpu-box"}, {"id": "edge-orin", "label": "edge-orin"},
               {"id": "tpu", "label": "tpu-pod"}]
    suite = write_suite(tmp_path / "suite.yaml", shared, ray_cache, devices,
                        [efficiency(), verification(shared, lfw_subset, devices=["edge-orin"])])
    results = run(suite, tmp_path / "out", address=cluster.address)
    by_id = {c["id"]: c for c in results["cells"]}
    assert set(by_id) == {"mfn@cpu-box@eff", "mfn@edge-orin@eff", "mfn@tpu@eff",
                          "mfn@edge-orin@lfw"}
    ref = cells_by_protocol(local_results)
    for cid, label in [("mfn@cpu-box@eff", "cpu-box"), ("mfn@edge-orin@eff", "edge-orin"),
                       ("mfn@edge-orin@lfw", "edge-orin")]:
        cell = by_id[cid]
        assert cell["node"]["node_id"] == cluster.node_ids[label], cid
        assert_same_metrics(cell, ref[cell["protocol"]])
    assert cluster.node_ids["cpu-box"] != cluster.node_ids["edge-orin"]
    tpu = by_id["mfn@tpu@eff"]  # no node offers it: skipped at once, not queued forever
    assert tpu["status"] == "skipped" and "tpu-pod" in tpu["reason"]


def _worker_children(cell_dir: Path) -> list[psutil.Process]:
    prefix = str(cell_dir / ".job.")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "facebench.runner.worker" in cmd and any(a.startswith(prefix) for a in cmd):
            found.append(proc)
    return found


def test_killed_worker_is_retried_and_nothing_is_lost(cluster: LoopbackCluster, shared: Path,
                                                      ray_cache: Path, local_results: dict,
                                                      tmp_path: Path) -> None:
    devices = [{"id": "cpu-box", "label": "cpu-box"}, {"id": "edge-orin", "label": "edge-orin"}]
    suite = write_suite(tmp_path / "suite.yaml", shared, ray_cache, devices,
                        [efficiency(min_seconds=3.0)])
    out = tmp_path / "out"
    victim_dir = out / "cells" / "mfn@edge-orin@eff"
    killed: dict[str, Any] = {}

    def kill_when_running() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            marker = victim_dir / ".ray-attempt.json"
            children = _worker_children(victim_dir)
            if marker.is_file() and children:
                time.sleep(1.0)  # mid-cell: the subprocess is measuring
                info = read_json(marker)
                killed.update(pid=info["pid"], attempt=info["attempt"],
                              children=[c.pid for c in children])
                os.kill(info["pid"], signal.SIGKILL)  # the Ray worker running the task
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_when_running, daemon=True)
    killer.start()
    results = run(suite, out, address=cluster.address)
    killer.join(timeout=5)
    assert killed.get("attempt") == 1, "the worker was never killed"
    by_id = {c["id"]: c for c in results["cells"]}
    victim, other = by_id["mfn@edge-orin@eff"], by_id["mfn@cpu-box@eff"]
    assert victim["node"]["attempt"] == 2  # Ray retried the task
    assert other["node"]["attempt"] == 1
    ref = cells_by_protocol(local_results)["eff"]
    for cell in (victim, other):
        assert_same_metrics(cell, ref)
        assert read_json(out / "cells" / cell["slug"] / "result.json")["status"] == "ok"
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                   for p in killed["children"]), "the killed attempt's cell process survived"


def test_retried_task_returns_a_finished_cell_without_rerunning(cluster: LoopbackCluster,
                                                                shared: Path, ray_cache: Path,
                                                                tmp_path: Path) -> None:
    from facebench.plan import plan
    from facebench.runner.ray_executor import cell_task, ray_session
    from facebench.suite import load_suite

    suite_path = write_suite(tmp_path / "suite.yaml", shared, ray_cache,
                             [{"id": "cpu-box", "label": "cpu-box"}], [efficiency()])
    suite = load_suite(suite_path)
    (cell,) = plan(suite)
    dump = suite.model_dump(mode="json")
    out = tmp_path / "out"
    out.mkdir()
    token, other = secrets.token_hex(8), secrets.token_hex(8)
    (out / f".ray-probe-{token}").write_text(token)  # this node shares our filesystem
    with ray_session(cluster.address) as ray:
        task = ray.remote(cell_task).options(num_cpus=1, resources={"cpu-box": 1})
        first = ray.get(task.remote(cell, dump, str(out), str(ray_cache), None, token, {}))
        log = out / "cells" / cell.slug / "stderr.log"
        stamp = log.stat().st_mtime_ns
        again = ray.get(task.remote(cell, dump, str(out), str(ray_cache), None, token, {}))
        # Another run (new token) on a node that cannot see our folder: files come back.
        private = ray.get(task.remote(cell, dump, str(tmp_path / "elsewhere"), str(ray_cache),
                                      None, other, {}))
    assert first["files"] is None and first["record"]["status"] == "ok"
    assert again["record"]["started"] == first["record"]["started"]
    assert again["record"]["node"] == first["record"]["node"]
    assert log.stat().st_mtime_ns == stamp  # no second subprocess ran
    assert private["record"]["status"] == "ok"
    assert set(private["files"]) >= {"result.json", "stderr.log"}
    assert not (tmp_path / "elsewhere" / "cells").exists()
    assert not (Path(tempfile.gettempdir()) / "facebench-ray" / other).exists()  # cleaned up


def test_resume_after_the_driver_is_killed(cluster: LoopbackCluster, shared: Path,
                                           ray_cache: Path, tmp_path: Path) -> None:
    devices = [{"id": "cpu-box", "label": "cpu-box"}, {"id": "edge-orin", "label": "edge-orin"}]
    suite = write_suite(tmp_path / "suite.yaml", shared, ray_cache, devices,
                        [efficiency(id="fast", devices=["cpu-box"]),
                         efficiency(id="slow", min_seconds=5.0, devices=["edge-orin"])])
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "facebench.cli", "run", str(suite), "--out", str(out),
         "--executor", "ray", "--address", cluster.address, "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        cwd=tmp_path, env={**os.environ, "FACEBENCH_HISTORY": f"sqlite:///{tmp_path}/h.db"})
    try:
        deadline = time.monotonic() + 120
        fast_done = False
        while time.monotonic() < deadline and driver.poll() is None and not fast_done:
            time.sleep(0.2)
            try:
                cells = read_json(out / "results.json")["cells"]
            except (OSError, ValueError):
                continue
            fast_done = any(c["id"] == "mfn@cpu-box@fast" and c["status"] == "ok"
                            for c in cells)
        assert fast_done and driver.poll() is None, "the fast cell never finished alone"
        driver.send_signal(signal.SIGKILL)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait()
    before = read_json(out / "results.json")
    assert {c["id"] for c in before["cells"]} == {"mfn@cpu-box@fast"}
    fast_started = before["cells"][0]["started"]

    results = run(suite, out, address=cluster.address, resume=True)
    by_id = {c["id"]: c for c in results["cells"]}
    assert by_id["mfn@cpu-box@fast"]["resumed"] is True
    assert by_id["mfn@cpu-box@fast"]["started"] == fast_started
    assert by_id["mfn@edge-orin@slow"]["status"] == "ok"
    assert not by_id["mfn@edge-orin@slow"].get("resumed")
    assert not _worker_children(out / "cells" / "mfn@edge-orin@slow")


def _listening(procs: list[psutil.Process]) -> list[tuple[str, str, int]]:
    found = []
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    found.append((p.name(), c.laddr.ip, c.laddr.port))
        except psutil.Error:
            pass
    return found


def _loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback


def test_local_instance_listens_on_loopback_only() -> None:
    from facebench.runner.ray_executor import ray_session

    with ray_session(None, num_cpus=1) as ray:
        assert ray.get(ray.remote(lambda: 1).remote()) == 1
        ours = psutil.Process().children(recursive=True)
        listening = _listening(ours)
    assert listening and all(_loopback(ip) for _, ip, _ in listening), listening


def test_cluster_listens_on_loopback_only(cluster: LoopbackCluster) -> None:
    listening = _listening(cluster.processes())
    assert listening and all(_loopback(ip) for _, ip, _ in listening), listening
