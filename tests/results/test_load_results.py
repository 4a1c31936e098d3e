"""One results loader: the DataFrame of ``facebench.load_results`` against results.json read with
``json``; a schema_version this facebench does not read is refused everywhere, naming the file;
the typed cell record round-trips results.json."""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import facebench
from facebench.history import HistoryStore
from facebench.metrics.catalog import metric_info
from facebench.results import CELL_KEYS, SCHEMA_VERSION, CellRecord, metric_flag
from facebench.results import load_results as load_dict

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "reports" / "lfw-mobilefacenet"


def raw(path: Path) -> dict[str, Any]:
    return json.loads((path / "results.json").read_text(encoding="utf-8"))


def test_frame_matches_results_json() -> None:
    data = raw(REPORT)
    df = facebench.load_results(REPORT)
    assert list(df.columns) == ["run_id", "cell_id", "model", "device", "protocol", "kind",
                                "status", "metric", "value", "flag", "unit", "direction"]
    assert set(df.run_id) == {data["run"]["id"]}
    assert list(dict.fromkeys(df.cell_id)) == [c["id"] for c in data["cells"]]
    assert df.value.dtype == "float64"
    for cell in data["cells"]:
        rows = df[df.cell_id == cell["id"]]
        for col in ("model", "device", "protocol", "kind", "status"):
            assert set(rows[col]) == {cell[col]}
        assert list(rows.metric) == list(cell["metrics"])  # same metrics, same order
        for name, value, got, flag, unit, direction in zip(
                rows.metric, cell["metrics"].values(), rows.value, rows.flag, rows.unit,
                rows.direction, strict=True):
            if value is None or metric_flag(cell, name):  # flagged: a measurement error
                assert math.isnan(got), name
            else:
                assert got == value, name
            assert (flag if isinstance(flag, str) else None) == metric_flag(cell, name), name
            info = metric_info(name)
            assert info is not None and (unit, direction) == (info.unit, info.direction), name
    assert len(df) == sum(len(c["metrics"]) for c in data["cells"])
    acc = df[(df.metric == "accuracy") & (df.kind == "verification")]
    assert acc.unit.tolist() == ["fraction"] and acc.direction.tolist() == ["higher"]
    lat = df[df.metric == "latency.b8.p50_ms"]
    assert lat.unit.tolist() == ["ms"] and lat.direction.tolist() == ["lower"]


def test_folder_and_file_read_the_same() -> None:
    pd.testing.assert_frame_equal(facebench.load_results(REPORT),
                                  facebench.load_results(REPORT / "results.json"))
    assert load_dict(REPORT) == load_dict(REPORT / "results.json") == raw(REPORT)


def test_failed_cells_give_one_status_row_with_nan(tmp_path: Path) -> None:
    data = raw(REPORT)
    data["cells"][1].update(status="failed", metrics={}, error={"type": "X", "message": "boom"})
    (tmp_path / "results.json").write_text(json.dumps(data), encoding="utf-8")
    df = facebench.load_results(tmp_path)
    rows = df[df.cell_id == data["cells"][1]["id"]]
    assert rows.metric.tolist() == ["status"] and rows.status.tolist() == ["failed"]
    assert math.isnan(rows.value.iloc[0]) and rows.unit.isna().all()


def future(tmp_path: Path) -> Path:
    """A copy of the committed run claiming a schema_version from the future."""
    out = tmp_path / "future"
    out.mkdir()
    data = raw(REPORT)
    data["schema_version"] = SCHEMA_VERSION + 1
    data["run"]["id"] = "future-run"
    (out / "results.json").write_text(json.dumps(data), encoding="utf-8")
    return out


def test_future_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    out = future(tmp_path)
    for load in (facebench.load_results, load_dict):
        for arg in (out, out / "results.json"):
            with pytest.raises(ValueError) as info:
                load(arg)
            msg = str(info.value)
            assert str(out / "results.json") in msg
            assert f"schema_version {SCHEMA_VERSION + 1}" in msg and "upgrade facebench" in msg


