"""What a local run produces: one result per job and the operation's result.

The shape is the Argo path's result event data (INTERFACES.md, "Result event data"): each job is
the bridge's own result JSON plus its ``wave``, so a consumer cannot tell which engine ran the
operation from the jobs alone. Two compatible extensions, both needed only locally:

* ``status: "skipped"`` for a job the engine never started (an earlier ``abort`` job failed, or
  the run was cancelled first). Argo has no node output for such a job; the tracker lists the
  plan's jobs that never ran the same way (:func:`orchestrator.argo.outcome.collect_jobs`), so both
  engines report the same jobs.
* the operation status ``"cancelled"`` (Ctrl-C, ``LocalEngine.cancel``). The result *event*
  only knows ``succeeded|failed``, so :meth:`OperationResult.to_event_data` reports a cancelled
  run as ``failed`` with ``"cancelled": true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.timefmt import rfc3339

from .plan import PlannedJob, RejectedJob

# Job statuses: the bridge's five, plus the engine's own "skipped".
SUCCEEDED = "succeeded"
FAILED = "failed"
REFUSED = "refused"
CANCELLED = "cancelled"
ERROR = "error"
SKIPPED = "skipped"

# Exit codes of `tenantctl run` (and of LocalEngine callers that mirror it).
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 130


@dataclass(frozen=True)
class JobResult:
    """One job's outcome: the bridge's result JSON (``data``) and the wave it ran in."""

    job: PlannedJob
    data: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.data.get("status", ERROR))

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def exit_code(self) -> int | None:
        code = self.data.get("exitCode")
        return code if isinstance(code, int) else None

    @property
    def reason(self) -> str:
        return str(self.data.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.data.get("message") or "")

    @property
    def attempts(self) -> int:
        attempts = self.data.get("attempts")
        return len(attempts) if isinstance(attempts, list) else 0

    @property
    def duration_seconds(self) -> float | None:
        value = self.data.get("durationSeconds")
        return float(value) if isinstance(value, int | float) else None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.data)
        out.setdefault("namespace", self.job.namespace)
        out.setdefault("job", self.job.name)
        out["wave"] = self.job.wave
        return out

    @classmethod
    def skipped(
        cls, job: PlannedJob, *, operation: str, tenant_env_id: str, batch: str, why: str
    ) -> JobResult:
        """A job the engine never started; ``why`` is ``"Cancelled"`` or ``"WaveAborted"``."""
        message = (
            "not started: the run was cancelled"
            if why == "Cancelled"
            else "not started: an earlier job with on-failure abort failed"
        )
        return cls(
            job=job,
            data={
                "namespace": job.namespace,
                "job": job.name,
                "operation": operation,
                "tenantEnvId": tenant_env_id,
                "batchOperationId": batch,
                "status": SKIPPED,
                "exitCode": None,
                "reason": why,
                "message": message,
                "attempts": [],
                "startedAt": None,
                "finishedAt": None,
                "durationSeconds": 0.0,
            },
        )


@dataclass(frozen=True)
class OperationResult:
    """The result of one lifecycle operation run by the local engine."""

    operation: str
    tenant_env_id: str
    batch_operation_id: str
    status: str  # succeeded | failed | cancelled
    jobs: tuple[JobResult, ...]
    started_at: datetime
    finished_at: datetime
    region: str | None = None
    rejected: tuple[RejectedJob, ...] = ()
    aborted_by: str | None = None  # "namespace/job" of the abort job that stopped later waves
    workflow: str | None = None  # no Argo Workflow locally
    errors: tuple[str, ...] = field(default=())

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    @property
    def cancelled(self) -> bool:
        return self.status == CANCELLED

    @property
    def exit_code(self) -> int:
        if self.status == SUCCEEDED:
            return EXIT_SUCCEEDED
        if self.status == CANCELLED:
            return EXIT_CANCELLED
        return EXIT_FAILED

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def job(self, key: str) -> JobResult:
        """The result of ``namespace/name`` (KeyError when the plan did not have it)."""
        for result in self.jobs:
            if result.job.key == key:
                return result
        raise KeyError(key)

    def to_event_data(self) -> dict[str, Any]:
        """The result event's ``data`` (same keys as the Argo path's, plus local extras)."""
        data: dict[str, Any] = {
            "operation": self.operation,
            "tenantEnvId": self.tenant_env_id,
            "region": self.region,
            "status": SUCCEEDED if self.succeeded else FAILED,
            "jobs": [result.to_json() for result in self.jobs],
            "workflow": self.workflow,
            "startedAt": rfc3339(self.started_at, precision="microseconds"),
            "finishedAt": rfc3339(self.finished_at, precision="microseconds"),
            "batchOperationId": self.batch_operation_id,
            "engine": "local",
        }
        if self.cancelled:
            data["cancelled"] = True
        return data

    def to_json(self) -> dict[str, Any]:
        """``tenantctl run --output json``: the event data plus the local run's own details."""
        data = self.to_event_data()
        data["status"] = self.status
        data["durationSeconds"] = round(self.duration_seconds, 3)
        data["abortedBy"] = self.aborted_by
        data["rejected"] = [
            {"namespace": r.namespace, "name": r.name, "errors": list(r.errors)}
            for r in self.rejected
        ]
        data["errors"] = list(self.errors)
        return data
