"""The lifecycle events on the bus: CloudEvents 1.0 over the Pub/Sub protocol binding.

A request (``dev.tenant-lifecycle.operation.requested``) is parsed and validated by
:func:`parse_request`, which either returns a :class:`LifecycleRequest` or raises
:class:`InvalidEvent` with a stable ``reason_code`` (machine-readable, put on the dead-letter
message as the ``reasonCode`` attribute) and a message naming the field and the fix.

Both content modes of the binding are accepted (:func:`decode_message` tells them apart): in
*structured* mode the message body is the whole event as JSON; in *binary* mode the body is only
``data`` and the other attributes are ``ce-``-prefixed message attributes (``content-type`` is
``datacontenttype``). Both end as the same event dict and go through the same validation, so
the same reason codes apply; a reason about a binary-mode attribute names it as the message
carries it (``ce-id``, ``content-type``). Results are published in structured mode
(:func:`structured_message`, see docs/orchestrator.md).

Results (``dev.tenant-lifecycle.operation.succeeded`` / ``.failed``) carry the *same* ``id`` as
the request (the batch operation id): it is deterministic, so a consumer deduplicates a result
that was published twice (at-least-once publishing after a crash, see docs/orchestrator.md) by
``id`` + ``type``.

Validation is strict on what the orchestrator uses and lenient on what it does not: unknown
top-level attributes are CloudEvents extensions (their names and value types are checked, their
values are ignored); unknown keys inside ``data`` are ignored (forward compatibility).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from bridge.contract import KNOWN_OPERATIONS, operation_name_problem
from bridge.errors import LifecycleError

SPEC_VERSION: Final = "1.0"
REQUEST_TYPE: Final = "dev.tenant-lifecycle.operation.requested"
SUCCEEDED_TYPE: Final = "dev.tenant-lifecycle.operation.succeeded"
FAILED_TYPE: Final = "dev.tenant-lifecycle.operation.failed"
RESULT_SOURCE: Final = "tenant-lifecycle/orchestrator"
JSON_CONTENT_TYPE: Final = "application/json"

# The Pub/Sub protocol binding: a ``content-type`` attribute starting with this media type
# marks structured mode; binary mode carries the attributes as ``ce-<name>``.
CLOUDEVENTS_MEDIA_TYPE: Final = "application/cloudevents"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json; charset=utf-8"
CONTENT_TYPE_ATTRIBUTE: Final = "content-type"
BINARY_PREFIX: Final = "ce-"
STRUCTURED: Final = "structured"
BINARY: Final = "binary"
CONTENT_MODES: Final = (STRUCTURED, BINARY)

DEFAULT_MAX_EVENT_BYTES: Final = 256 * 1024
DEFAULT_MAX_DEPTH: Final = 32

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
_DATA_ATTRIBUTES: Final = frozenset({"data", "data_base64"})


class InvalidEvent(LifecycleError):  # noqa: N818 -- the name INTERFACES.md agreed on
    """A message that is not a valid lifecycle request; it is dead-lettered, never retried.

    ``reason_code`` is stable (documented in docs/orchestrator.md); ``field`` is the JSON path of
    the offending attribute ("" for the message as a whole).
    """

    def __init__(
        self, reason_code: str, message: str, *, field: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason_code = reason_code
        self.field = field


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
        raise _as_binary(exc) from None


def content_mode(data: bytes, attributes: Mapping[str, str] | None) -> str:
    """Which content mode a message uses (the binding's rule, kept compatible with the
    structured messages sent before binary mode existed):

    - a ``content-type`` attribute starting with ``application/cloudevents``: structured;
    - a ``ce-specversion`` attribute: binary;
    - otherwise structured when the body holds ``"specversion"`` (how every earlier producer,
      including ``tenantctl publish`` before ``--mode``, sent its events), binary when other
      ``ce-`` attributes are there (a binary message without ``ce-specversion``), structured
      when neither.
    """
    attrs = attributes or {}
    if _content_type(attrs).lower().startswith(CLOUDEVENTS_MEDIA_TYPE):
        return STRUCTURED
    if f"{BINARY_PREFIX}specversion" in attrs:
        return BINARY
    if any(key.startswith(BINARY_PREFIX) for key in attrs) and b'"specversion"' not in data:
        return BINARY
    return STRUCTURED


def decode_message(
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[dict[str, Any], str]:
    """The event a message carries, as a structured-mode dict, and the mode it came in.

    Checks what belongs to the transport (size, encoding, JSON, the two modes agreeing); the
    event itself is validated by :func:`parse_request`. Raises :class:`InvalidEvent`.
    """
    attrs = dict(attributes or {})
    mode = content_mode(data, attrs)
    if len(data) > max_bytes:
        raise InvalidEvent(
            "TooLarge",
            f"the event is {len(data)} bytes, more than the {max_bytes}-byte limit",
            hint="keep the tenant environment and changeset small; large inputs belong in "
            "object storage, referenced from the changeset",
        )
    if mode == BINARY:
        return _decode_binary(data, attrs, max_depth=max_depth), BINARY
    return _decode_structured(data, attrs, max_depth=max_depth), STRUCTURED


def _decode_structured(
    data: bytes, attributes: Mapping[str, str], *, max_depth: int
) -> dict[str, Any]:
    content_type = _content_type(attributes)
    media = content_type.split(";", 1)[0].strip().lower()
    if media.startswith(CLOUDEVENTS_MEDIA_TYPE) and media != "application/cloudevents+json":
        raise InvalidEvent(
            "UnsupportedContentType",
            f"the message's content-type {content_type!r} is an event format this consumer "
            "does not read",
            field=CONTENT_TYPE_ATTRIBUTE,
            hint=f"send the event as JSON ({STRUCTURED_CONTENT_TYPE!r}) or in binary mode",
        )
    if not data.strip():
        raise InvalidEvent(
            "EmptyBody",
            "the message body is empty: it must hold the CloudEvent as JSON (structured mode), "
            "or the event's data with ce-* attributes (binary mode)",
            hint='send {"specversion": "1.0", "type": ..., "id": ..., "data": {...}}, or '
            "tenantctl publish --mode structured|binary",
        )
    text = _utf8(data, "the event")
    event = _json(
        text,
        max_depth,
        code="NotJSON",
        what="the event",
        hint="send the CloudEvent as JSON (structured mode), or only its data with ce-* "
        "attributes (binary mode)",
    )
    if not isinstance(event, dict):
        raise InvalidEvent(
            "NotAnObject",
            f"the event is a JSON {_json_type(event)}, not an object",
            hint='send {"specversion": "1.0", "type": ..., "id": ..., ...}',
        )
    # The binding lets a structured message repeat attributes as ce-* message attributes (we
    # do, for subscription filters); they must say the same as the body.
    for key in sorted(attributes):
        if not key.startswith(BINARY_PREFIX):
            continue
        name = key[len(BINARY_PREFIX) :]
        if name not in event or not isinstance(event[name], str | int | bool):
            continue
        if _canonical(event[name]) != attributes[key]:
            raise InvalidEvent(
                "ConflictingContentMode",
                f"the message attribute {key} is {_shown(attributes[key])} but the structured "
                f"event's {name} is {_shown(_canonical(event[name]))}",
                field=key,
                hint=f"send {key} with the same value as the event's {name}, or leave the "
                "ce-* attributes off a structured message",
            )
    return event


def _decode_binary(data: bytes, attributes: Mapping[str, str], *, max_depth: int) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for key, value in attributes.items():
        if not key.startswith(BINARY_PREFIX):
            continue  # transport attributes (tenant, origin, ...) are not the event's
        name = key[len(BINARY_PREFIX) :]
        if name in _DATA_ATTRIBUTES:
            raise InvalidEvent(
                "InvalidExtension",
                f"attribute {key} is not allowed: in binary mode the data is the message body",
                field=key,
                hint=f"put the data in the message body and drop {key}",
            )
        event[name] = value
    content_type = _content_type(attributes)
    declared = event.get("datacontenttype")
    if content_type and declared is not None and declared != content_type:
        raise InvalidEvent(
            "ConflictingContentMode",
            f"the message attributes content-type ({_shown(content_type)}) and "
            f"ce-datacontenttype ({_shown(declared)}) disagree",
            field=CONTENT_TYPE_ATTRIBUTE,
            hint="send one of them (content-type is the binding's)",
        )
    if content_type:
        event["datacontenttype"] = content_type
    try:
        _check_content_type(event)
    except InvalidEvent as exc:
        raise _as_binary(exc) from None
    if not data.strip():
        raise InvalidEvent(
            "EmptyBody",
            "the message body is empty: in binary mode it holds the event's data, a JSON object",
            field="data",
            hint='send {"operation": "lifecycle.upsert", ...} as the message body',
        )
    text = _utf8(data, "the message body (the event's data)")
    media = content_type or "application/json (the default)"
    body = _json(
        text,
        max_depth,
        code="DataNotJSON",
        what=f"the message body (the event's data, content-type {media})",
        hint='send the data as a JSON object, e.g. {"operation": "lifecycle.upsert"}',
        field="data",
    )
    if isinstance(body, dict) and "specversion" in body:
        raise InvalidEvent(
            "ConflictingContentMode",
            "the message has ce-* attributes (binary mode) but its body is a whole structured "
            "CloudEvent (it has specversion): the two modes are mixed",
            field=f"{BINARY_PREFIX}specversion",
            hint="binary mode: only the data in the body; structured mode: the whole event in "
            f"the body, content-type {STRUCTURED_CONTENT_TYPE!r} and no ce-specversion",
        )
    event["data"] = body
    return event


def _content_type(attributes: Mapping[str, str]) -> str:
    for key, value in attributes.items():
        if key.lower() == CONTENT_TYPE_ATTRIBUTE:
            return value
    return ""


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(
            "NotUTF8",
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start})",
            hint="send the CloudEvent as UTF-8 encoded JSON",
        ) from exc


def _json(text: str, max_depth: int, *, code: str, what: str, hint: str, field: str = "") -> Any:
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise InvalidEvent(
            "TooDeep",
            f"{what} is nested too deeply to parse",
            field=field,
            hint=f"keep nesting under {max_depth} levels",
        ) from exc
    except ValueError as exc:
        raise InvalidEvent(code, f"{what} is not JSON: {exc}", field=field, hint=hint) from exc
    depth = json_depth(value)
    if depth > max_depth:
        raise InvalidEvent(
            "TooDeep",
            f"{what} is nested {depth} levels deep, more than the limit of {max_depth}",
            field=field,
            hint=f"keep nesting under {max_depth} levels",
        )
    _check_unicode(text, value)
    return value


def _canonical(value: str | int | bool) -> str:
    """The CloudEvents canonical string of an attribute value (what binary mode carries)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")


