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

**The request event** ``dev.tenant-lifecycle.migration.requested``::

    {"specversion": "1.0", "type": "dev.tenant-lifecycle.migration.requested",
     "source": "tenant-manager", "id": "<parent batch id>", "subject": "<tenant env id>",
     "data": {"from": "eu-west-1", "to": "us-east-1",
              "tenantEnvironment": {...}, "changeset": {...}}}
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from bridge.errors import LifecycleError, UsageError
from bridge.kube import KubeSettings

from .bus import Disposition, Handler, Message
from .events import (
    BINARY,
    JSON_CONTENT_TYPE,
    SPEC_VERSION,
    InvalidEvent,
    LifecycleRequest,
    content_mode,
    decode_message,
    encode_event,
    parse_request,
    request_event,
    result_event,
    rfc3339,
    structured_message,
)
from .history import HistoryRecord, HistoryStore
from .regions import RegionMap

log = logging.getLogger(__name__)

MIGRATION_TYPE: Final = "dev.tenant-lifecycle.migration.requested"
MIGRATION_SUCCEEDED_TYPE: Final = "dev.tenant-lifecycle.migration.succeeded"
MIGRATION_FAILED_TYPE: Final = "dev.tenant-lifecycle.migration.failed"
MIGRATION_OPERATION: Final = "lifecycle.migration"  # the parent's operation in the history
EXPORT: Final = "lifecycle.migrate-out"
IMPORT: Final = "lifecycle.migrate-in"
MIGRATION_SOURCE: Final = "tenantctl-migrate"

SUCCEEDED, FAILED, CANCELLED, ERROR = "succeeded", "failed", "cancelled", "error"
# A step left running when this process stopped following it (a listener shutting down): not
# finished, so not recorded as finished; the next run follows the same batch id again.
DETACHED = "detached"
# The longest parent id whose child ids (``-out-99``) still fit a label value (63).
MAX_PARENT_ID: Final = 63 - len("-out-99")


# --------------------------------------------------------------------------------------------
# the request
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationRequest:
    parent_batch_operation_id: str
    tenant_env_id: str
    from_region: str
    to_region: str
    environment: Mapping[str, Any] = field(default_factory=dict)
    changeset: Mapping[str, Any] = field(default_factory=dict)
    source: str = MIGRATION_SOURCE
    time: datetime | None = None

    def __post_init__(self) -> None:
        if self.from_region == self.to_region:
            raise UsageError(
                f"migration of {self.tenant_env_id}: --from and --to are both {self.from_region!r}",
                hint="a migration moves a tenant to another region; use lifecycle.backup and "
                "lifecycle.restore within one",
            )
        probe = request_event(
            EXPORT,
            tenant_env_id=self.tenant_env_id,
            batch_operation_id=self.parent_batch_operation_id,
            source=self.source,
        )
        try:  # the same checks as a request event's id and subject
            parse_request(encode_event(probe))
        except InvalidEvent as exc:
            flag = {"id": "--batch-operation-id", "subject": "TENANT"}.get(exc.field, exc.field)
            raise UsageError(f"{flag}: {exc.message}", hint=exc.hint) from exc
        if len(self.parent_batch_operation_id) > MAX_PARENT_ID:
            raise UsageError(
                f"batch operation id {self.parent_batch_operation_id!r} is longer than "
                f"{MAX_PARENT_ID} characters",
                hint="the step ids <parent>-out and <parent>-in must fit a label value (63)",
            )

    def step_id(self, operation: str, attempt: int = 1) -> str:
        """``<parent>-out`` / ``<parent>-in``; attempt 2 and later add ``-<attempt>``."""
        suffix = "out" if operation == EXPORT else "in"
        base = f"{self.parent_batch_operation_id}-{suffix}"
        return base if attempt == 1 else f"{base}-{attempt}"


