"""What the operation history holds, and the interface every store implements.

One :class:`HistoryRecord` per lifecycle request (one tenant, one operation, one batch
operation id). A fleet run is a *parent* batch id; each tenant's request in it is a child
record pointing at the parent, so "what did fleet X do" and "what happened to tenant T" are
both one indexed query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from bridge.errors import LifecycleError
from bridge.timefmt import rfc3339

#: Final outcomes. ``succeeded``/``failed`` are the result event's statuses; ``cancelled`` is an
#: interrupted run (SIGINT, a stopped workflow); ``error`` is an infrastructure failure that
#: never produced a result (the engine could not run the plan at all).
OUTCOMES = frozenset({"succeeded", "failed", "cancelled", "error"})

DEFAULT_QUERY_LIMIT = 100
#: Retention when nobody says otherwise: the same 30 days Argo's workflow archive keeps.
DEFAULT_RETENTION = timedelta(days=30)


class HistoryError(LifecycleError):
    """The history store could not be opened, migrated, read or written."""


def utcnow() -> datetime:
    """Now, timezone-aware in UTC (every timestamp the history holds is aware and UTC)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class HistoryRecord:
    """One request and what became of it. Times are aware UTC; ``None`` means "not yet"."""

    batch_id: str
    tenant: str
    operation: str
    requested_at: datetime
    region: str | None = None
    parent_batch_id: str | None = None
    source: str | None = None
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: str | None = None
    message: str | None = None
    workflow: str | None = None
    jobs: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def state(self) -> str:
        """The outcome once finished, else how far the request got."""
        if self.outcome is not None:
            return self.outcome
        if self.started_at is not None:
            return "running"
        if self.submitted_at is not None:
            return "submitted"
        return "requested"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        """camelCase JSON, the same spelling as the events (``tenantEnvId``, ``startedAt``)."""

        def stamp(value: datetime | None) -> str | None:
            return None if value is None else rfc3339(value, precision="auto")

        return {
            "batchOperationId": self.batch_id,
            "parentBatchOperationId": self.parent_batch_id,
            "tenantEnvId": self.tenant,
            "operation": self.operation,
            "region": self.region,
            "source": self.source,
            "state": self.state,
            "outcome": self.outcome,
            "message": self.message,
            "workflow": self.workflow,
            "requestedAt": stamp(self.requested_at),
            "submittedAt": stamp(self.submitted_at),
            "startedAt": stamp(self.started_at),
            "finishedAt": stamp(self.finished_at),
            "durationSeconds": self.duration_seconds,
            "jobs": [dict(job) for job in self.jobs],
        }


@runtime_checkable
class HistoryStore(Protocol):
    """Where requests and outcomes are recorded. Implementations are safe to share between
    threads; every ``record_*`` call is idempotent for the same batch id (a redelivered event
    or a resumed fleet records the same thing twice without harm)."""

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
        """Insert the request (no-op when the batch id is already recorded); return the record."""
        ...

    def record_submitted(
        self, batch_id: str, *, at: datetime | None = None, workflow: str | None = None
    ) -> None:
        """The request reached its engine (a Workflow was created, the local engine took it)."""
        ...

    def record_started(self, batch_id: str, *, at: datetime | None = None) -> None:
        """The operation began running."""
        ...

    def record_finished(
        self,
        batch_id: str,
        outcome: str,
        jobs: Iterable[Mapping[str, Any]] = (),
        *,
        message: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """The final outcome (one of :data:`OUTCOMES`) and the per-job results."""
        ...

    def get(self, batch_id: str) -> HistoryRecord | None: ...

    def query(
        self,
        *,
        tenant: str | None = None,
        operation: str | None = None,
        since: datetime | None = None,
        parent: str | None = None,
        limit: int | None = DEFAULT_QUERY_LIMIT,
    ) -> list[HistoryRecord]:
        """Matching records, newest request first; ``limit=None`` returns all of them."""
        ...

    def purge(self, older_than: timedelta) -> int:
        """Delete records finished (or, never finished, requested) more than ``older_than``
        ago; return how many were deleted."""
        ...

    def close(self) -> None: ...


def check_outcome(outcome: str) -> str:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    return outcome


def check_limit(limit: int | None) -> int | None:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return limit


def jobs_list(jobs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-job results as plain JSON-able dicts (the bridge result objects)."""
    return [dict(job) for job in jobs]