_BINARY_HINTS: Final = {
    "specversion": 'set the message attribute ce-specversion to "1.0"',
    "id": "set the message attribute ce-id to the batch operation id, e.g. a UUID",
    "source": 'set the message attribute ce-source to who asks, e.g. "tenant-manager"',
    "type": f"set the message attribute ce-type to {REQUEST_TYPE!r}",
    "subject": "set the message attribute ce-subject to the tenant environment id",
    "time": 'set ce-time to an RFC 3339 timestamp, e.g. "2026-11-22T10:00:00Z", or leave it out',
    "datacontenttype": 'set the message attribute content-type to "application/json" or '
    "leave it out",
}


def _as_binary(exc: InvalidEvent) -> InvalidEvent:
    """The same problem, named as a binary-mode message carries the attribute."""
    name = exc.field
    if name in {"", "data", "data_base64", CONTENT_TYPE_ATTRIBUTE} or name.startswith(
        ("data.", BINARY_PREFIX)
    ):
        return exc
    carried = CONTENT_TYPE_ATTRIBUTE if name == "datacontenttype" else f"{BINARY_PREFIX}{name}"
    message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", carried, str(exc.message), count=1)
    return InvalidEvent(
        exc.reason_code, message, field=carried, hint=_BINARY_HINTS.get(name, exc.hint)
    )


