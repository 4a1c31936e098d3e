"""Run history: every results.json indexed in SQLite or PostgreSQL (SQLAlchemy 2 Core).

``HistoryStore(url)`` with ``url`` a SQLAlchemy URL (``sqlite:///path.db``,
``postgresql+psycopg://user@host/db``), a plain file path (SQLite), or ``None`` for
``$FACEBENCH_HISTORY`` or else ``sqlite:///.facebench/history.db`` (relative to the cwd).
SQLite runs in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` write transactions, so
concurrent writers queue instead of failing; PostgreSQL uses the same code.
"""

from __future__ import annotations

import fnmatch
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from facebench.io import loads_bounded, to_json
from facebench.results import MAX_JSON_DEPTH, check_results, load_results

DEFAULT_URL = "sqlite:///.facebench/history.db"
ENV_VAR = "FACEBENCH_HISTORY"
BUSY_TIMEOUT_S = 60

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(128), primary_key=True),
    Column("suite", String(256), index=True),
    Column("suite_sha256", String(64)),
    Column("started", String(40), index=True),  # UTC ISO-8601, fixed width: sorts as text
    Column("finished", String(40)),
    Column("git_commit", String(64), index=True),
    Column("git_branch", String(256), index=True),
    Column("git_dirty", Boolean),
    Column("fingerprint", String(128), index=True),
    Column("results_path", Text),
    Column("facebench_version", String(32)),
    Column("schema_version", Integer),
    Column("n_cells", Integer),
    Column("n_failed", Integer),
    Column("recorded_at", String(40)),
)

