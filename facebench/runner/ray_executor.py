"""The Ray executor: each cell is a Ray task on a node that has its device.

The task runs the cell in a fresh subprocess on that node exactly as the local executor does
(:func:`facebench.runner.local.run_in_subprocess`) and returns the record, with a top-level
``node`` field saying where it ran. Records reach ``on_cell_done`` in completion order, so
``results.json`` is current if the driver dies and ``--resume`` picks up from there.

Resources a cell asks for: ``num_cpus=1``; ``num_gpus=1`` for ``device: cuda``; ``{label: 1}``
when its device has a ``label`` (a Ray custom resource). A lost worker is retried by Ray
(``max_retries``); a retry that finds the cell already finished in this run returns that result.
Without a shared filesystem the node works in a private folder and ships the cell's files back.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facebench.io import atomic_write_bytes, atomic_write_json, read_json
from facebench.paths import default_cache_dir
from facebench.pipeline.efficiency import PEAKS_FILE
from facebench.plan import Cell
from facebench.results import now
from facebench.runner.inputs import InputDigests
from facebench.runner.local import (
    ProgressFn,
    cell_timeout,
    finished_record,
    resume_check,
    run_in_subprocess,
)
from facebench.runner.outdir import cell_folder
from facebench.runner.ray_cluster import (  # noqa: F401 (re-exported)
    ADDRESS_ENV,
    COORDINATOR_SHARE,
    FORWARDED_ENV,
    INSTALL_HINT,
    LOCAL_OBJECT_STORE_BYTES,
    LOOPBACK_ENV,
    MARKER,
    MAX_RETRIES,
    NODE_IP_ENV,
    SHARD_SHARE,
    SHIP_LIMIT_BYTES,
    RayNotInstalled,
    _check_loopback,
    child_exit_status,
    import_ray,
    is_loopback,
    prepare_env,
    ray_session,
    resolve_address,
    sigchld_ignored,
    task_options,
)
from facebench.runner.worker import cell_record
from facebench.suite.schema import DeviceSpec

Executor = Callable[..., None]


# ---- resources -------------------------------------------------------------------------------


def is_sharded(cell: Cell) -> bool:
    return bool(getattr(cell.protocol, "shard_size", None))


def cell_options(cell: Cell, max_retries: int) -> dict[str, Any]:
    share = COORDINATOR_SHARE if is_sharded(cell) else 1.0
    return {**task_options(cell.device, share), "max_retries": max_retries,
            "retry_exceptions": False, "name": f"facebench:{cell.id}"}


def missing_resource(device: DeviceSpec, nodes: list[dict[str, Any]]) -> str | None:
    """Why no live node of the cluster can run work on ``device`` (``None`` if one can)."""
    need = {"CPU": 1.0, **({"GPU": 1.0} if device.device == "cuda" else {}),
            **({device.label: 1.0} if device.label else {})}
    for node in nodes:
        have = node.get("Resources", {})
        if node.get("Alive") and all(have.get(k, 0) >= v for k, v in need.items()):
            return None
    what = " and ".join(f"{v:g} {k}" for k, v in need.items())
    hint = (f"; start one with `ray start --address HEAD:PORT --resources "
            f"'{{\"{device.label}\": 1}}'`" if device.label else "")
    return f"no node of the Ray cluster offers {what} (device {device.id!r}){hint}"


# ---- driver ----------------------------------------------------------------------------------


def make_ray_executor(address: str | None = None, *, num_cpus: int | None = None,
                      max_retries: int = MAX_RETRIES) -> Executor:
    """An executor with :func:`facebench.runner.local.run_cells`'s signature that runs cells on
    the Ray cluster at ``address`` (``None``: a local instance with ``num_cpus`` CPUs)."""
    prepare_env(resolve_address(address))
    import_ray()

    def run_cells(cells: list[Cell], suite_dump: dict[str, Any], out_dir: Path,
                  cache_dir: Path | None, *, resume: bool, timeout_s: float | None,
                  on_cell_done: Callable[[dict[str, Any]], None],
                  progress: ProgressFn | None = None,
                  digests: InputDigests | None = None) -> None:
        out_dir = Path(out_dir).resolve()
        digests = digests if digests is not None else InputDigests()
        todo: list[Todo] = []
        for cell in cells:
            inputs = digests(cell)
            rec, why = resume_check(out_dir, cell, inputs) if resume else (None, None)
            if rec is None:
                todo.append(Todo(cell, inputs, why))
            else:
                rec["resumed"] = True
                on_cell_done(rec)
        if not todo:
            return
        # A local instance stands for this machine: it offers every label, as the local
        # executor ignores them.
        labels = {t.cell.device.label: 1.0 for t in todo if t.cell.device.label}
        with ray_session(address, num_cpus=num_cpus, resources=labels) as ray:
            _submit_and_collect(ray, todo, suite_dump, out_dir, cache_dir, timeout_s,
                                on_cell_done, progress, max_retries)

    return run_cells


@dataclass(frozen=True)
class Todo:
    """A cell to run: the fingerprint of its inputs, and why its earlier result is not reused."""

    cell: Cell
    inputs: dict[str, str]
    rerun_reason: str | None = None


def _submit_and_collect(ray: Any, todo: list[Todo], suite_dump: dict[str, Any], out_dir: Path,
                        cache_dir: Path | None, timeout_s: float | None,
                        on_cell_done: Callable[[dict[str, Any]], None],
                        progress: ProgressFn | None, max_retries: int) -> None:
    token = secrets.token_hex(8)  # this run; tells a task's retry from a fresh start
    probe = out_dir / f".ray-probe-{token}"  # a node that reads it shares our filesystem
    atomic_write_bytes(probe, token.encode())
    env = {k: os.environ.get(k) for k in FORWARDED_ENV}
    remote = ray.remote(cell_task)
    nodes = ray.nodes()
    pending: dict[Any, Todo] = {}
    try:
        for item in todo:
            cell = item.cell
            reason = missing_resource(cell.device, nodes)
            if reason:  # no result.json: a later --resume on a bigger cluster runs it
                rec = cell_record(cell).to_dict()
                rec.update(status="skipped", reason=reason, finished=now())
                on_cell_done(rec)
                continue
            ref = remote.options(**cell_options(cell, max_retries)).remote(
                cell, suite_dump, str(out_dir), str(cache_dir) if cache_dir else None,
                cell_timeout(cell, timeout_s), token, env, item.inputs)
            pending[ref] = item
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                item = pending.pop(ref)
                rec = _receive(ray, ref, item.cell, out_dir)
                rec.setdefault("finished", now())
                if item.rerun_reason:
                    rec["rerun_reason"] = item.rerun_reason
                on_cell_done(rec)
    finally:
        for ref in pending:  # interrupted driver: stop what is still running
            ray.cancel(ref, force=True)
        probe.unlink(missing_ok=True)


def _receive(ray: Any, ref: Any, cell: Cell, out_dir: Path) -> dict[str, Any]:
    """The task's record (its files written under ``out_dir`` if shipped), or a failed record
    when Ray gave up on the task (worker lost more than ``max_retries`` times, node died)."""
    from ray.exceptions import RayError

    cell_dir = cell_folder(out_dir, cell.slug)
    try:
        out = ray.get(ref)
    except RayError as exc:
        rec = cell_record(cell).to_dict()
        rec.update(status="failed", duration_s=None, error={
            "type": type(exc).__name__, "message": f"Ray task lost: {str(exc)[:1500]}",
            "traceback": ""})
        atomic_write_json(cell_dir / "result.json", rec, root=cell_dir)
        return rec
    for name, data in (out["files"] or {}).items():
        target = cell_dir / name
        if not (target.is_file() and target.read_bytes() == data):
            atomic_write_bytes(target, data, root=cell_dir)
    return out["record"]


# ---- task (runs on a cluster node) -----------------------------------------------------------


def node_info() -> dict[str, Any]:
    import ray

    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "ip": ray.util.get_node_ip_address()}


def cell_task(cell: Cell, suite_dump: dict[str, Any], out_dir: str, cache_dir: str | None,
              timeout_s: float | None, token: str, env: dict[str, str | None],
              inputs: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one cell on this node in a subprocess; ``{"record", "files"}`` (files: the cell
    folder's contents when this node does not share the driver's filesystem, else ``None``).
    ``inputs``: the driver's fingerprint of what the cell reads (default: taken here)."""
    import ray

    inputs = inputs if inputs is not None else InputDigests()(cell)
    node = node_info()
    shared = _reads(Path(out_dir) / f".ray-probe-{token}", token)
    out = Path(out_dir) if shared else Path(tempfile.gettempdir()) / "facebench-ray" / token
    cell_dir = cell_folder(out, cell.slug)
    marker = cell_dir / MARKER
    prev = _read_marker(marker)
    retry = prev.get("token") == token
    attempt = int(prev.get("attempt", 0)) + 1 if retry else 1
    reap_orphans(cell_dir)  # the subprocess of a killed attempt, if it outlived its worker
    rec = finished_record(out, cell, inputs) if retry else None
    if rec is not None:  # a previous attempt finished the cell: never recompute it
        rec.setdefault("node", {k: prev.get(k) for k in ("node_id", "hostname", "ip")}
                       | {"attempt": attempt - 1})
    else:
        (cell_dir / "result.json").unlink(missing_ok=True)
        atomic_write_json(marker, {"token": token, "attempt": attempt, "pid": os.getpid(),
                                   **node})
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ[ADDRESS_ENV] = ray.get_runtime_context().gcs_address
        os.environ[NODE_IP_ENV] = node["ip"]
        cache = Path(cache_dir) if cache_dir else default_cache_dir()
        with child_exit_status():
            rec = run_in_subprocess(cell, suite_dump, out, cache, timeout_s, lambda *_: None,
                                    inputs)
        rec["node"] = {**node, "attempt": attempt}
    atomic_write_json(cell_dir / "result.json", rec, root=cell_dir)
    if shared:
        return {"record": rec, "files": None}
    files = _pack(cell_dir, rec)
    shutil.rmtree(cell_dir, ignore_errors=True)
    with contextlib.suppress(OSError):  # other cells of this run may still be there
        (out / "cells").rmdir()
        (out / PEAKS_FILE).unlink(missing_ok=True)  # the last cell here: its peaks go too
        out.rmdir()
    return {"record": rec, "files": files}


