"""The ``operation.succeeded`` / ``.failed`` event: it carries the *same* ``id`` as the request
(the batch operation id), so a consumer deduplicates a result published twice by ``id`` + ``type``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from orchestrator.events.envelope import (
    FAILED_TYPE,
    JSON_CONTENT_TYPE,
    RESULT_SOURCE,
    SPEC_VERSION,
    SUCCEEDED_TYPE,
    event_time,
)


def result_event(
    *,
    batch_operation_id: str,
    tenant_env_id: str,
    operation: str,
    status: str,
    jobs: Sequence[Mapping[str, Any]],
    workflow: str | None,
    region: str | None = None,
    started_at: str | None = None,
    finished_at: str | None = None,
    source: str = RESULT_SOURCE,
    time: datetime | None = None,
) -> dict[str, Any]:
    """An ``operation.succeeded`` / ``operation.failed`` CloudEvent with the request's ``id``."""
    if status not in {"succeeded", "failed"}:
        raise ValueError(f"result status must be 'succeeded' or 'failed', not {status!r}")
    return {
        "specversion": SPEC_VERSION,
        "type": SUCCEEDED_TYPE if status == "succeeded" else FAILED_TYPE,
        "source": source,
        "id": batch_operation_id,
        "subject": tenant_env_id,
        "time": event_time(time or datetime.now(UTC)),
        "datacontenttype": JSON_CONTENT_TYPE,
        "data": {
            "operation": operation,
            "tenantEnvId": tenant_env_id,
            "region": region,
            "status": status,
            "jobs": [dict(job) for job in jobs],
            "workflow": workflow,
            "startedAt": started_at,
            "finishedAt": finished_at,
        },
    }
