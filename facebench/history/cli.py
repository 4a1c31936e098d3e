"""``facebench history``: list indexed runs as a table or JSON."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from facebench.bounds import MAX_LIST
from facebench.history.store import HistoryStore, RunInfo
from facebench.text import plain


def _text(value: object) -> Text:
    """A table cell from data: shown as it is (never read as rich markup), control characters
    escaped (never sent to the terminal)."""
    return Text(plain(value))


def runs_table(rows: list[RunInfo], title: str) -> Table:
    """A rich table of runs (newest first)."""
    table = Table(title=_text(title))
    for col in ("run", "suite", "started (UTC)", "commit", "branch", "machine", "cells", "failed"):
        table.add_column(col, no_wrap=col in ("run", "commit"))
    for r in rows:
        commit = (r.git_commit or "")[:10] + ("+" if r.git_dirty else "")
        table.add_row(*map(_text, (
            r.run_id,
            r.suite or "",
            (r.started or "")[:19],
            commit,
            r.git_branch or "",
            (r.fingerprint or "")[:12],
            r.n_cells or 0,
            r.n_failed or 0,
        )))
    return table


def history_command(
    url: str | None = None,
    suite: str | None = None,
    commit: str | None = None,
    branch: str | None = None,
    machine: str | None = None,
    limit: int = 50,
    as_json: bool = False,
) -> int:
    """Print the runs matching the filters; exit code 0, or 2 when the database is unusable or
    ``limit`` is not in 1..:data:`~facebench.bounds.MAX_LIST`."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        print(f"error: --limit must be a whole number from 1 to {MAX_LIST}, got {limit!r}",
              file=sys.stderr)
        return 2
    try:
        with HistoryStore(url) as store:
            rows = store.list_runs(
                suite=suite, commit=commit, branch=branch, machine=machine, limit=limit
            )
            where = store.url
    except SQLAlchemyError as exc:
        print(f"error: cannot read history at {url or 'default'}: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        Console(width=160).print(runs_table(rows, f"{len(rows)} run(s) in {where}"))
    return 0
