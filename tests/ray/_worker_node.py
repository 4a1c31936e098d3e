"""Start a Ray worker node on 127.0.0.1 and block until SIGTERM (``ray start --block`` for
loopback: ``ray start --address`` refuses to add a node when Ray is kept on loopback)."""

from __future__ import annotations

import json
import signal
import sys
import threading


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    import ray._private.node
    import ray._private.parameter

    params = ray._private.parameter.RayParams(
        gcs_address=spec["gcs_address"], node_ip_address="127.0.0.1", num_cpus=spec["num_cpus"],
        resources=spec["resources"], object_store_memory=spec["object_store_memory"],
        temp_dir=spec["temp_dir"], include_log_monitor=False, node_manager_port=0,
        min_worker_port=0, max_worker_port=0, **spec["ports"])
    node = ray._private.node.Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    print(json.dumps({"node_id": node.node_id}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    node.kill_all_processes(check_alive=False, allow_graceful=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
