"""The shared history store: PostgreSQL (psycopg 3), for several orchestrator replicas.

Replicas record into one database; on open each applies missing migrations under a
transaction-scoped advisory lock, so replicas that start together migrate once and the others
wait and then find nothing to do. One connection per store, shared by threads behind a lock
(a fleet run's workers record from many threads); a broken connection is reopened on next use.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .migrations import MIGRATIONS, SCHEMA_VERSION_DDL, Migration, pending
from .model import (
    DEFAULT_QUERY_LIMIT,
    HistoryError,
    HistoryRecord,
    as_utc,
    check_limit,
    check_outcome,
    jobs_list,
    utcnow,
)

#: pg_advisory_xact_lock key for migrations: "tlhist" as a number, fixed forever.
MIGRATION_LOCK_KEY = 0x746C68697374
_SELECT = (
    "SELECT"
    " batch_id, parent_batch_id, tenant, operation, region, source, requested_at, submitted_at,"
    " started_at, finished_at, outcome, message, workflow, jobs"
    " FROM operations"
)


def redact(url: str) -> str:
    """The URL without its password, for messages (credentials never reach logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresHistoryStore:
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

    def schema_version(self) -> int:
        with self._locked() as conn:
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def applied_migrations(self) -> list[int]:
        """Every migration version recorded as applied, ascending (each exactly once)."""
        with self._locked() as conn:
            rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        return [int(row[0]) for row in rows]

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

    def _update(self, batch_id: str, sql: str, params: tuple[Any, ...]) -> None:
        with self._locked() as conn:
            cursor = conn.execute(sql, (*params, batch_id))
            count = cursor.rowcount
        if count == 0:
            raise HistoryError(
                f"history store {self.where}: no request recorded for batch {batch_id!r}",
                hint="record_request must come before the other record_* calls",
            )

    @staticmethod
    def _record(row: Sequence[Any]) -> HistoryRecord:
        def stamp(value: datetime | None) -> datetime | None:
            return None if value is None else as_utc(value)

        return HistoryRecord(
            batch_id=row[0],
            parent_batch_id=row[1],
            tenant=row[2],
            operation=row[3],
            region=row[4],
            source=row[5],
            requested_at=as_utc(row[6]),
            submitted_at=stamp(row[7]),
            started_at=stamp(row[8]),
            finished_at=stamp(row[9]),
            outcome=row[10],
            message=row[11],
            workflow=row[12],
            jobs=tuple(row[13] or ()),
        )

    # -- HistoryStore ---------------------------------------------------------------------

    def record_request(
        self,
        batch_id: str,
        *,
        tenant: str,
        operation: str,
        region: str | None = None,
        parent_batch_id: str | None = None,
        source: str | None = None,
        requested_at: datetime | None = None,
    ) -> HistoryRecord:
        with self._locked() as conn:
            conn.execute(
                "INSERT INTO operations (batch_id, parent_batch_id, tenant, operation, region,"
                " source, requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (batch_id) DO NOTHING",
                (
                    batch_id,
                    parent_batch_id,
                    tenant,
                    operation,
                    region,
                    source,
                    as_utc(requested_at or utcnow()),
                ),
            )
        record = self.get(batch_id)
        assert record is not None
        return record

    def record_submitted(
        self, batch_id: str, *, at: datetime | None = None, workflow: str | None = None
    ) -> None:
        self._update(
            batch_id,
            "UPDATE operations SET submitted_at = %s, workflow = coalesce(%s, workflow)"
            " WHERE batch_id = %s",
            (as_utc(at or utcnow()), workflow),
        )

    def record_started(self, batch_id: str, *, at: datetime | None = None) -> None:
        self._update(
            batch_id,
            "UPDATE operations SET started_at = %s WHERE batch_id = %s",
            (as_utc(at or utcnow()),),
        )

    def record_finished(
        self,
        batch_id: str,
        outcome: str,
        jobs: Iterable[Mapping[str, Any]] = (),
        *,
        message: str | None = None,
        at: datetime | None = None,
    ) -> None:
        from psycopg.types.json import Jsonb  # noqa: PLC0415

        self._update(
            batch_id,
            "UPDATE operations SET outcome = %s, jobs = %s, message = %s, finished_at = %s"
            " WHERE batch_id = %s",
            (
                check_outcome(outcome),
                Jsonb(jobs_list(jobs)),
                message,
                as_utc(at or utcnow()),
            ),
        )

    def get(self, batch_id: str) -> HistoryRecord | None:
        with self._locked() as conn:
            row = conn.execute(_SELECT + " WHERE batch_id = %s", (batch_id,)).fetchone()
        return None if row is None else self._record(row)

    def query(
        self,
        *,
        tenant: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        parent: str | None = None,
        limit: int | None = DEFAULT_QUERY_LIMIT,
    ) -> list[HistoryRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("tenant", tenant),
            ("operation", operation),
            ("parent_batch_id", parent),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            clauses.append("requested_at >= %s")
            params.append(as_utc(since))
        sql = _SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY requested_at DESC, batch_id DESC"
        if check_limit(limit) is not None:
            sql += " LIMIT %s"
            params.append(limit)
        with self._locked() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._record(row) for row in rows]

    def purge(self, older_than: timedelta) -> int:
        with self._locked() as conn:
            cursor = conn.execute(
                "DELETE FROM operations WHERE coalesce(finished_at, requested_at) < %s",
                (utcnow() - older_than,),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PostgresHistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
