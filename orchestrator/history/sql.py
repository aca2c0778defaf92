"""What both SQL history stores share: the queries, the row mapping and the recording methods.

:class:`SqlHistoryStore` implements :class:`~orchestrator.history.model.HistoryStore` once, on
a DB-API connection behind a lock. A backend (``sqlite.py``, ``postgres.py``) opens the
connection, migrates the schema, provides ``_locked()`` (its own error type, reconnects) and a
:class:`Dialect` saying how its driver differs: the parameter placeholder, how timestamps and
the per-job JSON go in and come out. The SQL itself (``ON CONFLICT ... DO NOTHING``,
``coalesce``) is the same on both, written with ``?`` placeholders and rewritten per dialect.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from .model import (
    DEFAULT_QUERY_LIMIT,
    HistoryError,
    HistoryRecord,
    check_limit,
    check_outcome,
    jobs_list,
    utcnow,
)

SELECT_RECORDS = (
    "SELECT"
    " batch_id, parent_batch_id, tenant, operation, region, source, requested_at, submitted_at,"
    " started_at, finished_at, outcome, message, workflow, jobs"
    " FROM operations"
)


@dataclass(frozen=True)
class Dialect:
    """How one driver spells parameters and stores timestamps and the jobs JSON."""

    #: The driver's parameter placeholder: ``?`` (sqlite3, qmark) or ``%s`` (psycopg).
    placeholder: str
    #: An aware datetime (or None) as the driver's parameter value.
    to_stamp: Callable[[datetime | None], Any]
    #: A stored timestamp (or None) as an aware UTC datetime.
    from_stamp: Callable[[Any], datetime | None]
    #: The per-job results (plain dicts) as the driver's parameter value.
    to_jobs: Callable[[list[dict[str, Any]]], Any]
    #: The stored jobs column (or None) as a sequence of dicts.
    from_jobs: Callable[[Any], Sequence[Mapping[str, Any]]]

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this driver's spelling."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


class SqlHistoryStore:
    """The shared :class:`~orchestrator.history.model.HistoryStore` implementation.

    Subclasses set ``where`` (the store for messages, without credentials), ``_dialect``,
    ``_lock`` and ``_conn``, and implement :meth:`_locked`.
    """

    where: str
    _dialect: Dialect
    _lock: threading.Lock
    _conn: Any

    # -- plumbing -------------------------------------------------------------------------

    def _locked(self) -> AbstractContextManager[Any]:
        """The connection, under the lock; driver errors become :class:`HistoryError`."""
        raise NotImplementedError

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement written with ``?`` placeholders, under the lock."""
        with self._locked() as conn:
            conn.execute(self._dialect.sql(sql), params)

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._locked() as conn:
            return list(conn.execute(self._dialect.sql(sql), params).fetchall())

    def _update(self, batch_id: str, sql: str, params: tuple[Any, ...]) -> None:
        with self._locked() as conn:
            count = conn.execute(self._dialect.sql(sql), (*params, batch_id)).rowcount
        if count == 0:
            raise HistoryError(
                f"history store {self.where}: no request recorded for batch {batch_id!r}",
                hint="record_request must come before the other record_* calls",
            )

    def _now(self, at: datetime | None) -> Any:
        return self._dialect.to_stamp(at or utcnow())

    def _record(self, row: Sequence[Any]) -> HistoryRecord:
        parse = self._dialect.from_stamp
        requested = parse(row[6])
        assert requested is not None  # NOT NULL column
        return HistoryRecord(
            batch_id=row[0],
            parent_batch_id=row[1],
            tenant=row[2],
            operation=row[3],
            region=row[4],
            source=row[5],
            requested_at=requested,
            submitted_at=parse(row[7]),
            started_at=parse(row[8]),
            finished_at=parse(row[9]),
            outcome=row[10],
            message=row[11],
            workflow=row[12],
            jobs=tuple(self._dialect.from_jobs(row[13])),
        )

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._fetchall("SELECT max(version) FROM schema_version")
        return int(rows[0][0] or 0)

    def applied_migrations(self) -> list[int]:
        """Every migration version recorded as applied, ascending (each exactly once)."""
        rows = self._fetchall("SELECT version FROM schema_version ORDER BY version")
        return [int(row[0]) for row in rows]

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
        self._execute(
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
                self._now(requested_at),
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
            (self._now(at), workflow),
        )

    def record_started(self, batch_id: str, *, at: datetime | None = None) -> None:
        self._update(
            batch_id,
            "UPDATE operations SET started_at = ? WHERE batch_id = ?",
            (self._now(at),),
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
                self._dialect.to_jobs(jobs_list(jobs)),
                message,
                self._now(at),
            ),
        )

    def get(self, batch_id: str) -> HistoryRecord | None:
        rows = self._fetchall(SELECT_RECORDS + " WHERE batch_id = ?", (batch_id,))
        return self._record(rows[0]) if rows else None

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
            params.append(self._dialect.to_stamp(since))
        sql = SELECT_RECORDS
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY requested_at DESC, batch_id DESC"
        if check_limit(limit) is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._record(row) for row in self._fetchall(sql, params)]

    def purge(self, older_than: timedelta) -> int:
        with self._locked() as conn:
            cursor = conn.execute(
                self._dialect.sql(
                    "DELETE FROM operations WHERE coalesce(finished_at, requested_at) < ?"
                ),
                (self._dialect.to_stamp(utcnow() - older_than),),
            )
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
