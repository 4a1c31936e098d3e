"""Run history: an SQL index of results.json files (SQLite by default, or PostgreSQL)."""

from facebench.history.cli import history_command
from facebench.history.store import (
    DEFAULT_URL,
    ENV_VAR,
    BaselineNotFound,
    HistoryStore,
    RunInfo,
    SeriesPoint,
    is_path_ref,
    resolve_url,
    suite_name,
)

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "BaselineNotFound",
    "HistoryStore",
    "RunInfo",
    "SeriesPoint",
    "history_command",
    "is_path_ref",
    "resolve_url",
    "suite_name",
]
