"""After the cells of a run: the interleaved pass of each efficiency protocol with
``interleave: true`` (:mod:`facebench.pipeline.interleave`), in a fresh process per protocol.

Each finished cell of such a protocol gets ``details["interleave"]`` (reference cell, rounds,
per-round p50s and ratios, method) and, per batch size, the metrics
``latency.b{B}.p50_vs_ref`` (median over rounds of p50 / the reference's p50),
``latency.b{B}.p50_vs_ref_ci_low`` and ``..._ci_high``. The reference cell's ratio is 1.
A pass that fails leaves the cells as they are, with ``details["interleave"] = {"error": …}``.
Values from an earlier run (``--resume``) are dropped and measured again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facebench.io import read_json
from facebench.paths import default_cache_dir
from facebench.plan import Cell
from facebench.suite.schema import EfficiencyProtocol

SUFFIX = "_vs_ref"
_OURS = re.compile(r"latency\.b[1-9][0-9]*\.p50_vs_ref(_ci_low|_ci_high)?")


def interleaved_groups(cells: list[Cell], results: dict[str, Any]) -> dict[str, list[Cell]]:
    """``{protocol id: its finished cells in plan order}`` for interleaved efficiency
    protocols with at least two finished cells on one device."""
    status = {r.get("id"): r.get("status") for r in results.get("cells", [])}
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        proto = c.protocol
        if isinstance(proto, EfficiencyProtocol) and proto.interleave and status.get(c.id) == "ok":
            groups.setdefault(proto.id, []).append(c)
    return {p: cs for p, cs in groups.items()
            if max(sum(c.device.id == d.device.id for c in cs) for d in cs) >= 2}


def attach_interleaved(results: dict[str, Any], out: Path, cells: list[Cell],
                       cache_dir: Path | None, timeout_s: float | None,
                       say: Callable[[str], None] = lambda line: None) -> None:
    """Run the interleaved pass of every interleaved protocol and attach its figures to the
    records of ``results`` in place (see the module docstring)."""
    records = {r.get("id"): r for r in results.get("cells", [])}
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    for rec in records.values():
        _clear(rec)
    for proto_id, group in interleaved_groups(cells, results).items():
        say(f"interleaved pass of {proto_id}: {len(group)} cells")
        try:
            found = run_pass(group, results["suite"], out, cache_dir,
                             group[0].protocol.cell_timeout_s or timeout_s)
        except Exception as exc:  # noqa: BLE001 - the pass never loses the cells' results
            for c in group:
                records[c.id].setdefault("details", {})["interleave"] = {
                    "error": f"{type(exc).__name__}: {exc}"}
            say(f"interleaved pass of {proto_id} failed: {exc}")
            continue
        for cid, info in found.items():
            rec = records[cid]
            rec.setdefault("details", {})["interleave"] = info
            metrics = rec.setdefault("metrics", {})
            for b, row in info["batch"].items():
                key = f"latency.b{b}.p50{SUFFIX}"
                metrics[key] = row["ratio"]
                metrics[f"{key}_ci_low"] = row["ci_low"]
                metrics[f"{key}_ci_high"] = row["ci_high"]


def _clear(rec: dict[str, Any]) -> None:
    metrics = rec.get("metrics") or {}
    for k in [k for k in metrics if _OURS.fullmatch(k)]:
        del metrics[k]
    (rec.get("details") or {}).pop("interleave", None)


def run_pass(group: list[Cell], suite_dump: dict[str, Any], out: Path, cache_dir: Path | None,
             timeout_s: float | None) -> dict[str, dict[str, Any]]:
    """:func:`facebench.pipeline.interleave.run_interleaved` in a fresh process."""
    job = {"suite": suite_dump, "cells": [c.id for c in group], "out_dir": str(out),
           "cache_dir": str(cache_dir) if cache_dir else None}
    with tempfile.TemporaryDirectory(prefix="facebench-interleave-") as tmp:
        job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "facebench.pipeline.interleave", str(job_path),
             str(result_path)], capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0 or not result_path.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"exit status {proc.returncode}: {tail[0][:300]}")
        found = read_json(result_path)
    if not isinstance(found, dict) or set(found) != {c.id for c in group}:
        raise RuntimeError("the pass answered for other cells than asked")
    return found
