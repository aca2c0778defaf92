"""Cross-region migration: migrate-out in region A, then migrate-in in region B, as one operation.

A migration has one **parent** batch id; its two steps have child ids derived from it:
``<parent>-out`` (``lifecycle.migrate-out`` in A) and ``<parent>-in`` (``lifecycle.migrate-in``
in B, with ``source_batch_operation_id`` = the export's id, so the bridge's storage hooks hand
the importing jobs the very location the exporting jobs wrote, after verifying its manifest).
A step retried after a failure gets ``-2``, ``-3``... appended (``<parent>-in-2``): a new batch id
is a new run (an engine deduplicates a known id: Argo by Workflow name, the bridge by pod name).

**Resumable.** Every step is recorded in the operation history (:mod:`orchestrator.history`)
under the parent id. Running the same parent again:

* the export's latest record succeeded -> the export is reused, not run again;
* it never finished (the process died) -> the same id runs again (Argo finds its Workflow, a
  bridge finds its pod);
* it failed -> a new attempt.

The import follows the same rules, and a migration whose import already succeeded is reported
succeeded without running anything (a redelivered request is harmless).

**Results.** Each step's result is published as the usual ``operation.succeeded|failed`` event
(id = the child id, ``data.parentBatchOperationId`` = the parent), and the whole as
``dev.tenant-lifecycle.migration.succeeded|failed`` (id = the parent) with both steps' outcomes.

The request event is :mod:`orchestrator.events.migration`; the step runners are
:mod:`.steps`, the bus handler :mod:`.handler`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from bridge.errors import LifecycleError, UsageError
from orchestrator.events import (
    LifecycleRequest,
    event_time,
    result_event,
)
from orchestrator.events.migration import (
    EXPORT,
    IMPORT,
    MIGRATION_OPERATION,
    MigrationRequest,
)
from orchestrator.history import HistoryRecord, HistoryStore
from orchestrator.migration.report import MigrationResult, StepReport
from orchestrator.outcome import CANCELLED, DETACHED, ERROR, FAILED, SUCCEEDED, RunOutcome

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# steps and their runners
# --------------------------------------------------------------------------------------------


# A step's outcome is any run's outcome (status, message, jobs, Workflow, start and end).
StepOutcome = RunOutcome


class StepRunner(Protocol):
    """Runs one lifecycle request in one region to its end. May raise LifecycleError (the
    region is unreachable, discovery failed): the step is then recorded as ``error``."""

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome: ...


Publish = Callable[[Mapping[str, Any]], None]


class Migration:
    """Runs migrations: ``Migration(runners, store=..., publish=...).run(request)``.

    ``runners`` maps region name to the :class:`StepRunner` of that region; ``store`` is the
    history (None: nothing is resumable, both steps always run); ``publish`` gets every result
    event (the steps' and the whole's) as a dict.
    """

    def __init__(
        self,
        runners: Mapping[str, StepRunner],
        *,
        store: HistoryStore | None = None,
        publish: Publish | None = None,
    ) -> None:
        self.runners = runners
        self.store = store
        self.publish = publish

    def run(
        self, request: MigrationRequest, *, cancel: threading.Event | None = None
    ) -> MigrationResult:
        cancel = cancel or threading.Event()
        for region in (request.from_region, request.to_region):
            if region not in self.runners:
                raise UsageError(
                    f"region {region!r} is not in the region map",
                    hint=f"use one of {', '.join(sorted(self.runners))}",
                )
        started = datetime.now(UTC)
        self._record_parent(request, started)
        export = self._step(request, EXPORT, request.from_region, source=None, cancel=cancel)
        if export.status == SUCCEEDED:
            into = self._step(
                request,
                IMPORT,
                request.to_region,
                source=export.batch_operation_id,
                cancel=cancel,
                exported=export.jobs,
            )
        else:
            into = StepReport(
                step=IMPORT,
                region=request.to_region,
                batch_operation_id=request.step_id(IMPORT),
                status="not-started",
                message=f"not started: {EXPORT} in {request.from_region} did not succeed",
            )
        if into.status == SUCCEEDED:
            status = SUCCEEDED
        elif {export.status, into.status} & {CANCELLED, DETACHED}:
            status = CANCELLED
        else:
            status = FAILED
        result = MigrationResult(
            request=request,
            status=status,
            steps=(export, into),
            started_at=started,
            finished_at=datetime.now(UTC),
        )
        self._record_parent_finished(result)
        self._publish(result.event())
        return result

    # -- one step --------------------------------------------------------------------------

    def _step(
        self,
        request: MigrationRequest,
        operation: str,
        region: str,
        *,
        source: str | None,
        cancel: threading.Event,
        exported: Sequence[Mapping[str, Any]] = (),
    ) -> StepReport:
        attempt, previous = self._next_attempt(request, operation, source=source)
        batch = request.step_id(operation, attempt)
        if previous is not None and previous.outcome == SUCCEEDED:
            return self._reused(
                request,
                operation=operation,
                region=region,
                batch=batch,
                attempt=attempt,
                previous=previous,
                source=source,
            )
        step = LifecycleRequest(
            batch_operation_id=batch,
            tenant_env_id=request.tenant_env_id,
            operation=operation,
            region=region,
            environment=dict(request.environment),
            changeset=dict(request.changeset),
            source=request.source,
            time=datetime.now(UTC),
            parent_batch_operation_id=request.parent_batch_operation_id,
            source_batch_operation_id=source,
        )
        self._record_step_requested(request, step)
        started = datetime.now(UTC)
        self._history("start", lambda s: s.record_started(batch, at=started))
        try:
            outcome = self.runners[region].run(step, cancel=cancel)
        except LifecycleError as exc:
            outcome = StepOutcome(ERROR, f"{exc}", started_at=started)
        if operation == IMPORT and outcome.status == SUCCEEDED:
            outcome = _check_coverage(outcome, exported, region=region)
        finished = outcome.finished_at or datetime.now(UTC)
        if outcome.status == DETACHED:
            return StepReport(
                step=operation,
                region=region,
                batch_operation_id=batch,
                status=DETACHED,
                message=outcome.message,
                attempt=attempt,
                workflow=outcome.workflow,
                source_batch_operation_id=source,
            )
        self._history(
            "outcome",
            lambda s: s.record_finished(
                batch, outcome.status, outcome.jobs, message=outcome.message or None, at=finished
            ),
        )
        self._publish_step(step, outcome, started=outcome.started_at or started, finished=finished)
        return StepReport(
            step=operation,
            region=region,
            batch_operation_id=batch,
            status=outcome.status,
            message=outcome.message,
            attempt=attempt,
            jobs=outcome.jobs,
            workflow=outcome.workflow,
            source_batch_operation_id=source,
        )

    def _reused(
        self,
        request: MigrationRequest,
        *,
        operation: str,
        region: str,
        batch: str,
        attempt: int,
        previous: HistoryRecord,
        source: str | None,
    ) -> StepReport:
        """The report of a step whose latest attempt already succeeded: not run again."""
        when = event_time(previous.finished_at) if previous.finished_at else "?"
        log.info(
            "migration %s: %s %s already succeeded: reused",
            request.parent_batch_operation_id,
            operation,
            batch,
        )
        return StepReport(
            step=operation,
            region=region,
            batch_operation_id=batch,
            status=SUCCEEDED,
            message=f"succeeded earlier ({when}); not run again",
            attempt=attempt,
            resumed=True,
            jobs=previous.jobs,
            workflow=previous.workflow,
            source_batch_operation_id=source,
        )

    def _record_step_requested(self, request: MigrationRequest, step: LifecycleRequest) -> None:
        batch = step.batch_operation_id
        self._history(
            "request",
            lambda s: s.record_request(
                batch,
                tenant=request.tenant_env_id,
                operation=step.operation,
                region=step.region,
                parent_batch_id=request.parent_batch_operation_id,
                source=request.source,
            ),
        )
        self._history("submission", lambda s: s.record_submitted(batch))

    def _next_attempt(
        self, request: MigrationRequest, operation: str, *, source: str | None
    ) -> tuple[int, HistoryRecord | None]:
        """The attempt to run (and the latest earlier record of this step, if any)."""
        if self.store is None:
            return 1, None
        try:
            records = self.store.query(
                parent=request.parent_batch_operation_id, operation=operation, limit=None
            )
        except LifecycleError as exc:
            log.warning("history unavailable (%s): running %s as attempt 1", exc, operation)
            return 1, None
        attempts: dict[int, HistoryRecord] = {}
        for record in records:
            for attempt in range(1, 100):
                if record.batch_id == request.step_id(operation, attempt):
                    attempts[attempt] = record
                    break
        if not attempts:
            return 1, None
        latest = max(attempts)
        record = attempts[latest]
        if record.outcome is None:
            return latest, record  # never finished: the same id resumes it
        if record.outcome == SUCCEEDED:
            return latest, record
        return latest + 1, record

    # -- history and events ----------------------------------------------------------------

    def _history(self, what: str, action: Callable[[HistoryStore], Any]) -> None:
        if self.store is None:
            return
        try:
            action(self.store)
        except (LifecycleError, ValueError) as exc:
            log.warning("history: could not record the %s: %s", what, exc)

    def _record_parent(self, request: MigrationRequest, started: datetime) -> None:
        self._history(
            "migration",
            lambda s: s.record_request(
                request.parent_batch_operation_id,
                tenant=request.tenant_env_id,
                operation=MIGRATION_OPERATION,
                region=request.to_region,
                source=request.source,
                requested_at=request.time or started,
            ),
        )

    def _record_parent_finished(self, result: MigrationResult) -> None:
        parent = result.request.parent_batch_operation_id
        outcome = result.status if result.status in (SUCCEEDED, CANCELLED) else FAILED
        self._history(
            "migration outcome",
            lambda s: s.record_finished(
                parent,
                outcome,
                [step.to_json() for step in result.steps],
                message=result.tenant_state,
                at=result.finished_at,
            ),
        )

    def _publish_step(
        self,
        step: LifecycleRequest,
        outcome: StepOutcome,
        *,
        started: datetime,
        finished: datetime,
    ) -> None:
        event = result_event(
            batch_operation_id=step.batch_operation_id,
            tenant_env_id=step.tenant_env_id,
            operation=step.operation,
            status=SUCCEEDED if outcome.status == SUCCEEDED else FAILED,
            jobs=outcome.jobs,
            workflow=outcome.workflow,
            region=step.region,
            started_at=event_time(started),
            finished_at=event_time(finished),
        )
        event["data"]["parentBatchOperationId"] = step.parent_batch_operation_id
        if step.source_batch_operation_id:
            event["data"]["sourceBatchOperationId"] = step.source_batch_operation_id
        if outcome.status != SUCCEEDED and outcome.message:
            event["data"]["message"] = outcome.message
        self._publish(event)

    def _publish(self, event: Mapping[str, Any]) -> None:
        if self.publish is None:
            return
        try:
            self.publish(event)
        except LifecycleError as exc:
            log.warning("result event %s %s not published: %s", event["type"], event["id"], exc)


def _job_key(job: Mapping[str, Any]) -> str:
    return f"{job.get('namespace', '?')}/{job.get('job', job.get('name', '?'))}"


def _check_coverage(
    outcome: StepOutcome, exported: Sequence[Mapping[str, Any]], *, region: str
) -> StepOutcome:
    """An import "succeeds" trivially when the target region has no migrate-in job for some
    exported data (a team not installed there yet): that is a failed migration, not a success,
    because that team's data was left behind."""
    imported = {_job_key(job) for job in outcome.jobs if job.get("status") == SUCCEEDED}
    missing = sorted(
        _job_key(job)
        for job in exported
        if job.get("status") == SUCCEEDED and _job_key(job) not in imported
    )
    if not missing:
        return outcome
    return StepOutcome(
        FAILED,
        f"{', '.join(missing)} exported data but did not import it in {region} (is the team's "
        "Job installed there, annotated for lifecycle.migrate-in?)",
        outcome.jobs,
        workflow=outcome.workflow,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
    )
