"""Operation history: every lifecycle request and its outcome, on record.

``open_store(url)`` picks the backend from the URL:

* ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (SQLAlchemy's spelling), a
  plain file path, or ``sqlite:///:memory:`` — the embedded default;
* ``postgresql://user@host:5432/db`` (or ``postgres://``) — for several replicas.

The default store is ``sqlite:///$XDG_STATE_HOME/tenant-lifecycle/history.db``
(``~/.local/state`` when ``XDG_STATE_HOME`` is unset), overridden by ``TENANTCTL_STORE``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bridge.errors import UsageError

from .model import (
    DEFAULT_QUERY_LIMIT,
    DEFAULT_RETENTION,
    OUTCOMES,
    HistoryError,
    HistoryRecord,
    HistoryStore,
)
from .sqlite import SqliteHistoryStore

__all__ = [
    "DEFAULT_QUERY_LIMIT",
    "DEFAULT_RETENTION",
    "OUTCOMES",
    "HistoryError",
    "HistoryRecord",
    "HistoryStore",
    "default_store_url",
    "open_store",
]

STORE_ENV = "TENANTCTL_STORE"


def default_store_url(environ: Mapping[str, str] | None = None) -> str:
    """``TENANTCTL_STORE``, else the SQLite file under the XDG state directory."""
    env = os.environ if environ is None else environ
    if env.get(STORE_ENV):
        return env[STORE_ENV]
    state = env.get("XDG_STATE_HOME") or str(
        Path(env.get("HOME", "~")).expanduser() / ".local/state"
    )
    return f"sqlite:///{Path(state) / 'tenant-lifecycle' / 'history.db'}"


def open_store(url: str) -> HistoryStore:
    """Open (creating and migrating as needed) the history store at ``url``."""
    if url.startswith(("postgresql://", "postgres://")):
        # Lazily: psycopg is only needed by deployments that use PostgreSQL.
        from .postgres import PostgresHistoryStore  # noqa: PLC0415

        return PostgresHistoryStore(url)
    if url.startswith("sqlite:///"):
        return SqliteHistoryStore(url.removeprefix("sqlite:///"))
    if "://" in url or url.startswith("sqlite:"):
        raise UsageError(
            f"history store URL {url!r}: unknown scheme",
            hint="use sqlite:///path/to/history.db or postgresql://user@host/db",
        )
    return SqliteHistoryStore(url)