def parse_migration(data: bytes) -> MigrationRequest:
    """Parse and validate a ``migration.requested`` event; raises :class:`InvalidEvent`.

    The envelope (specversion, id, subject, time, extensions, sizes) and the tenant environment
    are checked by the request parser itself: the event is checked as the ``migrate-out``
    request it starts, then ``data.to`` as a second region.
    """
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        event = None
    if not isinstance(event, dict):
        parse_request(data)  # raises the precise InvalidEvent (NotJSON, TooDeep, ...)
        raise InvalidEvent("NotAnObject", "the event is not a JSON object")
    if event.get("type") != MIGRATION_TYPE:
        raise InvalidEvent(
            "WrongType",
            f"type is {event.get('type')!r}, not {MIGRATION_TYPE!r}",
            field="type",
        )
    body = event.get("data")
    if not isinstance(body, dict):
        raise InvalidEvent(
            "DataNotObject", "data must be a JSON object", field="data", hint=_DATA_HINT
        )
    regions = {}
    for key in ("from", "to"):
        value = body.get(key)
        if value is None or value == "":
            raise InvalidEvent(
                "MissingRegion", f"data.{key} is missing", field=f"data.{key}", hint=_DATA_HINT
            )
        regions[key] = value
    as_request = dict(event)
    as_request["type"] = "dev.tenant-lifecycle.operation.requested"
    as_request["data"] = {k: v for k, v in body.items() if k not in ("from", "to")}
    as_request["data"].update(operation=EXPORT, region=regions["from"])
    checked = _reparse(as_request, "from")
    as_request["data"]["region"] = regions["to"]
    _reparse(as_request, "to")
    if regions["from"] == regions["to"]:
        raise InvalidEvent(
            "SameRegion",
            f"data.from and data.to are both {regions['from']!r}",
            field="data.to",
            hint="a migration moves a tenant to another region",
        )
    if len(checked.batch_operation_id) > MAX_PARENT_ID:
        raise InvalidEvent(
            "InvalidId",
            f"id is longer than {MAX_PARENT_ID} characters (the step ids add '-out-N')",
            field="id",
        )
    return MigrationRequest(
        parent_batch_operation_id=checked.batch_operation_id,
        tenant_env_id=checked.tenant_env_id,
        from_region=str(regions["from"]),
        to_region=str(regions["to"]),
        environment=checked.environment,
        changeset=checked.changeset,
        source=checked.source,
        time=checked.time,
    )


_DATA_HINT = 'e.g. "data": {"from": "eu-west-1", "to": "us-east-1"}'


def _reparse(event: Mapping[str, Any], key: str) -> LifecycleRequest:
    try:
        return parse_request(encode_event(event))
    except InvalidEvent as exc:
        if exc.field == "data.region":  # say which of the two regions is wrong
            raise InvalidEvent(
                exc.reason_code,
                str(exc.message).replace("data.region", f"data.{key}"),
                field=f"data.{key}",
                hint=exc.hint,
            ) from exc
        raise


def migration_event(request: MigrationRequest, *, time: datetime | None = None) -> dict[str, Any]:
    """The ``migration.requested`` CloudEvent of ``request``."""
    event = request_event(
        EXPORT,
        tenant_env_id=request.tenant_env_id,
        batch_operation_id=request.parent_batch_operation_id,
        source=request.source,
        environment=request.environment,
        changeset=request.changeset,
        time=time or request.time,
    )
    data = event["data"]
    del data["operation"]
    event["type"] = MIGRATION_TYPE
    event["data"] = {"from": request.from_region, "to": request.to_region, **data}
    return event


# --------------------------------------------------------------------------------------------
# steps and their runners
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepOutcome:
    status: str  # succeeded | failed | cancelled | error | detached
    message: str = ""
    jobs: tuple[Mapping[str, Any], ...] = ()
    workflow: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class StepRunner(Protocol):
    """Runs one lifecycle request in one region to its end. May raise LifecycleError (the
    region is unreachable, discovery failed): the step is then recorded as ``error``."""

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome: ...


@dataclass(frozen=True)
class StepReport:
    """What became of one step in this run (``resumed``: taken from the history, not run)."""

    step: str  # lifecycle.migrate-out | lifecycle.migrate-in
    region: str
    batch_operation_id: str
    status: str  # succeeded | failed | cancelled | error | not-started
    message: str = ""
    attempt: int = 1
    resumed: bool = False
    jobs: tuple[Mapping[str, Any], ...] = ()
    workflow: str | None = None
    source_batch_operation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.step,
            "region": self.region,
            "batchOperationId": self.batch_operation_id,
            "sourceBatchOperationId": self.source_batch_operation_id,
            "status": self.status,
            "attempt": self.attempt,
            "resumed": self.resumed,
            "message": self.message,
            "workflow": self.workflow,
            "jobs": [dict(job) for job in self.jobs],
        }


