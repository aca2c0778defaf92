"""The ``operation.requested`` event: :class:`LifecycleRequest`, its parser :func:`parse_request`
(strict on what the orchestrator uses, lenient on what it does not: unknown extensions are
checked for shape, unknown ``data`` keys ignored) and its builder :func:`request_event`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from bridge.contract import KNOWN_OPERATIONS, operation_name_problem
from orchestrator.batch_ids import new_batch_operation_id
from orchestrator.events.envelope import (
    DATA_ATTRIBUTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_EVENT_BYTES,
    JSON_CONTENT_TYPE,
    REQUEST_TYPE,
    SPEC_VERSION,
    STRUCTURED,
    InvalidEvent,
    as_binary,
    check_content_type,
    decode_message,
    event_time,
    json_type,
)

# The batch operation id becomes a label value and (sanitized) the Workflow name; the tenant env id
# becomes a label value: both follow the Kubernetes label-value syntax (<= 63 characters).
_LABEL_VALUE_RE: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_REGION_RE: Final = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_APPLICATION_RE: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
# CloudEvents 1.0: attribute names are lower-case ASCII letters and digits; <= 20 is the spec's
# interoperability recommendation, which we enforce so every transport binding can carry them.
_ATTRIBUTE_NAME_RE: Final = re.compile(r"^[a-z0-9]{1,20}$")
_RFC3339_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_MAX_SOURCE_LENGTH: Final = 1024

_CORE_ATTRIBUTES: Final = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"}
)


@dataclass(frozen=True)
class LifecycleRequest:
    """A validated ``operation.requested`` event."""

    batch_operation_id: str
    tenant_env_id: str
    operation: str
    region: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    changeset: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    time: datetime | None = None
    parent_batch_operation_id: str | None = None
    source_batch_operation_id: str | None = None


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------


def parse_request(
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> LifecycleRequest:
    """Parse and validate one request message (its data and, for binary mode, its attributes).

    Raises :class:`InvalidEvent` naming the first problem found.
    """
    event, mode = decode_message(data, attributes, max_bytes=max_bytes, max_depth=max_depth)
    if mode == STRUCTURED:
        return _validate_request(event)
    try:
        return _validate_request(event)
    except InvalidEvent as exc:
        raise as_binary(exc) from None


def _validate_request(event: Mapping[str, Any]) -> LifecycleRequest:
    _check_specversion(event)
    _check_extensions(event)
    type_ = _required_string(event, "type")
    if type_ != REQUEST_TYPE:
        raise InvalidEvent(
            "WrongType",
            f"type is {type_!r}, not {REQUEST_TYPE!r}",
            field="type",
            hint=f"this subscription only takes {REQUEST_TYPE}",
        )
    batch_id = _required_string(event, "id")
    _check_label_value(batch_id, "id", "InvalidId", "batch operation id")
    source = _required_string(event, "source")
    if len(source) > _MAX_SOURCE_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in source):
        raise InvalidEvent(
            "InvalidSource",
            f"source must be a URI-reference without whitespace, at most {_MAX_SOURCE_LENGTH} "
            "characters",
            field="source",
            hint='e.g. "tenant-manager" or "//crm.example.com/lifecycle"',
        )
    tenant = _required_string(event, "subject")
    _check_label_value(tenant, "subject", "InvalidSubject", "tenant environment id")
    when = _check_time(event)
    check_content_type(event)
    if "dataschema" in event and not isinstance(event["dataschema"], str):
        raise InvalidEvent(
            "WrongAttributeType",
            f"dataschema must be a string (URI), not {json_type(event['dataschema'])}",
            field="dataschema",
        )
    data = _check_data(event)
    operation = _check_operation(data)
    region = _optional_region(data)
    environment = _optional_object(data, "tenantEnvironment", "InvalidTenantEnvironment")
    _check_applications(environment)
    changeset = _optional_object(data, "changeset", "InvalidChangeset")
    parent = _optional_batch_id(data, "parentBatchOperationId")
    source_batch = _optional_batch_id(data, "sourceBatchOperationId")
    return LifecycleRequest(
        batch_operation_id=batch_id,
        tenant_env_id=tenant,
        operation=operation,
        region=region,
        environment=environment,
        changeset=changeset,
        source=source,
        time=when,
        parent_batch_operation_id=parent,
        source_batch_operation_id=source_batch,
    )


def _check_specversion(event: Mapping[str, Any]) -> None:
    if "specversion" not in event or event["specversion"] is None:
        raise InvalidEvent(
            "MissingSpecVersion",
            "specversion is missing",
            field="specversion",
            hint='add "specversion": "1.0"',
        )
    version = event["specversion"]
    if version != SPEC_VERSION:
        raise InvalidEvent(
            "UnsupportedSpecVersion",
            f"specversion is {version!r}; only CloudEvents {SPEC_VERSION!r} is supported",
            field="specversion",
            hint='set "specversion": "1.0" (a string)',
        )


def _check_extensions(event: Mapping[str, Any]) -> None:
    """Unknown attributes are CloudEvents extensions: valid names, scalar values."""
    for name, value in event.items():
        if name in _CORE_ATTRIBUTES or name in DATA_ATTRIBUTES:
            continue
        if not _ATTRIBUTE_NAME_RE.match(name):
            raise InvalidEvent(
                "InvalidExtension",
                f"attribute {name[:40]!r} is not a valid CloudEvents extension name",
                field=name[:40],
                hint="extension names are 1-20 lower-case letters and digits; "
                "tenant-lifecycle fields go inside data",
            )
        if isinstance(value, dict | list | float):
            raise InvalidEvent(
                "InvalidExtension",
                f"extension attribute {name!r} is a JSON {json_type(value)}; extension values "
                "are strings, integers or booleans",
                field=name,
            )


def _required_string(event: Mapping[str, Any], name: str) -> str:
    if name not in event or event[name] is None:
        raise InvalidEvent(
            "MissingAttribute",
            f"required attribute {name} is missing",
            field=name,
            hint=_ATTRIBUTE_HINTS.get(name),
        )
    value = event[name]
    if not isinstance(value, str):
        raise InvalidEvent(
            "WrongAttributeType",
            f"attribute {name} must be a string, not a JSON {json_type(value)}",
            field=name,
            hint=_ATTRIBUTE_HINTS.get(name),
        )
    if not value.strip():
        raise InvalidEvent(
            "EmptyAttribute",
            f"attribute {name} is empty",
            field=name,
            hint=_ATTRIBUTE_HINTS.get(name),
        )
    return value


_ATTRIBUTE_HINTS: Final = {
    "id": "set id to the batch operation id, e.g. a UUID",
    "source": 'set source to who asks, e.g. "tenant-manager"',
    "type": f"set type to {REQUEST_TYPE!r}",
    "subject": "set subject to the tenant environment id",
}


def _check_label_value(value: str, name: str, code: str, what: str) -> None:
    if not _LABEL_VALUE_RE.match(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidEvent(
            code,
            f"{name} {shown!r} is not a valid {what}: at most 63 letters, digits, '-', '_' or "
            "'.', starting and ending with a letter or digit",
            field=name,
            hint="a UUID or a slug works",
        )


def _check_time(event: Mapping[str, Any]) -> datetime | None:
    if "time" not in event or event["time"] is None:
        return None
    value = event["time"]
    if not isinstance(value, str) or not _RFC3339_RE.match(value):
        raise InvalidEvent(
            "InvalidTime",
            f"time {value!r} is not an RFC 3339 timestamp",
            field="time",
            hint='e.g. "2026-11-22T10:00:00Z"',
        )
    try:
        # fromisoformat accepts at most 6 fractional digits: trim nanoseconds.
        normalized = re.sub(r"(\.\d{6})\d+", r"\1", value.upper().replace("Z", "+00:00"))
        return datetime.fromisoformat(normalized)
    except ValueError as exc:
        raise InvalidEvent(
            "InvalidTime",
            f"time {value!r} is not a valid date and time ({exc})",
            field="time",
            hint='e.g. "2026-11-22T10:00:00Z"',
        ) from exc


def _check_data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    if "data_base64" in event:
        raise InvalidEvent(
            "DataNotJSON",
            "data_base64 is not accepted: the request data must be a JSON object in data",
            field="data_base64",
            hint='send "data": {"operation": ...} instead',
        )
    if "data" not in event or event["data"] is None:
        raise InvalidEvent(
            "MissingData",
            "data is missing",
            field="data",
            hint='add "data": {"operation": "lifecycle.upsert", ...}',
        )
    data = event["data"]
    if not isinstance(data, dict):
        raise InvalidEvent(
            "DataNotObject",
            f"data must be a JSON object, not a JSON {json_type(data)}",
            field="data",
            hint='send "data": {"operation": "lifecycle.upsert", ...}',
        )
    if not data:
        raise InvalidEvent(
            "EmptyData",
            "data is an empty object",
            field="data",
            hint='at least "operation" is required',
        )
    return data


def _check_operation(data: Mapping[str, Any]) -> str:
    if "operation" not in data or data["operation"] is None:
        raise InvalidEvent(
            "MissingOperation",
            "data.operation is missing",
            field="data.operation",
            hint='e.g. "lifecycle.upsert"',
        )
    operation = data["operation"]
    if not isinstance(operation, str):
        raise InvalidEvent(
            "WrongFieldType",
            f"data.operation must be a string, not a JSON {json_type(operation)}",
            field="data.operation",
            hint='e.g. "lifecycle.upsert"',
        )
    problem = operation_name_problem(operation)
    if problem is None:
        return operation
    namespace, _, rest = operation.partition(".")
    # Well formed, but in the platform's reserved namespace and not one of its operations.
    unknown = namespace == "lifecycle" and operation_name_problem(f"team.{rest}") is None
    raise InvalidEvent(
        "UnknownOperation" if unknown else "MalformedOperation",
        f"data.operation: {problem}",
        field="data.operation",
        hint=f"use one of {', '.join(sorted(KNOWN_OPERATIONS))} or a team operation "
        "<team>.<operation>",
    )


def _optional_region(data: Mapping[str, Any]) -> str | None:
    region = data.get("region")
    if region is None:
        return None
    if not isinstance(region, str) or not _REGION_RE.match(region):
        shown = region if isinstance(region, str) else f"a JSON {json_type(region)}"
        raise InvalidEvent(
            "InvalidRegion",
            f"data.region must be a region name (lower-case letters, digits, '-'), got {shown!r}",
            field="data.region",
            hint='e.g. "eu-west-1", or leave it out',
        )
    return region


def _optional_object(data: Mapping[str, Any], key: str, code: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(
            code,
            f"data.{key} must be a JSON object, not a JSON {json_type(value)}",
            field=f"data.{key}",
            hint="send an object (or leave it out)",
        )
    return value


def _check_applications(environment: Mapping[str, Any]) -> None:
    if "applications" not in environment or environment["applications"] is None:
        return
    apps = environment["applications"]
    path = "data.tenantEnvironment.applications"
    if not isinstance(apps, list):
        raise InvalidEvent(
            "InvalidApplications",
            f"{path} must be a list of application names, not a JSON {json_type(apps)}",
            field=path,
            hint='e.g. ["catalog", "search"]',
        )
    for index, app in enumerate(apps):
        if not isinstance(app, str) or not _APPLICATION_RE.match(app):
            raise InvalidEvent(
                "InvalidApplications",
                f"{path}[{index}] must be an application name (letters, digits, '.', '_', "
                f"'-'), got {app!r}",
                field=f"{path}[{index}]",
                hint='e.g. ["catalog", "search"]',
            )


def _optional_batch_id(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEvent(
            "WrongFieldType",
            f"data.{key} must be a string, not a JSON {json_type(value)}",
            field=f"data.{key}",
        )
    _check_label_value(value, f"data.{key}", "InvalidId", "batch operation id")
    return value


def request_event(
    operation: str,
    *,
    tenant_env_id: str,
    batch_operation_id: str | None = None,
    source: str = "tenantctl",
    region: str | None = None,
    environment: Mapping[str, Any] | None = None,
    changeset: Mapping[str, Any] | None = None,
    parent_batch_operation_id: str | None = None,
    source_batch_operation_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """An ``operation.requested`` CloudEvent (a dict; encode with :func:`encode_event`)."""
    data: dict[str, Any] = {"operation": operation}
    if region:
        data["region"] = region
    data["tenantEnvironment"] = dict(environment or {})
    data["changeset"] = dict(changeset or {})
    if parent_batch_operation_id:
        data["parentBatchOperationId"] = parent_batch_operation_id
    if source_batch_operation_id:
        data["sourceBatchOperationId"] = source_batch_operation_id
    return {
        "specversion": SPEC_VERSION,
        "type": REQUEST_TYPE,
        "source": source,
        "id": batch_operation_id or new_batch_operation_id(),
        "subject": tenant_env_id,
        "time": event_time(time or datetime.now(UTC)),
        "datacontenttype": JSON_CONTENT_TYPE,
        "data": data,
    }
