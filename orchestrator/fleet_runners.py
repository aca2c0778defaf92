"""The per-tenant runners behind :class:`orchestrator.fleet.TenantRunner`.

* :class:`LocalEngineTenantRunner` — the local engine in this process (development, demos,
  clusters without Argo): discovery, waves and bridges for each tenant.
* :class:`ArgoTenantRunner` — the production path: one Workflow per tenant from the
  ``tenant-lifecycle`` WorkflowTemplate (the same submission the orchestrator makes for a bus
  event, named from the batch id so a resumed fleet finds its Workflow instead of starting a
  second one), followed until it ends; cancelling stops it (``spec.shutdown: Stop``: the
  bridges get SIGTERM and delete their pods, the exit handler still publishes the result).
* :class:`FakeTenantRunner` — scripted outcomes and durations, for the fleet's own tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.fleet import (
    CANCELLED,
    ERROR,
    FAILED,
    FLEET_SOURCE,
    SUCCEEDED,
    TenantOutcome,
    TenantRequest,
)

if TYPE_CHECKING:
    from bridge.kube import Kube
    from orchestrator.engine import LocalEngine


class LocalEngineTenantRunner:
    """Each tenant through the local engine (discovery, waves, bridges), in this process."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome:
        result = self.engine.run(request, cancel=cancel)
        jobs = tuple(job.to_json() for job in result.jobs)
        return TenantOutcome(
            status=result.status,
            message=outcome_message(result.status, jobs, result.errors),
            jobs=jobs,
            workflow=result.workflow,
        )


def outcome_message(
    status: str, jobs: Sequence[Mapping[str, Any]], errors: Iterable[str] = ()
) -> str:
    """One line for the summary: which jobs failed and why."""
    problems = [str(e) for e in errors]
    for job in jobs:
        if job.get("status") not in (SUCCEEDED, "skipped"):
            where = f"{job.get('namespace', '?')}/{job.get('job', job.get('name', '?'))}"
            reason = job.get("reason") or job.get("status")
            exit_code = job.get("exitCode")
            detail = f"{where} {reason}" + (f" (exit {exit_code})" if exit_code else "")
            problems.append(detail)
    if not problems:
        return f"{len(jobs)} job(s) {status}" if jobs else status
    return "; ".join(problems)


@dataclass(frozen=True)
class FakeScript:
    """What :class:`FakeTenantRunner` does for one tenant."""

    status: str = SUCCEEDED
    seconds: float = 0.0
    message: str = ""


class FakeTenantRunner:
    """A scripted runner for tests of the fleet logic (budget, canary, concurrency, resume):
    sleeps ``seconds`` (waking up at once on cancel) and returns the scripted status. Keeps
    the peak number of concurrent runs and the order of starts."""

    def __init__(
        self,
        script: Mapping[str, FakeScript] | None = None,
        *,
        default: FakeScript = FakeScript(),
        raises: Mapping[str, Exception] | None = None,
    ) -> None:
        self.script = dict(script or {})
        self.default = default
        self.raises = dict(raises or {})
        self.started: list[str] = []
        self.peak = 0
        self._running = 0
        self._lock = threading.Lock()

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome:
        step = self.script.get(request.tenant.id, self.default)
        with self._lock:
            self.started.append(request.tenant.id)
            self._running += 1
            self.peak = max(self.peak, self._running)
        try:
            if request.tenant.id in self.raises:
                raise self.raises[request.tenant.id]
            if cancel.wait(step.seconds):
                return TenantOutcome(CANCELLED, "interrupted")
            return TenantOutcome(step.status, step.message or step.status)
        finally:
            with self._lock:
                self._running -= 1


class ArgoTenantRunner:
    """Each tenant as a Workflow from the WorkflowTemplate, followed until it ends."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        template: str | None = None,
        parallelism: int | None = None,
        poll_seconds: float = 5.0,
    ) -> None:
        # Imported here: only the Argo path needs the Kubernetes client loaded.
        from orchestrator.naming import DEFAULT_TEMPLATE  # noqa: PLC0415
        from orchestrator.submit import DEFAULT_PARALLELISM, ArgoEngine  # noqa: PLC0415

        self.kube = kube
        self.namespace = namespace
        self.poll_seconds = poll_seconds
        self.engine = ArgoEngine(
            kube,
            namespace=namespace,
            template=template or DEFAULT_TEMPLATE,
            parallelism=parallelism or DEFAULT_PARALLELISM,
        )

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> TenantOutcome:
        from bridge.errors import NotFoundError, UnavailableError  # noqa: PLC0415
        from bridge.kube import WORKFLOWS  # noqa: PLC0415
        from orchestrator.events import LifecycleRequest  # noqa: PLC0415

        submitted = self.engine.submit(
            LifecycleRequest(
                batch_operation_id=request.batch_operation_id,
                tenant_env_id=request.tenant.id,
                operation=request.operation,
                region=request.tenant.region,
                environment=dict(request.environment),
                changeset=dict(request.changeset),
                source=FLEET_SOURCE,
                time=datetime.now(UTC),
                parent_batch_operation_id=request.parent_batch_operation_id,
                source_batch_operation_id=request.source_batch_operation_id,
            )
        )
        name = submitted.name
        while True:
            try:
                workflow = self.kube.get(WORKFLOWS, name, namespace=self.namespace)
            except NotFoundError:
                return TenantOutcome(ERROR, f"workflow {name} was deleted", workflow=name)
            except UnavailableError:
                workflow = None  # the API is down for now: look again at the next poll
            if workflow is not None:
                outcome = workflow_outcome(workflow)
                if outcome is not None:
                    return outcome
            if cancel.wait(self.poll_seconds):
                self.kube.patch(
                    WORKFLOWS, name, {"spec": {"shutdown": "Stop"}}, namespace=self.namespace
                )
                return TenantOutcome(CANCELLED, f"workflow {name} stopped", workflow=name)


_ARGO_DONE = {"Succeeded": SUCCEEDED, "Failed": FAILED, "Error": FAILED}


def workflow_outcome(workflow: Mapping[str, Any]) -> TenantOutcome | None:
    """The outcome of a finished Workflow, or ``None`` while it runs."""
    status = workflow.get("status") or {}
    state = _ARGO_DONE.get(str(status.get("phase") or ""))
    if state is None:
        return None
    # The tracker's reading of a Workflow's bridge results (retries, waves, killed nodes),
    # so a fleet reports exactly what the result event says.
    from orchestrator.tracker import collect_jobs, workflow_nodes  # noqa: PLC0415 (Kubernetes)

    name = str((workflow.get("metadata") or {}).get("name", ""))
    nodes = workflow_nodes(workflow)
    if not nodes.readable:
        # Offloaded or unreadable node status: no job can be shown as succeeded (an on-failure
        # `continue` job fails without failing the Workflow), so, like the result event, the
        # tenant failed, and the message says why and how to fix it.
        message = f"{nodes.message} The Workflow's phase is {status['phase']}."
        if state != SUCCEEDED and status.get("message"):
            message = f"{status['message']}; {message}"
        return TenantOutcome(FAILED, message, (), workflow=name)
    jobs = collect_jobs(workflow)
    message = outcome_message(state, jobs)
    if state != SUCCEEDED and status.get("message"):
        message = f"{status['message']}; {message}" if jobs else str(status["message"])
    return TenantOutcome(state, message, tuple(jobs), workflow=name)