def test_missing_or_damaged_results_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "results.json")):
        facebench.load_results(tmp_path)
    bad = tmp_path / "results.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a readable results.json"):
        load_dict(tmp_path)
    bad.write_text(json.dumps({"schema_version": 1, "run": {"id": "x"}}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"'cells' missing or malformed"):
        load_dict(bad)
    bad.write_text(json.dumps({"run": {"id": "x"}, "cells": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="schema_version None is not supported.*re-run"):
        load_dict(bad)
    data = raw(REPORT)
    data["cells"][0]["metrics"]["accuracy"] = "high"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="metric 'accuracy' is 'high', not a number"):
        facebench.load_results(bad)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACEBENCH_HISTORY": f"sqlite:///{cwd / 'history.db'}"}
    return subprocess.run([sys.executable, "-m", "facebench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_gate_report_and_baselines_refuse_a_future_schema(tmp_path: Path) -> None:
    """`facebench gate` read results.json with a loader that skipped the version check."""
    out = future(tmp_path)
    current = tmp_path / "current"
    shutil.copytree(REPORT, current)
    for args in (["gate", str(out)], ["gate", str(current), "--baseline", str(out)],
                 ["report", str(out)], ["report", str(current), "--baseline", str(out)]):
        res = _cli(args, tmp_path)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        err = " ".join(res.stderr.split())
        assert str(out / "results.json") in err and "schema_version 2" in err, (args, err)
    with HistoryStore(f"sqlite:///{tmp_path / 'h.db'}") as store:
        with pytest.raises(ValueError, match="schema_version 2"):
            store.resolve(str(out))
        with pytest.raises(ValueError, match="schema_version 2"):
            store.record(raw(out), out)  # this facebench records only what it reads
        store.record({**raw(out), "schema_version": SCHEMA_VERSION}, out)
    with sqlite3.connect(tmp_path / "h.db") as conn:  # as a newer facebench sharing it would
        conn.execute("UPDATE results_json SET body = ? WHERE run_id = 'future-run'",
                     (json.dumps(raw(out)),))
    with (HistoryStore(f"sqlite:///{tmp_path / 'h.db'}") as store,
          pytest.raises(ValueError, match="run future-run in the history.*schema_version 2")):
        store.resolve("future-run")


def test_cell_record_round_trips_results_json() -> None:
    for cell in raw(REPORT)["cells"]:
        rec = CellRecord.from_dict(cell)
        assert rec.to_dict() == cell and list(rec.to_dict()) == list(cell)
        assert rec.id == cell["id"] and rec.metrics == cell["metrics"]
    node = {"node_id": "n", "hostname": "h", "ip": "1.2.3.4", "attempt": 1}
    cell = {**raw(REPORT)["cells"][0], "node": node, "resumed": True}
    rec = CellRecord.from_dict(cell)
    assert rec.node == node and rec.extra["resumed"] is True and rec.to_dict() == cell
    with pytest.raises(ValueError, match="has no kind, status"):
        CellRecord.from_dict({"id": "a", "model": "m", "device": "d", "protocol": "p"})


def test_worker_builds_a_typed_record_with_the_contract_keys(tmp_path: Path) -> None:
    from facebench.plan import plan
    from facebench.runner.worker import cell_record
    from facebench.suite import load_suite

    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(
        "name: s\nmodels:\n  - {id: mfn, source: onnx, path: m.onnx}\n"
        "devices:\n  - {id: cpu, engine: onnxruntime, device: cpu}\n"
        "protocols:\n  - {id: eff, kind: efficiency}\n", encoding="utf-8")
    (tmp_path / "m.onnx").write_bytes(b"")
    cell = plan(load_suite(suite_file))[0]
    rec = cell_record(cell)
    assert isinstance(rec, CellRecord) and rec.status == "pending" and rec.started
    d = rec.to_dict()
    assert tuple(d) == CELL_KEYS
    assert (d["id"], d["slug"], d["model"], d["device"], d["protocol"], d["kind"]) == (
        cell.id, cell.slug, "mfn", "cpu", "eff", "efficiency")
    assert d["spec_sha256"] == cell.spec_sha256
    assert (d["reason"], d["error"], d["duration_s"]) == (None, None, None)
    assert d["metrics"] == d["details"] == d["artifacts"] == {}
