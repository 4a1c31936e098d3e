"""History fixtures: a real results.json, and a throwaway PostgreSQL server on 127.0.0.1.

The server is started once per session with the Debian ``postgresql`` binaries (``initdb`` +
``pg_ctl``), as the ``postgres`` user when running as root, in a temp dir, listening only on
127.0.0.1 at a free port, with trust auth. Absent binaries skip the PostgreSQL tests, except
under ``CI`` where they fail.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

MAKE_RUN = Path(__file__).resolve().parents[1] / "gates" / "make_run.py"


def pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (PATH, then Debian's layout)."""
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return Path(dirs[-1]) if dirs and Path(dirs[-1], "initdb").exists() else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_db_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """``postgresql+psycopg://postgres@127.0.0.1:PORT`` of a server living for the session."""
    bindir = pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="facebench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    run = lambda cmd: subprocess.run(  # noqa: E731
        _as_db_user(cmd), capture_output=True, text=True, timeout=120
    )
    try:
        init = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        res = run([*init, "--no-sync", "-E", "UTF8", "--locale=C"])
        if res.returncode != 0:
            pytest.fail(f"initdb failed: {res.stderr}")
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = _free_port()
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
            ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts]
            res = run([*ctl, "-w", "-t", "60", "start"])
            if res.returncode == 0:
                break
        else:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            pytest.fail(f"pg_ctl start failed: {res.stderr}\n{log[-2000:]}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def _pg_database(server: str) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = server.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty history database URL: SQLite file, or a new database on the PG server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return _pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture(scope="session")
def real_results(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real results.json (real ORT timings), made by a fresh process."""
    out = tmp_path_factory.mktemp("hist-run")
    subprocess.run(
        [
            sys.executable,
            str(MAKE_RUN),
            str(out),
            "--run-id",
            "base",
            "--threads",
            "1",
            "--samples",
            "60",
        ],
        check=True,
        timeout=120,
    )
    return json.loads((out / "results.json").read_text())