def _reads(path: Path, expected: str) -> bool:
    try:
        return path.read_text() == expected
    except OSError:
        return False


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pack(cell_dir: Path, rec: dict[str, Any]) -> dict[str, bytes]:
    """The cell folder's files (hidden ones excepted) by relative path, up to a size limit."""
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(p for p in cell_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(cell_dir).as_posix()
        if rel.startswith(".") or "/." in rel or rel == "result.json":
            continue
        size = path.stat().st_size
        if total + size > SHIP_LIMIT_BYTES:
            rec["node"].setdefault("files_not_shipped", []).append(rel)
            continue
        files[rel] = path.read_bytes()
        total += size
    files["result.json"] = (cell_dir / "result.json").read_bytes()
    if rec["node"].get("files_not_shipped"):
        atomic_write_json(cell_dir / "result.json", rec)
        files["result.json"] = (cell_dir / "result.json").read_bytes()
    return files


def reap_orphans(cell_dir: Path) -> int:
    """Kill cell workers (and their children) still running on this node for ``cell_dir``:
    left behind when the Ray worker that started them was killed."""
    import psutil

    prefix = str(cell_dir / ".job.")
    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if "facebench.runner.worker" not in cmd or not any(a.startswith(prefix) for a in cmd):
            continue
        try:
            victims = [*proc.children(recursive=True), proc]
            for p in victims:
                p.kill()
            psutil.wait_procs(victims, timeout=10)
            killed += 1
        except psutil.Error:
            pass
    return killed
