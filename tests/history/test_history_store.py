"""HistoryStore on real SQLite files and a real PostgreSQL server, across real processes."""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from facebench.history import BaselineNotFound, HistoryStore, history_command, resolve_url
from facebench.history.store import metrics, runs

T0 = datetime(2025, 11, 28, 1, 0, tzinfo=UTC)  # in the past: an undated run is newest


def variant(
    base: dict[str, Any],
    run_id: str,
    minutes: int = 0,
    branch: str = "main",
    commit: str = "a" * 40,
    suite: str = "ci-smoke",
    machine: str | None = None,
) -> dict[str, Any]:
    """The real run as if made at another time, commit or branch (ids and metadata only)."""
    r = copy.deepcopy(base)
    r["run"]["id"] = run_id
    r["run"]["started"] = (T0 + timedelta(minutes=minutes)).isoformat()
    r["run"]["git"] = {"commit": commit, "branch": branch, "dirty": False}
    r["suite"]["name"] = suite
    if machine:
        r["environment"]["fingerprint"] = machine
    return r


def _seed(store: HistoryStore, base: dict[str, Any]) -> None:
    store.record(variant(base, "20261128T010000Z-aaaa01", 0, commit="c1" + "0" * 38))
    store.record(
        variant(base, "20261128T011000Z-aaaa02", 10, branch="feature", commit="c2" + "0" * 38)
    )
    store.record(
        variant(base, "20261128T012000Z-bbbb03", 20, commit="c3" + "0" * 38, machine="f" * 64)
    )
    store.record(variant(base, "20261128T013000Z-bbbb04", 30, suite="nightly"))
    store.record(variant(base, "20261128T014000Z-cccc05", 40, branch="feat/x", suite="nightly"))


def test_record_is_idempotent_and_lists_newest_first(db_url: str, real_results: dict) -> None:
    with HistoryStore(db_url) as store:
        _seed(store, real_results)
        assert (
            store.record(variant(real_results, "20261128T010000Z-aaaa01"))
            == "20261128T010000Z-aaaa01"
        )
        ids = [r.run_id for r in store.list_runs()]
        assert ids == [
            "20261128T014000Z-cccc05",
            "20261128T013000Z-bbbb04",
            "20261128T012000Z-bbbb03",
            "20261128T011000Z-aaaa02",
            "20261128T010000Z-aaaa01",
        ]
        assert [r.run_id[-2:] for r in store.list_runs(suite="ci-smoke", branch="main")] == [
            "03",
            "01",
        ]
        assert [r.run_id[-2:] for r in store.list_runs(commit="c2")] == ["02"]
        assert [r.run_id[-2:] for r in store.list_runs(machine="fff")] == ["03"]
        assert len(store.list_runs(limit=2)) == 2
        info = store.list_runs(commit="c1")[0]
        assert info.started == "2025-11-28T01:00:00.000000+00:00" and info.n_cells == 1
        assert info.fingerprint == real_results["environment"]["fingerprint"]
        with store.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(metrics)).scalar_one()
        assert n == 5 * len(real_results["cells"][0]["metrics"])
        # a run without a start time still orders (by when it was recorded), never as NULL
        undated = variant(real_results, "undated")
        undated["run"]["started"] = None
        store.record(undated)
        assert store.list_runs(limit=1)[0].run_id == "undated"


