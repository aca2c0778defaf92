"""The migration request event ``dev.tenant-lifecycle.migration.requested`` and its results'
types::

    {"specversion": "1.0", "type": "dev.tenant-lifecycle.migration.requested",
     "source": "tenant-manager", "id": "<parent batch id>", "subject": "<tenant env id>",
     "data": {"from": "eu-west-1", "to": "us-east-1",
              "tenantEnvironment": {...}, "changeset": {...}}}

Parsed into :class:`MigrationRequest` through the same envelope checks as an operation request;
its two steps' requests are checked by :func:`~orchestrator.events.parse_request` too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from bridge.errors import UsageError
from orchestrator.batch_ids import step_batch_id
from orchestrator.events import (
    InvalidEvent,
    LifecycleRequest,
    encode_event,
    parse_request,
    request_event,
)

MIGRATION_TYPE: Final = "dev.tenant-lifecycle.migration.requested"
MIGRATION_SUCCEEDED_TYPE: Final = "dev.tenant-lifecycle.migration.succeeded"
MIGRATION_FAILED_TYPE: Final = "dev.tenant-lifecycle.migration.failed"
MIGRATION_OPERATION: Final = "lifecycle.migration"  # the parent's operation in the history
EXPORT: Final = "lifecycle.migrate-out"
IMPORT: Final = "lifecycle.migrate-in"
MIGRATION_SOURCE: Final = "tenantctl-migrate"
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
        return step_batch_id(
            self.parent_batch_operation_id, "out" if operation == EXPORT else "in", attempt
        )


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


def is_migration(data: bytes) -> bool:
    """Cheap pre-check on the raw message: does it claim to be a migration request?"""
    return MIGRATION_TYPE.encode() in data