def _check_unicode(text: str, event: Any) -> None:
    """Refuse a lone UTF-16 surrogate escape (``"\\ud800"``): valid JSON, but a string that
    cannot be encoded as UTF-8 again -- publishing the dead-letter reason, an annotation or a
    history row would fail on it, and the message would come back forever."""
    if "\\ud" not in text.lower():
        return  # raw UTF-8 text cannot hold a surrogate; only an escape can
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "InvalidUnicode",
            "the event contains a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
            "pair), which is not a Unicode character",
            hint="escape characters outside the BMP as a surrogate pair, or send them as UTF-8",
        ) from exc


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
    _check_content_type(event)
    if "dataschema" in event and not isinstance(event["dataschema"], str):
        raise InvalidEvent(
            "WrongAttributeType",
            f"dataschema must be a string (URI), not {_json_type(event['dataschema'])}",
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
        if name in _CORE_ATTRIBUTES or name in _DATA_ATTRIBUTES:
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
                f"extension attribute {name!r} is a JSON {_json_type(value)}; extension values "
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
            f"attribute {name} must be a string, not a JSON {_json_type(value)}",
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


def _check_content_type(event: Mapping[str, Any]) -> None:
    if "datacontenttype" not in event or event["datacontenttype"] is None:
        return  # structured JSON mode: data is JSON by default
    value = event["datacontenttype"]
    media = value.split(";", 1)[0].strip().lower() if isinstance(value, str) else None
    if media is None or not (
        media in {"application/json", "text/json"}
        or (media.startswith("application/") and media.endswith("+json"))
    ):
        raise InvalidEvent(
            "UnsupportedContentType",
            f"datacontenttype {value!r} is not JSON",
            field="datacontenttype",
            hint='set "datacontenttype": "application/json" or leave it out',
        )


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
            f"data must be a JSON object, not a JSON {_json_type(data)}",
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
            f"data.operation must be a string, not a JSON {_json_type(operation)}",
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
        shown = region if isinstance(region, str) else f"a JSON {_json_type(region)}"
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
            f"data.{key} must be a JSON object, not a JSON {_json_type(value)}",
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
            f"{path} must be a list of application names, not a JSON {_json_type(apps)}",
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
            f"data.{key} must be a string, not a JSON {_json_type(value)}",
            field=f"data.{key}",
        )
    _check_label_value(value, f"data.{key}", "InvalidId", "batch operation id")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (scalars are 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Sequence[Any] = list(current.values())
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------


def rfc3339(moment: datetime) -> str:
    """``2026-11-22T10:00:00Z`` (UTC, seconds precision unless there are microseconds)."""
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def new_batch_operation_id() -> str:
    return str(uuid.uuid4())


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
        "time": rfc3339(time or datetime.now(UTC)),
        "datacontenttype": JSON_CONTENT_TYPE,
        "data": data,
    }


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
        "time": rfc3339(time or datetime.now(UTC)),
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


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, the structured-mode wire format."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def structured_message(event: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Structured content mode: the whole event as the body, ``content-type`` naming the JSON
    event format (so a receiver following the binding does not read it as binary mode), and
    ``ce-type`` / ``ce-id`` repeated as attributes for subscription filters (the binding allows
    it; the consumer checks that they agree with the body)."""
    return encode_event(event), {
        CONTENT_TYPE_ATTRIBUTE: STRUCTURED_CONTENT_TYPE,
        f"{BINARY_PREFIX}type": str(event["type"]),
        f"{BINARY_PREFIX}id": str(event["id"]),
    }


def binary_message(event: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
    """Binary content mode: only ``data`` in the body (JSON); every other attribute as a
    ``ce-<name>`` message attribute in its canonical string form, ``datacontenttype`` as
    ``content-type``."""
    attributes: dict[str, str] = {}
    for name, value in event.items():
        if name in _DATA_ATTRIBUTES or value is None:
            continue
        if name == "datacontenttype" and not str(value).lower().startswith(CLOUDEVENTS_MEDIA_TYPE):
            attributes[CONTENT_TYPE_ATTRIBUTE] = str(value)
        elif name == "datacontenttype":
            # As content-type it would mark the message structured: the binding's rule.
            attributes[f"{BINARY_PREFIX}datacontenttype"] = str(value)
        elif isinstance(value, str | int | bool):
            attributes[f"{BINARY_PREFIX}{name}"] = _canonical(value)
        else:
            raise ValueError(f"attribute {name} is a {type(value).__name__}, not a scalar")
    if f"{BINARY_PREFIX}datacontenttype" not in attributes:
        attributes.setdefault(CONTENT_TYPE_ATTRIBUTE, JSON_CONTENT_TYPE)
    body = json.dumps(event.get("data"), separators=(",", ":"), ensure_ascii=False)
    return body.encode("utf-8"), attributes


def event_message(event: Mapping[str, Any], mode: str) -> tuple[bytes, dict[str, str]]:
    """The event as a Pub/Sub message in ``mode`` (:data:`STRUCTURED` or :data:`BINARY`)."""
    if mode == BINARY:
        return binary_message(event)
    if mode == STRUCTURED:
        return structured_message(event)
    raise ValueError(f"content mode must be one of {', '.join(CONTENT_MODES)}, not {mode!r}")
