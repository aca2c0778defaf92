"""Submission to Argo: turn a validated request into exactly one Workflow.

:class:`ArgoEngine` creates a ``Workflow`` that references the ``tenant-lifecycle``
WorkflowTemplate (template-only execution: no inline templates), named deterministically from the
batch operation id. A second delivery of the same request gets 409 AlreadyExists from the API
server: that is reported as a duplicate, and the consumer acks it without doing anything else.
That is the whole idempotency story of submission -- no local state, no lock, it survives restarts
and several replicas.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bridge.errors import ConflictError, InvalidError, NotFoundError
from bridge.kube import WORKFLOWS, WORKFLOWTEMPLATES, Kube
from orchestrator.events import LifecycleRequest, event_time
from orchestrator.naming import (
    BATCH_LABEL,
    DEFAULT_TEMPLATE,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OPERATION_LABEL,
    PARENT_ANNOTATION,
    RECEIVED_AT_ANNOTATION,
    REGION_ANNOTATION,
    REQUESTED_AT_ANNOTATION,
    SOURCE_ANNOTATION,
    TENANT_LABEL,
    workflow_name,
)
from orchestrator.submit import DEFAULT_PARALLELISM, SubmitOutcome


def _json_text(value: Any) -> str:
    # JSON is valid YAML: the bridge reads either. Compact and key-sorted so that the same request
    # always renders the same Workflow.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def build_workflow(
    request: LifecycleRequest,
    *,
    template: str = DEFAULT_TEMPLATE,
    parallelism: int = DEFAULT_PARALLELISM,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """The Workflow object (a plain dict) that runs ``request`` from the WorkflowTemplate."""
    annotations = {
        SOURCE_ANNOTATION: request.source,
        RECEIVED_AT_ANNOTATION: event_time(received_at or datetime.now(UTC)),
    }
    if request.time is not None:
        annotations[REQUESTED_AT_ANNOTATION] = event_time(request.time)
    if request.region:
        annotations[REGION_ANNOTATION] = request.region
    if request.parent_batch_operation_id:
        annotations[PARENT_ANNOTATION] = request.parent_batch_operation_id
    parameters = {
        "operation": request.operation,
        "tenant-env-id": request.tenant_env_id,
        "batch-operation-id": request.batch_operation_id,
        "environment": _json_text(request.environment),
        "changeset": _json_text(request.changeset),
        "parallelism": str(parallelism),
        "source-batch-operation-id": request.source_batch_operation_id or "",
    }
    return {
        "apiVersion": WORKFLOWS.api_version,
        "kind": "Workflow",
        "metadata": {
            "name": workflow_name(request.batch_operation_id),
            "labels": {
                TENANT_LABEL: request.tenant_env_id,
                OPERATION_LABEL: request.operation,
                BATCH_LABEL: request.batch_operation_id,
                MANAGED_BY_LABEL: MANAGED_BY,
            },
            "annotations": annotations,
        },
        "spec": {
            "workflowTemplateRef": {"name": template},
            "arguments": {
                "parameters": [{"name": key, "value": value} for key, value in parameters.items()]
            },
        },
    }


class ArgoEngine:
    """Submits Workflows to Argo through the Kubernetes API (custom objects)."""

    name = "argo"

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        template: str = DEFAULT_TEMPLATE,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.template = template
        self.parallelism = parallelism

    def require_template(self) -> None:
        """Raise :class:`NotFoundError` naming the fix when the WorkflowTemplate is missing.

        The API server accepts a Workflow whose ``workflowTemplateRef`` names nothing; only the
        controller fails it later, where the person who submitted it does not look. Checked
        up front, the mistake (wrong namespace, template not installed) is one line instead.
        """
        try:
            self.kube.get(WORKFLOWTEMPLATES, self.template, namespace=self.namespace)
        except NotFoundError as exc:
            raise NotFoundError(
                f"WorkflowTemplate {self.template} not found in namespace {self.namespace}: "
                "a Workflow submitted there would fail",
                status=404,
                reason="WorkflowTemplateNotFound",
                hint="install it with `kubectl apply -k deploy/base`, or name the namespace it "
                "is in with --namespace or TENANTCTL_WORKFLOW_NAMESPACE",
            ) from exc

    def submit(self, request: LifecycleRequest) -> SubmitOutcome:
        body = build_workflow(request, template=self.template, parallelism=self.parallelism)
        name = body["metadata"]["name"]
        try:
            self.kube.create(WORKFLOWS, body, namespace=self.namespace)
        except ConflictError:
            # The name is the batch id: this request was submitted before (a redelivery, a
            # replay, another replica). Nothing else to do -- unless the Workflow holding the
            # name belongs to another batch (two ids that sanitize to one name): counting
            # that as a duplicate would drop this request without a trace.
            self._check_same_batch(name, request.batch_operation_id)
            return SubmitOutcome("duplicate", name, self.namespace, self.name)
        return SubmitOutcome("submitted", name, self.namespace, self.name)

    def _check_same_batch(self, name: str, batch_operation_id: str) -> None:
        try:
            existing = self.kube.get(WORKFLOWS, name, namespace=self.namespace)
        except NotFoundError:
            return  # deleted since the 409 (cleaned up after it ran): it was a duplicate
        labels = (existing.get("metadata") or {}).get("labels") or {}
        holder = labels.get(BATCH_LABEL)
        if holder is not None and holder != batch_operation_id:
            raise InvalidError(
                f"batch {batch_operation_id}: its Workflow name {self.namespace}/{name} is "
                f"taken by batch {holder}",
                status=409,
                reason="WorkflowNameTaken",
                hint="use batch ids that differ after lower-casing, e.g. UUIDs",
            )