def test_resolve_refs(db_url: str, real_results: dict, tmp_path: Path) -> None:
    with HistoryStore(db_url) as store:
        _seed(store, real_results)
        rid = lambda ref, **kw: store.resolve(ref, **kw)["run"]["id"]  # noqa: E731
        assert rid("latest") == "20261128T014000Z-cccc05"
        assert rid("latest:feat/x") == "20261128T014000Z-cccc05"  # a branch with a slash
        assert rid("latest", suite="ci-smoke") == "20261128T012000Z-bbbb03"
        assert rid("latest:main", suite="ci-smoke") == "20261128T012000Z-bbbb03"
        assert rid("latest:main", suite="ci-smoke", exclude="20261128T012000Z-bbbb03") == (
            "20261128T010000Z-aaaa01"
        )
        assert rid("latest:feature") == "20261128T011000Z-aaaa02"
        assert rid("20261128T011000Z-aaaa02") == "20261128T011000Z-aaaa02"
        assert rid("20261128T0120") == "20261128T012000Z-bbbb03"  # unique prefix
        with pytest.raises(BaselineNotFound, match="ambiguous"):
            store.resolve("20261128T01")
        with pytest.raises(BaselineNotFound, match="neither a path"):
            store.resolve("nope")
        with pytest.raises(BaselineNotFound, match="on branch 'release'"):
            store.resolve("latest:release")
        # the stored JSON is the run, bit for bit (a baseline survives its output dir)
        assert store.resolve("20261128T010000Z-aaaa01")["cells"] == real_results["cells"]
        # a path: the file or its output directory
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "results.json").write_text(json.dumps(real_results))
        assert store.resolve(str(tmp_path / "out"))["run"]["id"] == "base"
        assert store.resolve(str(tmp_path / "out" / "results.json"))["run"]["id"] == "base"


def test_metric_series(db_url: str, real_results: dict) -> None:
    with HistoryStore(db_url) as store:
        _seed(store, real_results)
        series = store.metric_series("latency.p50_ms", "mobilefacenet@*", suite="ci-smoke")
        assert [p.run_id[-2:] for p in series] == ["01", "02", "03"]
        assert series[0].value == pytest.approx(
            real_results["cells"][0]["metrics"]["latency.p50_ms"]
        )
        assert store.metric_series("gmac", "*", branch="main")[0].value is None  # null stays null
        assert store.metric_series("latency.p50_ms", "dlib@*") == []


def _record_in_subprocess(url: str, results_path: Path) -> None:
    code = (
        "import json,sys; from facebench.history import HistoryStore; "
        "s=HistoryStore(sys.argv[1]); print(s.record(json.load(open(sys.argv[2])), sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, url, str(results_path)], check=True, timeout=60)


def test_history_survives_across_processes(db_url: str, real_results: dict, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(variant(real_results, "20261128T020000Z-proc01", 60)))
    _record_in_subprocess(db_url, path)
    code = (
        "import sys; from facebench.history import HistoryStore; "
        "print(HistoryStore(sys.argv[1]).resolve('latest:main')['run']['id'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, db_url], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "20261128T020000Z-proc01"
    with HistoryStore(db_url) as store:
        assert store.list_runs()[0].results_path == str(path.resolve())


def _writer(url: str, base: dict[str, Any], tag: str, n: int, barrier: Any) -> None:
    barrier.wait()
    store = HistoryStore(url)  # both processes also race to create the schema
    for i in range(n):
        store.record(variant(base, f"20261128T03{i:04d}Z-{tag}", minutes=i))
    store.close()


def test_concurrent_writers_lose_nothing(db_url: str, real_results: dict) -> None:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_writer, args=(db_url, real_results, tag, 20, barrier))
        for tag in ("p1", "p2")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with HistoryStore(db_url) as store:
        assert len(store.list_runs(limit=None)) == 40
        with store.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(metrics)).scalar_one()
            tags = conn.execute(select(func.count(runs.c.run_id.distinct()))).scalar_one()
        assert n == 40 * len(real_results["cells"][0]["metrics"]) and tags == 40


def test_url_resolution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, real_results: dict
) -> None:
    monkeypatch.delenv("FACEBENCH_HISTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_url() == "sqlite:///.facebench/history.db"
    with HistoryStore() as store:
        store.record(real_results)
    assert (tmp_path / ".facebench" / "history.db").is_file()
    monkeypatch.setenv("FACEBENCH_HISTORY", str(tmp_path / "env.db"))
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"
    assert resolve_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_history_command(db_url: str, real_results: dict, capsys: pytest.CaptureFixture) -> None:
    with HistoryStore(db_url) as store:
        _seed(store, real_results)
    assert history_command(db_url, suite="ci-smoke", branch="main", as_json=True) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"][-2:] for r in rows] == ["03", "01"] and rows[0]["git_branch"] == "main"
    assert history_command(db_url, commit="c2") == 0
    out = capsys.readouterr().out
    assert "20261128T011000Z-aaaa02" in out and "feature" in out and "1 run(s)" in out
    assert history_command("postgresql+psycopg://nobody@127.0.0.1:1/none") == 2
