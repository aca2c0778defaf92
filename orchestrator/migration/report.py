"""What a migration reports: each step's :class:`StepReport` and the whole
:class:`MigrationResult`, with the ``migration.succeeded|failed`` event built from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.events import (
    JSON_CONTENT_TYPE,
    SPEC_VERSION,
    event_time,
)
from orchestrator.events.migration import (
    EXPORT,
    IMPORT,
    MIGRATION_FAILED_TYPE,
    MIGRATION_OPERATION,
    MIGRATION_SUCCEEDED_TYPE,
    MigrationRequest,
)
from orchestrator.outcome import SUCCEEDED


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
            "startedAt": event_time(self.started_at),
            "finishedAt": event_time(self.finished_at),
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
            "time": event_time(self.finished_at),
            "datacontenttype": JSON_CONTENT_TYPE,
            "data": self.to_json(),
        }


def resumed(result: MigrationResult) -> Sequence[str]:
    """The steps this run took from the history instead of running them."""
    return [step.step for step in result.steps if step.resumed]
