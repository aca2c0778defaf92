"""The local engine's seam to the outside: how a plan is obtained and how a bridge is run.

Two small protocols, so the engine's wave/parallelism/on-failure logic is tested with fakes and
the real implementations (:mod:`orchestrator.engine.bridges`) stay thin:

* :class:`PlanSource` -- discovery: operation + tenant in, :class:`EnginePlan` out.
* :class:`BridgeLauncher` -- start one bridge for one job; the returned :class:`BridgeHandle` is
  waited on by a worker thread and terminated (SIGTERM, the same signal Argo sends when a
  workflow is stopped) by the engine when the run is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from bridge.result import RunResult, Status

from .plan import EnginePlan, PlannedJob

# (job, line, stream) -- stream is "stdout" (the pod's log, streamed by the bridge) or "stderr"
# (the bridge's own messages: attempts, retries, refusals).
LineSink = Callable[[PlannedJob, str, str], None]


@dataclass(frozen=True)
class BridgeSpec:
    """Everything one bridge needs: the ``python -m bridge run`` arguments, as data."""

    job: PlannedJob
    operation: str
    tenant_env_id: str
    batch_operation_id: str
    environment: Mapping[str, Any] = field(default_factory=dict)
    changeset: Mapping[str, Any] = field(default_factory=dict)
    source_batch_operation_id: str | None = None

    def unreported_result(
        self, *, status: str, exit_code: int | None, reason: str, message: str, started_at: datetime
    ) -> dict[str, Any]:
        """The bridge's result JSON for a run that wrote none (it died, was abandoned, or never
        started), built by the bridge's own record so both have the same keys and formats."""
        record = RunResult(
            namespace=self.job.namespace,
            job=self.job.name,
            operation=self.operation,
            tenant_env_id=self.tenant_env_id,
            batch_operation_id=self.batch_operation_id,
            started_at=started_at,
        )
        return record.finish(
            Status(status), reason=reason, message=message, exit_code=exit_code
        ).to_json()


class BridgeHandle(Protocol):
    def wait(self) -> Mapping[str, Any]:
        """Block until the bridge has exited; its result JSON (INTERFACES.md, "Result JSON")."""
        ...

    def terminate(self) -> None:
        """Ask the bridge to stop (it deletes its pod and exits 143). Must not block."""
        ...


class BridgeLauncher(Protocol):
    """Also, optionally, ``cleanup(spec) -> list[str]``: delete the pods a bridge that exited 75
    kept for its rerun, when the run is cancelled before that rerun (the names deleted)."""

    def launch(self, spec: BridgeSpec, *, on_line: LineSink) -> BridgeHandle: ...


class PlanSource(Protocol):
    def discover(
        self, *, operation: str, tenant_env_id: str, environment: Mapping[str, Any]
    ) -> EnginePlan: ...
