"""Deterministic names and the keys the orchestrator puts on Workflows.

The Workflow name is derived from the batch operation id, so a redelivered request maps to the
same name and the API server rejects the second create with 409: that 409 is our idempotency.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

PREFIX: Final = "tenant-lifecycle.dev"
TENANT_LABEL: Final = f"{PREFIX}/tenant"
OPERATION_LABEL: Final = f"{PREFIX}/operation"
BATCH_LABEL: Final = f"{PREFIX}/batch"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "tenantctl"
REGION_ANNOTATION: Final = f"{PREFIX}/region"
SOURCE_ANNOTATION: Final = f"{PREFIX}/source"
REQUESTED_AT_ANNOTATION: Final = f"{PREFIX}/requested-at"
RECEIVED_AT_ANNOTATION: Final = f"{PREFIX}/received-at"
PARENT_ANNOTATION: Final = f"{PREFIX}/parent-batch"
# Set once the result event of a Workflow is on the bus (value: RFC 3339 time of publishing).
RESULT_PUBLISHED_ANNOTATION: Final = f"{PREFIX}/result-published"
# "<owner> <unix seconds>": who is publishing the result right now (see argo/tracker.py).
RESULT_CLAIM_ANNOTATION: Final = f"{PREFIX}/result-claim"

# Defaults of the service (here, not in settings.py, so the CLI can show them without importing
# the Kubernetes client).
DEFAULT_REQUEST_TOPIC: Final = "tenant-lifecycle-requests"
DEFAULT_SUBSCRIPTION: Final = "tenant-lifecycle-orchestrator"
DEFAULT_RESULTS_TOPIC: Final = "tenant-lifecycle-results"
DEFAULT_DEAD_LETTER_TOPIC: Final = "tenant-lifecycle-dead-letter"
# Where deploy/base installs the WorkflowTemplate and the orchestrator's rights
# (workflows.settings.WorkflowSettings.workflow_namespace; a test holds them equal).
DEFAULT_WORKFLOW_NAMESPACE: Final = "tenant-lifecycle"
DEFAULT_TEMPLATE: Final = "tenant-lifecycle"
ENGINES: Final = ("argo", "local")

WORKFLOW_PREFIX: Final = "lc-"
MAX_NAME: Final = 63
_HASH_LENGTH: Final = 10


def workflow_name(batch_operation_id: str) -> str:
    """``lc-<sanitized batch id>``; truncated with a hash suffix when sanitizing lost anything.

    The hash keeps two ids that sanitize alike (``Batch_1`` and ``batch-1``) apart, and keeps the
    name within 63 characters (Argo puts it in pod labels).
    """
    sanitized = re.sub(r"[^a-z0-9-]+", "-", batch_operation_id.lower()).strip("-")
    sanitized = re.sub(r"-{2,}", "-", sanitized)
    plain = f"{WORKFLOW_PREFIX}{sanitized}"
    if sanitized == batch_operation_id and len(plain) <= MAX_NAME:
        return plain
    digest = hashlib.sha256(batch_operation_id.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    room = MAX_NAME - len(WORKFLOW_PREFIX) - _HASH_LENGTH - 1
    head = sanitized[:room].rstrip("-")
    return f"{WORKFLOW_PREFIX}{head}-{digest}" if head else f"{WORKFLOW_PREFIX}{digest}"