@dataclass(frozen=True)
class MigrationResult:
    request: MigrationRequest
    status: str  # succeeded | failed | cancelled
    steps: tuple[StepReport, ...]
    started_at: datetime
    finished_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def step(self, operation: str) -> StepReport:
        for step in self.steps:
            if step.step == operation:
                return step
        raise KeyError(operation)

    @property
    def tenant_state(self) -> str:
        """Where the tenant is, in one line (docs/regions.md, "Failure modes")."""
        export, into = self.step(EXPORT), self.step(IMPORT)
        r = self.request
        if into.status == SUCCEEDED:
            return f"migrated: the tenant's data is in {r.to_region}"
        if export.status == SUCCEEDED:
            return (
                f"exported from {r.from_region} (still there, untouched), not imported into "
                f"{r.to_region}: re-run the migration with --batch-operation-id "
                f"{r.parent_batch_operation_id} to resume at the import"
            )
        return f"still in {r.from_region}: the export did not complete"

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "batchOperationId": r.parent_batch_operation_id,
            "tenantEnvId": r.tenant_env_id,
            "operation": MIGRATION_OPERATION,
            "from": r.from_region,
            "to": r.to_region,
            "status": self.status,
            "tenantState": self.tenant_state,
            "steps": [step.to_json() for step in self.steps],
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(self.finished_at),
        }

    def event(self) -> dict[str, Any]:
        """The ``migration.succeeded|failed`` CloudEvent (id = the parent batch id)."""
        r = self.request
        return {
            "specversion": SPEC_VERSION,
            "type": MIGRATION_SUCCEEDED_TYPE if self.succeeded else MIGRATION_FAILED_TYPE,
            "source": "tenant-lifecycle/orchestrator",
            "id": r.parent_batch_operation_id,
            "subject": r.tenant_env_id,
            "time": rfc3339(self.finished_at),
            "datacontenttype": JSON_CONTENT_TYPE,
            "data": self.to_json(),
        }


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
            when = rfc3339(previous.finished_at) if previous.finished_at else "?"
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
        self._history(
            "request",
            lambda s: s.record_request(
                batch,
                tenant=request.tenant_env_id,
                operation=operation,
                region=region,
                parent_batch_id=request.parent_batch_operation_id,
                source=request.source,
            ),
        )
        self._history("submission", lambda s: s.record_submitted(batch))
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
            started_at=rfc3339(started),
            finished_at=rfc3339(finished),
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


def resumed(result: MigrationResult) -> Sequence[str]:
    """The steps this run took from the history instead of running them."""
    return [step.step for step in result.steps if step.resumed]


# --------------------------------------------------------------------------------------------
# runners for the two engines
# --------------------------------------------------------------------------------------------