results_json = Table(
    "results_json",
    metadata,
    Column("run_id", String(128), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("body", Text, nullable=False),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(128), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("cell_id", String(256), primary_key=True),
    Column("metric", String(128), primary_key=True),
    Column("model", String(128)),
    Column("device", String(128)),
    Column("protocol", String(128)),
    Column("value", Float),
    Index("ix_metrics_metric_cell", "metric", "cell_id"),
)


class BaselineNotFound(LookupError):
    """A baseline reference that names no run."""


@dataclass(frozen=True)
class RunInfo:
    """One row of ``runs``."""

    run_id: str
    suite: str | None
    suite_sha256: str | None
    started: str | None
    finished: str | None
    git_commit: str | None
    git_branch: str | None
    git_dirty: bool | None
    fingerprint: str | None
    results_path: str | None
    facebench_version: str | None
    schema_version: int | None
    n_cells: int | None
    n_failed: int | None
    recorded_at: str | None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class SeriesPoint:
    """One value of a metric over time."""

    run_id: str
    started: str | None
    git_commit: str | None
    git_branch: str | None
    cell_id: str
    value: float | None


def resolve_url(url: str | None = None) -> str:
    """The effective database URL (argument, then ``$FACEBENCH_HISTORY``, then the default)."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if "://" not in url:
        return f"sqlite:///{url}"
    for legacy in ("postgresql://", "postgres://"):
        if url.startswith(legacy):
            return "postgresql+psycopg://" + url[len(legacy) :]
    return url


def suite_name(results: dict[str, Any]) -> str | None:
    """The suite's name: ``suite.name``, else the stem of ``run.suite_path``."""
    name = (results.get("suite") or {}).get("name")
    if name:
        return str(name)
    path = (results.get("run") or {}).get("suite_path")
    return Path(path).stem if path else None


def _utc(stamp: Any) -> str | None:
    if not stamp:
        return None
    try:
        dt = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def run_row(results: dict[str, Any], results_path: str | None) -> dict[str, Any]:
    """The ``runs`` row for a results dict (pure)."""
    run = results.get("run") or {}
    git = run.get("git") or {}
    cells = results.get("cells") or []
    recorded = datetime.now(UTC).isoformat(timespec="microseconds")
    return {
        "run_id": str(run["id"]),
        "suite": suite_name(results),
        "suite_sha256": run.get("suite_sha256"),
        "started": _utc(run.get("started")) or recorded,  # never NULL: it orders "latest"
        "finished": _utc(run.get("finished")),
        "git_commit": git.get("commit"),
        "git_branch": git.get("branch"),
        "git_dirty": git.get("dirty"),
        "fingerprint": (results.get("environment") or {}).get("fingerprint"),
        "results_path": results_path,
        "facebench_version": results.get("facebench_version"),
        "schema_version": results.get("schema_version"),
        "n_cells": len(cells),
        "n_failed": sum(1 for c in cells if c.get("status") == "failed"),
        "recorded_at": recorded,
    }


def metric_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``metrics`` rows: one per cell × numeric-or-null metric (pure)."""
    run_id = str(results["run"]["id"])
    rows = []
    for cell in results.get("cells") or []:
        for name, value in (cell.get("metrics") or {}).items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and not numeric:
                continue  # non-numeric values are not indexed (the raw JSON keeps them)
            rows.append(
                {
                    "run_id": run_id,
                    "cell_id": cell["id"],
                    "metric": name,
                    "model": cell.get("model"),
                    "device": cell.get("device"),
                    "protocol": cell.get("protocol"),
                    "value": _number(value),
                }
            )
    return rows


def _retry_busy(step: Callable[[], object], deadline_s: float = BUSY_TIMEOUT_S) -> None:
    """Run ``step``, retrying while SQLite says the database is locked.

    Switching a new database to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY
    at once (without its busy handler) when another process is doing the same switch, so
    concurrent first opens need this loop on top of ``busy_timeout``.
    """
    end = time.monotonic() + deadline_s
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > end:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        _retry_busy(lambda: cur.execute("PRAGMA journal_mode = WAL"))
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # Take the write lock up front: a deferred transaction that later upgrades to a writer
        # gets SQLITE_BUSY immediately in WAL mode instead of waiting on the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class HistoryStore:
    """Index of runs in a SQL database; see the module docstring for URLs."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        u = make_url(self.url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_S})
            _sqlite_pragmas(self.engine)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))  # serialize DDL
            metadata.create_all(conn)

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- writing -----------------------------------------------------------------------------

    def record(
        self, results: dict[str, Any], results_path: str | os.PathLike[str] | None = None
    ) -> str:
        """Index a run (idempotent per run id); return its id. The stored body is the results as
        results.json holds them; ``ValueError`` (naming the file) when that is not a results.json
        :func:`facebench.results.load_results` would read: nothing is recorded."""
        path = str(Path(results_path).resolve()) if results_path is not None else None
        where = path or "results"
        try:
            body = to_json(results, compact=True)  # what results.json holds: NaN as null
            check_results(loads_bounded(body, max_depth=MAX_JSON_DEPTH), where)
        except RecursionError:
            raise ValueError(f"{where}: nested more than {MAX_JSON_DEPTH} levels") from None
        except ValueError as exc:
            text = str(exc)
            raise ValueError(text if text.startswith(where) else f"{where}: {text}") from None
        row = run_row(results, path)
        run_id = row["run_id"]
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first():
                    return run_id
                conn.execute(insert(runs), row)
                conn.execute(insert(results_json), {"run_id": run_id, "body": body})
                rows = metric_rows(results)
                if rows:
                    conn.execute(insert(metrics), rows)
        except IntegrityError:
            if not self.has_run(run_id):  # lost a race to a concurrent recorder of the same id
                raise
        return run_id

    # -- reading -----------------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool:
        """Whether a run id is indexed."""
        with self.engine.connect() as conn:
            q = select(runs.c.run_id).where(runs.c.run_id == run_id)
            return conn.execute(q).first() is not None

    def list_runs(
        self,
        suite: str | None = None,
        commit: str | None = None,
        branch: str | None = None,
        machine: str | None = None,
        limit: int | None = 50,
    ) -> list[RunInfo]:
        """Runs, newest first; ``commit`` and ``machine`` (fingerprint) match by prefix."""
        q = select(runs).order_by(
            runs.c.started.desc(), runs.c.recorded_at.desc(), runs.c.run_id.desc()
        )
        if suite is not None:
            q = q.where(runs.c.suite == suite)
        if commit:
            q = q.where(runs.c.git_commit.startswith(commit, autoescape=True))
        if branch is not None:
            q = q.where(runs.c.git_branch == branch)
        if machine:
            q = q.where(runs.c.fingerprint.startswith(machine, autoescape=True))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [RunInfo(**r._mapping) for r in conn.execute(q)]

    def results(self, run_id: str) -> dict[str, Any]:
        """The stored results.json of a run (JSON as :func:`facebench.results.load_results` reads
        it: ``ValueError`` when it is not, or nested too deep; check it with
        :func:`facebench.results.check_results`)."""
        with self.engine.connect() as conn:
            q = select(results_json.c.body).where(results_json.c.run_id == run_id)
            body = conn.execute(q).scalar_one_or_none()
        if body is None:
            raise BaselineNotFound(f"run {run_id!r} is not in the history at {self.url}")
        try:
            return loads_bounded(body, max_depth=MAX_JSON_DEPTH)
        except ValueError as exc:
            raise ValueError(f"run {run_id} in the history at {self.url}: its results are not "
                             f"readable ({exc})") from None

    def resolve_id(self, ref: str, *, suite: str | None = None, exclude: str | None = None) -> str:
        """The run id a reference names: ``latest``, ``latest:BRANCH``, an id or a unique prefix."""
        if ref == "latest" or ref.startswith("latest:"):
            branch = ref.partition(":")[2] or None
            for info in self.list_runs(suite=suite, branch=branch, limit=2):
                if info.run_id != exclude:
                    return info.run_id
            where = f" on branch {branch!r}" if branch else ""
            scope = f" of suite {suite!r}" if suite else ""
            raise BaselineNotFound(f"no earlier run{scope}{where} in the history at {self.url}")
        with self.engine.connect() as conn:
            q = select(runs.c.run_id).where(runs.c.run_id.startswith(ref, autoescape=True))
            ids = [r for r in conn.execute(q.limit(6)).scalars() if r != exclude]
        if ref in ids:
            return ref
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise BaselineNotFound(
                f"baseline {ref!r} is neither a path, 'latest[:BRANCH]', nor a run id in the "
                f"history at {self.url}"
            )
        raise BaselineNotFound(f"run id prefix {ref!r} is ambiguous: {', '.join(ids[:5])}, …")

    def resolve(
        self, ref: str, *, suite: str | None = None, exclude: str | None = None
    ) -> dict[str, Any]:
        """Results dict for a path (file or output dir), ``latest``, ``latest:BRANCH`` or run id.

        ``suite`` restricts ``latest`` to runs of that suite; ``exclude`` skips a run id (the
        run being gated, so it is never its own baseline).
        """
        if is_path_ref(ref):
            return load_results(ref)
        run_id = self.resolve_id(ref, suite=suite, exclude=exclude)
        return check_results(self.results(run_id), f"run {run_id} in the history at {self.url}")

    def metric_series(
        self,
        metric: str,
        cells: str = "*",
        *,
        suite: str | None = None,
        branch: str | None = None,
        machine: str | None = None,
    ) -> list[SeriesPoint]:
        """A metric over time (oldest first) for cells whose id matches the glob ``cells``."""
        q = (
            select(
                metrics.c.run_id,
                runs.c.started,
                runs.c.git_commit,
                runs.c.git_branch,
                metrics.c.cell_id,
                metrics.c.value,
            )
            .join(runs, runs.c.run_id == metrics.c.run_id)
            .where(metrics.c.metric == metric)
            .order_by(runs.c.started, runs.c.recorded_at, metrics.c.cell_id)
        )
        if suite is not None:
            q = q.where(runs.c.suite == suite)
        if branch is not None:
            q = q.where(runs.c.git_branch == branch)
        if machine:
            q = q.where(runs.c.fingerprint.startswith(machine, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [SeriesPoint(*r) for r in rows if fnmatch.fnmatchcase(r.cell_id, cells)]


def is_path_ref(ref: str) -> bool:
    """Whether a baseline reference is a filesystem path (exists, or looks like one)."""
    if ref == "latest" or ref.startswith("latest:"):
        return False
    return Path(ref).exists() or "/" in ref or ref.endswith(".json")
