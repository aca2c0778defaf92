"""The per-tenant runners behind :class:`orchestrator.fleet.TenantRunner`.

* :class:`LocalEngineTenantRunner` — the local engine in this process (development, demos,
  clusters without Argo): discovery, waves and bridges for each tenant.
* :class:`ArgoTenantRunner` — the production path: one Workflow per tenant from the
  ``tenant-lifecycle`` WorkflowTemplate (the same submission the orchestrator makes for a bus
  event, named from the batch id so a resumed fleet finds its Workflow instead of starting a
  second one), followed until it ends (:func:`orchestrator.argo.follow.run_workflow`);
  cancelling stops it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from bridge.kube import Kube
from orchestrator.argo.follow import run_workflow
from orchestrator.argo.submit import ArgoEngine
from orchestrator.engine import LocalEngine
from orchestrator.events import LifecycleRequest
from orchestrator.fleet.request import FLEET_SOURCE, TenantRequest
from orchestrator.naming import DEFAULT_TEMPLATE
from orchestrator.outcome import RunOutcome, local_outcome
from orchestrator.submit import DEFAULT_PARALLELISM


class LocalEngineTenantRunner:
    """Each tenant through the local engine (discovery, waves, bridges), in this process."""

    def __init__(self, engine: LocalEngine) -> None:
        self.engine = engine

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> RunOutcome:
        return local_outcome(self.engine.run(request, cancel=cancel), timed=False)


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

        self.kube = kube
        self.namespace = namespace
        self.poll_seconds = poll_seconds
        self.engine = ArgoEngine(
            kube,
            namespace=namespace,
            template=template or DEFAULT_TEMPLATE,
            parallelism=parallelism or DEFAULT_PARALLELISM,
        )

    def run(self, request: TenantRequest, *, cancel: threading.Event) -> RunOutcome:

        lifecycle_request = LifecycleRequest(
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
        return run_workflow(
            self.engine, lifecycle_request, cancel=cancel, poll_seconds=self.poll_seconds
        )
