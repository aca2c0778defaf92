"""The orchestrator's hook into the history: record what the service sees, never fail it.

``tenantctl listen`` calls :class:`HistoryRecorder` at three points — a valid request arrived,
it was submitted, its result is known — with the objects it already has (the parsed request,
the submission's Workflow name, the result event's ``data``). Recording is best effort: a
history database that is down is logged and counted, and the bus keeps flowing (the result
event on the bus stays the system of record; the history is the operator's index of it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from bridge.errors import LifecycleError

from .model import HistoryStore, as_utc

log = logging.getLogger(__name__)


class RequestFields(Protocol):
    """What is read from a request (``orchestrator.events.LifecycleRequest`` fits)."""

    @property
    def batch_operation_id(self) -> str: ...
    @property
    def tenant_env_id(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def region(self) -> str | None: ...


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, str) and value:
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def outcome_of(data: Mapping[str, Any]) -> str:
    """The history outcome of a result event's ``data``."""
    if data.get("cancelled") or data.get("status") == "cancelled":
        return "cancelled"
    return "succeeded" if data.get("status") == "succeeded" else "failed"


def failure_message(data: Mapping[str, Any]) -> str | None:
    """One line naming the jobs that did not succeed and why, or ``None``."""
    problems = []
    for job in data.get("jobs") or ():
        if not isinstance(job, Mapping) or job.get("status") in ("succeeded", "skipped"):
            continue
        where = f"{job.get('namespace', '?')}/{job.get('job', '?')}"
        exit_code = job.get("exitCode")
        problems.append(
            f"{where} {job.get('reason') or job.get('status')}"
            + (f" (exit {exit_code})" if exit_code else "")
        )
    return "; ".join(problems) or None


class HistoryRecorder:
    """Best-effort recording for the orchestrator service; ``store=None`` records nothing."""

    def __init__(self, store: HistoryStore | None, *, on_error: Any = None) -> None:
        self.store = store
        self.errors = 0
        self._on_error = on_error  # e.g. a metrics counter's ``inc``

    def _guard(self, what: str, batch_id: str, action: Any) -> None:
        if self.store is None:
            return
        try:
            action(self.store)
        except (LifecycleError, ValueError) as exc:
            self.errors += 1
            if self._on_error is not None:
                self._on_error()
            log.warning("history: could not record %s of %s: %s", what, batch_id, exc)

    def request_received(
        self,
        request: RequestFields,
        *,
        parent_batch_id: str | None = None,
        source: str | None = None,
        requested_at: datetime | None = None,
    ) -> None:
        """A valid request arrived (before submission; idempotent for redeliveries)."""
        self._guard(
            "the request",
            request.batch_operation_id,
            lambda store: store.record_request(
                request.batch_operation_id,
                tenant=request.tenant_env_id,
                operation=request.operation,
                region=request.region,
                parent_batch_id=parent_batch_id
                or getattr(request, "parent_batch_operation_id", None),
                source=source or getattr(request, "source", None) or None,
                requested_at=requested_at or _time(getattr(request, "time", None)),
            ),
        )

    def request_submitted(self, request: RequestFields, *, workflow: str | None = None) -> None:
        """The engine took the request (a Workflow was created, or the local engine runs it)."""
        self._guard(
            "the submission",
            request.batch_operation_id,
            lambda store: store.record_submitted(request.batch_operation_id, workflow=workflow),
        )

    def result(self, batch_id: str, data: Mapping[str, Any]) -> None:
        """The result event's ``data`` for ``batch_id``: started/finished times, outcome, jobs.

        A result for a request this store never saw (submitted before history was enabled, or
        by a replica with another store) is recorded from the result alone.
        """

        def record(store: HistoryStore) -> None:
            if store.get(batch_id) is None:
                store.record_request(
                    batch_id,
                    tenant=str(data.get("tenantEnvId") or "?"),
                    operation=str(data.get("operation") or "?"),
                    region=data.get("region"),
                    requested_at=_time(data.get("startedAt")),
                )
            started = _time(data.get("startedAt"))
            if started is not None:
                store.record_started(batch_id, at=started)
            if data.get("workflow"):
                record_workflow = store.get(batch_id)
                if record_workflow is not None and record_workflow.submitted_at is None:
                    store.record_submitted(
                        batch_id, at=started or None, workflow=str(data["workflow"])
                    )
            store.record_finished(
                batch_id,
                outcome_of(data),
                [job for job in data.get("jobs") or () if isinstance(job, Mapping)],
                message=failure_message(data),
                at=_time(data.get("finishedAt")),
            )

        self._guard("the result", batch_id, record)
