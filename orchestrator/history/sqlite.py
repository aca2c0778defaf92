"""The embedded history store: one SQLite file (stdlib ``sqlite3``), the default.

WAL journal so readers (``tenantctl history``) never block the writer (the orchestrator, a
fleet run); one connection shared by threads behind a lock, because a fleet records from
many worker threads and SQLite allows one writer at a time anyway. ``busy_timeout`` lets two
processes on the same file wait for each other instead of failing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

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

_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"
_SELECT = (
    "SELECT"
    " batch_id, parent_batch_id, tenant, operation, region, source, requested_at, submitted_at,"
    " started_at, finished_at, outcome, message, workflow, jobs"
    " FROM operations"
)


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).strftime(_STAMP)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else as_utc(datetime.strptime(value, _STAMP))


class SqliteHistoryStore:
    """:class:`~orchestrator.history.model.HistoryStore` on a SQLite file (or ``:memory:``)."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.path = str(path)
        self.where = f"sqlite:///{self.path}"
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly
            # what the code says and DDL is inside it.
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise HistoryError(
                f"cannot open history store {self.where}: {exc}",
                hint="check the path exists and is writable, or pass --store",
            ) from exc
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate(migrations)
        except sqlite3.Error as exc:
            self._conn.close()
            raise HistoryError(
                f"cannot prepare history store {self.where}: {exc}",
                hint="is the file a tenantctl history database?",
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- schema ---------------------------------------------------------------------------

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")  # takes the write lock: concurrent openers queue here
        try:
            conn.execute(SCHEMA_VERSION_DDL["sqlite"])
            applied = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
            for migration in pending(applied, migrations, where=self.where):
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at)"
                    " VALUES (?, ?, ?)",
                    (migration.version, migration.description, _stamp(utcnow())),
                )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise HistoryError(f"history store {self.where}: {exc}") from exc

    def _update(self, batch_id: str, sql: str, params: tuple[Any, ...]) -> None:
        with self._locked() as conn:
            cursor = conn.execute(sql, (*params, batch_id))
        if cursor.rowcount == 0:
            raise HistoryError(
                f"history store {self.where}: no request recorded for batch {batch_id!r}",
                hint="record_request must come before the other record_* calls",
            )

    @staticmethod
    def _record(row: Sequence[Any]) -> HistoryRecord:
        requested = _parse(row[6])
        assert requested is not None  # NOT NULL column
        return HistoryRecord(
            batch_id=row[0],
            parent_batch_id=row[1],
            tenant=row[2],
            operation=row[3],
            region=row[4],
            source=row[5],
            requested_at=requested,
            submitted_at=_parse(row[7]),
            started_at=_parse(row[8]),
            finished_at=_parse(row[9]),
            outcome=row[10],
            message=row[11],
            workflow=row[12],
            jobs=tuple(json.loads(row[13] or "[]")),
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
                " source, requested_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (batch_id) DO NOTHING",
                (
                    batch_id,
                    parent_batch_id,
                    tenant,
                    operation,
                    region,
                    source,
                    _stamp(requested_at or utcnow()),
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
            "UPDATE operations SET submitted_at = ?, workflow = coalesce(?, workflow)"
            " WHERE batch_id = ?",
            (_stamp(at or utcnow()), workflow),
        )

    def record_started(self, batch_id: str, *, at: datetime | None = None) -> None:
        self._update(
            batch_id,
            "UPDATE operations SET started_at = ? WHERE batch_id = ?",
            (_stamp(at or utcnow()),),
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
        self._update(
            batch_id,
            "UPDATE operations SET outcome = ?, jobs = ?, message = ?, finished_at = ?"
            " WHERE batch_id = ?",
            (
                check_outcome(outcome),
                json.dumps(jobs_list(jobs), default=str),
                message,
                _stamp(at or utcnow()),
            ),
        )

    def get(self, batch_id: str) -> HistoryRecord | None:
        with self._locked() as conn:
            row = conn.execute(_SELECT + " WHERE batch_id = ?", (batch_id,)).fetchone()
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
                clauses.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            clauses.append("requested_at >= ?")
            params.append(_stamp(since))
        sql = _SELECT
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY requested_at DESC, batch_id DESC"
        if check_limit(limit) is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._locked() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._record(row) for row in rows]

    def purge(self, older_than: timedelta) -> int:
        cutoff = _stamp(utcnow() - older_than)
        with self._locked() as conn:
            cursor = conn.execute(
                "DELETE FROM operations WHERE coalesce(finished_at, requested_at) < ?", (cutoff,)
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteHistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