class LocalStepRunner:
    """A step through the local engine (discovery, waves, bridges) in this process."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome:
        from .fleet_runners import outcome_message  # noqa: PLC0415

        result = self.engine.run(request, cancel=cancel)
        jobs = tuple(job.to_json() for job in result.jobs)
        return StepOutcome(
            status=result.status,
            message=outcome_message(result.status, jobs, result.errors),
            jobs=jobs,
            workflow=result.workflow,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )


class ArgoStepRunner:
    """A step as a Workflow from the WorkflowTemplate in the region's cluster, followed until it
    ends (the same submission ``tenantctl listen`` makes; the name comes from the step id)."""

    def __init__(
        self, engine: Any, *, poll_seconds: float = 5.0, stop_on_cancel: bool = True
    ) -> None:
        self.engine = engine  # an orchestrator.submit.ArgoEngine
        self.poll_seconds = poll_seconds
        # True (tenantctl migrate, Ctrl-C): stop the Workflow. False (a listener shutting
        # down): leave it running and report the step detached; the next run follows it.
        self.stop_on_cancel = stop_on_cancel

    def run(self, request: LifecycleRequest, *, cancel: threading.Event) -> StepOutcome:
        from bridge.errors import NotFoundError, UnavailableError  # noqa: PLC0415
        from bridge.kube import WORKFLOWS  # noqa: PLC0415

        from .fleet_runners import workflow_outcome  # noqa: PLC0415

        started = datetime.now(UTC)
        name = self.engine.submit(request).name
        kube, namespace = self.engine.kube, self.engine.namespace
        while True:
            try:
                workflow = kube.get(WORKFLOWS, name, namespace=namespace)
            except NotFoundError:
                return StepOutcome(ERROR, f"workflow {name} was deleted", workflow=name)
            except UnavailableError:
                workflow = None  # the region's API is down for now: look again later
            if workflow is not None:
                outcome = workflow_outcome(workflow)
                if outcome is not None:
                    return StepOutcome(
                        outcome.status,
                        outcome.message,
                        outcome.jobs,
                        workflow=name,
                        started_at=started,
                        finished_at=datetime.now(UTC),
                    )
            if cancel.wait(self.poll_seconds):
                if not self.stop_on_cancel:
                    return StepOutcome(DETACHED, f"workflow {name} left running", workflow=name)
                kube.patch(WORKFLOWS, name, {"spec": {"shutdown": "Stop"}}, namespace=namespace)
                return StepOutcome(CANCELLED, f"workflow {name} stopped", workflow=name)


@contextmanager
def region_runners(
    region_map: RegionMap,
    names: Sequence[str],
    *,
    kube: KubeSettings | None = None,
    parallelism: int = 10,
    poll_seconds: float = 5.0,
) -> Iterator[dict[str, StepRunner]]:
    """A :class:`StepRunner` for each region in ``names`` (its engine from the map); the
    Kubernetes clients are closed at the end."""
    from bridge.kube import Kube  # noqa: PLC0415 (heavy)

    from .engine import BridgeSettings, EngineSettings, local_engine  # noqa: PLC0415
    from .submit import ArgoEngine  # noqa: PLC0415

    runners: dict[str, StepRunner] = {}
    with ExitStack() as stack:
        for name in names:
            region = region_map.get(name)
            if region.engine == "local":
                env = (
                    {"BRIDGE_STORAGE_CONFIG": region.storage_config}
                    if region.storage_config
                    else {}
                )
                bridge = BridgeSettings(
                    kubeconfig=region.cluster.kubeconfig, context=region.cluster.context, env=env
                )
                runners[name] = LocalStepRunner(
                    local_engine(bridge, settings=EngineSettings(parallelism=parallelism))
                )
            else:
                client = stack.enter_context(Kube(settings=region.cluster.kube_settings(kube)))
                runners[name] = ArgoStepRunner(
                    ArgoEngine(
                        client, namespace=region.workflow_namespace, parallelism=parallelism
                    ),
                    poll_seconds=poll_seconds,
                )
        yield runners


# --------------------------------------------------------------------------------------------
# migrations from the bus (`tenantctl listen --regions`)
# --------------------------------------------------------------------------------------------

DeadLetter = Callable[..., Disposition]  # (message, code, reason, *, field) -> Disposition


def is_migration(data: bytes) -> bool:
    """Cheap pre-check on the raw message: does it claim to be a migration request?"""
    return MIGRATION_TYPE.encode() in data


class MigrationHandler:
    """Runs ``migration.requested`` messages for ``tenantctl listen --regions``.

    A migration runs on the handler thread that received it, and its message is acked when the
    migration has ended (succeeded or failed: its result events are published either way).
    So a listener that dies mid-migration leaves the message unacked; the bus redelivers it and
    the history resumes it where it stopped. At most ``max_concurrent`` migrations run at once
    (each holds one handler thread for its whole duration); more wait on the bus.

    ``runners`` are the regions' step runners (:func:`step_runners_for`); ``router`` (optional)
    is consulted so that a migration touching a region whose circuit is open waits on the bus
    like any other request of that region.
    """

    def __init__(
        self,
        runners: Mapping[str, StepRunner],
        *,
        dead_letter: DeadLetter,
        store: HistoryStore | None,
        publish: Publish | None,
        router: Any = None,
        max_concurrent: int = 2,
        retry_delay: float = 1.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.migration = Migration(runners, store=store, publish=publish)
        self.runners = runners
        self.dead_letter = dead_letter
        self.router = router
        self.retry_delay = retry_delay
        self._sleep = sleep or _sleep
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self.cancel = threading.Event()
        self.finished: list[MigrationResult] = []

    def wrap(self, handler: Handler) -> Handler:
        """The bus handler: migrations here, every other message to ``handler``."""

        def handle(message: Message) -> Disposition:
            data = message.data
            if content_mode(data, message.attributes) == BINARY:
                if message.attributes.get("ce-type") != MIGRATION_TYPE:
                    return handler(message)
                try:  # the binary-mode migration, read as the structured event it carries
                    data = encode_event(decode_message(data, message.attributes)[0])
                except InvalidEvent:
                    return handler(message)  # the consumer dead-letters it with the reason
            if is_migration(data):
                try:
                    parse_migration(data)
                except InvalidEvent as exc:
                    if exc.reason_code == "WrongType":  # it only mentioned the type somewhere
                        return handler(message)
                return self.handle(message, data=data)
            return handler(message)

        return handle

    def handle(self, message: Message, *, data: bytes | None = None) -> Disposition:
        """``data``: the structured event when the message came in binary mode (the message
        itself is what is dead-lettered, unchanged)."""
        try:
            request = parse_migration(message.data if data is None else data)
        except InvalidEvent as exc:
            return self.dead_letter(message, exc.reason_code, str(exc), field=exc.field)
        for key, region in (("from", request.from_region), ("to", request.to_region)):
            if region not in self.runners:
                return self.dead_letter(
                    message,
                    "unknown-region",
                    f"data.{key} {region!r} is not a region this orchestrator serves "
                    f"(use one of {', '.join(sorted(self.runners))})",
                    field=f"data.{key}",
                )
        parent = request.parent_batch_operation_id
        with self._lock:
            if parent in self._running:  # a redelivery while it runs here: it will finish
                log.info("migration %s: already running here; duplicate acked", parent)
                return Disposition.ACK
        wait = self._unavailable(request)
        if wait is not None:
            self._sleep(min(max(wait, self.retry_delay), 5.0))
            return Disposition.NACK
        if not self._slots.acquire(blocking=False):
            self._sleep(self.retry_delay)
            return Disposition.NACK
        with self._lock:
            self._running.add(parent)
        try:
            result = self.migration.run(request, cancel=self.cancel)
        finally:
            with self._lock:
                self._running.discard(parent)
            self._slots.release()
        self.finished.append(result)
        if result.status == CANCELLED:
            return Disposition.NACK  # stopped by a shutdown: the next listener resumes it
        log.info("migration %s: %s (%s)", parent, result.status, result.tenant_state)
        return Disposition.ACK

    def _unavailable(self, request: MigrationRequest) -> float | None:
        """Seconds to wait when a region of the migration has its circuit open."""
        if self.router is None:
            return None
        for region in (request.from_region, request.to_region):
            lane = self.router.lanes.get(region)
            if lane is not None and lane.circuit.state == "open":
                return float(lane.circuit.retry_in()) or self.retry_delay
        return None


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)


def step_runners_for(runtime: Any, *, poll_seconds: float = 5.0) -> dict[str, StepRunner]:
    """Step runners that share ``tenantctl listen``'s regional runtime
    (:class:`orchestrator.regions.RegionalRuntime`): its Argo engines and local engines."""
    runners: dict[str, StepRunner] = {}
    for name, lane in runtime.router.lanes.items():
        if lane.region.engine == "local":
            runners[name] = LocalStepRunner(lane.engine.engine)
        else:
            # A listener shutting down leaves the step's Workflow running (detached): the
            # redelivered request follows the same Workflow again.
            runners[name] = ArgoStepRunner(
                lane.engine, poll_seconds=poll_seconds, stop_on_cancel=False
            )
    return runners


def bus_publisher(bus: Any, topic: str) -> Publish:
    """``publish`` for :class:`Migration`: each event on ``topic`` with the attributes the
    orchestrator's results carry (``ce-type``, ``ce-id``, ``tenant``)."""

    def publish(event: Mapping[str, Any]) -> None:
        data, attributes = structured_message(event)
        attributes["tenant"] = str(event.get("subject", ""))
        bus.publish(topic, data, attributes)

    return publish
