"""The shared history store: PostgreSQL (psycopg 3), for several orchestrator replicas.

Replicas record into one database; on open each applies missing migrations under a
transaction-scoped advisory lock, so replicas that start together migrate once and the others
wait and then find nothing to do. One connection per store, shared by threads behind a lock
(a fleet run's workers record from many threads); a broken connection is reopened on next use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .migrations import MIGRATIONS, SCHEMA_VERSION_DDL, Migration, pending
from .model import HistoryError, as_utc
from .sql import Dialect, SqlHistoryStore

#: pg_advisory_xact_lock key for migrations: "tlhist" as a number, fixed forever.
MIGRATION_LOCK_KEY = 0x746C68697374


def _jsonb(jobs: list[dict[str, Any]]) -> Any:
    from psycopg.types.json import Jsonb  # noqa: PLC0415 - psycopg only when PostgreSQL is used

    return Jsonb(jobs)


#: timestamptz columns (psycopg returns aware datetimes; the session runs in UTC); jobs jsonb.
POSTGRES = Dialect(
    placeholder="%s",
    to_stamp=lambda value: None if value is None else as_utc(value),
    from_stamp=lambda value: None if value is None else as_utc(value),
    to_jobs=_jsonb,
    from_jobs=lambda raw: raw or (),
)


def redact(url: str) -> str:
    """The URL without its password, for messages (credentials never reach logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresHistoryStore(SqlHistoryStore):
    """:class:`~orchestrator.history.model.HistoryStore` on PostgreSQL, by URL."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        # Imported here: only deployments that use PostgreSQL need psycopg installed.
        import psycopg  # noqa: PLC0415

        self._psycopg = psycopg
        self._dialect = POSTGRES
        self.url = url
        self.where = redact(url)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            self._migrate(migrations)
        except psycopg.Error as exc:
            self._conn.close()
            raise HistoryError(f"cannot prepare history store {self.where}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                options="-c timezone=UTC",
            )
        except self._psycopg.Error as exc:
            raise HistoryError(
                f"cannot connect to history store {self.where}: {exc}",
                hint="check the URL, that the server is up and that the user may connect",
            ) from exc

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            self._conn.execute(SCHEMA_VERSION_DDL["postgres"])
            applied = [row[0] for row in self._conn.execute("SELECT version FROM schema_version")]
            for migration in pending(applied, migrations, where=self.where):
                for statement in migration.postgres:
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                    (migration.version, migration.description),
                )

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            try:
                yield self._conn
            except self._psycopg.Error as exc:
                raise HistoryError(f"history store {self.where}: {exc}") from exc
